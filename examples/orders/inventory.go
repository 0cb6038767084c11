package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	weir "github.com/weirmq/weir/client"
)

// The inventory service reserves stock for each OrderPlaced event. It
// consumes the stream the outbox router writes the order events to,
// outbox.event.order, through the shared subscription "inventory": queue
// semantics on that stream (competing consumers, per-record acks,
// redelivery after a nack or an ack timeout, dead-lettering after
// MaxDeliveries) while other subscribers - the read model - read the same
// events as a log.
//
// Delivery is at least once, so the service must be an idempotent
// consumer. It is, at two levels:
//
//   - weir.Idempotent with an in-memory store skips a message id this
//     process has handled already (a redelivery whose ack was lost, a copy
//     published again after the stream's dedup window), and never runs two
//     deliveries of one id at the same time;
//   - the reservation itself is keyed by the order: the stock update, the
//     reservation row and the service's own event are one transaction, and
//     the reservation's primary key makes a second one a no-op. This is
//     what holds across restarts and between replicas, which do not share
//     the memory store.
//
// The outcome, StockReserved or StockRejected, is written to the outbox
// in the same transaction, so the read model hears of it exactly when it
// happened.

// Event types of the inventory service, routed to outbox.event.inventory.
const (
	aggregateInventory = "inventory"
	eventStockReserved = "StockReserved"
	eventStockRejected = "StockRejected"
)

// Streams and subscriptions: the outbox router's route is
// outbox.event.${aggregatetype}.
const (
	orderEventsStream     = "outbox.event." + aggregateOrder
	inventoryEventsStream = "outbox.event." + aggregateInventory
	inventorySubscription = "inventory"
)

// StockEvent is the payload of StockReserved and StockRejected.
type StockEvent struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason,omitempty"` // why it was rejected
}

// InventoryStats count what the service did.
type InventoryStats struct {
	Reserved, Rejected int64
	// SkippedInMemory: deliveries weir.Idempotent skipped (id handled by
	// this process already).
	SkippedInMemory int64
	// SkippedInDatabase: deliveries whose order had a reservation already
	// (handled before a restart, or by another replica).
	SkippedInDatabase int64
}

// Inventory is one replica of the inventory service.
type Inventory struct {
	DB     *sql.DB
	Client *weir.Client
	Schema string

	seen                                         *weir.MemoryIdempotencyStore
	reserved, rejected, skippedMemory, skippedDB atomic.Int64
}

// NewInventory returns a replica with an empty memory of handled ids.
func NewInventory(db *sql.DB, c *weir.Client, schema string) *Inventory {
	return &Inventory{DB: db, Client: c, Schema: schema, seen: weir.NewMemoryIdempotencyStore(100_000, time.Hour)}
}

// CreateSubscription creates the shared subscription the replicas
// consume, from the stream's first record, if it is not there.
func (inv *Inventory) CreateSubscription(ctx context.Context) error {
	_, err := inv.Client.CreateSubscription(ctx, weir.SubscriptionConfig{
		Stream: orderEventsStream, Name: inventorySubscription, Start: weir.Earliest(),
		AckTimeout: 30 * time.Second, MaxDeliveries: 10,
		Backoff: weir.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second},
	})
	if errors.Is(err, weir.ErrAlreadyExists) {
		return nil
	}
	return err
}

// Handler is the replica's message handler: Reserve behind weir.Idempotent.
func (inv *Inventory) Handler() weir.Handler {
	return weir.Idempotent(inv.seen, inv.Reserve, weir.OnDuplicate(func(context.Context, *weir.Message) {
		inv.skippedMemory.Add(1)
	}))
}

// Start consumes the order events with handler (normally Handler()) until
// ctx ends or the consumer is closed.
func (inv *Inventory) Start(ctx context.Context, handler weir.Handler) (*weir.Consumer, error) {
	if err := inv.CreateSubscription(ctx); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return inv.Client.Consume(ctx, orderEventsStream, handler, weir.Shared(inventorySubscription), weir.Prefetch(16))
}

