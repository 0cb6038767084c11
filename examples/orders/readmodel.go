package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	weir "github.com/weirmq/weir/client"
)

// The read model: order summaries for the screens that list orders, built
// from the events alone (it never reads the order service's or the
// inventory's tables). Two projections of the SDK's runner (Client.Project)
// feed it, one per event stream: each applies its events in batches, and
// stores how far it got in the same transaction as the changes, so every
// event changes the read model once even if the service stops at any
// moment. The events of the two streams may come in either order (a
// summary may learn that stock was reserved before it learns the order),
// so every change is an upsert of the fields that event knows.

// Summary statuses: placed until the inventory decided.
const (
	statusPlaced   = "placed"
	statusReserved = "reserved"
	statusRejected = "rejected"
)

// Summary is one order as the read model shows it.
type Summary struct {
	OrderID       string
	Customer      string
	Items         int
	TotalCents    int64
	Shipper       string
	ShippingCents int64
	Status        string
	Reason        string
	// Events is how many distinct events were applied to the summary.
	Events int
}

// ReadModel projects the order and inventory events into
// <Schema>.order_summaries.
type ReadModel struct {
	DSN    string
	Client *weir.Client
	Schema string

	Logger *slog.Logger

	db        *sql.DB // with search_path = Schema: the checkpoints live there too
	malformed atomic.Int64
}

// Malformed is how many events the read model skipped because it could not
// decode them.
func (rm *ReadModel) Malformed() int64 { return rm.malformed.Load() }

// skip counts and logs an event that cannot be decoded. A read model that
// stopped at such an event would stop showing every later order; skipping
// it loses only what it could not read anyway (the producers' own tables
// and their dead-letter handling have the rest).
func (rm *ReadModel) skip(ev *weir.ProjectionEvent, why string) {
	rm.malformed.Add(1)
	if rm.Logger != nil {
		rm.Logger.Warn("read model: skipping an undecodable event", "event", ev.String(), "why", why, "value", string(ev.Value))
	}
}

// Open connects to the database with the schema first on the search path,
// so that the projections' checkpoint table (weir_projections) is created
// in the example's schema and goes with it.
func (rm *ReadModel) Open() error {
	cfg, err := pgx.ParseConfig(rm.DSN)
	if err != nil {
		return fmt.Errorf("read model: %w", err)
	}
	cfg.RuntimeParams["search_path"] = rm.Schema
	rm.db = stdlib.OpenDB(*cfg)
	return nil
}

// Close closes the read model's database connections.
func (rm *ReadModel) Close() error {
	if rm.db == nil {
		return nil
	}
	return rm.db.Close()
}

// projections are the read model's two projections.
func (rm *ReadModel) projections() []weir.Projection {
	return []weir.Projection{
		{Name: "order-summaries/orders", DB: rm.db, Dialect: weir.OutboxPostgres, Stream: orderEventsStream, Apply: rm.applyOrderEvent,
			Reset: rm.reset},
		{Name: "order-summaries/inventory", DB: rm.db, Dialect: weir.OutboxPostgres, Stream: inventoryEventsStream, Apply: rm.applyStockEvent,
			Reset: rm.reset},
	}
}

// Prepare creates the projections' checkpoint table if it is missing. Run
// it once before Run, which starts two projections at once: each would
// create the table itself, and two concurrent CREATE TABLE IF NOT EXISTS
// of one table can fail in PostgreSQL.
func (rm *ReadModel) Prepare(ctx context.Context) error {
	if _, err := rm.db.ExecContext(ctx, weir.ProjectionDDL(weir.OutboxPostgres)); err != nil {
		return fmt.Errorf("read model: create %s: %w", weir.ProjectionTable, err)
	}
	return nil
}

