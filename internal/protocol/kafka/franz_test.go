package kafka_test

import (
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFranzRoundTrip produces keyed records with headers to a topic of 16
// partitions (acks=all, idempotent, in several compression codecs) and
// consumes every one back, in order per partition.
func TestFranzRoundTrip(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	if _, err := adm.CreateTopic(ctx, 16, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	const n = 4000
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	for ci, codec := range codecs {
		p := w.client(t, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic("orders"))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for i := range n / len(codecs) {
			idx := ci*(n/len(codecs)) + i
			r := &kgo.Record{Key: []byte("k" + strconv.Itoa(idx%997)), Value: []byte(strconv.Itoa(idx)),
				Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v" + strconv.Itoa(idx))}}}
			wg.Add(1)
			p.Produce(ctx, r, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("codec %d: %d produce errors, first %v", ci, len(errs), errs[0])
		}
	}

	c := w.client(t, kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := make(map[int]bool)
	last := make(map[int32]int64)
	for len(seen) < n {
		fs := c.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(seen), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			v, _ := strconv.Atoi(string(r.Value))
			if seen[v] {
				t.Fatalf("record %d consumed twice", v)
			}
			seen[v] = true
			if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
			if want := "k" + strconv.Itoa(v%997); string(r.Key) != want {
				t.Fatalf("record %d has key %q, want %q", v, r.Key, want)
			}
			if len(r.Headers) != 1 || string(r.Headers[0].Value) != "v"+strconv.Itoa(v) {
				t.Fatalf("record %d has headers %v", v, r.Headers)
			}
		})
	}
	if len(last) != 16 {
		t.Errorf("records landed in %d partitions, want 16", len(last))
	}
}

// TestApiVersionsUnsupported sends ApiVersions at a version Weir lacks and
// expects a v0 answer with UNSUPPORTED_VERSION and the supported ranges.
func TestApiVersionsUnsupported(t *testing.T) {
	w := startWeir(t)
	conn := dial(t, w.addr)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 99
	writeFrame(t, conn, requestFrame(18, 99, 7, "test", nil))
	corr, body := readFrame(t, conn)
	if corr != 7 {
		t.Fatalf("correlation id %d, want 7", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("error code %d, want %d", resp.ErrorCode, kerr.UnsupportedVersion.Code)
	}
	i := slices.IndexFunc(resp.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == 18 })
	if i < 0 || resp.ApiKeys[i].MinVersion != 0 || resp.ApiKeys[i].MaxVersion < 3 {
		t.Fatalf("ApiVersions range missing or wrong: %+v", resp.ApiKeys)
	}
	// The connection stays usable: a supported version now works, with a
	// flexible request header and a v0 response header.
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "weir-test", "1"
	writeFrame(t, conn, requestFrame(18, 3, 8, "test", req.AppendTo(nil)))
	corr, body = readFrame(t, conn)
	resp = kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	if err := resp.ReadFrom(body); corr != 8 || err != nil || resp.ErrorCode != 0 {
		t.Fatalf("v3: correlation %d, err %v, code %d", corr, err, resp.ErrorCode)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == 0 && (k.MinVersion > 3 || k.MaxVersion < 7) {
			t.Errorf("Produce range %d-%d", k.MinVersion, k.MaxVersion)
		}
		if k.ApiKey == 1 && (k.MinVersion > 4 || k.MaxVersion < 11) {
			t.Errorf("Fetch range %d-%d", k.MinVersion, k.MaxVersion)
		}
	}
}
