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

// TestTTLExpiresWithoutConsumers checks that records past their TTL leave
// the queue when they expire, not when a consumer next asks: the depth
// falls, and with ExpiredDeadLetter they are in the dead-letter queue.
func TestTTLExpiresWithoutConsumers(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		b := openBroker(t, dir)
		defer b.Close()
		createQueue(t, b, QueueConfig{Name: "q", Subscription: SubscriptionConfig{MessageTTL: time.Hour}})
		createQueue(t, b, QueueConfig{Name: "dq", Subscription: SubscriptionConfig{MessageTTL: time.Hour, ExpiredDeadLetter: true}})
		for _, q := range []string{"q", "dq"} {
			publish(t, b, q, Record{Value: []byte("old")})
		}
		time.Sleep(30 * time.Minute)
		in := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339Nano)
		for _, q := range []string{"q", "dq"} {
			// Its own expires-at, later than the TTL, wins; and one
			// that is held (deliver-at) expires while it waits.
			publish(t, b, q, Record{Value: []byte("later"), Headers: []Header{{Key: HeaderExpiresAt, Value: []byte(in)}}})
			publish(t, b, q, Record{Value: []byte("delayed"), Headers: []Header{
				{Key: HeaderDeliverAt, Value: []byte(time.Now().Add(5 * time.Hour).UTC().Format(time.RFC3339Nano))},
				{Key: HeaderExpiresAt, Value: []byte(time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))},
			}})
		}
		depth := func(q string) int64 {
			t.Helper()
			info, err := b.DescribeSubscription(q, q)
			if err != nil {
				t.Fatal(err)
			}
			return info.Depth
		}
		synctest.Wait()
		if d := depth("q"); d != 3 {
			t.Fatalf("depth %d before anything expired, want 3", d)
		}
		time.Sleep(31 * time.Minute) // "old" expired at 60 min
		synctest.Wait()
		if d := depth("q"); d != 2 {
			t.Fatalf("depth %d once the first record expired, want 2", d)
		}
		time.Sleep(time.Hour) // "delayed" expired at 90 min
		synctest.Wait()
		if d := depth("q"); d != 1 {
			t.Fatalf("depth %d once the delayed record expired, want 1", d)
		}
		time.Sleep(time.Hour) // "later" expired at 150 min
		synctest.Wait()
		for _, q := range []string{"q", "dq"} {
			if d := depth(q); d != 0 {
				t.Fatalf("%s: depth %d after every record expired, want 0", q, d)
			}
		}
		// They wait there: their expires-at (and deliver-at) stayed behind.
		dead := receiveAll(t, b, "dq.dlq", "w", 3, 10*time.Second)
		var values []string
		for _, d := range dead {
			values = append(values, string(d.Record.Value))
		}
		if len(values) != 3 || values[0] != "old" || values[1] != "delayed" || values[2] != "later" {
			t.Fatalf("dead-lettered %q, want old, delayed, later", values)
		}
		for _, d := range dead {
			if header(d.Record, HeaderExpiresAt) != "" || header(d.Record, HeaderDeliverAt) != "" || header(d.Record, HeaderDeadLetterReason) != ReasonExpired {
				t.Fatalf("dead-lettered record's headers: %+v", d.Record.Headers)
			}
		}
		// Nobody asked for records of q: none was delivered.
		if got := receive(t, b, "q", "w", 10, time.Minute); len(got) != 0 {
			t.Fatalf("expired records delivered: %+v", got)
		}
	})
}
