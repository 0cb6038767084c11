package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSharedAckCycle is the broker's part of the queue workload of
// issue 4: 4 consumers, each holding at most 100 records, receiving 1 KiB
// records and acking them in batches of 25 (as the SDK does) with AckThen
// (as the API does), with fsync always. One op is one record acked
// durably. The records are published
// before the timer starts.
func BenchmarkSharedAckCycle(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	ctx := context.Background()
	createQueue(b, br, QueueConfig{Name: "q", Partitions: 4})
	value := make([]byte, 1024)
	batch := make([]Record, 1000)
	for i := range batch {
		batch[i] = Record{Value: value}
	}
	for left := b.N; left > 0; left -= len(batch) {
		if _, err := br.Publish(ctx, "q", batch[:min(left, len(batch))]); err != nil {
			b.Fatal(err)
		}
	}
	const consumers, prefetch, ackBatch = 4, 100, 25
	var acked atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Go(func() {
			id := fmt.Sprintf("c%d", c)
			held := 0
			acks := make(chan []DeliveryRef, prefetch/ackBatch+1)
			done := make(chan struct{})
			var ackers sync.WaitGroup
			freed := make(chan int, prefetch)
			ackers.Go(func() {
				for refs := range acks {
					// As the API does: the credits come back once the
					// broker took the acks, the count once they are durable.
					err := br.AckThen(ctx, "q", "q", id, refs, func() { freed <- len(refs) })
					if err != nil {
						b.Error(err)
					}
					acked.Add(int64(len(refs)))
				}
			})
			var pending []DeliveryRef
			for acked.Load()+int64(held) < int64(b.N) || held > 0 {
				for drained := false; !drained; {
					select {
					case n := <-freed:
						held -= n
					default:
						drained = true
					}
				}
				if acked.Load() >= int64(b.N) {
					break
				}
				room := prefetch - held - len(pending)
				if room == 0 {
					held -= <-freed
					continue
				}
				ds, err := br.Receive(ctx, "q", "q", id, room, 10*time.Millisecond)
				if err != nil {
					b.Error(err)
					break
				}
				for _, d := range ds {
					pending = append(pending, DeliveryRef{Partition: d.Partition, Offset: d.Offset})
					if len(pending) == ackBatch {
						held += len(pending)
						acks <- pending
						pending = nil
					}
				}
				if len(ds) == 0 && len(pending) > 0 {
					held += len(pending)
					acks <- pending
					pending = nil
				}
			}
			close(acks)
			ackers.Wait()
			close(done)
		})
	}
	wg.Wait()
	b.StopTimer()
	if acked.Load() < int64(b.N) {
		b.Fatalf("acked %d of %d", acked.Load(), b.N)
	}
}

// BenchmarkDeleteQueues deletes n queues one after another, as a server
// does when many clients' auto-delete or exclusive queues go (one per
// MQTT session, one per RPC client), or when a test run's queues are
// cleaned up. One op is one queue deleted, with its subscription's state;
// the queues are created before the timer starts. Each deletion writes
// range deletions to the state store, and each later one reads it.
func BenchmarkDeleteQueues(b *testing.B) {
	for _, n := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("queues=%d", n), func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				br := openBroker(b, b.TempDir())
				for i := range n {
					createQueue(b, br, QueueConfig{Name: fmt.Sprintf("q%d", i)})
				}
				b.StartTimer()
				for i := range n {
					if err := br.DeleteStream(context.Background(), fmt.Sprintf("q%d", i)); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				br.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/queue")
		})
	}
}
