package amqp

import (
	"sync"

	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// channel is one AMQP channel. The connection's reader goroutine handles
// its methods in order; its publisher goroutine stores messages and sends
// confirms and returns; each consumer has a goroutine of its own.
type channel struct {
	c  *conn
	id uint16

	// outMu serializes the channel's frames with its closing: once
	// channel.close is sent, nothing else goes out on it.
	outMu  sync.Mutex
	closed bool

	// Content being assembled (reader goroutine only).
	publishing *wire.BasicPublish
	header     wire.ContentHeader
	haveHeader bool
	body       []byte

	// Publishing (reader goroutine: confirm, nextSeq, unsynced).
	confirm bool
	nextSeq uint64
	pub     *publisher
	// unsynced: messages went to the publisher since the last
	// syncPublishes.
	unsynced bool

	// tagMu is held from taking delivery tags until their frames are
	// written (sendTagged), so a channel's deliveries go out in tag order
	// whichever consumer sends them: a client's multiple ack then never
	// covers a delivery it has not seen.
	tagMu sync.Mutex
	// Consuming; mu guards what consumers share with the reader.
	mu        sync.Mutex
	consumers map[string]*consumer
	stopped   []*consumer // stopped, not yet removed from their queues (removeStopped)
	unacked   map[uint64]*unacked
	nextTag   uint64
	prefetch  int           // per consumer, for consumers started after basic.qos
	global    int           // per channel (basic.qos global); 0: no limit
	held      int           // deliveries not settled, all consumers
	credit    chan struct{} // closed (and replaced) when credit may have grown
	brokerIDs map[brokerConsumer]bool
	dlq       map[string]bool // queue → dead-letters on reject (cached)
	settles   sync.WaitGroup  // the settler's goroutine
	settler   settler

	tx      *txState       // tx.select was sent: what the transaction holds (guarded by mu)
	replyTo *directReplyTo // amq.rabbitmq.reply-to consumer, if any
	wg      sync.WaitGroup // consumer goroutines
}

// brokerConsumer names a consumer of a broker subscription (queue).
type brokerConsumer struct{ queue, id string }

func newChannel(c *conn, id uint16) *channel {
	ch := &channel{
		c: c, id: id, consumers: make(map[string]*consumer), unacked: make(map[uint64]*unacked),
		credit: make(chan struct{}), brokerIDs: make(map[brokerConsumer]bool), dlq: make(map[string]bool),
	}
	ch.pub = newPublisher(ch)
	return ch
}

// sendTagged runs fill under ch.mu, where it takes delivery tags
// (ch.nextTag) and builds their frames, and writes the frames, all under
// ch.tagMu.
func (ch *channel) sendTagged(fill func() []byte) error {
	ch.tagMu.Lock()
	defer ch.tagMu.Unlock()
	ch.mu.Lock()
	out := fill()
	ch.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	return ch.send(out)
}

// send writes frames on the channel unless it is closed.
func (ch *channel) send(b []byte) error {
	ch.outMu.Lock()
	defer ch.outMu.Unlock()
	if ch.closed {
		return errChannelClosed
	}
	return ch.c.write(b)
}

func (ch *channel) sendMethod(m wire.Method) error {
	b, err := wire.AppendMethod(nil, ch.id, m)
	if err != nil {
		return err
	}
	return ch.send(b)
}

// fail raises a channel exception: channel.close goes out once, the
// consumers stop, and the channel waits for close-ok.
func (ch *channel) fail(e *amqpError) {
	ch.outMu.Lock()
	if !ch.closed {
		b, _ := wire.AppendMethod(nil, ch.id, &wire.ChannelClose{ReplyCode: e.code, ReplyText: e.text, ClassID: e.classID, MethodID: e.methodID})
		ch.c.write(b)
		ch.closed = true
		ch.c.s.stats.raised(e.code, false)
		ch.c.log.Debug("channel exception", "channel", ch.id, "code", e.code, "text", e.text)
	}
	ch.outMu.Unlock()
	ch.stopConsumers()
}

func (ch *channel) isClosed() bool {
	ch.outMu.Lock()
	defer ch.outMu.Unlock()
	return ch.closed
}

// shutdown ends the channel: consumers stop, queued publishes finish,
// settlements finish, and the deliveries not acknowledged go back to their
// queues (broker.CloseConsumer). Reader goroutine only.
func (ch *channel) shutdown() {
	ch.stopConsumers()
	ch.pub.stop()
	ch.settles.Wait()
	ch.mu.Lock()
	ids := ch.brokerIDs
	ch.brokerIDs = map[brokerConsumer]bool{}
	ch.unacked = map[uint64]*unacked{}
	ch.held = 0
	ch.mu.Unlock()
	for bc := range ids {
		ch.c.s.b.CloseConsumer(bc.queue, bc.queue, bc.id)
	}
	ch.removeStopped()
	if rt := ch.directReplyTo(); rt != nil {
		rt.close()
		ch.mu.Lock()
		ch.replyTo = nil
		ch.mu.Unlock()
	}
}

// handleFrame handles a frame of this channel (reader goroutine).
func (ch *channel) handleFrame(f wire.Frame) *amqpError {
	if ch.isClosed() {
		// After channel.close only close and close-ok count.
		if f.Type != wire.FrameMethod {
			return nil
		}
		m, err := wire.DecodeMethod(f.Payload)
		if err != nil {
			return nil
		}
		switch m.(type) {
		case *wire.ChannelCloseOk:
			ch.shutdown()
			delete(ch.c.channels, ch.id)
		case *wire.ChannelClose:
			ch.shutdown()
			ch.c.sendMethod(ch.id, &wire.ChannelCloseOk{})
			delete(ch.c.channels, ch.id)
		}
		return nil
	}
	switch f.Type {
	case wire.FrameMethod:
		if ch.publishing != nil {
			return exception(wire.UnexpectedFrame, nil, "method frame on channel %d while receiving content", ch.id)
		}
		m, err := wire.DecodeMethod(f.Payload)
		if err != nil {
			return decodeException(err)
		}
		e := ch.handleMethod(m)
		if e != nil && wire.SoftErrors[e.code] {
			ch.fail(e)
			return nil
		}
		return e
	case wire.FrameHeader:
		if ch.publishing == nil || ch.haveHeader {
			return exception(wire.UnexpectedFrame, nil, "content header on channel %d without basic.publish", ch.id)
		}
		if err := wire.DecodeContentHeader(f.Payload, &ch.header); err != nil {
			return exception(wire.FrameError, nil, "%v", err)
		}
		if ch.header.ClassID != wire.ClassBasic {
			return exception(wire.FrameError, nil, "content header of class %d", ch.header.ClassID)
		}
		if ch.header.BodySize > uint64(ch.c.s.cfg.MaxRecordBytes) {
			m := ch.publishing
			ch.publishing = nil
			ch.fail(exception(wire.PreconditionFailed, m, "message size %d is larger than configured max size %d", ch.header.BodySize, ch.c.s.cfg.MaxRecordBytes))
			return nil
		}
		ch.haveHeader = true
		ch.body = make([]byte, 0, ch.header.BodySize)
		if ch.header.BodySize == 0 {
			ch.contentDone()
		}
		return nil
	case wire.FrameBody:
		if !ch.haveHeader {
			return exception(wire.UnexpectedFrame, nil, "content body on channel %d without a content header", ch.id)
		}
		if uint64(len(ch.body)+len(f.Payload)) > ch.header.BodySize {
			return exception(wire.FrameError, nil, "content body longer than the %d bytes announced", ch.header.BodySize)
		}
		ch.body = append(ch.body, f.Payload...)
		if uint64(len(ch.body)) == ch.header.BodySize {
			ch.contentDone()
		}
	}
	return nil
}

// handleMethod handles one method; a soft exception closes the channel, a
// hard one the connection.
func (ch *channel) handleMethod(m wire.Method) *amqpError {
	switch m := m.(type) {
	case *wire.ChannelClose:
		ch.shutdown()
		ch.sendMethod(&wire.ChannelCloseOk{})
		delete(ch.c.channels, ch.id)
		return nil
	case *wire.ChannelCloseOk, *wire.ChannelFlowOk:
		return nil
	case *wire.ChannelOpen:
		return exception(wire.ChannelError, m, "channel %d is already open", ch.id)
	case *wire.ChannelFlow:
		// As RabbitMQ: a client may not stop deliveries with channel.flow
		// (basic.qos is the way), a hard error (docs/PROTOCOLS.md).
		if !m.Active {
			return exception(wire.NotImplemented, m, "active=false")
		}
		return ch.reply(&wire.ChannelFlowOk{Active: true})

	case *wire.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *wire.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *wire.ExchangeBind:
		return ch.exchangeBind(m)
	case *wire.ExchangeUnbind:
		return ch.exchangeUnbind(m)
	case *wire.QueueDeclare:
		ch.syncPublishes()
		return ch.queueDeclare(m)
	case *wire.QueueBind:
		return ch.queueBind(m)
	case *wire.QueueUnbind:
		return ch.queueUnbind(m)
	case *wire.QueuePurge:
		ch.syncPublishes()
		return ch.queuePurge(m)
	case *wire.QueueDelete:
		ch.syncPublishes()
		return ch.queueDelete(m)

	case *wire.BasicQos:
		return ch.qos(m)
	case *wire.BasicConsume:
		return ch.consume(m)
	case *wire.BasicCancel:
		return ch.cancelConsumer(m)
	case *wire.BasicPublish:
		if m.Immediate {
			return exception(wire.NotImplemented, m, "immediate=true")
		}
		ch.publishing = m
		ch.haveHeader = false
		return nil
	case *wire.BasicGet:
		ch.syncPublishes()
		return ch.get(m)
	case *wire.BasicAck:
		return ch.settle(m, m.DeliveryTag, m.Multiple, settleAck)
	case *wire.BasicNack:
		how := settleDrop
		if m.Requeue {
			how = settleRequeue
		}
		return ch.settle(m, m.DeliveryTag, m.Multiple, how)
	case *wire.BasicReject:
		how := settleDrop
		if m.Requeue {
			how = settleRequeue
		}
		return ch.settle(m, m.DeliveryTag, false, how)
	case *wire.BasicRecover:
		if !m.Requeue {
			return exception(wire.NotImplemented, m, "requeue=false") // as RabbitMQ
		}
		ch.recover()
		return ch.reply(&wire.BasicRecoverOk{})
	case *wire.BasicRecoverAsync:
		if !m.Requeue {
			return exception(wire.NotImplemented, m, "requeue=false")
		}
		ch.recover()
		return nil

	case *wire.ConfirmSelect:
		if ch.txMode() {
			return exception(wire.PreconditionFailed, m, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
		if m.NoWait {
			return nil
		}
		return ch.reply(&wire.ConfirmSelectOk{})
	case *wire.TxSelect:
		return ch.txSelect(m)
	case *wire.TxCommit:
		return ch.txCommit(m)
	case *wire.TxRollback:
		return ch.txRollback(m)
	}
	return exception(wire.CommandInvalid, m, "%s is not a method a client sends", m.MethodName())
}

// reply sends a synchronous reply.
func (ch *channel) reply(m wire.Method) *amqpError {
	ch.sendMethod(m)
	return nil
}

// contentDone hands a complete message to the publisher.
func (ch *channel) contentDone() {
	m := ch.publishing
	ch.publishing, ch.haveHeader = nil, false
	var seq uint64
	if ch.confirm {
		ch.nextSeq++
		seq = ch.nextSeq
	}
	j := &pubJob{seq: seq, exchange: m.Exchange, routingKey: m.RoutingKey, mandatory: m.Mandatory, props: ch.header.Properties, body: ch.body}
	if ch.txHold(j) {
		return
	}
	ch.pub.enqueue(j)
	ch.unsynced = true
	ch.body = nil
}
