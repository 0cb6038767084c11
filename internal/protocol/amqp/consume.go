package amqp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// Consumer limits.
const (
	receiveBatch = 256             // records asked of the broker at once without a prefetch
	receiveWait  = 5 * time.Second // a Receive's long poll
	getWait      = 200 * time.Millisecond
	requeueDelay = time.Nanosecond // nack with requeue: redeliver at once
	// creditLinger is how long a consumer short of credit waits for more
	// before it receives (waitCredit).
	creditLinger = 2 * time.Millisecond
)

// consumer is one basic.consume on a queue: a goroutine receiving from the
// queue's shared subscription while the prefetch allows.
type consumer struct {
	ch       *channel
	tag      string
	queue    string // the broker's name
	name     string // the AMQP name (the routing key of records without one)
	brokerID string
	noAck    bool
	limit    int // prefetch; 0: none
	held     int // guarded by ch.mu
	stream   bool
	cancel   context.CancelFunc
	done     chan struct{}
	// active is closed when the consumer may receive: at once, or on a
	// single-active-consumer queue when its turn comes.
	active chan struct{}
	// serverCancelled is set when the queue went away (basic.cancel sent).
	serverCancelled bool
}

// unacked is a delivery awaiting ack, nack or reject.
type unacked struct {
	tag  uint64
	bc   brokerConsumer
	ref  broker.DeliveryRef
	cons *consumer // nil for basic.get
}

type settleHow int

const (
	settleAck settleHow = iota
	settleRequeue
	settleDrop // dead-letter when the queue has a dead-letter queue, else drop
)

// signalCredit wakes consumers waiting for credit; ch.mu is held.
func (ch *channel) signalCredit() {
	close(ch.credit)
	ch.credit = make(chan struct{})
}

func (ch *channel) qos(m *wire.BasicQos) *amqpError {
	ch.mu.Lock()
	if m.Global {
		ch.global = int(m.PrefetchCount)
	} else {
		ch.prefetch = int(m.PrefetchCount)
	}
	ch.signalCredit()
	ch.mu.Unlock()
	return ch.reply(&wire.BasicQosOk{})
}

func (ch *channel) consume(m *wire.BasicConsume) *amqpError {
	s := ch.c.s
	if m.Queue == directReplyToName {
		return ch.consumeReplyTo(m)
	}
	bn := ch.c.bname(m.Queue)
	if s.queueLocked(bn, ch.c) {
		return ch.locked(m, m.Queue)
	}
	isStream := false
	if _, err := s.b.DescribeSubscription(bn, bn); err != nil {
		if _, serr := s.b.DescribeStream(bn); serr != nil {
			return ch.notFound(m, "queue", m.Queue)
		}
		isStream = true
	}
	if err := ch.authorizeConsume(bn, isStream); err != nil {
		return brokerException(err, m)
	}
	tag := m.ConsumerTag
	ch.mu.Lock()
	if tag == "" {
		tag = fmt.Sprintf("amq.ctag-%d-%d-%d", ch.c.id, ch.id, ch.nextTag+uint64(len(ch.consumers))+1)
		for ch.consumers[tag] != nil {
			tag += "x"
		}
	}
	if ch.consumers[tag] != nil {
		ch.mu.Unlock()
		return exception(wire.NotAllowed, m, "attempt to reuse consumer tag '%s'", tag)
	}
	ctx, cancel := context.WithCancel(ch.c.ctx)
	cons := &consumer{ch: ch, tag: tag, queue: bn, name: m.Queue, noAck: m.NoAck, limit: ch.prefetch, stream: isStream,
		brokerID: fmt.Sprintf("amqp-%d-%d-%s", ch.c.id, ch.id, tag), cancel: cancel, done: make(chan struct{}), active: make(chan struct{})}
	ch.consumers[tag] = cons
	if !isStream {
		ch.brokerIDs[brokerConsumer{bn, cons.brokerID}] = true
	}
	ch.mu.Unlock()
	s.consumerAdded(bn, cons)
	if !m.NoWait {
		ch.sendMethod(&wire.BasicConsumeOk{ConsumerTag: tag})
	}
	ch.wg.Add(1)
	if isStream {
		go cons.runStream(ctx, m.Arguments["x-stream-offset"])
	} else {
		go cons.run(ctx)
	}
	return nil
}

