package amqp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// directReplyToName is RabbitMQ's pseudo-queue for direct reply-to.
const directReplyToName = "amq.rabbitmq.reply-to"

// directReplyTo is a channel's consumer of amq.rabbitmq.reply-to: a Weir
// inbox (a temporary stream, docs/ARCHITECTURE.md) that replies are
// published to. A message the channel publishes with reply-to
// amq.rabbitmq.reply-to is stored with the inbox's name instead, so a
// responder on any protocol that publishes to its reply-to (over AMQP: the
// default exchange with that routing key) reaches the inbox.
type directReplyTo struct {
	ch     *channel
	tag    string
	inbox  string
	cancel context.CancelFunc
	done   chan struct{}
}

func (ch *channel) directReplyTo() *directReplyTo {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.replyTo
}

func (ch *channel) consumeReplyTo(m *wire.BasicConsume) *amqpError {
	if !m.NoAck {
		return exception(wire.PreconditionFailed, m, "reply consumer cannot acknowledge")
	}
	if ch.directReplyTo() != nil {
		return exception(wire.PreconditionFailed, m, "reply consumer already set")
	}
	b := ch.c.s.b
	inbox, err := b.CreateInbox(ch.ctx())
	if err != nil {
		return brokerException(err, m)
	}
	r, err := b.Tail(inbox)
	if err != nil {
		b.DeleteStream(context.Background(), inbox)
		return brokerException(err, m)
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = fmt.Sprintf("amq.ctag-%d-%d-reply-to", ch.c.id, ch.id)
	}
	ctx, cancel := context.WithCancel(ch.c.ctx)
	rt := &directReplyTo{ch: ch, tag: tag, inbox: inbox, cancel: cancel, done: make(chan struct{})}
	ch.mu.Lock()
	ch.replyTo = rt
	ch.mu.Unlock()
	if !m.NoWait {
		ch.sendMethod(&wire.BasicConsumeOk{ConsumerTag: tag})
	}
	go rt.run(ctx, r)
	return nil
}

func (rt *directReplyTo) run(ctx context.Context, r *broker.Reader) {
	defer close(rt.done)
	ch := rt.ch
	for {
		recs, err := r.Read(ctx, 1<<20, receiveWait)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, broker.ErrClosed) {
				ch.c.log.Debug("direct reply-to inbox ended", "inbox", rt.inbox, "err", err)
			}
			return
		}
		now := time.Now()
		err = ch.sendTagged(func() (out []byte) {
			for i := range recs {
				ch.nextTag++
				out = appendDelivery(out, ch, directReplyToName, &wire.BasicDeliver{ConsumerTag: rt.tag, DeliveryTag: ch.nextTag, RoutingKey: directReplyToName}, &recs[i], now)
			}
			return out
		})
		if err != nil {
			return
		}
		n := 0
		for i := range recs {
			n += len(recs[i].Value)
		}
		ch.c.paceConsumer(ctx, n)
	}
}

// rewrite points a request's reply-to at the inbox.
func (rt *directReplyTo) rewrite(rec *broker.Record) {
	for i := range rec.Headers {
		if rec.Headers[i].Key == broker.HeaderReplyTo {
			rec.Headers[i].Value = []byte(rt.inbox)
		}
	}
}

// close ends the consumer and deletes the inbox.
func (rt *directReplyTo) close() {
	rt.cancel()
	<-rt.done
	if err := rt.ch.c.s.b.DeleteStream(context.Background(), rt.inbox); err != nil && !errors.Is(err, broker.ErrStreamNotFound) && !errors.Is(err, broker.ErrClosed) {
		rt.ch.c.log.Warn("could not delete a direct reply-to inbox", "inbox", rt.inbox, "err", err)
	}
}
