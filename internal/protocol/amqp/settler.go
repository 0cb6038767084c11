package amqp

import (
	"context"
	"errors"
	"sync"

	"github.com/weirmq/weir/internal/broker"
)

// brokerSettle is a settlement to make with the broker: deliveries of one
// broker consumer, all settled the same way.
type brokerSettle struct {
	bc   brokerConsumer
	how  settleHow
	refs []broker.DeliveryRef
}

// settler makes a channel's settlements with the broker, in the order they
// came, on one goroutine at a time. A broker ack returns once it is
// durable; the settlements that come meanwhile wait in queue and go in one
// call per broker consumer after it: a client acknowledging each message
// on its own (as amqp091-go's Delivery.Ack(false) does) costs one broker
// call per fsync, not one call and one goroutine per basic.ack. The
// prefetch is released before (applySettle), so the wait holds no
// delivery back.
type settler struct {
	mu      sync.Mutex
	queue   []brokerSettle
	running bool // a goroutine drains queue (counted in channel.settles)
}

// queueSettles queues items and starts the settler's goroutine if it is
// not running. Reader goroutine only, as ch.settles.Wait is.
func (ch *channel) queueSettles(items []brokerSettle) {
	if len(items) == 0 {
		return
	}
	s := &ch.settler
	s.mu.Lock()
	s.queue = append(s.queue, items...)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		ch.settles.Add(1)
		go ch.runSettler()
	}
}

// runSettler settles what is queued until the queue is empty.
func (ch *channel) runSettler() {
	defer ch.settles.Done()
	s := &ch.settler
	for {
		s.mu.Lock()
		items := s.queue
		s.queue = nil
		if len(items) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, it := range mergeSettles(items) {
			ch.settleWithBroker(it)
		}
	}
}

// mergeSettles joins the settlements of the same broker consumer made the
// same way, in the order they first appear, keeping the order of their
// deliveries.
func mergeSettles(items []brokerSettle) []brokerSettle {
	if len(items) < 2 {
		return items
	}
	type key struct {
		bc  brokerConsumer
		how settleHow
	}
	at := make(map[key]int, 2)
	var merged []brokerSettle
	for _, it := range items {
		k := key{it.bc, it.how}
		if i, ok := at[k]; ok {
			merged[i].refs = append(merged[i].refs, it.refs...)
			continue
		}
		at[k] = len(merged)
		merged = append(merged, it) // its refs are its own: appending to them is safe
	}
	return merged
}

// settleWithBroker makes one settlement. Failures are not the client's to
// hear of (AMQP does not confirm acks): the deliveries are then delivered
// again.
func (ch *channel) settleWithBroker(it brokerSettle) {
	b := ch.c.s.b
	ctx := context.Background()
	var err error
	switch it.how {
	case settleAck:
		err = b.Ack(ctx, it.bc.queue, it.bc.queue, it.bc.id, it.refs)
	case settleRequeue:
		err = b.Nack(ctx, it.bc.queue, it.bc.queue, it.bc.id, it.refs, "requeued by the AMQP consumer", requeueDelay)
	case settleDrop:
		err = b.Reject(ctx, it.bc.queue, it.bc.queue, it.bc.id, it.refs, "rejected by the AMQP consumer")
	}
	if err != nil && !errors.Is(err, broker.ErrClosed) {
		ch.c.log.Debug("settling deliveries failed", "queue", it.bc.queue, "err", err)
	}
}
