package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DeadLetterExchange sends a subscription's dead letters through an
// exchange instead of into its DeadLetterStream: each is routed by the
// exchange's bindings when it is dead-lettered (so binding changes made
// after the subscription was created count), to every stream they reach
// (none: the dead letter is dropped, as RabbitMQ drops a dead letter its
// dead-letter exchange cannot route). AMQP's x-dead-letter-exchange.
type DeadLetterExchange struct {
	// Name is the exchange; empty: dead letters go to DeadLetterStream.
	Name string `json:"name"`
	// RoutingKey is the key dead letters are routed and stored with.
	RoutingKey string `json:"routing_key,omitempty"`
	// KeepKey routes a record that has a key of its own by that key;
	// RoutingKey is then only for records without one.
	KeepKey bool `json:"keep_key,omitempty"`
}

func (d DeadLetterExchange) validate() error {
	if d.Name == "" {
		if d.RoutingKey != "" || d.KeepKey {
			return fmt.Errorf("%w: a dead-letter routing key needs a dead-letter exchange", ErrInvalidArgument)
		}
		return nil
	}
	if err := validateName("exchange", d.Name); err != nil {
		return fmt.Errorf("dead-letter exchange: %w", err)
	}
	return nil
}

// meta is the catalog form: nil when no exchange is set.
func (d DeadLetterExchange) meta() *DeadLetterExchange {
	if d.Name == "" {
		return nil
	}
	return &d
}

func (d *DeadLetterExchange) config() DeadLetterExchange {
	if d == nil {
		return DeadLetterExchange{}
	}
	return *d
}

// deadLetterTo stores a dead letter where cfg sends it: through its
// dead-letter exchange, or into its dead-letter stream.
func (b *Broker) deadLetterTo(ctx context.Context, cfg *SubscriptionConfig, rec Record) error {
	dlx := cfg.DeadLetterExchange
	if dlx.Name == "" {
		return b.publishDeadLetter(ctx, cfg.DeadLetterStream, rec)
	}
	key := dlx.RoutingKey
	if dlx.KeepKey && len(rec.Key) > 0 {
		key = string(rec.Key)
	}
	rec.Key = nil
	if key != "" {
		rec.Key = []byte(key)
	}
	rec.Timestamp = time.Time{} // the time it was dead-lettered
	streams, err := b.Route(dlx.Name, key, rec.Headers)
	if errors.Is(err, ErrExchangeNotFound) {
		b.cfg.Logger.Warn("dead letter dropped: its dead-letter exchange does not exist", "stream", cfg.Stream, "subscription", cfg.Name, "exchange", dlx.Name)
		return nil
	}
	if err != nil {
		return err
	}
	if len(streams) == 0 {
		b.ex.mu.Lock()
		if x, ok := b.ex.byName[dlx.Name]; ok {
			x.unroutable++
		}
		b.ex.mu.Unlock()
		return nil
	}
	for _, s := range streams {
		if deadLetterCycle(rec.Headers, s) {
			b.cfg.Logger.Debug("dead letter dropped: it would close a dead-letter cycle without a rejection", "stream", cfg.Stream, "subscription", cfg.Name, "exchange", dlx.Name, "target", s)
			continue
		}
		// Without dedup, as into a dead-letter stream: a record
		// dead-lettered twice keeps its message-id.
		if _, err := b.publish(ctx, s, -1, []Record{rec}, false); err != nil && !errors.Is(err, ErrStreamNotFound) {
			return err
		}
	}
	return nil
}

// deadLetterCycle reports whether a dead letter routed to stream target
// would close a cycle without a rejection: RabbitMQ drops such a message
// (a TTL queue whose dead-letter exchange routes back to it would otherwise
// bounce it forever). headers carry the record's deaths in order, each as
// an x-dead-letter-stream header followed by its x-dead-letter-reason (the
// newest, being dead-lettered now, last). Walking back from the newest, a
// rejection means a consumer chose this path: no cycle; reaching a death in
// target first means the record already died there: a cycle.
func deadLetterCycle(headers []Header, target string) bool {
	reason := ""
	for i := len(headers) - 1; i >= 0; i-- {
		switch headers[i].Key {
		case HeaderDeadLetterReason:
			reason = string(headers[i].Value)
		case HeaderDeadLetterStream:
			if reason == ReasonRejected {
				return false
			}
			if string(headers[i].Value) == target {
				return true
			}
			reason = ""
		}
	}
	return false
}