// stopConsumers ends every consumer goroutine of the channel. They count
// as the queues' consumers until removeStopped, after the channel gave
// its deliveries back: so the next single active consumer gets those
// first, and an auto-delete queue is deleted after they are released.
func (ch *channel) stopConsumers() {
	ch.mu.Lock()
	cs := make([]*consumer, 0, len(ch.consumers))
	for tag, c := range ch.consumers {
		cs = append(cs, c)
		delete(ch.consumers, tag)
	}
	ch.stopped = append(ch.stopped, cs...)
	ch.mu.Unlock()
	for _, c := range cs {
		c.cancel()
	}
	ch.wg.Wait()
}

// removeStopped tells the server the stopped consumers are gone.
func (ch *channel) removeStopped() {
	ch.mu.Lock()
	cs := ch.stopped
	ch.stopped = nil
	ch.mu.Unlock()
	for _, c := range cs {
		ch.c.s.consumerRemoved(c.queue, c)
	}
}

func (ch *channel) cancelConsumer(m *wire.BasicCancel) *amqpError {
	ch.mu.Lock()
	c := ch.consumers[m.ConsumerTag]
	delete(ch.consumers, m.ConsumerTag)
	ch.mu.Unlock()
	if rt := ch.directReplyTo(); c == nil && rt != nil && rt.tag == m.ConsumerTag {
		rt.close()
		ch.mu.Lock()
		ch.replyTo = nil
		ch.mu.Unlock()
	}
	if c != nil {
		c.cancel()
		<-c.done
		ch.c.s.consumerRemoved(c.queue, c)
	}
	if m.NoWait {
		return nil
	}
	return ch.reply(&wire.BasicCancelOk{ConsumerTag: m.ConsumerTag})
}

