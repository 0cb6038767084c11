package kafka_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/broker"
)

// TestInterop checks that records cross between the Kafka front end and the
// broker's native calls with key, value and headers intact, and that a
// message-id header deduplicates Kafka produces as it does native ones.
func TestInterop(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	b := w.srv.Broker()
	if _, err := b.CreateStream(ctx, broker.StreamConfig{Name: "mix", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	native := broker.Record{Key: []byte("nk"), Value: []byte("native"), Headers: []broker.Header{{Key: "content-type", Value: []byte("text/plain")}}}
	if _, err := b.Publish(ctx, "mix", []broker.Record{native}); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	dup := func(v string) *kgo.Record {
		return &kgo.Record{Topic: "mix", Partition: 0, Key: []byte("kk"), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: broker.HeaderMessageID, Value: []byte("m-1")}, {Key: "x", Value: []byte("y")}}}
	}
	if err := prod.ProduceSync(ctx, dup("first")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, dup("again")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	plain := &kgo.Record{Topic: "mix", Partition: 0, Value: []byte("plain")}
	if err := prod.ProduceSync(ctx, plain).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The broker reads what Kafka wrote: the duplicate was not stored.
	res, err := b.Fetch(ctx, "mix", 0, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, r := range res.Records {
		values = append(values, string(r.Value))
	}
	kpart := broker.KeyPartition([]byte("nk"), 2)
	wantN := 2
	if kpart == 0 {
		wantN = 3
	}
	if len(res.Records) != wantN {
		t.Fatalf("partition 0 holds %q, want %d records", values, wantN)
	}
	for _, r := range res.Records {
		if string(r.Value) == "first" && (len(r.Headers) != 2 || r.Headers[1].Key != "x") {
			t.Errorf("headers of the Kafka record: %+v", r.Headers)
		}
	}
	// A message-id published natively is a duplicate for Kafka too.
	if _, err := b.Publish(ctx, "mix", []broker.Record{{Value: []byte("n2"), Headers: []broker.Header{{Key: broker.HeaderMessageID, Value: []byte("m-2")}}}}); err != nil {
		t.Fatal(err)
	}
	before, _ := b.DescribeStream("mix")
	r := dup("third")
	r.Headers[0].Value = []byte("m-2")
	if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	after, _ := b.DescribeStream("mix")
	if before.Partitions[0].EndOffset != after.Partitions[0].EndOffset {
		t.Errorf("a Kafka record with a message-id seen natively was stored")
	}
	// Kafka consumers read the native record with its headers.
	cl := w.client(t, kgo.ConsumeTopics("mix"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for found := false; !found; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("native record not consumed")
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "native" {
				found = true
				if string(r.Key) != "nk" || len(r.Headers) != 1 || r.Headers[0].Key != "content-type" || string(r.Headers[0].Value) != "text/plain" {
					t.Errorf("native record over Kafka: %+v", r)
				}
			}
		})
	}
}

// TestResumeAfterRestart commits offsets in a Kafka group, restarts the
// node on the same data, and checks that the group resumes after them.
func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	w := startWeirIn(t, dir)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 2, 1, nil, "durable"); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	produceValues(t, prod, "durable", 0, 100)
	seen := &seenSet{seen: make(map[int]int)}
	m := startMember(t, w, "resume", "durable", seen)
	waitFor(t, "100 records", func() bool { return seen.count() == 100 })
	m.stop()
	prod.Close()
	w.stop(t)

	w2 := startWeirIn(t, dir)
	produceValues(t, w2.client(t), "durable", 100, 150)
	m2 := startMember(t, w2, "resume", "durable", seen)
	waitFor(t, "150 records", func() bool { return seen.count() == 150 })
	time.Sleep(300 * time.Millisecond) // let redeliveries, if any, arrive
	m2.stop()
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for v, n := range seen.seen {
		if n != 1 {
			t.Errorf("record %s consumed %d times", strconv.Itoa(v), n)
		}
	}
}
