package weir_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	weir "github.com/weirmq/weir/client"
)

// TestMemoryIdempotencyStore: claims, completion, release, and a claim
// that waits for another.
func TestMemoryIdempotencyStore(t *testing.T) {
	ctx := t.Context()
	s := weir.NewMemoryIdempotencyStore(10, 0)
	claim := func(id string, want bool) {
		t.Helper()
		if got, err := s.Claim(ctx, id); err != nil || got != want {
			t.Fatalf("Claim(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	claim("a", true)
	if err := s.Complete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	claim("a", false)
	if err := s.Complete(ctx, "a"); !errors.Is(err, weir.ErrNotClaimed) {
		t.Errorf("Complete of a processed id: %v, want ErrNotClaimed", err)
	}
	if err := s.Release(ctx, "nobody"); !errors.Is(err, weir.ErrNotClaimed) {
		t.Errorf("Release of an unclaimed id: %v, want ErrNotClaimed", err)
	}
	claim("b", true)
	if err := s.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	claim("b", true) // released: claimable again

	// A second claim of b waits for the first to end: after a release it
	// gets the claim, after a completion it learns b was processed.
	got := make(chan bool)
	go func() {
		ok, err := s.Claim(ctx, "b")
		if err != nil {
			t.Error(err)
		}
		got <- ok
	}()
	select {
	case ok := <-got:
		t.Fatalf("Claim of a claimed id returned %v at once", ok)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if !<-got {
		t.Fatal("the waiting Claim did not get the released id")
	}
	go func() {
		ok, err := s.Claim(ctx, "b")
		if err != nil {
			t.Error(err)
		}
		got <- ok
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Complete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if <-got {
		t.Fatal("the waiting Claim claimed a completed id")
	}

	// A waiting claim gives up with its context.
	claim("c", true)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if ok, err := s.Claim(cctx, "c"); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Claim with an expired context = %v, %v", ok, err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2 (a and b)", s.Len())
	}
}

// TestMemoryIdempotencyStoreBounds: the oldest processed ids go past the
// size limit, and each one after its TTL; claims stay.
func TestMemoryIdempotencyStoreBounds(t *testing.T) {
	ctx := t.Context()
	s := weir.NewMemoryIdempotencyStore(3, 0)
	for i := range 5 {
		id := strconv.Itoa(i)
		if ok, _ := s.Claim(ctx, id); !ok {
			t.Fatalf("Claim(%s) refused", id)
		}
		if err := s.Complete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len = %d, want 3", s.Len())
	}
	for i, want := range []bool{true, true, false, false, false} { // 0 and 1 were forgotten
		if ok, _ := s.Claim(ctx, strconv.Itoa(i)); ok != want {
			t.Errorf("Claim(%d) = %v, want %v", i, ok, want)
		}
	}

	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		s := weir.NewMemoryIdempotencyStore(0, time.Minute)
		complete := func(id string) {
			if ok, _ := s.Claim(ctx, id); !ok {
				t.Fatalf("Claim(%s) refused", id)
			}
			if err := s.Complete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		complete("old")
		time.Sleep(40 * time.Second)
		complete("new")
		if ok, _ := s.Claim(ctx, "pending"); !ok {
			t.Fatal("Claim(pending) refused")
		}
		time.Sleep(30 * time.Second) // old is 70s old, new 30s
		if ok, _ := s.Claim(ctx, "new"); ok {
			t.Error("new was forgotten before its TTL")
		}
		if ok, _ := s.Claim(ctx, "old"); !ok {
			t.Error("old was remembered past its TTL")
		}
		time.Sleep(time.Hour)
		if s.Len() != 0 {
			t.Errorf("Len = %d after every TTL passed", s.Len())
		}
		// Claims do not expire: pending is still claimed.
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := s.Claim(cctx, "pending"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Claim of a claimed id after the TTL: %v, want a wait until the deadline", err)
		}
	})
}

// idTracker counts a handler's calls per message id and notices calls for
// one id that overlap.
type idTracker struct {
	mu       sync.Mutex
	calls    map[string]int
	inFlight map[string]int
	overlaps int
}

func newIDTracker() *idTracker {
	return &idTracker{calls: make(map[string]int), inFlight: make(map[string]int)}
}

func (tr *idTracker) enter(id string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.calls[id]++
	tr.inFlight[id]++
	if tr.inFlight[id] > 1 {
		tr.overlaps++
	}
}

func (tr *idTracker) leave(id string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.inFlight[id]--
}

func (tr *idTracker) count(id string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.calls[id]
}

func (tr *idTracker) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.calls {
		n += c
	}
	return n
}

// TestIdempotentGroup: each record is published twice into a stream
// without dedup, so both copies are stored, in different partitions; a
// group consumer with an Idempotent handler processes each id once, while
// records without a message-id are processed every time.
func TestIdempotentGroup(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	if _, err := c.CreateStream(ctx, weir.StreamConfig{Name: "payments", Partitions: 3, DedupWindow: -1}); err != nil {
		t.Fatal(err)
	}
	const ids = 40
	var batch []weir.Record
	for i := range ids {
		batch = append(batch, weir.Record{Value: []byte("pay " + strconv.Itoa(i)),
			Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte("pay-" + strconv.Itoa(i))}}})
	}
	batch = append(batch, weir.Record{Value: []byte("anonymous")}, weir.Record{Value: []byte("empty id"),
		Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte{}}}})
	for range 2 {
		res, err := c.Publish(ctx, "payments", batch...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Duplicate {
				t.Fatal("the stream deduplicated a record with its dedup window off")
			}
		}
	}
	info, err := c.DescribeStream(ctx, "payments")
	if err != nil || info.Records() != 2*int64(len(batch)) {
		t.Fatalf("stream holds %d records, %v; want both copies of each", info.Records(), err)
	}

	tracker := newIDTracker()
	var duplicates atomic.Int32
	store := weir.NewMemoryIdempotencyStore(1000, time.Hour)
	handler := weir.Idempotent(store, func(_ context.Context, m *weir.Message) error {
		id := string(m.Value)
		tracker.enter(id)
		time.Sleep(2 * time.Millisecond) // let the partitions' copies overlap
		tracker.leave(id)
		return nil
	}, weir.OnDuplicate(func(_ context.Context, m *weir.Message) { duplicates.Add(1) }))
	cons, err := c.Consume(ctx, "payments", handler, weir.Group("billing"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 20*time.Second, "every record handled or skipped", func() bool {
		return tracker.total()+int(duplicates.Load()) == 2*len(batch)
	})
	for i := range ids {
		if n := tracker.count("pay " + strconv.Itoa(i)); n != 1 {
			t.Errorf("pay-%d processed %d times, want once", i, n)
		}
	}
	if n := tracker.count("anonymous"); n != 2 {
		t.Errorf("the record without message-id processed %d times, want 2", n)
	}
	if n := tracker.count("empty id"); n != 2 {
		t.Errorf("the record with an empty message-id processed %d times, want 2", n)
	}
	if d := duplicates.Load(); d != ids {
		t.Errorf("%d duplicates skipped, want %d", d, ids)
	}
	if tracker.overlaps != 0 {
		t.Errorf("%d handler calls overlapped another of their id", tracker.overlaps)
	}
	if store.Len() != ids {
		t.Errorf("store holds %d ids, want %d", store.Len(), ids)
	}
	// The skipped duplicates are committed like the rest.
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := c.DescribeGroup(ctx, "billing")
	if err != nil || g.Lag() != 0 {
		t.Errorf("group after the consumer: lag %d, %v; want 0", g.Lag(), err)
	}
}