// waitCredit returns how many records c may receive now, waiting while it
// may receive none. A consumer whose client holds most of its prefetch
// (credit below a quarter of it) also waits, up to creditLinger, for more
// credit to come back: a client that acks each message on its own frees
// one credit at a time, and receiving and writing one delivery per ack
// costs a broker call and a socket write per message, where the client
// still has three quarters of its prefetch to work on.
func (c *consumer) waitCredit(ctx context.Context) (int, error) {
	ch := c.ch
	var lingered <-chan time.Time
	expired := false
	for {
		ch.mu.Lock()
		n, limit := receiveBatch, 0
		if !c.noAck {
			if c.limit > 0 {
				n, limit = min(n, c.limit-c.held), c.limit
			}
			if ch.global > 0 {
				n = min(n, ch.global-ch.held)
				if limit == 0 || ch.global < limit {
					limit = ch.global
				}
			}
		}
		wait := ch.credit
		ch.mu.Unlock()
		if n > 0 && (expired || n >= max(limit/4, 1)) {
			return n, nil
		}
		if n > 0 && lingered == nil {
			t := time.NewTimer(creditLinger)
			defer t.Stop()
			lingered = t.C
		}
		select {
		case <-wait:
		case <-lingered:
			expired = true
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (c *consumer) run(ctx context.Context) {
	defer close(c.done)
	defer c.ch.wg.Done()
	ch := c.ch
	b := ch.c.s.b
	select {
	case <-c.active:
	case <-ctx.Done():
		return
	}
	for {
		n, err := c.waitCredit(ctx)
		if err != nil {
			return
		}
		ds, err := b.Receive(ctx, c.queue, c.queue, c.brokerID, n, receiveWait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, broker.ErrClosed) {
				// The broker is closing, or the queue's subscription was
				// deleted (its engine stopped).
				if _, derr := b.DescribeSubscription(c.queue, c.queue); derr == nil || errors.Is(derr, broker.ErrClosed) {
					return
				}
				err = broker.ErrSubscriptionNotFound
			}
			if errors.Is(err, broker.ErrSubscriptionNotFound) || errors.Is(err, broker.ErrStreamNotFound) {
				c.queueGone()
				return
			}
			ch.c.log.Warn("receive failed", "queue", c.queue, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		if len(ds) == 0 {
			continue
		}
		if err := c.deliver(ds); err != nil {
			return
		}
		ch.c.paceConsumer(ctx, deliveredBytes(ds))
	}
}

// deliver sends deliveries as basic.deliver and notes them unacked (or,
// with no-ack, acknowledges them at once).
func (c *consumer) deliver(ds []broker.Delivery) error {
	ch := c.ch
	now := time.Now()
	refs := make([]broker.DeliveryRef, len(ds))
	err := ch.sendTagged(func() (out []byte) {
		for i := range ds {
			d := &ds[i]
			refs[i] = broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}
			ch.nextTag++
			tag := ch.nextTag
			if !c.noAck {
				ch.unacked[tag] = &unacked{tag: tag, bc: brokerConsumer{c.queue, c.brokerID}, ref: refs[i], cons: c}
				c.held++
				ch.held++
			}
			out = appendDelivery(out, ch, c.name, &wire.BasicDeliver{ConsumerTag: c.tag, DeliveryTag: tag, Redelivered: d.DeliveryCount > 1,
				Exchange: "", RoutingKey: routingKeyOf(&d.Record, c.name)}, &d.Record, now)
		}
		return out
	})
	if c.noAck {
		ch.c.s.b.Ack(context.Background(), c.queue, c.queue, c.brokerID, refs)
	}
	return err
}

func appendDelivery(out []byte, ch *channel, source string, m wire.Method, rec *broker.Record, now time.Time) []byte {
	props := fromRecord(rec, now)
	ch.c.s.stats.delivered.Add(1)
	// The span covers encoding the delivery; it is there to carry the
	// record's trace on to the consumer's side.
	_, span := ch.c.s.cfg.Tracer.StartDeliver(ch.ctx(), source, rec)
	defer span.End()
	out, _ = wire.AppendMethod(out, ch.id, m)
	out, _ = wire.AppendContent(out, ch.id, wire.ClassBasic, &props, rec.Value, ch.c.frameMax)
	return out
}

// routingKeyOf is a stored record's routing key: its key, or the queue's
// name for records without one.
func routingKeyOf(rec *broker.Record, queue string) string {
	if len(rec.Key) > 0 && len(rec.Key) <= 255 {
		return string(rec.Key)
	}
	return queue
}

// queueGone tells the client its consumer is cancelled because the queue
// was deleted (consumer_cancel_notify).
func (c *consumer) queueGone() {
	ch := c.ch
	ch.mu.Lock()
	own := ch.consumers[c.tag] == c
	if own {
		delete(ch.consumers, c.tag)
	}
	ch.mu.Unlock()
	if !own {
		return
	}
	c.serverCancelled = true
	if ch.c.clientCapable("consumer_cancel_notify") {
		ch.sendMethod(&wire.BasicCancel{ConsumerTag: c.tag, NoWait: true})
	}
	ch.c.s.consumerRemoved(c.queue, c)
}

// runStream consumes a stream queue (x-queue-type=stream): a reader from
// x-stream-offset ("first", "last", "next" — the default — or an offset);
// acks are accepted and change nothing.
func (c *consumer) runStream(ctx context.Context, offset any) {
	defer close(c.done)
	defer c.ch.wg.Done()
	ch := c.ch
	b := ch.c.s.b
	info, err := b.DescribeStream(c.queue)
	if err != nil {
		c.queueGone()
		return
	}
	positions := map[int32]int64{}
	for _, p := range info.Partitions {
		switch v := offset.(type) {
		case string:
			switch v {
			case "first":
				positions[p.Partition] = p.StartOffset
			default: // "next", "last" (Weir has no chunks: the next record)
				positions[p.Partition] = p.EndOffset
			}
		case nil:
			positions[p.Partition] = p.EndOffset
		default:
			if n, ok, _ := intArg(wire.Table{"o": v}, "o"); ok {
				positions[p.Partition] = max(n, p.StartOffset)
			} else {
				positions[p.Partition] = p.EndOffset
			}
		}
	}
	r, err := b.NewReader(c.queue, positions)
	if err != nil {
		c.queueGone()
		return
	}
	for {
		n, err := c.waitCredit(ctx)
		if err != nil {
			return
		}
		recs, err := r.Read(ctx, 1<<20, receiveWait)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, broker.ErrClosed) {
				return
			}
			c.queueGone()
			return
		}
		_ = n
		ds := make([]broker.Delivery, len(recs))
		for i := range recs {
			ds[i] = broker.Delivery{Record: recs[i], DeliveryCount: 1}
			if ds[i].Headers == nil {
				ds[i].Headers = []broker.Header{}
			}
			ds[i].Headers = append(ds[i].Headers, broker.Header{Key: "x-stream-offset", Value: fmt.Appendf(nil, "%d", recs[i].Offset)})
		}
		if len(ds) > 0 {
			if err := c.deliverStream(ds); err != nil {
				return
			}
			ch.c.paceConsumer(ctx, deliveredBytes(ds))
		}
	}
}

// deliverStream sends stream records; their acks only release credit.
func (c *consumer) deliverStream(ds []broker.Delivery) error {
	ch := c.ch
	now := time.Now()
	return ch.sendTagged(func() (out []byte) {
		for i := range ds {
			d := &ds[i]
			ch.nextTag++
			tag := ch.nextTag
			if !c.noAck {
				ch.unacked[tag] = &unacked{tag: tag, cons: c}
				c.held++
				ch.held++
			}
			out = appendDelivery(out, ch, c.name, &wire.BasicDeliver{ConsumerTag: c.tag, DeliveryTag: tag, RoutingKey: routingKeyOf(&d.Record, c.name)}, &d.Record, now)
		}
		return out
	})
}

func (ch *channel) get(m *wire.BasicGet) *amqpError {
	s := ch.c.s
	bn := ch.c.bname(m.Queue)
	if s.queueLocked(bn, ch.c) {
		return ch.locked(m, m.Queue)
	}
	info, err := s.b.DescribeSubscription(bn, bn)
	if err != nil {
		return ch.notFound(m, "queue", m.Queue)
	}
	s.touch(bn)
	if info.Depth-int64(info.InFlight) <= 0 {
		return ch.reply(&wire.BasicGetEmpty{})
	}
	id := fmt.Sprintf("amqp-%d-%d-get", ch.c.id, ch.id)
	ds, err := s.b.Receive(ch.ctx(), bn, bn, id, 1, getWait)
	if err != nil {
		return brokerException(err, m)
	}
	if len(ds) == 0 {
		return ch.reply(&wire.BasicGetEmpty{})
	}
	d := &ds[0]
	ref := broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}
	left := uint32(max(info.Depth-int64(info.InFlight)-1, 0))
	ch.sendTagged(func() []byte {
		ch.nextTag++
		tag := ch.nextTag
		if !m.NoAck {
			ch.unacked[tag] = &unacked{tag: tag, bc: brokerConsumer{bn, id}, ref: ref}
			ch.held++
			ch.brokerIDs[brokerConsumer{bn, id}] = true
		}
		return appendDelivery(nil, ch, m.Queue, &wire.BasicGetOk{DeliveryTag: tag, Redelivered: d.DeliveryCount > 1, RoutingKey: routingKeyOf(&d.Record, m.Queue), MessageCount: left}, &d.Record, time.Now())
	})
	if m.NoAck {
		s.b.Ack(ch.ctx(), bn, bn, id, []broker.DeliveryRef{ref})
	}
	ch.c.paceReader(ch.ctx(), len(d.Value))
	return nil
}

