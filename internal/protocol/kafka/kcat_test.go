package kafka_test

import (
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kcat runs kcat (librdkafka) against the node. kcat is installed by
// .ci/run; a machine without it fails the test rather than skipping it.
func kcat(t *testing.T, w *weir, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not installed (apt-get install kcat; .ci/run does it): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-b", w.addr}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %q: %v\n%s%s", args, err, out, stderr.String())
	}
	return string(out)
}

// TestKcat produces keyed records with headers with kcat, consumes them
// with kcat and with franz-go, lists metadata and looks offsets up by time.
func TestKcat(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 3, 1, nil, "kc"); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := range 30 {
		in.WriteString("key" + strconv.Itoa(i) + ":value" + strconv.Itoa(i) + "\n")
	}
	kcat(t, w, in.String(), "-P", "-t", "kc", "-K:", "-H", "source=kcat", "-z", "lz4")

	out := kcat(t, w, "", "-C", "-t", "kc", "-e", "-o", "beginning", "-f", "%k=%s|%h\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	if len(lines) != 30 {
		t.Fatalf("kcat consumed %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		k, rest, _ := strings.Cut(l, "=")
		v, h, _ := strings.Cut(rest, "|")
		if strings.TrimPrefix(k, "key") != strings.TrimPrefix(v, "value") || h != "source=kcat" {
			t.Errorf("kcat read %q", l)
		}
	}
	// franz-go reads what librdkafka wrote, key, value and header.
	cl := w.client(t, kgo.ConsumeTopics("kc"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 30 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go read %d of 30", got)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if len(r.Headers) != 1 || r.Headers[0].Key != "source" || string(r.Headers[0].Value) != "kcat" {
				t.Errorf("headers %v", r.Headers)
			}
		})
	}

	md := kcat(t, w, "", "-L", "-t", "kc")
	if !strings.Contains(md, `topic "kc" with 3 partitions`) || !strings.Contains(md, w.addr) {
		t.Errorf("kcat -L:\n%s", md)
	}

	// Offsets for a time: every record of partition 0 at or after t0, none
	// after the future.
	prod := w.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	t0 := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for i := range 5 {
		r := &kgo.Record{Topic: "kc", Partition: 0, Value: []byte("late"), Timestamp: t0.Add(time.Duration(i) * time.Second)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := w.srv.Broker().DescribeStream("kc")
	end := info.Partitions[0].EndOffset
	q := kcat(t, w, "", "-Q", "-t", "kc:0:"+strconv.FormatInt(t0.Add(2*time.Second).UnixMilli(), 10))
	if want := "offset " + strconv.FormatInt(end-3, 10); !strings.Contains(q, want) {
		t.Errorf("kcat -Q: %q, want %q", q, want)
	}
}
