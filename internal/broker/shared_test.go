package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func createQueue(t testing.TB, b *Broker, cfg QueueConfig) {
	t.Helper()
	if _, err := b.CreateQueue(context.Background(), cfg); err != nil {
		t.Fatalf("create queue %q: %v", cfg.Name, err)
	}
}

func receive(t testing.TB, b *Broker, q, consumer string, max int, wait time.Duration) []Delivery {
	t.Helper()
	ds, err := b.Receive(context.Background(), q, q, consumer, max, wait)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return ds
}

func refs(ds []Delivery) []DeliveryRef {
	out := make([]DeliveryRef, len(ds))
	for i, d := range ds {
		out[i] = DeliveryRef{Partition: d.Partition, Offset: d.Offset}
	}
	return out
}

// receiveAll receives until n records came or the wait passes.
func receiveAll(t testing.TB, b *Broker, q, consumer string, n int, wait time.Duration) []Delivery {
	t.Helper()
	deadline := time.Now().Add(wait)
	var out []Delivery
	for len(out) < n && time.Now().Before(deadline) {
		out = append(out, receive(t, b, q, consumer, n-len(out), 50*time.Millisecond)...)
	}
	return out
}

func header(r Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestQueueCompetingConsumers(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "jobs", Partitions: 4})
	const total = 2000
	for i := 0; i < total; i += 100 {
		var recs []Record
		for j := i; j < i+100; j++ {
			recs = append(recs, Record{Key: []byte(strconv.Itoa(j % 37)), Value: []byte(strconv.Itoa(j))})
		}
		publish(t, b, "jobs", recs...)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("worker-", c)
			idle := 0
			for idle < 5 {
				ds, err := b.Receive(context.Background(), "jobs", "jobs", id, 50, 50*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					idle++
					continue
				}
				idle = 0
				mu.Lock()
				for _, d := range ds {
					seen[string(d.Value)]++
					if d.DeliveryCount != 1 {
						t.Errorf("record %s delivered with count %d", d.Value, d.DeliveryCount)
					}
				}
				mu.Unlock()
				if err := b.Ack(context.Background(), "jobs", "jobs", id, refs(ds)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != total {
		t.Fatalf("processed %d distinct records, want %d", len(seen), total)
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("record %s processed %d times", v, n)
		}
	}
	info, err := b.DescribeSubscription("jobs", "jobs")
	if err != nil || info.Depth != 0 || info.InFlight != 0 {
		t.Fatalf("after everything was acked: %+v, %v", info, err)
	}
	if qs := b.ListQueues(); len(qs) != 1 || qs[0].Config.Name != "jobs" {
		t.Fatalf("queues: %+v", qs)
	}
}

func TestDisconnectAndDeadlineRedeliver(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "q", Subscription: SubscriptionConfig{AckTimeout: 300 * time.Millisecond}})
	for i := range 10 {
		publish(t, b, "q", Record{Value: []byte(strconv.Itoa(i))})
	}
	a := receiveAll(t, b, "q", "a", 10, 2*time.Second)
	if len(a) != 10 {
		t.Fatalf("a received %d", len(a))
	}
	// While a holds them, nobody else gets them.
	if ds := receive(t, b, "q", "b", 10, 50*time.Millisecond); len(ds) != 0 {
		t.Fatalf("b received %d records held by a", len(ds))
	}
	// b cannot ack what a holds.
	if err := b.Ack(context.Background(), "q", "q", "b", refs(a[:1])); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("ack by another consumer: %v", err)
	}
	b.CloseConsumer("q", "q", "a") // a vanished: its records go out again at once
	got := receiveAll(t, b, "q", "b", 10, 2*time.Second)
	if len(got) != 10 {
		t.Fatalf("after a left, b received %d", len(got))
	}
	for _, d := range got {
		if d.DeliveryCount != 2 {
			t.Fatalf("redelivery count %d", d.DeliveryCount)
		}
	}
	// b extends half of them and lets all deadlines pass: only the other
	// half comes back.
	if err := b.Extend(context.Background(), "q", "q", "b", refs(got[:5]), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	again := receiveAll(t, b, "q", "c", 5, 3*time.Second)
	if len(again) != 5 {
		t.Fatalf("after the deadline c received %d, want 5", len(again))
	}
	for _, d := range again {
		if d.Offset < got[5].Offset && d.Partition == got[0].Partition {
			for _, e := range got[:5] {
				if e.Offset == d.Offset {
					t.Fatalf("an extended record %d was redelivered", d.Offset)
				}
			}
		}
		if d.DeliveryCount != 3 {
			t.Fatalf("count after the deadline: %d", d.DeliveryCount)
		}
	}
	// A late ack of a record redelivered to someone else is refused.
	if err := b.Ack(context.Background(), "q", "q", "b", refs(again[:1])); !errors.Is(err, ErrNotInFlight) {
		t.Fatalf("late ack after redelivery to another consumer: %v", err)
	}
}

