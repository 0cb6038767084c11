package mqtt

import (
	"fmt"
	"sync"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/tracing"
)

// Bounds of the publishes publishLoop stores together (with the 64 the
// channel holds, they bound what a connection's publishes keep in memory).
const (
	maxPublishBatch      = 1024
	maxPublishBatchBytes = 4 << 20
)

// pendingPublish is a PUBLISH on its way to the broker.
type pendingPublish struct {
	p       *Publish
	rec     broker.Record
	resent  bool // QoS 2 resend of a packet id not released yet: not stored again
	denied  bool // to a $SYS topic: not stored; MQTT 5 is told "not authorized"
	reached bool
	err     error
}

// publishLoop stores the connection's publishes and answers them, so that
// the reader goes on reading while they are stored. It takes every publish
// waiting (up to maxPublishBatch) at once: those of one topic are stored
// in order with one PublishExchange (one group commit), different topics in
// parallel (MQTT orders messages per topic); then the PUBACKs and PUBRECs
// are sent in the order the publishes came. It ends when pubs is closed,
// after the last batch.
func (c *conn) publishLoop() {
	defer close(c.pubDone)
	for first := range c.pubs {
		batch := []*pendingPublish{first}
		size := len(first.p.Payload)
	more:
		for len(batch) < maxPublishBatch && size < maxPublishBatchBytes {
			select {
			case pp, ok := <-c.pubs:
				if !ok {
					break more
				}
				batch = append(batch, pp)
				size += len(pp.p.Payload)
			default:
				break more
			}
		}
		c.storeBatch(batch)
		if err := c.answerBatch(batch); err != nil {
			c.failPublishes(err)
		}
		c.pace(batch)
	}
}

// storeBatch stores a batch: each topic's publishes in order, topics in
// parallel.
func (c *conn) storeBatch(batch []*pendingPublish) {
	var topics []string
	byTopic := map[string][]*pendingPublish{}
	for _, pp := range batch {
		if pp.resent || pp.denied {
			continue
		}
		t := pp.p.Topic
		if _, ok := byTopic[t]; !ok {
			topics = append(topics, t)
		}
		byTopic[t] = append(byTopic[t], pp)
	}
	var wg sync.WaitGroup
	for _, t := range topics {
		wg.Go(func() {
			c.storeTopic(t, byTopic[t])
			for c.retryWhenDiskFree(byTopic[t]) {
				c.storeTopic(t, byTopic[t])
			}
		})
	}
	wg.Wait()
}

// storeTopic stores publishes of one topic, in order.
func (c *conn) storeTopic(topic string, pps []*pendingPublish) {
	recs := make([]broker.Record, 0, len(pps))
	stored := make([]*pendingPublish, 0, len(pps))
	for _, pp := range pps {
		if pp.p.Retain {
			if err := c.s.retained.set(c.ctx, topic, pp.rec); err != nil {
				pp.err = err
				continue
			}
		}
		recs = append(recs, pp.rec)
		stored = append(stored, pp)
	}
	if len(recs) == 0 {
		return
	}
	ctx, span := c.s.cfg.Tracer.StartPublish(c.ctx, topic, recs)
	reached, err := c.s.b.PublishExchange(ctx, Exchange, RoutingKey(topic), recs)
	tracing.End(span, err)
	for _, pp := range stored {
		pp.err, pp.reached = err, len(reached) > 0
	}
}

// answerBatch sends the PUBACKs and PUBRECs of a stored batch in order,
// in one write. A failure that MQTT cannot answer (any in 3.1.1, QoS 0 in
// MQTT 5) is returned: it ends the connection.
func (c *conn) answerBatch(batch []*pendingPublish) error {
	v5 := c.version() == Version5
	if err := c.markReceived(batch); err != nil {
		return err
	}
	for _, pp := range batch {
		p := pp.p
		var reason byte
		switch {
		case pp.resent:
		case pp.denied:
			if v5 {
				reason = reasonNotAuthorized
			}
		case pp.err != nil:
			if !v5 || p.QoS == 0 {
				return fmt.Errorf("publish to %q: %w", p.Topic, pp.err)
			}
			reason = reasonOf(pp.err)
			if reason == reasonSuccess || reason == reasonServerShuttingDown {
				reason = reasonImplementationSpecific
			}
			c.log.Warn("publish failed", "topic", p.Topic, "err", pp.err)
		case !pp.reached:
			reason = reasonNoMatchingSubscribers
		}
		if p.QoS == 2 && reason >= 0x80 {
			c.mu.Lock()
			delete(c.inQoS2, p.PacketID) // not stored: a resend may try again
			c.mu.Unlock()
		}
		var err error
		switch p.QoS {
		case 1:
			err = c.writePacket(&Ack{Type: typePuback, PacketID: p.PacketID, ReasonCode: reason}, false)
		case 2:
			err = c.writePacket(&Ack{Type: typePubrec, PacketID: p.PacketID, ReasonCode: reason}, false)
		}
		if err != nil {
			return err
		}
	}
	return c.flush()
}

// failPublishes ends the connection after a publish failure; the reader
// returns the error at its next PUBLISH (or sees the connection closed).
func (c *conn) failPublishes(err error) {
	c.pubErr.CompareAndSwap(nil, &err)
	c.shutdown(reasonOf(err))
}

// publishFailure returns the failure that ended publishing, if any.
func (c *conn) publishFailure() error {
	if p := c.pubErr.Load(); p != nil {
		return *p
	}
	return nil
}