// Run runs both projections until ctx ends (then it returns nil) or one of
// them fails (then it stops the other and returns the error).
func (rm *ReadModel) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := rm.projections()
	errs := make(chan error, len(ps))
	for _, p := range ps {
		go func() { errs <- rm.Client.Project(ctx, p) }()
	}
	var first error
	for range ps {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Rebuild clears the read model and the projections' checkpoints: the
// next Run applies every event again. Stop Run first.
func (rm *ReadModel) Rebuild(ctx context.Context) error {
	for _, p := range rm.projections() {
		if err := rm.Client.RebuildProjection(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (rm *ReadModel) reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, "TRUNCATE "+rm.Schema+".order_summaries, "+rm.Schema+".summary_events")
	return err
}

// firstTime records the event's message-id and reports whether it is new;
// an event without one is always new.
func (rm *ReadModel) firstTime(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) (bool, error) {
	id, ok := ev.Header(weir.HeaderMessageID)
	if !ok || len(id) == 0 {
		return true, nil
	}
	res, err := tx.ExecContext(ctx, "INSERT INTO "+rm.Schema+".summary_events (message_id) VALUES ($1) ON CONFLICT DO NOTHING", string(id))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// applyOrderEvent applies an event of the order service.
func (rm *ReadModel) applyOrderEvent(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
	if typ, _ := ev.Header(weir.HeaderType); string(typ) != eventOrderPlaced {
		return nil // an event type this read model does not show
	}
	var placed OrderPlaced
	if err := json.Unmarshal(ev.Value, &placed); err != nil || placed.OrderID == "" {
		rm.skip(ev, fmt.Sprintf("%s without an order id, or not JSON (%v)", eventOrderPlaced, err))
		return nil
	}
	if first, err := rm.firstTime(ctx, tx, ev); err != nil || !first {
		return err
	}
	items := 0
	for _, l := range placed.Lines {
		items += l.Quantity
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO "+rm.Schema+`.order_summaries AS s
		(order_id, customer, items, total_cents, shipper, shipping_cents, events) VALUES ($1, $2, $3, $4, $5, $6, 1)
		ON CONFLICT (order_id) DO UPDATE SET customer = excluded.customer, items = excluded.items, total_cents = excluded.total_cents,
		shipper = excluded.shipper, shipping_cents = excluded.shipping_cents, events = s.events + 1`,
		placed.OrderID, placed.Customer, items, placed.TotalCents, placed.Shipper, placed.ShippingCents)
	return err
}

// applyStockEvent applies an event of the inventory service.
func (rm *ReadModel) applyStockEvent(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
	typ, _ := ev.Header(weir.HeaderType)
	var status string
	switch string(typ) {
	case eventStockReserved:
		status = statusReserved
	case eventStockRejected:
		status = statusRejected
	default:
		return nil
	}
	var se StockEvent
	if err := json.Unmarshal(ev.Value, &se); err != nil || se.OrderID == "" {
		rm.skip(ev, fmt.Sprintf("%s without an order id, or not JSON (%v)", typ, err))
		return nil
	}
	if first, err := rm.firstTime(ctx, tx, ev); err != nil || !first {
		return err
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO "+rm.Schema+`.order_summaries AS s (order_id, status, reason, events) VALUES ($1, $2, $3, 1)
		ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, events = s.events + 1`,
		se.OrderID, status, se.Reason)
	return err
}

// Summaries returns the summaries of the given orders that exist, by
// order id.
func (rm *ReadModel) Summaries(ctx context.Context, orderIDs []string) ([]Summary, error) {
	rows, err := rm.db.QueryContext(ctx, `SELECT order_id, customer, items, total_cents, shipper, shipping_cents, status, reason, events
		FROM `+rm.Schema+`.order_summaries WHERE order_id = ANY($1) ORDER BY order_id`, orderIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		if err := rows.Scan(&s.OrderID, &s.Customer, &s.Items, &s.TotalCents, &s.Shipper, &s.ShippingCents, &s.Status, &s.Reason, &s.Events); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
