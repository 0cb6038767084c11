package amqp

import (
	"errors"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
	"github.com/weirmq/weir/internal/tracing"
)

var errChannelClosed = errors.New("amqp: channel closed")

// Publisher limits: how many messages a channel queues before its reader
// waits (backpressure through TCP), and how many go to the broker in one
// call.
const (
	publishQueue = 1024
	publishBatch = 256
)

// pubJob is one published message.
type pubJob struct {
	seq        uint64 // confirm sequence number; 0: not in confirm mode
	exchange   string
	routingKey string
	mandatory  bool
	props      wire.Properties
	body       []byte
	// barrier, when set, makes the job a marker: the publisher closes it
	// once every job queued before it was handled (tx.commit waits so).
	barrier chan struct{}
}

// publisher stores a channel's messages in order. Consecutive messages to
// the same exchange and routing key go to the broker as one batch (one
// group commit), so a client that publishes without waiting for each
// confirm is not held to one fsync per message; confirms go out once the
// batch is durable, returns (mandatory, unroutable) before the confirm.
type publisher struct {
	ch   *channel
	jobs chan *pubJob
	done chan struct{}
	once sync.Once
}

func newPublisher(ch *channel) *publisher {
	p := &publisher{ch: ch, jobs: make(chan *pubJob, publishQueue), done: make(chan struct{})}
	go p.run()
	return p
}

// enqueue hands j to the publisher. When its queue is full the reader
// waits (backpressure through TCP), which the heartbeat monitor does not
// take for a dead client.
func (p *publisher) enqueue(j *pubJob) {
	select {
	case p.jobs <- j:
		return
	default:
	}
	c := p.ch.c
	c.readerHeld.Add(1)
	defer func() {
		c.lastRead.Store(time.Now().UnixNano())
		c.readerHeld.Add(-1)
	}()
	select {
	case p.jobs <- j:
	case <-c.ctx.Done():
	}
}

// stop lets the queued messages finish and waits for them.
func (p *publisher) stop() {
	p.once.Do(func() { close(p.jobs) })
	<-p.done
}

func (p *publisher) run() {
	defer close(p.done)
	var next *pubJob
	for {
		j := next
		next = nil
		if j == nil {
			var ok bool
			if j, ok = <-p.jobs; !ok {
				return
			}
		}
		if j.barrier != nil {
			close(j.barrier)
			continue
		}
		batch := []*pubJob{j}
		// Gather what is queued already for the same destination.
	gather:
		for len(batch) < publishBatch {
			select {
			case k, ok := <-p.jobs:
				if !ok {
					break gather
				}
				if k.barrier != nil || k.exchange != j.exchange || k.routingKey != j.routingKey || k.mandatory != j.mandatory {
					next = k
					break gather
				}
				batch = append(batch, k)
			default:
				break gather
			}
		}
		p.publish(batch)
		p.pace(batch)
	}
}

// publish stores a batch and answers it: returns, then confirms.
func (p *publisher) publish(batch []*pubJob) {
	ch := p.ch
	b := ch.c.s.b
	if ch.c.ctx.Err() != nil {
		return
	}
	now := time.Now()
	first := batch[0]
	recs := make([]broker.Record, len(batch))
	rt := ch.directReplyTo()
	for i, j := range batch {
		recs[i] = toRecord(j.exchange, j.routingKey, &j.props, j.body, now)
		if rt != nil && j.props.ReplyTo == directReplyToName {
			rt.rewrite(&recs[i])
		}
	}
	routable := make([]bool, len(batch))
	var err error
	destination := first.exchange
	if destination == "" {
		destination = first.routingKey // the default exchange: a queue
	}
	ctx, span := ch.c.s.cfg.Tracer.StartPublish(ch.ctx(), destination, recs)
	defer func() { tracing.End(span, err) }()
	if first.exchange == "" {
		// The default exchange: the routing key names the queue (or
		// stream, or inbox).
		if first.routingKey != "" {
			_, err = b.Publish(ctx, ch.c.bname(first.routingKey), recs)
		} else {
			err = broker.ErrStreamNotFound
		}
		if errors.Is(err, broker.ErrStreamNotFound) {
			err = nil
		} else if err == nil {
			for i := range routable {
				routable[i] = true
			}
		}
	} else {
		exchange := ch.c.bname(first.exchange)
		toSend := recs
		var idx []int
		if first.mandatory {
			// Which records reach nothing (a headers exchange routes each
			// record on its own).
			toSend = toSend[:0:0]
			for i := range recs {
				streams, rerr := b.Route(exchange, first.routingKey, recs[i].Headers)
				if rerr != nil {
					err = rerr
					break
				}
				if len(streams) > 0 {
					toSend = append(toSend, recs[i])
					idx = append(idx, i)
				}
			}
		}
		if err == nil && len(toSend) > 0 {
			var reached []string
			reached, err = b.PublishExchange(ctx, exchange, first.routingKey, toSend)
			if err == nil && (len(reached) > 0 || !first.mandatory) {
				if idx == nil {
					for i := range routable {
						routable[i] = len(reached) > 0
					}
				} else {
					for _, i := range idx {
						routable[i] = true
					}
				}
			}
		}
		if errors.Is(err, broker.ErrExchangeNotFound) {
			ch.fail(ch.notFound(&wire.BasicPublish{}, "exchange", first.exchange))
			return
		}
	}
	if errors.Is(err, broker.ErrForbidden) {
		ch.fail(brokerException(err, &wire.BasicPublish{})) // 403, as RabbitMQ
		return
	}
	if errors.Is(err, broker.ErrDiskFull) && ch.c.holdForDisk(ch.ctx()) {
		p.publish(batch) // held until space returned (diskhold.go): store it now
		return
	}
	if err != nil {
		ch.c.log.Debug("publish failed", "exchange", first.exchange, "routing_key", first.routingKey, "err", err)
		if errors.Is(err, broker.ErrClosed) {
			return
		}
		// Not stored: a negative confirm (RabbitMQ's reject-publish
		// overflow does the same); without confirms the message is lost.
		for _, j := range batch {
			if j.seq != 0 {
				ch.sendMethod(&wire.BasicNack{DeliveryTag: j.seq})
			}
		}
		return
	}
	var out []byte
	for i, j := range batch {
		if first.mandatory && !routable[i] {
			out, _ = wire.AppendMethod(out, ch.id, &wire.BasicReturn{ReplyCode: wire.NoRoute, ReplyText: "NO_ROUTE", Exchange: j.exchange, RoutingKey: j.routingKey})
			out, _ = wire.AppendContent(out, ch.id, wire.ClassBasic, &j.props, j.body, ch.c.frameMax)
		}
	}
	if last := batch[len(batch)-1]; last.seq != 0 {
		// Sequence numbers of a channel are consecutive and confirmed in
		// order, so one multiple ack covers the batch.
		out, _ = wire.AppendMethod(out, ch.id, &wire.BasicAck{DeliveryTag: last.seq, Multiple: len(batch) > 1})
	}
	if len(out) > 0 {
		ch.send(out)
	}
}