// Stats returns what the replica did so far.
func (inv *Inventory) Stats() InventoryStats {
	return InventoryStats{Reserved: inv.reserved.Load(), Rejected: inv.rejected.Load(),
		SkippedInMemory: inv.skippedMemory.Load(), SkippedInDatabase: inv.skippedDB.Load()}
}

// Reserve handles one order event. Events of other types are acknowledged
// and ignored; an event that cannot be decoded is rejected (dead-lettered:
// retrying cannot fix it). A database error fails the handler, so the
// message is nacked and delivered again.
func (inv *Inventory) Reserve(ctx context.Context, m *weir.Message) error {
	if typ, _ := m.Header(weir.HeaderType); string(typ) != eventOrderPlaced {
		return nil
	}
	var ev OrderPlaced
	if err := json.Unmarshal(m.Value, &ev); err != nil || ev.OrderID == "" || len(ev.Lines) == 0 {
		return m.Reject(ctx, fmt.Sprintf("undecodable %s event: %q", eventOrderPlaced, m.Value))
	}
	messageID, _ := m.Header(weir.HeaderMessageID)

	tx, err := inv.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Claim the order first: a second delivery (from anywhere) stops here,
	// or waits on this row's lock until the first commits and then stops.
	res, err := tx.ExecContext(ctx, "INSERT INTO "+inv.Schema+".reservations (order_id, status, message_id) VALUES ($1, 'reserved', $2) ON CONFLICT (order_id) DO NOTHING",
		ev.OrderID, string(messageID))
	if err != nil {
		return fmt.Errorf("inventory: order %s: %w", ev.OrderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		inv.skippedDB.Add(1)
		return nil
	}

	reason, err := inv.take(ctx, tx, ev.Lines)
	if err != nil {
		return fmt.Errorf("inventory: order %s: %w", ev.OrderID, err)
	}
	outcome := eventStockReserved
	if reason != "" {
		outcome = eventStockRejected
		if _, err := tx.ExecContext(ctx, "UPDATE "+inv.Schema+".reservations SET status = 'rejected', reason = $2 WHERE order_id = $1", ev.OrderID, reason); err != nil {
			return err
		}
	}
	payload, err := json.Marshal(StockEvent{OrderID: ev.OrderID, Reason: reason})
	if err != nil {
		return err
	}
	outbox := weir.Outbox{Table: inv.Schema + ".outbox"}
	if err := outbox.Write(ctx, tx, weir.OutboxEvent{AggregateType: aggregateInventory, AggregateID: ev.OrderID,
		Type: outcome, Payload: payload}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("inventory: order %s: commit: %w", ev.OrderID, err)
	}
	if reason == "" {
		inv.reserved.Add(1)
	} else {
		inv.rejected.Add(1)
	}
	return nil
}

// take takes the lines' quantities off the shelves, all or none: it
// returns why not ("" when taken). Rows are locked in SKU order so that
// concurrent reservations cannot deadlock.
func (inv *Inventory) take(ctx context.Context, tx *sql.Tx, lines []PricedLine) (string, error) {
	lines = slices.SortedFunc(slices.Values(lines), func(a, b PricedLine) int { return strings.Compare(a.SKU, b.SKU) })
	var short []string
	for _, l := range lines {
		var available int64
		err := tx.QueryRowContext(ctx, "SELECT available FROM "+inv.Schema+".stock WHERE sku = $1 FOR UPDATE", l.SKU).Scan(&available)
		if errors.Is(err, sql.ErrNoRows) {
			short = append(short, l.SKU+" not stocked")
			continue
		}
		if err != nil {
			return "", err
		}
		if available < int64(l.Quantity) {
			short = append(short, fmt.Sprintf("%s: %d wanted, %d available", l.SKU, l.Quantity, available))
		}
	}
	if len(short) > 0 {
		return "out of stock: " + strings.Join(short, "; "), nil
	}
	for _, l := range lines {
		if _, err := tx.ExecContext(ctx, "UPDATE "+inv.Schema+".stock SET available = available - $2 WHERE sku = $1", l.SKU, l.Quantity); err != nil {
			return "", err
		}
	}
	return "", nil
}
