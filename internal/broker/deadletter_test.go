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