func TestNackBackoffDeadLetterAndRedrive(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "orders", Subscription: SubscriptionConfig{
		MaxDeliveries: 3, BackoffInitial: 100 * time.Millisecond, BackoffMultiplier: 2,
	}})
	publish(t, b, "orders", Record{Key: []byte("k"), Value: []byte("poison"), Headers: []Header{{Key: "type", Value: []byte("order")}}})
	var last time.Time
	for attempt := int32(1); attempt <= 3; attempt++ {
		ds := receiveAll(t, b, "orders", "w", 1, 3*time.Second)
		if len(ds) != 1 || ds[0].DeliveryCount != attempt {
			t.Fatalf("attempt %d: %+v", attempt, ds)
		}
		if attempt > 1 {
			// Backoff after delivery n is 100ms × 2^(n-1).
			if gap, want := time.Since(last), 100*time.Millisecond<<(attempt-2); gap < want {
				t.Fatalf("redelivered after %v, backoff is %v", gap, want)
			}
		}
		last = time.Now()
		if err := b.Nack(context.Background(), "orders", "orders", "w", refs(ds), fmt.Sprint("failure ", attempt), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Third nack: dead-lettered with the headers.
	dl := receiveAll(t, b, "orders.dlq", "inspector", 1, 3*time.Second)
	if len(dl) != 1 {
		t.Fatalf("dead-letter queue has %d records", len(dl))
	}
	r := dl[0].Record
	for k, want := range map[string]string{
		HeaderDeadLetterStream: "orders", HeaderDeadLetterPartition: "0", HeaderDeadLetterOffset: "0",
		HeaderDeadLetterReason: ReasonMaxDeliveries, HeaderDeliveryCount: "3", HeaderLastError: "failure 3", "type": "order",
	} {
		if got := header(r, k); got != want {
			t.Errorf("dead-letter header %s = %q, want %q", k, got, want)
		}
	}
	if string(r.Value) != "poison" || string(r.Key) != "k" {
		t.Fatalf("dead-lettered record changed: %+v", r)
	}
	b.CloseConsumer("orders.dlq", "orders.dlq", "inspector")
	// The original is settled right after its copy is stored.
	deadline := time.Now().Add(3 * time.Second)
	for {
		info, _ := b.DescribeSubscription("orders", "orders")
		if info.Depth == 0 && info.DeadLettered == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after dead-lettering: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Redrive brings it back, without the dead-letter headers.
	n, err := b.Redrive(context.Background(), "orders", "orders", 0)
	if err != nil || n != 1 {
		t.Fatalf("redrive: %d, %v", n, err)
	}
	back := receiveAll(t, b, "orders", "w", 1, 3*time.Second)
	if len(back) != 1 || string(back[0].Value) != "poison" || header(back[0].Record, HeaderDeadLetterReason) != "" || header(back[0].Record, "type") != "order" {
		t.Fatalf("redriven: %+v", back)
	}
	if back[0].DeliveryCount != 1 {
		t.Fatalf("a redriven record starts a new count, got %d", back[0].DeliveryCount)
	}
	// Reject dead-letters at once.
	if err := b.Reject(context.Background(), "orders", "orders", "w", refs(back), "bad input"); err != nil {
		t.Fatal(err)
	}
	dl = receiveAll(t, b, "orders.dlq", "inspector2", 1, 3*time.Second)
	if len(dl) != 1 || header(dl[0].Record, HeaderDeadLetterReason) != ReasonRejected || header(dl[0].Record, HeaderLastError) != "bad input" {
		t.Fatalf("rejected record in the dead-letter queue: %+v", dl)
	}
}

func TestKeyOrderedUnderConcurrency(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "kq", Partitions: 4, Subscription: SubscriptionConfig{KeyOrdered: true}})
	const keys, perKey = 16, 40
	for i := range perKey {
		var recs []Record
		for k := range keys {
			recs = append(recs, Record{Key: []byte(fmt.Sprint("key-", k)), Value: []byte(strconv.Itoa(i))})
		}
		publish(t, b, "kq", recs...)
	}
	var mu sync.Mutex
	next := map[string]int{}
	busy := map[string]bool{}
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			id := fmt.Sprint("c", c)
			idle := 0
			for idle < 10 {
				ds, err := b.Receive(context.Background(), "kq", "kq", id, 4, 30*time.Millisecond)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					idle++
					continue
				}
				idle = 0
				for _, d := range ds {
					k := string(d.Key)
					mu.Lock()
					if busy[k] {
						t.Errorf("two records of %s in flight at once", k)
					}
					busy[k] = true
					seq, _ := strconv.Atoi(string(d.Value))
					if seq != next[k] {
						t.Errorf("%s: got record %d, expected %d", k, seq, next[k])
					}
					mu.Unlock()
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
					// Some fail once and are retried: order must hold anyway.
					if rng.IntN(10) == 0 && d.DeliveryCount == 1 {
						mu.Lock()
						busy[k] = false
						mu.Unlock()
						if err := b.Nack(context.Background(), "kq", "kq", id, refs([]Delivery{d}), "retry", time.Millisecond); err != nil {
							t.Error(err)
						}
						continue
					}
					mu.Lock()
					busy[k] = false
					next[k] = seq + 1
					mu.Unlock()
					if err := b.Ack(context.Background(), "kq", "kq", id, refs([]Delivery{d})); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for k := range keys {
		if n := next[fmt.Sprint("key-", k)]; n != perKey {
			t.Fatalf("key-%d: processed %d of %d", k, n, perKey)
		}
	}
}

func TestDelayTTLAndFilter(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createQueue(t, b, QueueConfig{Name: "d"})
	// Far enough ahead that a loaded machine (-race, parallel packages)
	// still receives "now" well before "later" is due.
	at := time.Now().Add(2 * time.Second)
	publish(t, b, "d",
		Record{Value: []byte("later"), Headers: []Header{{Key: HeaderDeliverAt, Value: []byte(at.Format(time.RFC3339Nano))}}},
		Record{Value: []byte("expired"), Headers: []Header{{Key: HeaderExpiresAt, Value: []byte(strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10))}}},
		Record{Value: []byte("now")},
	)
	first := receiveAll(t, b, "d", "c", 3, time.Second)
	if len(first) != 1 || string(first[0].Value) != "now" {
		t.Fatalf("before the delay: %+v", first)
	}
	b.Ack(ctx, "d", "d", "c", refs(first))
	info, _ := b.DescribeSubscription("d", "d")
	if info.Delayed != 1 {
		t.Fatalf("describe: %+v", info)
	}
	later := receiveAll(t, b, "d", "c", 1, 5*time.Second)
	if len(later) != 1 || string(later[0].Value) != "later" || time.Now().Before(at) {
		t.Fatalf("delayed record: %+v at %v (due %v)", later, time.Now(), at)
	}

	// Filters.
	createStream(t, b, StreamConfig{Name: "events", Partitions: 2})
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: "events", Name: "bad", Filter: "headers['type'] =="}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad filter: %v", err)
	}
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: "events", Name: "orders-only", Filter: "headers['type'] == 'order'", Start: StartPosition{Kind: StartEarliest}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		typ := "order"
		if i%2 == 1 {
			typ = "click"
		}
		publish(t, b, "events", Record{Value: []byte(strconv.Itoa(i)), Headers: []Header{{Key: "type", Value: []byte(typ)}}})
	}
	got, err := func() ([]Delivery, error) {
		var out []Delivery
		deadline := time.Now().Add(3 * time.Second)
		for len(out) < 10 && time.Now().Before(deadline) {
			ds, err := b.Receive(ctx, "events", "orders-only", "c", 20, 50*time.Millisecond)
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
		return out, nil
	}()
	if err != nil || len(got) != 10 {
		t.Fatalf("filtered receive: %d records, %v", len(got), err)
	}
	for _, d := range got {
		if header(d.Record, "type") != "order" {
			t.Fatalf("filter let %+v through", d)
		}
	}
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: "events", Name: "orders-only"}); !errors.Is(err, ErrSubscriptionExists) {
		t.Fatalf("duplicate subscription: %v", err)
	}
}

