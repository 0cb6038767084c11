package broker

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/weirmq/weir/internal/broker/route"
)

func TestExchangesRouteDurably(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	for _, s := range []string{"eu-orders", "all-orders", "audit", "unrouted"} {
		createStream(t, b, StreamConfig{Name: s})
	}
	declare := func(name string, kind route.Kind, alt string) {
		t.Helper()
		if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: name, Type: kind, AlternateExchange: alt}); err != nil {
			t.Fatal(err)
		}
	}
	bind := func(x string, bd Binding) {
		t.Helper()
		if err := b.Bind(ctx, x, bd); err != nil {
			t.Fatalf("bind %s -> %+v: %v", x, bd, err)
		}
	}
	declare("fallback", route.Fanout, "")
	declare("orders", route.Topic, "fallback")
	declare("audit-x", route.Fanout, "")
	bind("fallback", Binding{Destination: "unrouted"})
	bind("orders", Binding{Destination: "eu-orders", Key: "order.*.eu"})
	bind("orders", Binding{Destination: "all-orders", Key: "order.#"})
	bind("orders", Binding{Destination: "audit-x", ToExchange: true, Key: "#"})
	bind("audit-x", Binding{Destination: "audit"})
	bind("audit-x", Binding{Destination: "orders", ToExchange: true}) // a cycle

	check := func(key string, want ...string) {
		t.Helper()
		got, err := b.Route("orders", key, nil)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("route %q: got %v, want %v", key, got, want)
		}
	}
	check("order.created.eu", "eu-orders", "all-orders", "audit")
	check("order.created.us", "all-orders", "audit")
	check("invoice.sent", "audit") // '#' to audit-x: no alternate then
	if err := b.Unbind(ctx, "orders", Binding{Destination: "audit-x", ToExchange: true, Key: "#"}); err != nil {
		t.Fatal(err)
	}
	check("invoice.sent", "unrouted") // nothing matched: the alternate exchange

	// Publishing through the exchange stores the record in every target.
	reached, err := b.PublishExchange(ctx, "orders", "order.created.eu", []Record{{Value: []byte("o1")}})
	if err != nil || len(reached) != 2 {
		t.Fatalf("publish: %v, %v", reached, err)
	}
	for _, s := range []string{"eu-orders", "all-orders"} {
		if got := fetchAll(t, b, s, 0, 0); len(got) != 1 || string(got[0].Value) != "o1" {
			t.Fatalf("%s holds %+v", s, got)
		}
	}
	// Unroutable: no binding and no alternate.
	declare("empty", route.Direct, "")
	if reached, err := b.PublishExchange(ctx, "empty", "k", []Record{{Value: []byte("x")}}); err != nil || len(reached) != 0 {
		t.Fatalf("unroutable publish: %v, %v", reached, err)
	}

	// Headers exchange: each record routed on its own headers.
	declare("by-type", route.Headers, "")
	bind("by-type", Binding{Destination: "audit", Args: map[string]string{"type": "audit"}})
	reached, err = b.PublishExchange(ctx, "by-type", "", []Record{
		{Value: []byte("a"), Headers: []Header{{Key: "type", Value: []byte("audit")}}},
		{Value: []byte("b"), Headers: []Header{{Key: "type", Value: []byte("other")}}},
	})
	if err != nil || !slices.Equal(reached, []string{"audit"}) {
		t.Fatalf("headers publish: %v, %v", reached, err)
	}
	if got := fetchAll(t, b, "audit", 0, 0); len(got) != 1 || string(got[0].Value) != "a" {
		t.Fatalf("audit holds %+v", got)
	}

	// Errors.
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "orders", Type: route.Direct}); !errors.Is(err, ErrExchangeExists) {
		t.Fatalf("redeclare with another type: %v", err)
	}
	if _, err := b.DeclareExchange(ctx, ExchangeConfig{Name: "x", Type: "bogus"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad type: %v", err)
	}
	if err := b.Bind(ctx, "orders", Binding{Destination: "missing"}); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("bind to a missing stream: %v", err)
	}
	if err := b.Bind(ctx, "orders", Binding{Destination: "eu-orders", Key: "a.b#"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad topic pattern: %v", err)
	}
	if _, err := b.PublishExchange(ctx, "nope", "k", []Record{{Value: []byte("x")}}); !errors.Is(err, ErrExchangeNotFound) {
		t.Fatalf("unknown exchange: %v", err)
	}
	b.Close()

	// Exchanges and bindings survive a restart; deleting a stream removes
	// the bindings to it, deleting an exchange the bindings to it.
	b = openBroker(t, dir)
	defer b.Close()
	check("order.created.eu", "eu-orders", "all-orders")
	if err := b.DeleteStream(ctx, "eu-orders"); err != nil {
		t.Fatal(err)
	}
	check("order.created.eu", "all-orders")
	if err := b.DeleteExchange(ctx, "fallback"); err != nil {
		t.Fatal(err)
	}
	for _, x := range b.ListExchanges() {
		for _, bd := range x.Bindings {
			if bd.Destination == "eu-orders" || (bd.ToExchange && bd.Destination == "fallback") {
				t.Fatalf("binding %+v of %s survived its destination", bd, x.Config.Name)
			}
		}
	}
	check("invoice.sent") // the alternate is gone: unroutable
}
