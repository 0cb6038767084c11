package amqp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// consumerTimeout is the ack deadline of queues declared over AMQP:
// RabbitMQ's default consumer timeout (AMQP has no per-message deadline).
const consumerTimeout = 30 * time.Minute

func (ch *channel) ctx() context.Context { return ch.c.ctx }

func isReserved(name string) bool { return strings.HasPrefix(name, "amq.") }

func exchangeKind(t string) (route.Kind, bool) {
	switch k := route.Kind(t); k {
	case route.Direct, route.Fanout, route.Topic, route.Headers:
		return k, true
	}
	return "", false
}

func (ch *channel) findExchange(name string) (broker.ExchangeInfo, bool) {
	for _, x := range ch.c.s.b.ListExchanges() {
		if x.Config.Name == name {
			return x, true
		}
	}
	return broker.ExchangeInfo{}, false
}

func (ch *channel) exchangeDeclare(m *wire.ExchangeDeclare) *amqpError {
	b := ch.c.s.b
	if m.Exchange == "" {
		// The default exchange exists and cannot be redeclared.
		if m.Passive {
			return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeclareOk{})
		}
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	if m.Passive {
		if _, ok := ch.findExchange(m.Exchange); !ok {
			return exception(wire.NotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
		}
		return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeclareOk{})
	}
	kind, ok := exchangeKind(m.Type)
	if !ok {
		return exception(wire.CommandInvalid, m, "invalid exchange type '%s' (Weir has direct, fanout, topic and headers)", m.Type)
	}
	alternate, _ := m.Arguments["alternate-exchange"].(string)
	if isReserved(m.Exchange) {
		x, ok := ch.findExchange(m.Exchange)
		if !ok {
			return exception(wire.AccessRefused, m, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
		}
		if x.Config.Type != kind {
			return exception(wire.PreconditionFailed, m, "inequivalent arg 'type' for exchange '%s' in vhost '/': received '%s' but current is '%s'", m.Exchange, m.Type, x.Config.Type)
		}
		return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeclareOk{})
	}
	_, err := b.DeclareExchange(ch.ctx(), broker.ExchangeConfig{Name: m.Exchange, Type: kind, AlternateExchange: alternate})
	if errors.Is(err, broker.ErrExchangeExists) {
		return exception(wire.PreconditionFailed, m, "inequivalent arg for exchange '%s' in vhost '/': %v", m.Exchange, err)
	}
	if err != nil {
		return brokerException(err, m)
	}
	if arg := ch.c.s.checkExchangeFlags(m.Exchange, declaredFlags{durable: m.Durable, autoDelete: m.AutoDelete}); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for exchange '%s' in vhost '/'", arg, m.Exchange)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeclareOk{})
}

func (ch *channel) replyUnlessNoWait(noWait bool, m wire.Method) *amqpError {
	if noWait {
		return nil
	}
	return ch.reply(m)
}

func (ch *channel) exchangeDelete(m *wire.ExchangeDelete) *amqpError {
	if m.Exchange == "" || isReserved(m.Exchange) {
		return exception(wire.AccessRefused, m, "exchange '%s' cannot be deleted", m.Exchange)
	}
	x, ok := ch.findExchange(m.Exchange)
	if !ok {
		return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeleteOk{})
	}
	if m.IfUnused && len(x.Bindings) > 0 {
		return exception(wire.PreconditionFailed, m, "exchange '%s' in vhost '/' in use", m.Exchange)
	}
	if err := ch.c.s.b.DeleteExchange(ch.ctx(), m.Exchange); err != nil && !errors.Is(err, broker.ErrExchangeNotFound) {
		return brokerException(err, m)
	}
	ch.c.s.forgetExchange(m.Exchange)
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeleteOk{})
}

