package broker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestTimersWithFakeClock checks nack backoff, ack deadlines and deliver-at
// delays against the fake clock of a synctest bubble: hours pass in no time,
// and "not yet" is exact.
func TestTimersWithFakeClock(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := openBroker(t, dir)
		defer b.Close()
		ctx := context.Background()
		createQueue(t, b, QueueConfig{Name: "q", Subscription: SubscriptionConfig{
			AckTimeout: 10 * time.Minute, BackoffInitial: time.Hour, BackoffMultiplier: 2, BackoffMax: 24 * time.Hour,
		}})
		publish(t, b, "q", Record{Value: []byte("job")})
		ds := receive(t, b, "q", "w", 1, time.Second)
		if len(ds) != 1 {
			t.Fatalf("received %d", len(ds))
		}
		// Nack: redelivered after one hour, not a second before.
		if err := b.Nack(ctx, "q", "q", "w", refs(ds), "failed", 0); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, b, "q", "w", 1, time.Hour-time.Second); len(got) != 0 {
			t.Fatalf("redelivered before the backoff: %+v", got)
		}
		got := receive(t, b, "q", "w", 1, time.Minute)
		if len(got) != 1 || got[0].DeliveryCount != 2 {
			t.Fatalf("after the backoff: %+v", got)
		}
		// Second nack: exponential, two hours.
		start := time.Now()
		b.Nack(ctx, "q", "q", "w", refs(got), "failed again", 0)
		got = receive(t, b, "q", "w", 1, 3*time.Hour)
		if len(got) != 1 || time.Since(start) < 2*time.Hour || time.Since(start) > 2*time.Hour+time.Second {
			t.Fatalf("second backoff took %v", time.Since(start))
		}
		// Not acked: redelivered once the ack deadline (10 min) passes.
		start = time.Now()
		got = receive(t, b, "q", "other", 1, time.Hour)
		if len(got) != 1 || got[0].DeliveryCount != 4 || time.Since(start) < 10*time.Minute || time.Since(start) > 10*time.Minute+time.Second {
			t.Fatalf("deadline redelivery after %v: %+v", time.Since(start), got)
		}
		b.Ack(ctx, "q", "q", "other", refs(got))

		// deliver-at a day from now.
		due := time.Now().Add(24 * time.Hour)
		publish(t, b, "q", Record{Value: []byte("tomorrow"), Headers: []Header{{Key: HeaderDeliverAt, Value: []byte(due.Format(time.RFC3339Nano))}}})
		if got := receive(t, b, "q", "w", 1, 23*time.Hour); len(got) != 0 {
			t.Fatalf("delayed record delivered early: %+v", got)
		}
		got = receive(t, b, "q", "w", 1, 2*time.Hour)
		if len(got) != 1 || time.Now().Before(due) {
			t.Fatalf("delayed record at %v (due %v): %+v", time.Now(), due, got)
		}
	})
}
