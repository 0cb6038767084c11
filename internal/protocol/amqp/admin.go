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

// findExchange finds the exchange of AMQP name in the channel's vhost.
func (ch *channel) findExchange(name string) (broker.ExchangeInfo, bool) {
	return findExchange(ch.c.s.b, ch.c.bname(name))
}

// findExchange finds an exchange by its broker name.
func findExchange(b *broker.Broker, name string) (broker.ExchangeInfo, bool) {
	for _, x := range b.ListExchanges() {
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
		if e := ch.authorizePassive(m, "exchange", ch.c.bname(m.Exchange)); e != nil {
			return e
		}
		if _, ok := ch.findExchange(m.Exchange); !ok {
			return ch.notFound(m, "exchange", m.Exchange)
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
			return exception(wire.PreconditionFailed, m, "inequivalent arg 'type' for exchange '%s' in vhost '%s': received '%s' but current is '%s'", m.Exchange, ch.c.vhost, m.Type, x.Config.Type)
		}
		return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeclareOk{})
	}
	bn := ch.c.bname(m.Exchange)
	if err := checkName("exchange", ch.c.vhost, m.Exchange, bn); err != nil {
		return exception(wire.PreconditionFailed, m, "%v", err)
	}
	_, err := b.DeclareExchange(ch.ctx(), broker.ExchangeConfig{Name: bn, Type: kind, AlternateExchange: ch.c.bname(alternate)})
	if errors.Is(err, broker.ErrExchangeExists) {
		return exception(wire.PreconditionFailed, m, "inequivalent arg for exchange '%s' in vhost '%s': %v", m.Exchange, ch.c.vhost, err)
	}
	if err != nil {
		return brokerException(err, m)
	}
	if arg := ch.c.s.checkExchangeFlags(bn, declaredFlags{durable: m.Durable, autoDelete: m.AutoDelete}); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for exchange '%s' in vhost '%s'", arg, m.Exchange, ch.c.vhost)
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
		return exception(wire.PreconditionFailed, m, "exchange '%s' in vhost '%s' in use", m.Exchange, ch.c.vhost)
	}
	if err := ch.c.s.b.DeleteExchange(ch.ctx(), x.Config.Name); err != nil && !errors.Is(err, broker.ErrExchangeNotFound) {
		return brokerException(err, m)
	}
	ch.c.s.forgetExchange(x.Config.Name)
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeDeleteOk{})
}

