package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker/route"
)

// TestDeadLetterExchange: dead letters go through the exchange by its
// bindings at that moment, the setting survives a reopen, and no
// "<name>.dlq" stream is made for such a queue.
func TestDeadLetterExchange(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := openBroker(t, dir)
	dlx := DeadLetterExchange{Name: "dlx", RoutingKey: "fallback-key", KeepKey: true}
	if _, err := b.CreateQueue(ctx, QueueConfig{Name: "work", Subscription: SubscriptionConfig{DeadLetterExchange: dlx, MaxDeliveries: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeStream("work.dlq"); !errors.Is(err, ErrStreamNotFound) {
		t.Errorf("work.dlq: %v, want none with a dead-letter exchange", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	info, err := b.DescribeSubscription("work", "work")
	if err != nil || info.Config.DeadLetterExchange != dlx {
		t.Fatalf("after a reopen: %+v, %v; want %+v", info.Config.DeadLetterExchange, err, dlx)
	}
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "dlx", Type: route.Direct}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"by-own-key", "by-fallback"} {
		createStream(t, b, StreamConfig{Name: s})
	}
	for key, dest := range map[string]string{"own": "by-own-key", "fallback-key": "by-fallback"} {
		if err := b.Bind(ctx, "dlx", Binding{Destination: dest, Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, b, "work", Record{Key: []byte("own"), Value: []byte("keyed")}, Record{Value: []byte("unkeyed")})
	ds, err := b.Receive(ctx, "work", "work", "c", 2, time.Second)
	if err != nil || len(ds) != 2 {
		t.Fatalf("receive: %d, %v", len(ds), err)
	}
	refs := []DeliveryRef{{Partition: ds[0].Partition, Offset: ds[0].Offset}, {Partition: ds[1].Partition, Offset: ds[1].Offset}}
	if err := b.Reject(ctx, "work", "work", "c", refs, "bad"); err != nil {
		t.Fatal(err)
	}
	for stream, want := range map[string]string{"by-own-key": "keyed", "by-fallback": "unkeyed"} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			info, err := b.DescribeStream(stream)
			if err != nil {
				t.Fatal(err)
			}
			if info.Partitions[0].EndOffset == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d records, want the dead letter", stream, info.Partitions[0].EndOffset)
			}
			time.Sleep(10 * time.Millisecond)
		}
		r, err := b.NewReader(stream, map[int32]int64{0: 0})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := r.Read(ctx, 1<<20, time.Second)
		if err != nil || len(recs) != 1 || string(recs[0].Value) != want {
			t.Fatalf("%s: %v %v, want %q", stream, recs, err, want)
		}
	}
	// A routing key without an exchange is refused.
	_, err = b.CreateQueue(ctx, QueueConfig{Name: "bad", Subscription: SubscriptionConfig{DeadLetterExchange: DeadLetterExchange{RoutingKey: "k"}}})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("routing key without exchange: %v", err)
	}
}

// TestDeadLetterCycle: a record that expires in a queue whose dead-letter
// exchange routes back to it is dropped (RabbitMQ's cycle rule), while a
// rejected one goes round again, as often as it is rejected.
func TestDeadLetterCycle(t *testing.T) {
	ctx := context.Background()
	b := openBroker(t, t.TempDir())
	defer b.Close()
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "dlx", Type: route.Direct}); err != nil {
		t.Fatal(err)
	}
	createQueue(t, b, QueueConfig{Name: "loop", Subscription: SubscriptionConfig{
		DeadLetterExchange: DeadLetterExchange{Name: "dlx", RoutingKey: "loop"},
		ExpiredDeadLetter:  true,
	}})
	if err := b.Bind(ctx, "dlx", Binding{Destination: "loop", Key: "loop"}); err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	publish(t, b, "loop",
		Record{Value: []byte("expires"), Headers: []Header{{Key: HeaderExpiresAt, Value: []byte(soon)}}},
		Record{Value: []byte("rejected")})
	for round := range 2 {
		var d []Delivery
		for len(d) == 0 {
			ds, err := b.Receive(ctx, "loop", "loop", "c", 1, 5*time.Second)
			if err != nil || len(ds) == 0 {
				t.Fatalf("round %d: receive %d, %v", round, len(ds), err)
			}
			if string(ds[0].Value) != "rejected" {
				t.Fatalf("round %d: delivered %q, want only the rejected record", round, ds[0].Value)
			}
			d = ds
		}
		if err := b.Reject(ctx, "loop", "loop", "c", []DeliveryRef{{Partition: d[0].Partition, Offset: d[0].Offset}}, "no"); err != nil {
			t.Fatal(err)
		}
	}
	// Two rejections appended two copies: offsets 2 and 3. The expired
	// record must not come back, so the queue settles at depth 1 (the
	// latest copy) with nothing appended after it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := b.DescribeSubscription("loop", "loop")
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.DescribeStream("loop")
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == 1 && s.Partitions[0].EndOffset == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("depth %d, end offset %d; want 1 and 4 (the expired record dropped, not dead-lettered back)", info.Depth, s.Partitions[0].EndOffset)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDeadLetterCycleRule(t *testing.T) {
	death := func(stream, reason string) []Header {
		return []Header{{Key: HeaderDeadLetterStream, Value: []byte(stream)}, {Key: HeaderDeadLetterReason, Value: []byte(reason)}}
	}
	hist := func(deaths ...[]Header) []Header {
		h := []Header{{Key: "own", Value: []byte("x")}}
		for _, d := range deaths {
			h = append(h, d...)
		}
		return h
	}
	for _, c := range []struct {
		name    string
		headers []Header
		target  string
		want    bool
	}{
		{"first death elsewhere", hist(death("a", ReasonExpired)), "b", false},
		{"back to itself, expired", hist(death("a", ReasonExpired)), "a", true},
		{"back to itself, rejected", hist(death("a", ReasonRejected)), "a", false},
		{"a to b to a, all expired", hist(death("a", ReasonExpired), death("b", ReasonMaxLength)), "a", true},
		{"a to b to a, rejected in b", hist(death("a", ReasonExpired), death("b", ReasonRejected)), "a", false},
		{"rejected before the cycle only", hist(death("a", ReasonRejected), death("a", ReasonExpired)), "a", true},
		{"no deaths", hist(), "a", false},
	} {
		if got := deadLetterCycle(c.headers, c.target); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
