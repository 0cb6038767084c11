package kafka

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceFrame is a length-prefixed Produce v7 request carrying records of
// recordsBytes bytes for one partition.
func produceFrame(recordsBytes int) (frame, records []byte) {
	records = make([]byte, recordsBytes)
	for i := range records {
		records[i] = byte(i * 7)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 7, -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	var body []byte
	body = binary.BigEndian.AppendUint16(body, 0) // Produce
	body = binary.BigEndian.AppendUint16(body, 7)
	body = binary.BigEndian.AppendUint32(body, 42) // correlation id
	body = binary.BigEndian.AppendUint16(body, 1)
	body = append(body, 'c')
	body = req.AppendTo(body)
	frame = binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(frame, body...), records
}

// chunkReader hands out at most n bytes per Read, as a socket does.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestReadRequestLarge reads a 1 MiB produce request arriving in 16 KiB
// pieces: it is whole, and its frame grows in few steps.
func TestReadRequestLarge(t *testing.T) {
	frame, records := produceFrame(1 << 20)
	read := func() *request {
		req, err := readRequest(bufio.NewReaderSize(&chunkReader{bytes.NewReader(frame), 16 << 10}, 64<<10), 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	req := read()
	p, ok := req.body.(*kmsg.ProduceRequest)
	if !ok || req.correlation != 42 || req.clientID != "c" || len(p.Topics) != 1 || !bytes.Equal(p.Topics[0].Partitions[0].Records, records) {
		t.Fatalf("read back %+v", req)
	}
	// The frame is allocated once, at its size: the scratch buffer it is
	// read into comes back to the pool. Growing the frame as bytes arrived
	// allocated 64 KiB, 256 KiB and 1 MiB for it.
	r := bufio.NewReaderSize(nil, 64<<10)
	src := bytes.NewReader(nil)
	var before, after runtime.MemStats
	const runs = 20
	runtime.ReadMemStats(&before)
	for range runs {
		src.Reset(frame)
		r.Reset(&chunkReader{src, 16 << 10})
		if _, err := readRequest(r, 8<<20); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// A scratch buffer is allowed for a run whose pooled one the garbage
	// collector took.
	perRead := float64(after.TotalAlloc-before.TotalAlloc) / runs
	// The race detector's sync.Pool drops a quarter of what is put back.
	if perRead > 1.25*float64(len(frame)) && !raceEnabled {
		t.Errorf("%.0f bytes allocated to read a %d-byte request, want at most 1.25 times its size", perRead, len(frame))
	}

	// A frame that declares 8 MiB and ends after 100 KiB costs what arrived,
	// not what it declared.
	lying := binary.BigEndian.AppendUint32(nil, 8<<20)
	lying = append(lying, frame[4:100<<10]...)
	runtime.ReadMemStats(&before)
	if _, err := readRequest(bufio.NewReader(bytes.NewReader(lying)), 8<<20); err != io.ErrUnexpectedEOF {
		t.Fatalf("a truncated frame: %v, want %v", err, io.ErrUnexpectedEOF)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated for a frame that declared 8 MiB and sent 100 KiB", n)
	}

	// A frame larger than the limit is refused before it is read.
	if _, err := readRequest(bufio.NewReader(bytes.NewReader(frame)), 1<<20); err == nil {
		t.Fatal("a frame over the limit was read")
	}
}

// go test -run XXX -bench ReadRequest ./internal/protocol/kafka/
func BenchmarkReadRequest1MiB(b *testing.B) {
	frame, _ := produceFrame(1 << 20)
	src := bytes.NewReader(frame)
	r := bufio.NewReaderSize(&chunkReader{src, 64 << 10}, 64<<10)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(frame)
		r.Reset(&chunkReader{src, 64 << 10})
		if _, err := readRequest(r, 8<<20); err != nil {
			b.Fatal(err)
		}
	}
}