func (ch *channel) exchangeBind(m *wire.ExchangeBind) *amqpError {
	if m.Source == "" || m.Destination == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	err := ch.c.s.b.Bind(ch.ctx(), ch.c.bname(m.Source), broker.Binding{Destination: ch.c.bname(m.Destination), ToExchange: true, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil {
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.ExchangeBindOk{})
}

func (ch *channel) exchangeUnbind(m *wire.ExchangeUnbind) *amqpError {
	err := ch.c.s.b.Unbind(ch.ctx(), ch.c.bname(m.Source), broker.Binding{Destination: ch.c.bname(m.Destination), ToExchange: true, Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
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
// the one stream it routes to (docs/PROTOCOLS.md).
func (ch *channel) parseQueueArgs(m *wire.QueueDeclare, name, bn string) (queueArgs, *amqpError) {
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
		if dlx == "" {
			// The default exchange routes a key to the queue of that
			// name: created as a queue if it is missing when a message is
			// dead-lettered.
			key := name
			if hasDLRK {
				key = dlrk
			}
			target := ch.c.bname(key)
			if target == bn {
				return qa, exception(wire.PreconditionFailed, m, "a queue cannot dead-letter into itself through the default exchange")
			}
			if err := checkName("queue", ch.c.vhost, key, target); err != nil {
				return qa, exception(wire.PreconditionFailed, m, "x-dead-letter-routing-key: %v", err)
			}
			qa.cfg.DeadLetterStream = target
		} else {
			// Routed by the exchange's bindings when a message is
			// dead-lettered, with x-dead-letter-routing-key or the
			// message's own routing key (docs/PROTOCOLS.md).
			qa.cfg.DeadLetterExchange = broker.DeadLetterExchange{Name: ch.c.bname(dlx), RoutingKey: name, KeepKey: true}
			if hasDLRK {
				qa.cfg.DeadLetterExchange.RoutingKey, qa.cfg.DeadLetterExchange.KeepKey = dlrk, false
			}
			if err := checkName("exchange", ch.c.vhost, dlx, qa.cfg.DeadLetterExchange.Name); err != nil {
				return qa, exception(wire.PreconditionFailed, m, "x-dead-letter-exchange: %v", err)
			}
		}
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
	case "block":
		// Weir's own: publishers wait for room (broker.OverflowBlock).
		qa.cfg.Overflow = broker.OverflowBlock
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
	case want.DeadLetterStream != "" && have.DeadLetterStream != want.DeadLetterStream,
		want.DeadLetterExchange.Name != "" && have.DeadLetterExchange != want.DeadLetterExchange:
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

// queueDepth is a queue's message and consumer counts for declare-ok
// (name: the broker's).
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
			return ch.notFound(m, "queue", "")
		}
		name = newQueueName()
	} else if isReserved(name) && !m.Passive {
		return exception(wire.AccessRefused, m, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	bn := ch.c.bname(name)
	if s.queueLocked(bn, ch.c) {
		return ch.locked(m, name)
	}
	if m.Passive {
		if e := ch.authorizePassive(m, "queue", bn); e != nil {
			return e
		}
		msgs, consumers, ok := ch.queueDepth(bn)
		if !ok {
			return ch.notFound(m, "queue", name)
		}
		s.touch(bn)
		return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeclareOk{Queue: name, MessageCount: msgs, ConsumerCount: consumers})
	}
	if err := checkName("queue", ch.c.vhost, name, bn); err != nil {
		return exception(wire.PreconditionFailed, m, "%v", err)
	}
	qa, e := ch.parseQueueArgs(m, name, bn)
	if e != nil {
		return e
	}
	b := s.b
	var err error
	created := true
	if qa.stream {
		_, err = b.CreateStream(ch.ctx(), broker.StreamConfig{Name: bn, Partitions: 1})
		if errors.Is(err, broker.ErrStreamExists) {
			err = nil
		}
	} else {
		create := b.CreateQueue
		if m.Exclusive || m.AutoDelete {
			// They end with their connection or last consumer, and never
			// outlive a restart (docs/PROTOCOLS.md).
			create = b.CreateTemporaryQueue
		}
		_, err = create(ch.ctx(), broker.QueueConfig{Name: bn, Partitions: 1, Subscription: qa.cfg})
		if errors.Is(err, broker.ErrStreamExists) {
			info, derr := b.DescribeSubscription(bn, bn)
			if derr != nil {
				return exception(wire.PreconditionFailed, m, "'%s' is a stream, not a queue: declare it with x-queue-type=stream", name)
			}
			if arg := equivalent(info.Config, qa.cfg); arg != "" {
				return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '%s'", arg, name, ch.c.vhost)
			}
			// A temporary queue stays one and a durable one durable.
			if tmp, _ := b.IsTemporary(bn); tmp != (m.Exclusive || m.AutoDelete) {
				arg := "auto_delete"
				if m.Exclusive || s.queueOwned(bn) {
					arg = "exclusive"
				}
				return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '%s': it was declared %s", arg, name, ch.c.vhost, map[bool]string{true: "exclusive or auto-delete", false: "neither exclusive nor auto-delete"}[tmp])
			}
			err, created = nil, false
		}
	}
	if err != nil {
		return brokerException(err, m)
	}
	if arg := s.checkFlags(bn, declaredFlags{durable: m.Durable, autoDelete: m.AutoDelete}, created); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '%s'", arg, name, ch.c.vhost)
	}
	if arg := s.declareOpts(bn, qa.opts, created); arg != "" {
		return exception(wire.PreconditionFailed, m, "inequivalent arg '%s' for queue '%s' in vhost '%s'", arg, name, ch.c.vhost)
	}
	var owner *conn
	if m.Exclusive {
		owner = ch.c
	}
	s.noteQueue(bn, owner, m.AutoDelete)
	msgs, consumers, _ := ch.queueDepth(bn)
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeclareOk{Queue: name, MessageCount: msgs, ConsumerCount: consumers})
}

func (ch *channel) queueBind(m *wire.QueueBind) *amqpError {
	if m.Exchange == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	if ch.c.s.queueLocked(ch.c.bname(m.Queue), ch.c) {
		return ch.locked(m, m.Queue)
	}
	err := ch.c.s.b.Bind(ch.ctx(), ch.c.bname(m.Exchange), broker.Binding{Destination: ch.c.bname(m.Queue), Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil {
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueBindOk{})
}

func (ch *channel) queueUnbind(m *wire.QueueUnbind) *amqpError {
	if m.Exchange == "" {
		return exception(wire.AccessRefused, m, "operation not permitted on the default exchange")
	}
	err := ch.c.s.b.Unbind(ch.ctx(), ch.c.bname(m.Exchange), broker.Binding{Destination: ch.c.bname(m.Queue), Key: m.RoutingKey, Args: stringArgs(m.Arguments)})
	if err != nil && !errors.Is(err, broker.ErrExchangeNotFound) {
		return brokerException(err, m)
	}
	return ch.reply(&wire.QueueUnbindOk{})
}

func (ch *channel) queuePurge(m *wire.QueuePurge) *amqpError {
	if ch.c.s.queueLocked(ch.c.bname(m.Queue), ch.c) {
		return ch.locked(m, m.Queue)
	}
	bn := ch.c.bname(m.Queue)
	n, err := ch.c.s.b.Purge(ch.ctx(), bn, bn)
	if err != nil {
		if errors.Is(err, broker.ErrSubscriptionNotFound) || errors.Is(err, broker.ErrStreamNotFound) {
			return ch.notFound(m, "queue", m.Queue)
		}
		return brokerException(err, m)
	}
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueuePurgeOk{MessageCount: uint32(n)})
}

func (ch *channel) queueDelete(m *wire.QueueDelete) *amqpError {
	s := ch.c.s
	bn := ch.c.bname(m.Queue)
	if s.queueLocked(bn, ch.c) {
		return ch.locked(m, m.Queue)
	}
	msgs, consumers, ok := ch.queueDepth(bn)
	if !ok {
		// Deleting a queue that is not there succeeds (as RabbitMQ).
		return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeleteOk{})
	}
	if m.IfUnused && consumers > 0 {
		return exception(wire.PreconditionFailed, m, "queue '%s' in vhost '%s' in use", m.Queue, ch.c.vhost)
	}
	if m.IfEmpty && msgs > 0 {
		return exception(wire.PreconditionFailed, m, "queue '%s' in vhost '%s' is not empty", m.Queue, ch.c.vhost)
	}
	if err := s.b.DeleteStream(ch.ctx(), bn); err != nil && !errors.Is(err, broker.ErrStreamNotFound) {
		return brokerException(err, m)
	}
	s.forgetQueue(bn)
	return ch.replyUnlessNoWait(m.NoWait, &wire.QueueDeleteOk{MessageCount: msgs})
}