// settle handles basic.ack, basic.nack and basic.reject. The broker calls
// run on their own goroutines (an ack waits for durability; the channel
// does not), and the channel's shutdown waits for them.
func (ch *channel) settle(m wire.Method, tag uint64, multiple bool, how settleHow) *amqpError {
	ch.mu.Lock()
	var taken []*unacked
	if multiple {
		for t, u := range ch.unacked {
			if tag == 0 || t <= tag {
				taken = append(taken, u)
			}
		}
	} else if u, ok := ch.unacked[tag]; ok {
		taken = append(taken, u)
	} else {
		ch.mu.Unlock()
		return exception(wire.PreconditionFailed, m, "unknown delivery tag %d", tag)
	}
	for _, u := range taken {
		delete(ch.unacked, u.tag)
	}
	if ch.tx != nil {
		// Applied at tx.commit; until then they hold their prefetch.
		ch.tx.settles = append(ch.tx.settles, txSettle{taken: taken, how: how})
		ch.mu.Unlock()
		return nil
	}
	ch.mu.Unlock()
	ch.applySettle(taken, how)
	return nil
}

// applySettle releases the prefetch of taken deliveries and queues their
// settlement with the broker (settler).
func (ch *channel) applySettle(taken []*unacked, how settleHow) {
	ch.mu.Lock()
	for _, u := range taken {
		ch.held--
		if u.cons != nil {
			u.cons.held--
		}
	}
	ch.signalCredit()
	ch.mu.Unlock()
	// Group by broker consumer, in tag order.
	slices.SortFunc(taken, func(a, b *unacked) int { return cmp.Compare(a.tag, b.tag) })
	groups := map[brokerConsumer][]broker.DeliveryRef{}
	for _, u := range taken {
		if u.bc.queue == "" {
			continue // a stream delivery: nothing to settle
		}
		groups[u.bc] = append(groups[u.bc], u.ref)
	}
	items := make([]brokerSettle, 0, len(groups))
	for bc, refs := range groups {
		h := how
		if h == settleDrop && !ch.deadLetters(bc.queue) {
			h = settleAck // no dead-letter queue: the message is dropped, as RabbitMQ
		}
		items = append(items, brokerSettle{bc: bc, how: h, refs: refs})
	}
	ch.queueSettles(items)
}

// deadLetters reports whether a queue dead-letters rejected messages: it
// has a dead-letter exchange, or a dead-letter queue that exists.
func (ch *channel) deadLetters(queue string) bool {
	if v, ok := ch.dlq[queue]; ok {
		return v
	}
	info, err := ch.c.s.b.DescribeSubscription(queue, queue)
	v := err == nil && info.Config.DeadLetterExchange.Name != ""
	if err == nil && !v && info.Config.DeadLetterStream != "" {
		_, serr := ch.c.s.b.DescribeStream(info.Config.DeadLetterStream)
		v = serr == nil
	}
	ch.dlq[queue] = v
	return v
}

// recover gives every unacked delivery of the channel back to its queue
// for redelivery (basic.recover with requeue=true; requeue=false is 540
// NOT_IMPLEMENTED, as RabbitMQ answers).
func (ch *channel) recover() {
	ch.mu.Lock()
	var all []*unacked
	for _, u := range ch.unacked {
		all = append(all, u)
	}
	ch.mu.Unlock()
	if len(all) == 0 {
		return
	}
	var max uint64
	for _, u := range all {
		if u.tag > max {
			max = u.tag
		}
	}
	ch.settle(&wire.BasicRecover{}, max, true, settleRequeue)
}
