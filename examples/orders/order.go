package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	weir "github.com/weirmq/weir/client"
)

// The order service: it prices an order, asks the shippers for a quote
// (shipping.go) and writes the order and its OrderPlaced event in one
// PostgreSQL transaction. It never publishes to Weir itself: the event is a
// row of the outbox table, and Weir's CDC connector reads it from the WAL
// once the transaction commits, so an order is announced if and only if it
// was stored.

// Event types and the aggregate the order service's events are routed by:
// the connector's outbox router puts them on the stream
// outbox.event.order.
const (
	aggregateOrder   = "order"
	eventOrderPlaced = "OrderPlaced"
)

// Line is one line of an order.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Order is what a customer asks for.
type Order struct {
	ID       string
	Customer string
	Lines    []Line
}

// OrderPlaced is the event of a stored order: the outbox row's payload.
type OrderPlaced struct {
	OrderID       string       `json:"order_id"`
	Customer      string       `json:"customer"`
	Lines         []PricedLine `json:"lines"`
	TotalCents    int64        `json:"total_cents"`
	WeightGrams   int64        `json:"weight_grams"`
	Shipper       string       `json:"shipper"`
	ShippingCents int64        `json:"shipping_cents"`
}

// PricedLine is a line with the price it was sold at.
type PricedLine struct {
	SKU        string `json:"sku"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// ErrInvalidOrder is wrapped by the errors for orders that cannot be
// placed as given.
var ErrInvalidOrder = errors.New("invalid order")

// OrderService places orders.
type OrderService struct {
	DB     *sql.DB
	Schema string
	// Shipping asks the shippers for a quote before the order is stored.
	Shipping *ShippingDesk
}

// Place prices o, gets the best shipping quote (returned with the
// others that came in time), and stores the order with
// its lines and its OrderPlaced event in one transaction.
func (s *OrderService) Place(ctx context.Context, o Order) (*OrderPlaced, Quote, error) {
	if err := o.validate(); err != nil {
		return nil, Quote{}, err
	}
	ev, err := s.price(ctx, o)
	if err != nil {
		return nil, Quote{}, err
	}
	quote, err := s.Shipping.Quote(ctx, QuoteRequest{OrderID: o.ID, WeightGrams: ev.WeightGrams})
	if err != nil {
		return nil, Quote{}, fmt.Errorf("order %s: %w", o.ID, err)
	}
	ev.Shipper, ev.ShippingCents = quote.Shipper, quote.PriceCents
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, Quote{}, err
	}

	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, Quote{}, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "INSERT INTO "+s.Schema+".orders (id, customer, total_cents, shipper, shipping_cents) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
		ev.OrderID, ev.Customer, ev.TotalCents, ev.Shipper, ev.ShippingCents)
	if err != nil {
		return nil, Quote{}, fmt.Errorf("order %s: %w", o.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, Quote{}, err
	} else if n == 0 {
		return nil, Quote{}, fmt.Errorf("%w: order %s was placed already", ErrInvalidOrder, o.ID)
	}
	for _, l := range ev.Lines {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+s.Schema+".order_lines (order_id, sku, quantity, price_cents) VALUES ($1, $2, $3, $4)",
			ev.OrderID, l.SKU, l.Quantity, l.PriceCents); err != nil {
			return nil, Quote{}, fmt.Errorf("order %s: %w", o.ID, err)
		}
	}
	// The event goes into the outbox in the same transaction: both or
	// neither are stored.
	outbox := weir.Outbox{Table: s.Schema + ".outbox"}
	if err := outbox.Write(ctx, tx, weir.OutboxEvent{AggregateType: aggregateOrder, AggregateID: ev.OrderID,
		Type: eventOrderPlaced, Payload: payload}); err != nil {
		return nil, Quote{}, fmt.Errorf("order %s: %w", o.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, Quote{}, fmt.Errorf("order %s: commit: %w", o.ID, err)
	}
	return ev, quote, nil
}

func (o *Order) validate() error {
	switch {
	case o.ID == "":
		return fmt.Errorf("%w: no id", ErrInvalidOrder)
	case o.Customer == "":
		return fmt.Errorf("%w: order %s: no customer", ErrInvalidOrder, o.ID)
	case len(o.Lines) == 0:
		return fmt.Errorf("%w: order %s: no lines", ErrInvalidOrder, o.ID)
	}
	seen := make(map[string]bool)
	for _, l := range o.Lines {
		if l.Quantity <= 0 {
			return fmt.Errorf("%w: order %s: %s: quantity %d", ErrInvalidOrder, o.ID, l.SKU, l.Quantity)
		}
		if seen[l.SKU] {
			return fmt.Errorf("%w: order %s: %s on two lines", ErrInvalidOrder, o.ID, l.SKU)
		}
		seen[l.SKU] = true
	}
	return nil
}

// price looks the order's products up: the event with its lines, total and
// weight.
func (s *OrderService) price(ctx context.Context, o Order) (*OrderPlaced, error) {
	ev := &OrderPlaced{OrderID: o.ID, Customer: o.Customer}
	for _, l := range o.Lines {
		var price, weight int64
		err := s.DB.QueryRowContext(ctx, "SELECT price_cents, weight_grams FROM "+s.Schema+".products WHERE sku = $1", l.SKU).Scan(&price, &weight)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: order %s: no product %q", ErrInvalidOrder, o.ID, l.SKU)
		}
		if err != nil {
			return nil, err
		}
		ev.Lines = append(ev.Lines, PricedLine{SKU: l.SKU, Quantity: l.Quantity, PriceCents: price})
		ev.TotalCents += price * int64(l.Quantity)
		ev.WeightGrams += weight * int64(l.Quantity)
	}
	return ev, nil
}