// TestIdempotentSharedRedelivery: a shared consumer's records come again
// after the handler processed them, because their ack was lost (here:
// the handler around the idempotent one fails after it, so the record is
// nacked) or came too late (the handler outlived the ack timeout); the
// redeliveries are skipped. A record whose processing failed is processed
// again on its redelivery.
func TestIdempotentSharedRedelivery(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "charges", Subscription: weir.SubscriptionConfig{
		AckTimeout: 500 * time.Millisecond,
		Backoff:    weir.Backoff{Initial: 20 * time.Millisecond, Multiplier: 1},
	}})
	tracker := newIDTracker()
	var mu sync.Mutex
	skipped := make(map[string][]int32) // id -> delivery counts skipped
	failedOnce := false
	store := weir.NewMemoryIdempotencyStore(0, time.Hour)
	inner := weir.Idempotent(store, func(_ context.Context, m *weir.Message) error {
		id := string(m.Value)
		tracker.enter(id)
		defer tracker.leave(id)
		if id == "flaky" {
			mu.Lock()
			defer mu.Unlock()
			if !failedOnce {
				failedOnce = true
				return errors.New("payment provider unavailable")
			}
		}
		return nil
	}, weir.OnDuplicate(func(_ context.Context, m *weir.Message) {
		mu.Lock()
		skipped[string(m.Value)] = append(skipped[string(m.Value)], m.DeliveryCount)
		mu.Unlock()
	}))
	outer := func(ctx context.Context, m *weir.Message) error {
		err := inner(ctx, m)
		if err != nil || m.DeliveryCount > 1 {
			return err
		}
		switch string(m.Value) {
		case "ack-lost":
			return errors.New("connection lost before the ack")
		case "slow":
			time.Sleep(time.Second) // past the ack timeout: the server delivers it again meanwhile
		}
		return nil
	}
	cons, err := c.Consume(ctx, "charges", outer, weir.Shared(""), weir.Prefetch(10))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	var recs []weir.Record
	for _, id := range []string{"plain", "ack-lost", "slow", "flaky"} {
		recs = append(recs, weir.Record{Value: []byte(id), Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte(id)}}})
	}
	if _, err := c.Publish(ctx, "charges", recs...); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, c, "charges", "charges", 0)

	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]int{"plain": 1, "ack-lost": 1, "slow": 1, "flaky": 2} {
		if n := tracker.count(id); n != want {
			t.Errorf("%s processed %d times, want %d", id, n, want)
		}
	}
	if fmt.Sprint(skipped["ack-lost"]) != "[2]" {
		t.Errorf("ack-lost skipped at deliveries %v, want [2]", skipped["ack-lost"])
	}
	if len(skipped["slow"]) == 0 {
		t.Error("the redelivery of slow, after its ack timeout, was not skipped")
	}
	if len(skipped["plain"]) != 0 || len(skipped["flaky"]) != 0 {
		t.Errorf("skipped %v: plain and flaky were never processed twice", skipped)
	}
	if tracker.overlaps != 0 {
		t.Errorf("%d handler calls overlapped another of their id", tracker.overlaps)
	}
}

