package broker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// openQueueSub opens a broker with a one-partition queue and returns the
// queue's subscription.
func openQueueSub(t *testing.T, name string) (*Broker, *sharedSub) {
	t.Helper()
	b := openBroker(t, t.TempDir())
	t.Cleanup(func() { b.Close() })
	createQueue(t, b, QueueConfig{Name: name, Partitions: 1})
	ss, err := b.sharedSub(name, name)
	if err != nil {
		t.Fatal(err)
	}
	return b, ss
}

// waitForWaiters waits until n receivers wait on ss.
func waitForWaiters(t *testing.T, ss *sharedSub, n int) {
	t.Helper()
	waitFor(t, func() bool {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return len(ss.waiters) == n
	})
}

// TestWaitingReceiversWokenOneByOne: receivers waiting on a queue are woken
// one at a time (not all for each change), and records that become
// deliverable together still reach every receiver that can take them: a
// receiver that takes as many as it asked for wakes the next.
func TestWaitingReceiversWokenOneByOne(t *testing.T) {
	b, ss := openQueueSub(t, "herd")
	const receivers, each = 8, 10
	got := make([]int, receivers)
	var wg sync.WaitGroup
	for i := range receivers {
		wg.Go(func() {
			ds, err := b.Receive(t.Context(), "herd", "herd", fmt.Sprint("c", i), each, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			got[i] = len(ds)
		})
	}
	waitForWaiters(t, ss, receivers)
	recs := make([]Record, receivers*each)
	for i := range recs {
		recs[i] = Record{Value: []byte(fmt.Sprint(i))}
	}
	publish(t, b, "herd", recs...) // one batch: deliverable together
	wg.Wait()
	for i, n := range got {
		if n != each {
			t.Errorf("receiver %d got %d records, want %d (all got %v)", i, n, each, got)
		}
	}
}

// TestReceiverLeavingPassesItsWake: a receiver woken just as its wait ends
// (timeout or cancelled call) hands the wake to the next, so no record is
// left waiting while a receiver sleeps; closing the subscription wakes
// every receiver.
func TestReceiverLeavingPassesItsWake(t *testing.T) {
	b, ss := openQueueSub(t, "baton")
	first, second := make(chan struct{}, 1), make(chan struct{}, 1)
	ss.mu.Lock()
	ss.waiters = append(ss.waiters, first, second)
	ss.wakeReceiver() // wakes first
	ss.mu.Unlock()
	ss.leave(first) // ...which leaves without taking anything
	select {
	case <-second:
	default:
		t.Fatal("the wake of a receiver that left was lost")
	}
	third := make(chan struct{}, 1)
	ss.mu.Lock()
	ss.waiters = append(ss.waiters, third)
	ss.mu.Unlock()
	ss.leave(third) // not woken: just taken off the list
	ss.mu.Lock()
	n := len(ss.waiters)
	ss.mu.Unlock()
	if n != 0 || len(third) != 0 {
		t.Fatalf("after leaving: %d waiters, woken %v", n, len(third) > 0)
	}

	done := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := b.Receive(context.Background(), "baton", "baton", fmt.Sprint("r", i), 1, time.Minute)
			done <- err
		}()
	}
	waitForWaiters(t, ss, 3)
	if err := b.DeleteStream(context.Background(), "baton"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case err := <-done:
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("a receiver of a deleted queue returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a receiver slept through its queue's deletion")
		}
	}
}

// The fetcher sleeps until one of the subscription's logs signals an
// append: records published to any partition, including partitions added
// while it sleeps, reach a waiting receiver at once (a missed signal would
// hold them for maxFetchSleep, a minute).
func TestFetcherWakesForEveryPartition(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createQueue(t, b, QueueConfig{Name: "q", Partitions: 3})
	seen := map[int32]bool{}
	roundTrip := func(i int) {
		t.Helper()
		got := make(chan []Delivery, 1)
		go func() {
			ds, err := b.Receive(ctx, "q", "q", "c", 10, 3*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- ds
		}()
		time.Sleep(20 * time.Millisecond) // the fetcher is asleep, the receiver waits
		publish(t, b, "q", Record{Value: fmt.Appendf(nil, "r%d", i)})
		ds := <-got
		if len(ds) != 1 || string(ds[0].Record.Value) != fmt.Sprintf("r%d", i) {
			t.Fatalf("record %d: received %d deliveries within 3 s", i, len(ds))
		}
		seen[ds[0].Record.Partition] = true
		if err := b.Ack(ctx, "q", "q", "c", []DeliveryRef{{Partition: ds[0].Record.Partition, Offset: ds[0].Record.Offset}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		roundTrip(i)
	}
	if _, err := b.AddPartitions(ctx, "q", 5); err != nil {
		t.Fatal(err)
	}
	for i := 6; i < 16; i++ {
		roundTrip(i)
	}
	if len(seen) != 5 {
		t.Fatalf("records came from partitions %v, want all 5", seen)
	}
}

// An idle queue costs few goroutines: its partition's writer and the
// subscription's fetcher, timer and committer (the janitor is a timer, and
// the fetcher waits for every partition alone). A node with 10,000 queues
// had 9 per queue. Deleting the queues leaves none behind.
func TestIdleQueueGoroutines(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createQueue(t, b, QueueConfig{Name: "warm"}) // whatever the broker starts once
	const queues = 20
	settle := func() int {
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for i := range queues {
		createQueue(t, b, QueueConfig{Name: fmt.Sprintf("q%d", i)})
	}
	if per := float64(settle()-before) / queues; per > 4 {
		t.Errorf("%.1f goroutines per idle queue, want at most 4", per)
	}
	for i := range queues {
		if err := b.DeleteStream(ctx, fmt.Sprintf("q%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if after := settle(); after > before {
		t.Errorf("%d goroutines after deleting the queues, %d before creating them", after, before)
	}
}