func (ch *channel) exchangeBind(m *wire.ExchangeBind) *amqpError {
	if m.Source == "" || m.Destination == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	err := ch.c.s.b.Bind(ch.ctx(), m.Source, broker.Binding{Destination: m.Destination, ToExchange: true, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil {
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeBindOk{})
}

func (ch *channel) exchangeUnbind(m *wire.ExchangeUnbind) *amqpError {
	err := ch.c.s.b.Unbind(ch.ctx(), m.Source, broker.Binding{Destination: m.Destination, ToExchange: true, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil && !errors.Is(err, broker.ErrExchangeNotFound) {
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeUnbindOk{})
}

// queueArgs are a queue.declare's arguments mapped onto the broker.
type queueArgs struct {
	stream bool // x-queue-type=stream
	cfg    broker.SubscriptionConfig
	opts   queueOpts // enforced by the front end
}

func intArg(t wire.Table, name string) (int64, bool, error) {
	v, ok := t[name]
	if !ok {
		return 0, false, nil
	}
	switch v := v.(type) {
	case int8:
		return int64(v), true, nil
	case int16:
		return int64(v), true, nil
	case int32:
		return int64(v), true, nil
	case int64:
		return v, true, nil
	case uint8:
		return int64(v), true, nil
	case uint16:
		return int64(v), true, nil
	case uint32:
		return int64(v), true, nil
	case float64:
		return int64(v), true, nil
	}
	return 0, true, fmt.Errorf("invalid arg '%s': want a number, got %T", name, v)
}

// parseQueueArgs maps x-arguments; the dead-letter exchange is resolved to
// the one stream it routes to (docs/ARCHITECTURE.md).
func (ch *channel) parseQueueArgs(m *wire.QueueDeclare, name string) (queueArgs, *amqpError) {
	var qa queueArgs
	args := m.Arguments
	if t, ok := args["x-queue-type"]; ok {
		switch t {
		case "classic", "quorum":
		case "stream":
			qa.stream = true
		default:
			return qa, exception(wire.PreconditionFailed, m, "invalid arg 'x-queue-type': '%v' (classic, quorum or stream)", t)
		}
	}
	qa.cfg.AckTimeout = consumerTimeout
	if v, ok, err := intArg(args, "x-message-ttl"); err != nil {
		return qa, exception(wire.PreconditionFailed, m, "%v", err)
	} else if ok {
		if v < 0 {
			return qa, exception(wire.PreconditionFailed, m, "invalid arg 'x-message-ttl': %d", v)
		}
		qa.cfg.MessageTTL = time.Duration(v) * time.Millisecond
		if v == 0 {
			qa.cfg.MessageTTL = time.Millisecond // Weir: 0 means none; RabbitMQ: expire at once
		}
	}
	if v, ok, err := intArg(args, "x-max-length"); err != nil {
		return qa, exception(wire.PreconditionFailed, m, "%v", err)
	} else if ok {
		qa.cfg.MaxLength = v
	}
	if v, ok, err := intArg(args, "x-max-length-bytes"); err != nil {
		return qa, exception(wire.PreconditionFailed, m, "%v", err)
	} else if ok {
		qa.cfg.MaxLengthBytes = v
	}
	if v, ok, err := intArg(args, "x-delivery-limit"); err != nil {
		return qa, exception(wire.PreconditionFailed, m, "%v", err)
	} else if ok {
		qa.cfg.MaxDeliveries = int32(v)
	}
	dlx, hasDLX := args["x-dead-letter-exchange"].(string)
	dlrk, hasDLRK := args["x-dead-letter-routing-key"].(string)
	if hasDLX {
		key := name
		if hasDLRK {
			key = dlrk
		}
		var target string
		if dlx == "" {
			if _, err := ch.c.s.b.DescribeStream(key); err != nil {
				return qa, exception(wire.PreconditionFailed, m, "x-dead-letter-routing-key '%s' names no queue: Weir dead-letters into a queue that must exist when the queue is declared", key)
			}
			target = key
		} else {
			streams, err := ch.c.s.b.Route(dlx, key, nil)
			if err != nil {
				return qa, exception(wire.PreconditionFailed, m, "x-dead-letter-exchange '%s': %v (Weir resolves it when the queue is declared)", dlx, err)
			}
			if len(streams) != 1 {
				return qa, exception(wire.PreconditionFailed, m, "x-dead-letter-exchange '%s' routes key '%s' to %d queues; Weir dead-letters into exactly one, resolved when the queue is declared", dlx, key, len(streams))
			}
			target = streams[0]
		}
		if target == name {
			return qa, exception(wire.PreconditionFailed, m, "a queue cannot dead-letter into itself")
		}
		qa.cfg.DeadLetterStream = target
		qa.cfg.ExpiredDeadLetter = true
	}
	switch o := args["x-overflow"]; o {
	case nil, "drop-head":
		if qa.cfg.MaxLength > 0 || qa.cfg.MaxLengthBytes > 0 {
			qa.cfg.Overflow = broker.OverflowDropOldest
			if hasDLX {
				qa.cfg.Overflow = broker.OverflowDeadLetter
			}
		}
	case "reject-publish", "reject-publish-dlx":
		qa.cfg.Overflow = broker.OverflowRejectPublish
	default:
		return qa, exception(wire.PreconditionFailed, m, "invalid arg 'x-overflow': '%v'", o)
	}
	if v, ok, err := intArg(args, "x-expires"); err != nil {
		return qa, exception(wire.PreconditionFailed, m, "%v", err)
	} else if ok {
		if v <= 0 {
			return qa, exception(wire.PreconditionFailed, m, "invalid arg 'x-expires': %d (must be positive)", v)
		}
		qa.opts.expires = time.Duration(v) * time.Millisecond
	}
	if v, ok := args["x-single-active-consumer"]; ok {
		sac, isBool := v.(bool)
		if !isBool {
			return qa, exception(wire.PreconditionFailed, m, "invalid arg 'x-single-active-consumer': want a boolean, got %T", v)
		}
		qa.opts.singleActive = sac
	}
	return qa, nil
}

// equivalent compares a redeclared queue's mapped arguments with the
// queue's.
func equivalent(have, want broker.SubscriptionConfig) string {
	switch {
	case have.MessageTTL != want.MessageTTL:
		return "x-message-ttl"
	case have.MaxLength != want.MaxLength:
		return "x-max-length"
	case have.MaxLengthBytes != want.MaxLengthBytes:
		return "x-max-length-bytes"
	case have.MaxDeliveries != want.MaxDeliveries:
		return "x-delivery-limit"
	case want.DeadLetterStream != "" && have.DeadLetterStream != want.DeadLetterStream:
		return "x-dead-letter-exchange"
	case want.Overflow != "" && have.Overflow != want.Overflow:
		return "x-overflow"
	}
	return ""
}

func newQueueName() string {
	var id [16]byte
	rand.Read(id[:])
	return "amq.gen-" + base64.RawURLEncoding.EncodeToString(id[:])
}

// queueDepth is a queue's message and consumer counts for declare-ok.
func (ch *channel) queueDepth(name string) (uint32, uint32, bool) {
	info, err := ch.c.s.b.DescribeSubscription(name, name)
	if err != nil {
		if _, serr := ch.c.s.b.DescribeStream(name); serr == nil {
			return 0, uint32(ch.c.s.consumerCount(name)), true // a stream queue
		}
		return 0, 0, false
	}
	return uint32(max(info.Depth-int64(info.InFlight), 0)), uint32(ch.c.s.consumerCount(name)), true
}

func (ch *channel) queueDeclare(m *wire.QueueDeclare) *amqpError {
	s := ch.c.s
	name := m.Queue
	if name == "" {
		if m.Passive {
			return exception(wire.NotFound, m, "no queue '' in vhost '/'")
		}
		name = newQueueName()
	} else if isReserved(name) && !m.Passive {
		return exception(wire.AccessRefused, m, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if s.queueLocked(name, ch.c) {
		return exception(wire.ResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", name)
	}
	if m.Passive {
		msgs, consumers, ok := ch.queueDepth(name)
		if !ok {
			return exception(wire.NotFound, m, "no queue '%s' in vhost '/'", name)
		}
		s.touch(name)
		return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeclareOk{Queue: name, MessageCount: msgs, ConsumerCount: consumers})
	}
	if err := broker.ValidateStreamName(name); err != nil {
		return exception(wire.PreconditionFailed, m, "%v", err)
	}
	qa, e := ch.parseQueueArgs(m, name)
	if e != nil {
		return e
	}
	b := s.b
	var err error
	created := true
	if qa.stream {
		_, err = b.CreateStream(ch.ctx(), broker.StreamConfig{Name: name, Partitions: 1})
		if errors.Is(err, broker.ErrStreamExists) {
			err = nil
		}
	} else {
		create := b.CreateQueue
		if m.Exclusive || m.AutoDelete {
			// They end with their connection or last consumer, and never
			// outlive a restart (docs/ARCHITECTURE.md).
			create = b.CreateTemporaryQueue
		}
		_, err = create(ch.ctx(), broker.QueueConfig{Name: name, Partitions: 1, Subscription: qa.cfg})
		if errors.Is(err, broker.ErrStreamExists) {
			info, derr := b.DescribeSubscription(name, name)
			if derr != nil {
				return exception(wire.PreconditionFailed, m, "'%s' is a stream, not a queue: declare it with x-queue-type=stream", name)
			}
			if arg := equivalent(info.Config, qa.cfg); arg != "" {
				return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '/'", arg, name)
			}
			// A temporary queue stays one and a durable one durable.
			if tmp, _ := b.IsTemporary(name); tmp != (m.Exclusive || m.AutoDelete) {
				arg := "auto_delete"
				if m.Exclusive || s.queueOwned(name) {
					arg = "exclusive"
				}
				return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '/': it was declared %s", arg, name, map[bool]string{true: "exclusive or auto-delete", false: "neither exclusive nor auto-delete"}[tmp])
			}
			err, created = nil, false
		}
	}
	if err != nil {
		return brokerException(err, m)
	}
	if arg := s.checkFlags(name, declaredFlags{durable: m.Durable, autoDelete: m.AutoDelete}, created); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '/'", arg, name)
	}
	if arg := s.declareOpts(name, qa.opts, created); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '/'", arg, name)
	}
	var owner *conn
	if m.Exclusive {
		owner = ch.c
	}
	s.noteQueue(name, owner, m.AutoDelete)
	msgs, consumers, _ := ch.queueDepth(name)
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeclareOk{Queue: name, MessageCount: msgs, ConsumerCount: consumers})
}

func (ch *channel) queueBind(m *wire.QueueBind) *amqpError {
	if m.Exchange == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	if ch.c.s.queueLocked(m.Queue, ch.c) {
		return exception(wire.ResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", m.Queue)
	}
	err := ch.c.s.b.Bind(ch.ctx(), m.Exchange, broker.Binding{Destination: m.Queue, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil {
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueBindOk{})
}

func (ch *channel) queueUnbind(m *wire.QueueUnbind) *amqpError {
	if m.Exchange == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	err := ch.c.s.b.Unbind(ch.ctx(), m.Exchange, broker.Binding{Destination: m.Queue, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil && !errors.Is(err, broker.ErrExchangeNotFound) {
		return brokerException(err, m)
	}
	return ch.reply(&wire.QueueUnbindOk{})
}

func (ch *channel) queuePurge(m *wire.QueuePurge) *amqpError {
	if ch.c.s.queueLocked(m.Queue, ch.c) {
		return exception(wire.ResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", m.Queue)
	}
	n, err := ch.c.s.b.Purge(ch.ctx(), m.Queue, m.Queue)
	if err != nil {
		if errors.Is(err, broker.ErrSubscriptionNotFound) || errors.Is(err, broker.ErrStreamNotFound) {
			return exception(wire.NotFound, m, "no queue '%s' in vhost '/'", m.Queue)
		}
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueuePurgeOk{MessageCount: uint32(n)})
}

func (ch *channel) queueDelete(m *wire.QueueDelete) *amqpError {
	s := ch.c.s
	if s.queueLocked(m.Queue, ch.c) {
		return exception(wire.ResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", m.Queue)
	}
	msgs, consumers, ok := ch.queueDepth(m.Queue)
	if !ok {
		// Deleting a queue that is not there succeeds (as RabbitMQ).
		return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeleteOk{})
	}
	if m.IfUnused && consumers > 0 {
		return exception(wire.PreconditionFailed, m, "queue '%s' in vhost '/' in use", m.Queue)
	}
	if m.IfEmpty && msgs > 0 {
		return exception(wire.PreconditionFailed, m, "queue '%s' in vhost '/' is not empty", m.Queue)
	}
	if err := s.b.DeleteStream(ch.ctx(), m.Queue); err != nil && !errors.Is(err, broker.ErrStreamNotFound) {
		return brokerException(err, m)
	}
	s.forgetQueue(m.Queue)
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeleteOk{MessageCount: msgs})
}
