package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	weir "github.com/weirmq/weir/client"
)

// Shipping quotes are a scatter-gather: the order service sends one
// request through a fanout exchange bound to one queue per shipper; each
// shipper answers from its queue to the request's reply-to inbox; the
// desk gathers the answers until every shipper answered or the deadline
// passed, and takes the cheapest. A shipper too slow for the deadline is
// left out, and with no answer at all the order is not placed.

// QuoteRequest asks a shipper for a price.
type QuoteRequest struct {
	OrderID     string `json:"order_id"`
	WeightGrams int64  `json:"weight_grams"`
}

// ShipperQuote is one shipper's answer.
type ShipperQuote struct {
	Shipper    string `json:"shipper"`
	PriceCents int64  `json:"price_cents"`
}

// Quote is the desk's answer: the best quote and every one that came in
// time (in arrival order).
type Quote struct {
	ShipperQuote
	Quotes []ShipperQuote
}

// ErrNoQuote is returned by Quote when no shipper answered in time.
var ErrNoQuote = errors.New("no shipping quote")

// Shipper prices parcels: BaseCents plus PerKgCents for each started
// kilogram, after Delay.
type Shipper struct {
	Name       string
	BaseCents  int64
	PerKgCents int64
	Delay      time.Duration
}

// Price is the shipper's price for a parcel.
func (s Shipper) Price(weightGrams int64) int64 {
	kg := (weightGrams + 999) / 1000
	return s.BaseCents + s.PerKgCents*kg
}

// ServeShipper creates the shipper's queue (<exchange>.<name>), binds it to
// the fanout exchange, and answers every request in it until ctx ends or
// the returned consumer is closed. A request that expires (its expires-at
// header: the requester's deadline) before the shipper's Delay is over is
// dropped unanswered when it expires.
func ServeShipper(ctx context.Context, c *weir.Client, exchange string, s Shipper) (*weir.Consumer, error) {
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: exchange, Type: weir.ExchangeFanout}); err != nil {
		return nil, err
	}
	queue := exchange + "." + s.Name
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: queue}); err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
		return nil, err
	}
	if err := c.Bind(ctx, exchange, weir.Binding{Destination: queue}); err != nil {
		return nil, err
	}
	return c.Respond(ctx, queue, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		var q QuoteRequest
		if err := json.Unmarshal(req.Value, &q); err != nil || q.WeightGrams <= 0 {
			// Nothing to price: dead-letter it rather than retry.
			_ = req.Reject(ctx, fmt.Sprintf("bad quote request %q", req.Value))
			return weir.Record{}, fmt.Errorf("shipper %s: bad quote request %q", s.Name, req.Value)
		}
		// The request's expires-at is when the requester stops gathering:
		// a shipper that would answer later gives up then.
		wait, late := s.Delay, false
		if exp, ok := req.Header(weir.HeaderExpiresAt); ok {
			if t, err := time.Parse(time.RFC3339, string(exp)); err == nil && time.Until(t) < wait {
				wait, late = max(time.Until(t), 0), true
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return weir.Record{}, ctx.Err()
			}
		}
		if late {
			// Done with it, unanswered: settled, so the error below
			// neither nacks it nor sends a reply.
			if err := req.Ack(ctx); err != nil {
				return weir.Record{}, err
			}
			return weir.Record{}, fmt.Errorf("shipper %s: request %s expired before the quote was ready", s.Name, q.OrderID)
		}
		answer, err := json.Marshal(ShipperQuote{Shipper: s.Name, PriceCents: s.Price(q.WeightGrams)})
		if err != nil {
			return weir.Record{}, err
		}
		return weir.Record{Key: []byte(q.OrderID), Value: answer}, nil
	}, weir.Prefetch(8))
}

// ShippingDesk asks the shippers bound to Exchange for quotes.
type ShippingDesk struct {
	Client   *weir.Client
	Exchange string
	// Shippers is how many shippers there are: gathering stops as soon as
	// that many answered (0: always wait for the deadline).
	Shippers int
	// Timeout is how long to wait for answers.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Quote scatters req to every shipper and returns the cheapest answer that
// came within the timeout (ties: the first name in alphabetical order), or
// ErrNoQuote.
func (d *ShippingDesk) Quote(ctx context.Context, req QuoteRequest) (Quote, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Quote{}, err
	}
	return weir.ScatterGather(ctx, d.Client, weir.ToExchange(d.Exchange, ""), weir.Record{Key: []byte(req.OrderID), Value: body},
		weir.GatherOptions{Replies: d.Shippers, Timeout: d.Timeout}, d.best)
}

// best is the aggregator.
func (d *ShippingDesk) best(replies []weir.Record) (Quote, error) {
	var q Quote
	for _, r := range replies {
		var sq ShipperQuote
		if err := json.Unmarshal(r.Value, &sq); err != nil || sq.Shipper == "" || sq.PriceCents < 0 {
			if d.Logger != nil {
				d.Logger.Warn("ignoring a malformed shipping quote", "value", string(r.Value))
			}
			continue
		}
		q.Quotes = append(q.Quotes, sq)
	}
	if len(q.Quotes) == 0 {
		return Quote{}, fmt.Errorf("%w within %v", ErrNoQuote, d.Timeout)
	}
	q.ShipperQuote = slices.MinFunc(q.Quotes, func(a, b ShipperQuote) int {
		return cmp.Or(cmp.Compare(a.PriceCents, b.PriceCents), cmp.Compare(a.Shipper, b.Shipper))
	})
	return q, nil
}