// TestIdempotentSharedConcurrent: one message id published many times into
// a queue without dedup reaches a consumer that handles 20 records at once;
// the id is processed once, never concurrently, the first processing
// having failed.
func TestIdempotentSharedConcurrent(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "orders", Partitions: 4, DedupWindow: -1,
		Subscription: weir.SubscriptionConfig{Backoff: weir.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1}}})
	tracker := newIDTracker()
	var failures, successes, duplicates atomic.Int32
	store := weir.NewMemoryIdempotencyStore(100, 0)
	handler := weir.Idempotent(store, func(_ context.Context, m *weir.Message) error {
		tracker.enter("order-7")
		defer tracker.leave("order-7")
		time.Sleep(20 * time.Millisecond)
		if failures.Load() == 0 {
			failures.Add(1)
			return errors.New("first attempt fails")
		}
		successes.Add(1)
		return nil
	}, weir.OnDuplicate(func(context.Context, *weir.Message) { duplicates.Add(1) }))
	cons, err := c.Consume(ctx, "orders", handler, weir.Shared(""), weir.Prefetch(20))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	const copies = 20
	recs := make([]weir.Record, copies)
	for i := range recs {
		recs[i] = weir.Record{Value: []byte(strconv.Itoa(i)), Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte("order-7")}}}
	}
	if _, err := c.Publish(ctx, "orders", recs...); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, c, "orders", "orders", 0)
	if successes.Load() != 1 || failures.Load() != 1 {
		t.Errorf("%d successes and %d failures, want 1 and 1", successes.Load(), failures.Load())
	}
	// Of the 21 deliveries (the failed copy comes back), two reached the
	// handler: the failure and the success. The rest were skipped.
	if d := duplicates.Load(); d != copies-1 {
		t.Errorf("%d duplicates skipped, want %d", d, copies-1)
	}
	if tracker.overlaps != 0 {
		t.Errorf("%d handler calls for order-7 overlapped", tracker.overlaps)
	}
}
