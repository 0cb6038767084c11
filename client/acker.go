package weir

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// acker batches the acks of a shared consumer's session. Acks wait in
// pending until a batch is full or the first of them has waited the
// interval; then one request sends them all (on one of the client's
// AckStreams, or in an Ack call), while the next batch fills. Up to
// maxAckCalls requests are under way at once: the server returns a
// record's credit when it gets the ack, and answers once the ack is
// durable, so requests that overlap keep records flowing through the fsync
// of the acks before. When every slot is taken, acks keep piling up and go
// in one larger request.
type acker struct {
	s        *session
	batch    int
	interval time.Duration
	stream   *ackStream // one of the client's; nil: Ack calls

	mu      sync.Mutex
	pending []ackItem
	first   time.Time // when pending got its first ack
	closed  bool

	kick     chan struct{} // an ack was added to an empty batch, or filled it
	stop     chan struct{}
	loopDone chan struct{}
	slots    chan struct{} // a token per request under way
	calls    sync.WaitGroup
}

// ackItem is a message to ack and, for Message.Ack, where its outcome goes.
type ackItem struct {
	m    *Message
	done chan error // nil: nobody waits
}

func newAcker(s *session) *acker {
	a := &acker{
		s:        s,
		batch:    s.cons.cfg.ackBatch,
		interval: s.cons.cfg.ackInterval,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		slots:    make(chan struct{}, maxAckCalls),
	}
	if s.cons.c.acks != nil {
		a.stream = s.cons.c.acks.acquire()
	}
	go a.loop()
	return a
}

// add queues an ack; false when the session's acks are closed.
func (a *acker) add(m *Message, done chan error) bool {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return false
	}
	a.pending = append(a.pending, ackItem{m: m, done: done})
	n := len(a.pending)
	if n == 1 {
		a.first = time.Now()
	}
	a.mu.Unlock()
	if n == 1 || n >= a.batch {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	return true
}

func (a *acker) waiting() (int, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending), a.first
}

func (a *acker) take() []ackItem {
	a.mu.Lock()
	defer a.mu.Unlock()
	items := a.pending
	a.pending = nil
	return items
}

func (a *acker) loop() {
	defer close(a.loopDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-a.kick:
		case <-a.stop:
			return
		}
		n, first := a.waiting()
		if n == 0 {
			continue
		}
		// Linger until the batch fills or its first ack waited long enough.
		if n < a.batch {
			timer.Reset(a.interval - time.Since(first))
		linger:
			for {
				select {
				case <-timer.C:
					break linger
				case <-a.kick:
					if n, _ := a.waiting(); n >= a.batch {
						timer.Stop()
						break linger
					}
				case <-a.stop:
					timer.Stop()
					return
				}
			}
		}
		select {
		case a.slots <- struct{}{}:
		case <-a.stop:
			return
		}
		items := a.take()
		if len(items) == 0 {
			<-a.slots
			continue
		}
		a.calls.Add(1)
		go func() {
			defer a.calls.Done()
			defer func() { <-a.slots }()
			a.send(items)
		}()
	}
}

// close ends the batching. With flush, the acks still pending are sent
// (the consumer stops, its subscription is still open); without, they are
// dropped, as the server has given their records to others already. It
// returns once every request has been answered.
func (a *acker) close(flush bool) {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	close(a.stop)
	<-a.loopDone
	items := a.take()
	if flush && len(items) > 0 {
		a.send(items)
	} else {
		for _, it := range items {
			if it.done != nil || a.s.cons.cfg.onAcked != nil {
				a.report(it, it.m.gone("ack"))
			}
		}
	}
	a.calls.Wait()
	if a.stream != nil {
		a.stream.release()
	}
}

// send acks items in one request and tells their waiters. When the request
// fails because one of the records is no longer this consumer's (its
// deadline passed and another consumer has it), the others are acked one
// by one, so that one late record does not undo the acks of the rest.
func (a *acker) send(items []ackItem) {
	ctx, cancel := context.WithTimeout(a.s.ctx, commitTimeout)
	defer cancel()
	msgs := make([]*Message, len(items))
	for i, it := range items {
		msgs[i] = it.m
	}
	err := a.ack(ctx, msgs)
	if err != nil && len(items) > 1 && connect.CodeOf(err) == connect.CodeFailedPrecondition {
		for _, it := range items {
			a.report(it, a.ack(ctx, []*Message{it.m}))
		}
		return
	}
	for _, it := range items {
		a.report(it, err)
	}
}

// ack acks msgs in one request: on the session's ack stream, or in an Ack
// call when there is none.
func (a *acker) ack(ctx context.Context, msgs []*Message) error {
	s := a.s
	if a.stream != nil {
		if err := s.ended("ack", len(msgs)); err != nil {
			return err
		}
		switch err := a.stream.ack(ctx, s.id, msgs); {
		case err == nil:
			return nil
		case !errors.Is(err, errNoAckStream):
			first := PartitionOffset{Partition: msgs[0].Partition, Offset: msgs[0].Offset}
			return wrapError(s.settleOp("ack", len(msgs), first), err)
		}
	}
	return s.settle(ctx, "ack", s.cons.c.api.Ack, &weirpb.SettleRequest{SubscriptionId: s.id, Records: toPBRefs(msgs)})
}

func (a *acker) report(it ackItem, err error) {
	if it.done != nil {
		it.done <- err
		return
	}
	if fn := a.s.cons.cfg.onAcked; fn != nil {
		fn(it.m, err)
		return
	}
	if err != nil && a.s.ctx.Err() == nil {
		a.s.cons.c.logger.Warn("weir: ack failed; the record is delivered again",
			"stream", it.m.Stream, "partition", it.m.Partition, "offset", it.m.Offset, "err", err)
	}
}
