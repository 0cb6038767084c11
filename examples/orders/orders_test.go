package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

// testShippers answer at once; their cheapest depends on the weight.
var testShippers = []Shipper{
	{Name: "parcelpro", BaseCents: 500, PerKgCents: 120},
	{Name: "swiftship", BaseCents: 350, PerKgCents: 180},
	{Name: "bulkfreight", BaseCents: 1200, PerKgCents: 40},
}

// stalled never answers while the test runs: the deadline must cut it off.
var stalled = Shipper{Name: "stalled", BaseCents: 1, PerKgCents: 1, Delay: time.Hour}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startTest starts PostgreSQL and the system (no services yet), with the
// event streams' dedup off so that the test can deliver copies of events.
func startTest(t *testing.T, ctx context.Context) *system {
	pg := pgtest.Start(t)
	sys, err := start(ctx, config{DSN: pg.ConnString(), Schema: "orders_test", Dir: t.TempDir(), Connector: "orders-test",
		EventDedupWindow: -1, Shippers: testShippers, QuoteTimeout: 5 * time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return sys
}

// cheapest is the best price of shippers for a parcel.
func cheapest(shippers []Shipper, weightGrams int64) ShipperQuote {
	best := ShipperQuote{PriceCents: -1}
	for _, s := range shippers {
		p := s.Price(weightGrams)
		if best.PriceCents < 0 || p < best.PriceCents || p == best.PriceCents && s.Name < best.Shipper {
			best = ShipperQuote{Shipper: s.Name, PriceCents: p}
		}
	}
	return best
}

// testOrders: every product's demand fits its stock, but for BIG-1, which
// wants more monitors than the shop has.
func testOrders() []Order {
	var orders []Order
	for i := range 12 {
		o := Order{ID: fmt.Sprintf("T-%02d", i), Customer: fmt.Sprintf("customer%d", i%5),
			Lines: []Line{{SKU: "MS-02", Quantity: 1}, {SKU: "CB-05", Quantity: i%3 + 1}}}
		if i < 3 {
			o.Lines = append(o.Lines, Line{SKU: "MN-27", Quantity: 1})
		}
		if i%4 == 0 {
			o.Lines = append(o.Lines, Line{SKU: "KB-01", Quantity: 2})
		}
		orders = append(orders, o)
	}
	return append(orders, Order{ID: "BIG-1", Customer: "reseller", Lines: []Line{{SKU: "MN-27", Quantity: 5}}})
}

// loseAcks makes a replica behave as one whose acks get lost: the first
// delivery of every message is handled, and then reported failed, so the
// subscription delivers it again (to this replica or another).
func loseAcks(h weir.Handler, lost *atomic.Int64) weir.Handler {
	return func(ctx context.Context, m *weir.Message) error {
		if err := h(ctx, m); err != nil || m.DeliveryCount > 1 {
			return err
		}
		lost.Add(1)
		return errors.New("ack lost (test)")
	}
}

// eventually polls cond until it holds, for at most two minutes.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The whole example: orders placed with the best quote, routed by CDC,
// reserved exactly once by two inventory replicas that lose acks and then
// by a fresh one given copies of every event, and summarised by the read
// model.
func TestOrdersExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	sys := startTest(t, ctx)
	if err := sys.StartShippers(ctx, sys.Orders.Shipping.Exchange, testShippers); err != nil {
		t.Fatal(err)
	}
	if err := sys.StartReadModel(ctx); err != nil {
		t.Fatal(err)
	}

	// Two replicas, each with its own memory of handled ids; the first
	// loses the ack of every message's first delivery.
	var lost atomic.Int64
	replicaA := NewInventory(sys.db, sys.client, sys.cfg.Schema)
	replicaB := NewInventory(sys.db, sys.client, sys.cfg.Schema)
	consA, err := replicaA.Start(ctx, loseAcks(replicaA.Handler(), &lost))
	if err != nil {
		t.Fatal(err)
	}
	consB, err := replicaB.Start(ctx, replicaB.Handler())
	if err != nil {
		t.Fatal(err)
	}

	// Bad orders are refused before anything is stored.
	for _, bad := range []Order{
		{ID: "X-1", Customer: "mallory", Lines: []Line{{SKU: "NOPE", Quantity: 1}}},
		{ID: "X-2", Customer: "mallory", Lines: []Line{{SKU: "MS-02", Quantity: 0}}},
		{ID: "X-3", Customer: "mallory"},
		{ID: "X-4", Customer: "mallory", Lines: []Line{{SKU: "MS-02", Quantity: 1}, {SKU: "MS-02", Quantity: 2}}},
	} {
		if _, _, err := sys.Orders.Place(ctx, bad); !errors.Is(err, ErrInvalidOrder) {
			t.Errorf("Place(%+v) = %v, want ErrInvalidOrder", bad, err)
		}
	}

	orders := testOrders()
	placed := make(map[string]*OrderPlaced)
	var ids []string
	for _, o := range orders {
		ev, quote, err := sys.Orders.Place(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		// Every shipper answered, and the best of them won.
		if want := cheapest(testShippers, ev.WeightGrams); quote.ShipperQuote != want || ev.Shipper != want.Shipper || ev.ShippingCents != want.PriceCents {
			t.Errorf("order %s (%d g): quote %+v, order shipped by %s for %d; want %+v", o.ID, ev.WeightGrams, quote.ShipperQuote, ev.Shipper, ev.ShippingCents, want)
		}
		if len(quote.Quotes) != len(testShippers) {
			t.Errorf("order %s: %d quotes, want %d", o.ID, len(quote.Quotes), len(testShippers))
		}
		placed[o.ID] = ev
		ids = append(ids, o.ID)
	}
	if _, _, err := sys.Orders.Place(ctx, orders[0]); !errors.Is(err, ErrInvalidOrder) {
		t.Errorf("placing %s again: %v, want ErrInvalidOrder", orders[0].ID, err)
	}
	if _, err := sys.WaitForSummaries(ctx, ids, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every delivery settled: the redeliveries of the lost acks too.
	waitSettled(t, ctx, sys)
	if lost.Load() == 0 {
		t.Fatal("replica A lost no acks: the test delivered no duplicates")
	}
	a, b := replicaA.Stats(), replicaB.Stats()
	if skipped := a.SkippedInMemory + a.SkippedInDatabase + b.SkippedInMemory + b.SkippedInDatabase; skipped < lost.Load() {
		t.Errorf("%d acks lost but %d redeliveries skipped (A %+v, B %+v)", lost.Load(), skipped, a, b)
	}
	if a.Reserved+b.Reserved != int64(len(orders)-1) || a.Rejected+b.Rejected != 1 {
		t.Errorf("replicas reserved %d and rejected %d, want %d and 1 (A %+v, B %+v)", a.Reserved+b.Reserved, a.Rejected+b.Rejected, len(orders)-1, a, b)
	}
	checkInventory(t, ctx, sys, placed)

	// A restart after an outage longer than the dedup window: a replica
	// with an empty memory gets a copy of every event again, and a
	// malformed one.
	for _, c := range []*weir.Consumer{consA, consB} {
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	copies := readStream(t, ctx, sys.client, orderEventsStream)
	if len(copies) != len(orders) {
		t.Fatalf("%d order events in %s, want %d", len(copies), orderEventsStream, len(orders))
	}
	for i := range copies {
		copies[i] = weir.Record{Key: copies[i].Key, Value: copies[i].Value, Headers: copies[i].Headers}
	}
	copies = append(copies, weir.Record{Key: []byte("T-00"), Value: []byte("{not json"),
		Headers: []weir.Header{{Key: weir.HeaderType, Value: []byte(eventOrderPlaced)}, {Key: weir.HeaderMessageID, Value: []byte("malformed-1")}}})
	res, err := sys.client.Publish(ctx, orderEventsStream, copies...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Duplicate {
			t.Fatal("a copy was taken for a duplicate: the stream's dedup window is on")
		}
	}
	replicaC := NewInventory(sys.db, sys.client, sys.cfg.Schema)
	if _, err := replicaC.Start(ctx, replicaC.Handler()); err != nil {
		t.Fatal(err)
	}
	dlq := orderEventsStream + "." + inventorySubscription + ".dlq"
	eventually(t, "the malformed event in "+dlq, func() (bool, error) {
		info, err := sys.client.DescribeStream(ctx, dlq)
		if errors.Is(err, weir.ErrNotFound) {
			return false, nil
		}
		return err == nil && info.Records() == 1, err
	})
	waitSettled(t, ctx, sys)
	if c := replicaC.Stats(); c.Reserved != 0 || c.Rejected != 0 || c.SkippedInDatabase < int64(len(orders)) {
		t.Errorf("replica C, given copies of every event: %+v; want nothing reserved or rejected, at least %d skipped by the database", c, len(orders))
	}
	checkInventory(t, ctx, sys, placed)

	// The read model applied every event once, copies and all, and
	// skipped the malformed one.
	end := streamEnd(t, ctx, sys.client, orderEventsStream)
	eventually(t, "the read model to reach the end of "+orderEventsStream, func() (bool, error) {
		var next int64
		err := sys.ReadModel.db.QueryRowContext(ctx, "SELECT coalesce(max(next_position), 0) FROM weir_projections WHERE name = 'order-summaries/orders'").Scan(&next)
		return next == end, err
	})
	if n := sys.ReadModel.Malformed(); n != 1 {
		t.Errorf("read model skipped %d malformed events, want 1", n)
	}
	checkSummaries(t, ctx, sys, placed, ids)
}

// waitSettled waits until the inventory subscription has nothing
// unsettled.
func waitSettled(t *testing.T, ctx context.Context, sys *system) {
	t.Helper()
	eventually(t, "the inventory subscription to settle everything", func() (bool, error) {
		info, err := sys.client.DescribeSubscription(ctx, orderEventsStream, inventorySubscription)
		return err == nil && info.Depth == 0, err
	})
}

// checkInventory checks that each order was reserved or rejected exactly
// once: one reservation, one inventory event, and the stock taken once for
// each reserved order.
func checkInventory(t *testing.T, ctx context.Context, sys *system, placed map[string]*OrderPlaced) {
	t.Helper()
	schema := sys.cfg.Schema
	taken := make(map[string]int64)
	for id, ev := range placed {
		var status, reason string
		if err := sys.db.QueryRowContext(ctx, "SELECT status, reason FROM "+schema+".reservations WHERE order_id = $1", id).Scan(&status, &reason); err != nil {
			t.Fatalf("reservation of %s: %v", id, err)
		}
		want := statusReserved
		if id == "BIG-1" {
			want = statusRejected
			if !strings.Contains(reason, "out of stock") || !strings.Contains(reason, "MN-27: 5 wanted") {
				t.Errorf("BIG-1 rejected for %q", reason)
			}
		}
		if status != want {
			t.Errorf("order %s %s (%s), want %s", id, status, reason, want)
		}
		if status == statusReserved {
			for _, l := range ev.Lines {
				taken[l.SKU] += int64(l.Quantity)
			}
		}
		var events int
		if err := sys.db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".outbox WHERE aggregatetype = $1 AND aggregateid = $2",
			aggregateInventory, id).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if events != 1 {
			t.Errorf("order %s: %d inventory events, want 1", id, events)
		}
	}
	var reservations int
	if err := sys.db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".reservations").Scan(&reservations); err != nil {
		t.Fatal(err)
	}
	if reservations != len(placed) {
		t.Errorf("%d reservations for %d orders", reservations, len(placed))
	}
	for _, p := range catalogue {
		var available int64
		if err := sys.db.QueryRowContext(ctx, "SELECT available FROM "+schema+".stock WHERE sku = $1", p.SKU).Scan(&available); err != nil {
			t.Fatal(err)
		}
		if available != p.Stock-taken[p.SKU] {
			t.Errorf("%s: %d available, want %d - %d reserved = %d", p.SKU, available, p.Stock, taken[p.SKU], p.Stock-taken[p.SKU])
		}
	}
}

// checkSummaries compares the read model with what was placed and what
// the inventory decided.
func checkSummaries(t *testing.T, ctx context.Context, sys *system, placed map[string]*OrderPlaced, ids []string) {
	t.Helper()
	summaries, err := sys.ReadModel.Summaries(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(summaries) != len(ids) {
		t.Fatalf("%d summaries for %d orders", len(summaries), len(ids))
	}
	for _, s := range summaries {
		ev := placed[s.OrderID]
		items := 0
		for _, l := range ev.Lines {
			items += l.Quantity
		}
		var status, reason string
		if err := sys.db.QueryRowContext(ctx, "SELECT status, reason FROM "+sys.cfg.Schema+".reservations WHERE order_id = $1", s.OrderID).Scan(&status, &reason); err != nil {
			t.Fatal(err)
		}
		want := Summary{OrderID: ev.OrderID, Customer: ev.Customer, Items: items, TotalCents: ev.TotalCents, Shipper: ev.Shipper,
			ShippingCents: ev.ShippingCents, Status: status, Reason: reason, Events: 2}
		if s != want {
			t.Errorf("summary %+v\nwant    %+v", s, want)
		}
	}
}

// readStream reads every record of a one-partition stream.
func readStream(t *testing.T, ctx context.Context, c *weir.Client, stream string) []weir.Record {
	t.Helper()
	end := streamEnd(t, ctx, c, stream)
	got := make(chan weir.Record, end)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := c.Consume(ctx, stream, func(_ context.Context, m *weir.Message) error {
		if m.Offset < end {
			got <- m.Record
		}
		return nil
	}, weir.FromPositions(map[int32]int64{0: 0}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(context.Background())
	var out []weir.Record
	for int64(len(out)) < end {
		select {
		case r := <-got:
			out = append(out, r)
		case <-ctx.Done():
			t.Fatalf("read %d of %d records of %s: %v", len(out), end, stream, ctx.Err())
		}
	}
	return out
}

func streamEnd(t *testing.T, ctx context.Context, c *weir.Client, stream string) int64 {
	t.Helper()
	info, err := c.DescribeStream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Partitions) != 1 {
		t.Fatalf("%s has %d partitions, want 1", stream, len(info.Partitions))
	}
	return info.Partitions[0].EndOffset
}

// Shipping quotes: a shipper that does not answer within the deadline is
// left out; with no answer at all, the quote fails with ErrNoQuote and no
// order is stored.
func TestShippingQuoteTimeouts(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	sys := startTest(t, ctx)

	// Three shippers and a stalled one, cheaper than all of them.
	if err := sys.StartShippers(ctx, "quotes.mixed", append(slices.Clone(testShippers), stalled)); err != nil {
		t.Fatal(err)
	}
	desk := &ShippingDesk{Client: sys.client, Exchange: "quotes.mixed", Shippers: len(testShippers) + 1, Timeout: 20 * time.Second}
	q, err := desk.Quote(ctx, QuoteRequest{OrderID: "Q-1", WeightGrams: 2500})
	if err != nil {
		t.Fatal(err)
	}
	for _, sq := range q.Quotes {
		if sq.Shipper == stalled.Name {
			t.Fatalf("the stalled shipper answered: %+v", q)
		}
	}
	var answered []Shipper
	for _, sq := range q.Quotes {
		i := slices.IndexFunc(testShippers, func(s Shipper) bool { return s.Name == sq.Shipper })
		if i < 0 || sq.PriceCents != testShippers[i].Price(2500) {
			t.Fatalf("quote %+v from no shipper of the test, or at the wrong price", sq)
		}
		answered = append(answered, testShippers[i])
	}
	if len(answered) == 0 || q.ShipperQuote != cheapest(answered, 2500) {
		t.Errorf("best %+v of %+v, want the cheapest of those that answered", q.ShipperQuote, q.Quotes)
	}

	// Only the stalled shipper: no quote, and the order is not placed.
	if err := sys.StartShippers(ctx, "quotes.stalled", []Shipper{stalled}); err != nil {
		t.Fatal(err)
	}
	none := &ShippingDesk{Client: sys.client, Exchange: "quotes.stalled", Shippers: 1, Timeout: 2 * time.Second}
	if _, err := none.Quote(ctx, QuoteRequest{OrderID: "Q-2", WeightGrams: 100}); !errors.Is(err, ErrNoQuote) {
		t.Fatalf("quote from the stalled shipper alone: %v, want ErrNoQuote", err)
	}
	orders := &OrderService{DB: sys.db, Schema: sys.cfg.Schema, Shipping: none}
	if _, _, err := orders.Place(ctx, Order{ID: "Q-3", Customer: "zoe", Lines: []Line{{SKU: "MS-02", Quantity: 1}}}); !errors.Is(err, ErrNoQuote) {
		t.Fatalf("Place without a quote: %v, want ErrNoQuote", err)
	}
	var n int
	if err := sys.db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM "+sys.cfg.Schema+".orders) + (SELECT count(*) FROM "+sys.cfg.Schema+".outbox)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d orders and outbox rows stored without a quote", n)
	}

	// A malformed request is dead-lettered by the shipper, not retried.
	if _, err := sys.client.Publish(ctx, "quotes.mixed.parcelpro", weir.Record{Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the malformed request dead-lettered", func() (bool, error) {
		info, err := sys.client.DescribeStream(ctx, "quotes.mixed.parcelpro.dlq")
		if errors.Is(err, weir.ErrNotFound) {
			return false, nil
		}
		return err == nil && info.Records() == 1, err
	})
}

// The command itself, as a user runs it, against the test's PostgreSQL.
func TestRun(t *testing.T) {
	pg := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, pg.ConnString(), "orders_example", false, 5*time.Second, testLogger(t), &out); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	for _, want := range []string{
		"A-1001  alice",
		"A-1003  carol",
		"rejected (out of stock: MN-27: 4 wanted, ",
		"inventory: 4 reserved, 1 rejected",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "slowpoke") {
		t.Errorf("the slow shipper's quote was taken:\n%s", out.String())
	}
	// A second run finds the schema and stops rather than drop it; with
	// reset it runs again (the first run dropped its replication slot).
	if err := run(ctx, pg.ConnString(), "orders_example", false, 5*time.Second, testLogger(t), &out); !errors.Is(err, errSchemaExists) {
		t.Errorf("second run without reset: %v, want errSchemaExists", err)
	}
	out.Reset()
	if err := run(ctx, pg.ConnString(), "orders_example", true, 5*time.Second, testLogger(t), &out); err != nil {
		t.Fatalf("run with reset: %v\noutput:\n%s", err, out.String())
	}
}
