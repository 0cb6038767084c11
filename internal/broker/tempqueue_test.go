package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/state"
)

// stateMentions lists the state store's catalog entries and cursor state
// that name the temporary queue: there must be none.
func stateMentions(t *testing.T, b *Broker, name, subID string) []string {
	t.Helper()
	var found []string
	for _, kind := range []state.Kind{state.KindStream, state.KindSubscription, state.KindExchange} {
		entries, err := b.state.ListCatalog(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name == name || strings.HasPrefix(e.Name, name+"/") || strings.Contains(string(e.Value), `"`+name+`"`) {
				found = append(found, e.Name+": "+string(e.Value))
			}
		}
	}
	if subID != "" {
		st, err := b.state.LoadCursor(subID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Floor != 0 || len(st.Acked) > 0 || len(st.Deliveries) > 0 {
			found = append(found, "cursor state")
		}
	}
	return found
}

func TestTemporaryQueueLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "x", Type: route.Direct}); err != nil {
		t.Fatal(err)
	}
	createQueue(t, b, QueueConfig{Name: "durable"})
	if _, err := b.CreateTemporaryQueue(ctx, QueueConfig{Name: "temp", Subscription: SubscriptionConfig{AckTimeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTemporaryQueue(ctx, QueueConfig{Name: "temp"}); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("second temporary queue of one name: %v, want exists", err)
	}
	if _, err := b.CreateTemporaryQueue(ctx, QueueConfig{Name: "durable"}); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("temporary queue named as a durable one: %v, want exists", err)
	}
	for _, dest := range []string{"durable", "temp"} {
		if err := b.Bind(ctx, "x", Binding{Destination: dest, Key: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Bind(ctx, "x", Binding{Destination: "temp", Key: "k"}); err != nil {
		t.Fatal(err) // twice changes nothing
	}
	info := b.ListExchanges()
	if i := slices.IndexFunc(info, func(x ExchangeInfo) bool { return x.Config.Name == "x" }); i < 0 || len(info[i].Bindings) != 2 {
		t.Fatalf("exchange bindings %+v, want both", info)
	}
	reached, err := b.PublishExchange(ctx, "x", "k", []Record{{Value: []byte("a")}, {Value: []byte("b")}})
	if err != nil || len(reached) != 2 {
		t.Fatalf("publish reached %v (%v), want both queues", reached, err)
	}

	// The temporary queue works as a queue: deliveries, redelivery with a
	// count, acks, depth.
	ds := receiveAll(t, b, "temp", "c1", 2, 2*time.Second)
	if len(ds) != 2 || string(ds[0].Value) != "a" || ds[0].DeliveryCount != 1 {
		t.Fatalf("deliveries %+v", ds)
	}
	if err := b.Nack(ctx, "temp", "temp", "c1", refs(ds[1:]), "", time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx, "temp", "temp", "c1", refs(ds[:1])); err != nil {
		t.Fatal(err)
	}
	again := receiveAll(t, b, "temp", "c1", 1, 2*time.Second)
	if len(again) != 1 || string(again[0].Value) != "b" || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivery %+v, want b with count 2", again)
	}
	sub, err := b.DescribeSubscription("temp", "temp")
	if err != nil || sub.Depth != 1 {
		t.Fatalf("depth %d (%v), want 1", sub.Depth, err)
	}
	b.mu.RLock()
	subID := b.streams["temp"].subs["temp"].id
	b.mu.RUnlock()

	// Nothing durable names it, and it refuses what would be.
	if found := stateMentions(t, b, "temp", subID); len(found) > 0 {
		t.Fatalf("the state store names the temporary queue: %v", found)
	}
	if _, err := b.CreateSubscription(ctx, SubscriptionConfig{Stream: "temp", Name: "other"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("durable subscription on a temporary queue: %v, want invalid argument", err)
	}
	if _, err := b.AddPartitions(ctx, "temp", 2); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("growing a temporary queue: %v, want invalid argument", err)
	}
	if tmp, err := b.IsTemporary("temp"); err != nil || !tmp {
		t.Fatalf("IsTemporary(temp) = %v, %v", tmp, err)
	}
	if tmp, err := b.IsTemporary("durable"); err != nil || tmp {
		t.Fatalf("IsTemporary(durable) = %v, %v", tmp, err)
	}
	if slices.ContainsFunc(b.ListStreams(), func(s StreamInfo) bool { return s.Config.Name == "temp" }) {
		t.Fatal("ListStreams shows the temporary queue")
	}

	// A change to the exchange's durable bindings keeps the temporary one
	// in memory, and still out of the catalog.
	createQueue(t, b, QueueConfig{Name: "later"})
	if err := b.Bind(ctx, "x", Binding{Destination: "later", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Route("x", "k", nil); !slices.Contains(got, "temp") || len(got) != 3 {
		t.Fatalf("route %v, want durable, temp and later", got)
	}
	if found := stateMentions(t, b, "temp", subID); len(found) > 0 {
		t.Fatalf("the state store names the temporary queue: %v", found)
	}

	// A restart (the broker closes with the queue still there) leaves
	// neither the queue, its files, nor its binding.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	if _, err := b.DescribeStream("temp"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("temporary queue after a restart: %v, want not found", err)
	}
	if got, _ := b.Route("x", "k", nil); !slices.Equal(got, []string{"durable", "later"}) {
		t.Fatalf("route after a restart %v, want the durable queues only", got)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "streams"))
	if len(entries) != 2 {
		t.Fatalf("%d stream directories after a restart, want 2", len(entries))
	}
	// The name is free again, for a durable queue: nothing routes to it.
	createQueue(t, b, QueueConfig{Name: "temp"})
	if got, _ := b.Route("x", "k", nil); slices.Contains(got, "temp") {
		t.Fatalf("a binding of the temporary queue reached its durable namesake: %v", got)
	}
}

func TestTemporaryQueueDeleteTakesBindings(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	for _, x := range []string{"a", "b"} {
		if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: x, Type: route.Topic}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CreateTemporaryQueue(ctx, QueueConfig{Name: "temp"}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"orders.*", "orders.#"} {
		if err := b.Bind(ctx, "a", Binding{Destination: "temp", Key: key}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Bind(ctx, "b", Binding{Destination: "temp", Key: "#"}); err != nil {
		t.Fatal(err)
	}
	// Unbind removes one in-memory binding; the other still routes.
	if err := b.Unbind(ctx, "a", Binding{Destination: "temp", Key: "orders.*"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Route("a", "orders.eu", nil); !slices.Equal(got, []string{"temp"}) {
		t.Fatalf("route after unbinding one key: %v", got)
	}
	if err := b.DeleteStream(ctx, "temp"); err != nil {
		t.Fatal(err)
	}
	for _, x := range b.ListExchanges() {
		if len(x.Bindings) > 0 {
			t.Fatalf("exchange %s keeps bindings %+v after the temporary queue was deleted", x.Config.Name, x.Bindings)
		}
	}
	// Deleting an exchange takes its in-memory bindings too.
	if _, err := b.CreateTemporaryQueue(ctx, QueueConfig{Name: "temp"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, "a", Binding{Destination: "b", ToExchange: true, Key: "#"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(ctx, "b", Binding{Destination: "temp", Key: "#"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Route("a", "x.y", nil); !slices.Equal(got, []string{"temp"}) {
		t.Fatalf("route through an exchange-to-exchange binding: %v", got)
	}
	if err := b.DeleteExchange(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Route("a", "x.y", nil); len(got) != 0 {
		t.Fatalf("route after deleting the exchange: %v", got)
	}
}
