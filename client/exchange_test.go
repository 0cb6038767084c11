package weir_test

import (
	"errors"
	"slices"
	"testing"

	weir "github.com/weirmq/weir/client"
)

// TestExchanges: exchanges are declared, bound, published through,
// unbound and deleted, against the real server.
func TestExchanges(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "orders.eu", 1)
	createStream(t, c, "orders.all", 2)
	createStream(t, c, "refunds", 1)

	info, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "orders", Type: weir.ExchangeTopic})
	if err != nil || info.Config != (weir.ExchangeConfig{Name: "orders", Type: weir.ExchangeTopic}) || len(info.Bindings) != 0 {
		t.Fatalf("DeclareExchange = %+v, %v", info, err)
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "orders", Type: weir.ExchangeTopic}); err != nil {
		t.Errorf("redeclaring the same: %v", err)
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "orders", Type: weir.ExchangeFanout}); !errors.Is(err, weir.ErrAlreadyExists) {
		t.Errorf("redeclaring as fanout = %v, want ErrAlreadyExists", err)
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "odd", Type: "round-robin"}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("a bad type = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "hdr", Type: weir.ExchangeHeaders}); err != nil {
		t.Fatal(err)
	}

	for _, b := range []weir.Binding{
		{Destination: "orders.eu", Key: "order.eu.*"},
		{Destination: "orders.all", Key: "order.#"},
		{Destination: "hdr", ToExchange: true, Key: "order.#"},
	} {
		if err := c.Bind(ctx, "orders", b); err != nil {
			t.Fatalf("Bind %+v: %v", b, err)
		}
	}
	if err := c.Bind(ctx, "hdr", weir.Binding{Destination: "refunds", Args: map[string]string{"kind": "refund"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(ctx, "orders", weir.Binding{Destination: "nowhere"}); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("Bind to no stream = %v, want ErrNotFound", err)
	}
	if err := c.Bind(ctx, "orders", weir.Binding{Destination: "orders.eu", Key: "a.#b"}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("Bind with a bad pattern = %v, want ErrInvalidArgument", err)
	}

	streams, unroutable, err := c.PublishExchange(ctx, "orders", "order.eu.paid", true,
		weir.Record{Value: []byte("p1")},
		weir.Record{Value: []byte("r1"), Headers: []weir.Header{{Key: "kind", Value: []byte("refund")}}})
	slices.Sort(streams)
	if err != nil || unroutable || !slices.Equal(streams, []string{"orders.all", "orders.eu", "refunds"}) {
		t.Errorf("PublishExchange = %v, %v, %v", streams, unroutable, err)
	}
	if got := readValues(t, c, "orders.eu", 0); !slices.Equal(got, []string{"p1", "r1"}) {
		t.Errorf("orders.eu holds %v", got)
	}
	if got := readValues(t, c, "refunds", 0); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("refunds holds %v", got)
	}

	streams, unroutable, err = c.PublishExchange(ctx, "orders", "invoice.sent", true, weir.Record{Value: []byte("i1")})
	if err != nil || !unroutable || len(streams) != 0 {
		t.Errorf("mandatory, unroutable: %v, %v, %v", streams, unroutable, err)
	}
	if _, _, err := c.PublishExchange(ctx, "orders", "x", false); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("publishing nothing = %v", err)
	}
	if _, _, err := c.PublishExchange(ctx, "none", "x", false, weir.Record{Value: []byte("v")}); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("publishing to no exchange = %v", err)
	}

	if err := c.Unbind(ctx, "orders", weir.Binding{Destination: "orders.eu", Key: "order.eu.*"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteExchange(ctx, "hdr"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteExchange(ctx, "hdr"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("deleting twice = %v, want ErrNotFound", err)
	}
	list, err := c.ListExchanges(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListExchanges = %+v, %v", list, err)
	}
	if x := list[0]; x.Config.Name != "orders" || x.Unroutable != 1 ||
		!slices.EqualFunc(x.Bindings, []weir.Binding{{Destination: "orders.all", Key: "order.#"}}, func(a, b weir.Binding) bool {
			return a.Destination == b.Destination && a.Key == b.Key && a.ToExchange == b.ToExchange && len(a.Args) == 0
		}) {
		t.Errorf("ListExchanges = %+v", x)
	}
}

// readValues reads a partition of a stream from its start.
func readValues(t *testing.T, c *weir.Client, stream string, partition int32) []string {
	t.Helper()
	res, err := c.Fetch(t.Context(), stream, partition, 0, 0, 0)
	if err != nil {
		t.Fatalf("Fetch %s: %v", stream, err)
	}
	var out []string
	for _, r := range res.Records {
		out = append(out, string(r.Value))
	}
	return out
}