// TestRestartKeepsAckState: acked records never come back, unacked ones all
// do, with their delivery counts.
func TestRestartKeepsAckState(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createQueue(t, b, QueueConfig{Name: "q", Partitions: 3})
	for i := range 90 {
		publish(t, b, "q", Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	ds := receiveAll(t, b, "q", "c", 60, 3*time.Second)
	if len(ds) != 60 {
		t.Fatalf("received %d", len(ds))
	}
	acked := map[string]bool{}
	var toAck []Delivery
	for i, d := range ds {
		if i%2 == 0 { // every other one: holes above the floor
			toAck = append(toAck, d)
			acked[string(d.Value)] = true
		}
	}
	if err := b.Ack(ctx, "q", "q", "c", refs(toAck)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openBroker(t, dir)
	defer b.Close()
	info, _ := b.DescribeSubscription("q", "q")
	if info.Depth != 60 {
		t.Fatalf("depth after restart %d, want 60", info.Depth)
	}
	again := receiveAll(t, b, "q", "d", 100, 3*time.Second)
	if len(again) != 60 {
		t.Fatalf("after restart %d records delivered, want the 60 unacked", len(again))
	}
	held := map[string]bool{}
	for _, d := range ds {
		held[string(d.Value)] = true
	}
	for _, d := range again {
		v := string(d.Value)
		if acked[v] {
			t.Fatalf("acked record %s delivered again", v)
		}
		want := int32(1)
		if held[v] {
			want = 2 // delivered once before the restart
		}
		if d.DeliveryCount != want {
			t.Fatalf("record %s delivered with count %d, want %d", v, d.DeliveryCount, want)
		}
	}
	if err := b.Ack(ctx, "q", "q", "d", refs(again)); err != nil {
		t.Fatal(err)
	}
	if info, _ := b.DescribeSubscription("q", "q"); info.Depth != 0 {
		t.Fatalf("depth %d after acking everything", info.Depth)
	}
}

func TestPurgeRetentionAndDelete(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if _, err := b.createStream(ctx, StreamConfig{Name: "q", SegmentBytes: 1 << 20}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: "q", Name: "q", Start: StartPosition{Kind: StartEarliest}}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 100<<10)
	for range 40 { // 4 MB: several segments
		publish(t, b, "q", Record{Value: big})
	}
	ds := receiveAll(t, b, "q", "c", 25, 5*time.Second)
	if err := b.Ack(ctx, "q", "q", "c", refs(ds)); err != nil {
		t.Fatal(err)
	}
	// Acked segments are freed (the floor is stored by the commit after).
	deadline := time.Now().Add(3 * time.Second)
	for {
		d, _ := b.DescribeStream("q")
		if d.Partitions[0].StartOffset > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no segment freed after acking 25 of 40 records: %+v", d.Partitions[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	n, err := b.Purge(ctx, "q", "q")
	if err != nil || n == 0 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if info, _ := b.DescribeSubscription("q", "q"); info.Depth != 0 {
		t.Fatalf("depth after purge: %d", info.Depth)
	}
	if ds := receive(t, b, "q", "c", 10, 100*time.Millisecond); len(ds) != 0 {
		t.Fatalf("received %d after purge", len(ds))
	}
	if err := b.DeleteSubscription(ctx, "q", "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Receive(ctx, "q", "q", "c", 1, 0); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("receive on a deleted subscription: %v", err)
	}
}

func TestReaderFilter(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})
	for i := range 10 {
		publish(t, b, "s", Record{Key: []byte(fmt.Sprint("k", i)), Value: []byte(strconv.Itoa(i))})
	}
	f, err := CompileFilter("key in ['k1', 'k4', 'k7']")
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.NewReader("s", map[int32]int64{0: 0, 1: 0})
	if err != nil {
		t.Fatal(err)
	}
	r.SetFilter(f)
	var got []string
	for {
		recs, err := r.Read(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			got = append(got, string(rec.Key))
		}
	}
	if len(got) != 3 {
		t.Fatalf("filtered reader returned %v", got)
	}
	if _, err := CompileFilter("key =="); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestMaxLengthPolicies(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	values := func(ds []Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, string(d.Value))
		}
		return out
	}
	waitDepth := func(q string, want int64) SubscriptionInfo {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			info, _ := b.DescribeSubscription(q, q)
			if info.Depth == want {
				return info
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: depth %d, want %d", q, info.Depth, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	t.Run("drop-oldest", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "drop", Subscription: SubscriptionConfig{MaxLength: 5}})
		for i := range 10 {
			publish(t, b, "drop", Record{Value: []byte(strconv.Itoa(i))})
		}
		waitDepth("drop", 5)
		got := values(receiveAll(t, b, "drop", "c", 10, time.Second))
		if fmt.Sprint(got) != "[5 6 7 8 9]" {
			t.Fatalf("kept %v, want the newest five", got)
		}
	})
	t.Run("reject-publish", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "reject", Subscription: SubscriptionConfig{MaxLength: 3, Overflow: OverflowRejectPublish}})
		for i := range 3 {
			publish(t, b, "reject", Record{Value: []byte(strconv.Itoa(i))})
		}
		if _, err := b.Publish(ctx, "reject", []Record{{Value: []byte("over")}}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("publish past the max length: %v", err)
		}
		ds := receiveAll(t, b, "reject", "c", 1, time.Second)
		if err := b.Ack(ctx, "reject", "reject", "c", refs(ds)); err != nil {
			t.Fatal(err)
		}
		publish(t, b, "reject", Record{Value: []byte("fits")})
		waitDepth("reject", 3)
	})
	t.Run("dead-letter", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "dl", Subscription: SubscriptionConfig{MaxLength: 2, Overflow: OverflowDeadLetter}})
		for i := range 5 {
			publish(t, b, "dl", Record{Value: []byte(strconv.Itoa(i))})
		}
		waitDepth("dl", 2)
		// Records dead-lettered at once go out concurrently: any order.
		dead := receiveAll(t, b, "dl.dlq", "c", 3, 3*time.Second)
		got := values(dead)
		slices.Sort(got)
		if fmt.Sprint(got) != "[0 1 2]" || header(dead[0].Record, HeaderDeadLetterReason) != ReasonMaxLength {
			t.Fatalf("dead-lettered %v (%q)", values(dead), header(dead[0].Record, HeaderDeadLetterReason))
		}
	})
	if _, err := b.CreateQueue(ctx, QueueConfig{Name: "bad", Subscription: SubscriptionConfig{MaxLength: 1, Overflow: "explode"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad overflow policy: %v", err)
	}
}

func TestPurgeAfterRestartCountsRight(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createQueue(t, b, QueueConfig{Name: "q"})
	for i := range 10 {
		publish(t, b, "q", Record{Value: []byte(strconv.Itoa(i))})
	}
	ds := receiveAll(t, b, "q", "c", 10, 2*time.Second)
	var odd []Delivery
	for _, d := range ds {
		if d.Offset%2 == 1 {
			odd = append(odd, d)
		}
	}
	if err := b.Ack(ctx, "q", "q", "c", refs(odd)); err != nil { // acks above the floor
		t.Fatal(err)
	}
	b.Close()
	b = openBroker(t, dir)
	defer b.Close()
	// Purge right after the restart, before the fetcher re-read everything
	// (it may have: both orders must give the same answer).
	n, err := b.Purge(ctx, "q", "q")
	if err != nil || n != 5 {
		t.Fatalf("purged %d, %v; want the 5 unacked", n, err)
	}
	publish(t, b, "q", Record{Value: []byte("after")})
	deadline := time.Now().Add(2 * time.Second)
	for {
		info, _ := b.DescribeSubscription("q", "q")
		if info.Depth == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("depth after purge and one publish: %d, want 1", info.Depth)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := receiveAll(t, b, "q", "c", 5, 500*time.Millisecond); len(got) != 1 || string(got[0].Value) != "after" {
		t.Fatalf("after purge received %+v", got)
	}
}
