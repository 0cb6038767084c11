package weir

// Shared mode: competing consumers of a shared subscription (or a queue),
// handlers run concurrently up to the prefetch, and records settled one by
// one, acks in batches.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

const (
	// defaultPrefetch is the prefetch of a shared consumer without
	// Prefetch or Credits.
	defaultPrefetch = 100
	// defaultAckInterval is how long an ack may wait for others to share
	// its request.
	defaultAckInterval = 5 * time.Millisecond
	// maxAckCalls is how many ack requests a consumer has under way at
	// once; acks that come meanwhile wait and go in the next, larger one.
	maxAckCalls = 4
	// maxErrorText bounds the error text a Nack keeps for the dead-letter
	// headers.
	maxErrorText = 1024
)

// defaultAckBatch is the number of acks that are sent at once without
// waiting for the interval: a quarter of the prefetch, so that credits go
// back to the server well before the consumer runs out.
func defaultAckBatch(prefetch int32) int { return int(min(max(prefetch/4, 1), 1000)) }

// Shared makes the consumer one of the competing consumers of a shared
// subscription of the stream; subscription "" is the queue's own (the
// stream is then a queue). Each record goes to one of the subscription's
// consumers, which handles up to its Prefetch of them at once; the
// handler's return settles it (see Handler), or the handler settles it
// itself with Message.Ack, Nack or Reject. A record left unsettled past the
// subscription's ack timeout, or when its consumer goes away, is delivered
// again.
func Shared(subscription string) ConsumeOption {
	return func(c *consumeConfig) { c.setMode(modeShared); c.subscription = subscription }
}

// Prefetch is, in shared mode, how many records the consumer holds
// unsettled at most, and so how many handler calls run at once (default
// 100). It is Credits by the name shared subscriptions use.
func Prefetch(n int) ConsumeOption { return Credits(n) }

// Filter has the server deliver only the records for which the CEL
// expression expr is true (see SubscriptionConfig.Filter for what it sees),
// in group, ephemeral and position mode. A shared subscription has a filter
// of its own. An expression that does not compile fails Consume with
// ErrInvalidArgument and the server's message.
func Filter(expr string) ConsumeOption { return func(c *consumeConfig) { c.filter = expr } }

// AckBatching tunes how a shared consumer sends its acks: in one request
// once records acks are waiting, or interval after the first of them,
// whichever comes first. The default is a quarter of the prefetch (at most
// 1000; records 0 keeps it) and 5ms. Records acked in one request return
// their credits to the server together, so larger batches make fewer
// requests and a longer wait for the records that follow; up to four
// requests are under way at once. The requests go on one of the client's
// AckStreams (four, which its consumers share), or, with WithHTTPClient or
// against a server older than the SDK, in Ack calls.
func AckBatching(records int, interval time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.ackBatch, c.ackInterval = records, interval }
}

// OnAcked makes a shared consumer call fn with the outcome of every ack it
// sends for a handler's nil return: err is nil once the server stored the
// ack, and the error otherwise (the server then delivers the message
// again). Without it, failed acks are logged. fn runs on the goroutine
// that sent the ack's request, once it is answered: it must be quick and
// must not block. Message.Ack reports its own outcome and does not call fn.
func OnAcked(fn func(m *Message, err error)) ConsumeOption {
	return func(c *consumeConfig) { c.onAcked = fn }
}

// Ack acknowledges the message now, with the acks of the consumer's other
// messages, and returns once the server stored it. It is for handlers
// that settle their messages themselves; a handler's nil return does it
// otherwise. It fails with ErrSettled if the message was settled already,
// with ErrNotShared outside shared mode, and with ErrFailedPrecondition if
// the consumer no longer holds it (it was delivered to another after its
// deadline, or the connection broke); the server then delivers it again.
func (m *Message) Ack(ctx context.Context) error {
	if err := m.claim("ack"); err != nil {
		return err
	}
	done := make(chan error, 1)
	if !m.sess.acker.add(m, done) {
		return m.gone("ack")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Nack gives the message back: the server delivers it again after delay,
// or after the subscription's backoff when delay is 0, unless it has run
// out of deliveries, in which case it is dead-lettered. cause's text (nil:
// none) is kept for the x-last-error header of the dead-lettered record.
func (m *Message) Nack(ctx context.Context, cause error, delay time.Duration) error {
	if delay < 0 {
		return fmt.Errorf("nack: %w: delay %v is negative", ErrInvalidArgument, delay)
	}
	if err := m.claim("nack"); err != nil {
		return err
	}
	m.gaveUp.Store(true)
	return m.sess.nack(ctx, m, errorText(cause), delay)
}

// Reject dead-letters the message now, whatever its delivery count, with
// reason in its x-last-error header: for a message that can never
// succeed.
func (m *Message) Reject(ctx context.Context, reason string) error {
	if err := m.claim("reject"); err != nil {
		return err
	}
	m.gaveUp.Store(true)
	return m.sess.settle(ctx, "reject", m.sess.cons.c.api.Reject, &weirpb.SettleRequest{
		SubscriptionId: m.sess.id, Records: toPBRefs([]*Message{m}), Error: reason,
	})
}

// Extend moves the message's ack deadline to d from now, for a handler
// that needs longer than the subscription's ack timeout. It does not
// settle the message.
func (m *Message) Extend(ctx context.Context, d time.Duration) error {
	if m.sess == nil || m.sess.cons.cfg.mode != modeShared {
		return fmt.Errorf("extend: %w", ErrNotShared)
	}
	if m.settled.Load() {
		return fmt.Errorf("extend: %w", ErrSettled)
	}
	if d <= 0 {
		return fmt.Errorf("extend: %w: %v is not a positive duration", ErrInvalidArgument, d)
	}
	return m.sess.settle(ctx, "extend the deadline of", m.sess.cons.c.api.Extend, &weirpb.SettleRequest{
		SubscriptionId: m.sess.id, Records: toPBRefs([]*Message{m}), Delay: durationpb.New(d),
	})
}

// Settled reports whether the message was acked, nacked or rejected.
func (m *Message) Settled() bool { return m.settled.Load() }

// claim marks the message settled for op; an error if it cannot be.
func (m *Message) claim(op string) error {
	if m.sess == nil || m.sess.cons.cfg.mode != modeShared {
		return fmt.Errorf("%s: %w", op, ErrNotShared)
	}
	if !m.settled.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: %w", op, ErrSettled)
	}
	return nil
}

// gone is the error of settling a message whose subscription ended.
func (m *Message) gone(op string) error {
	return fmt.Errorf("%s %s/%d@%d: %w: the subscription that delivered it ended; the server delivers it again",
		op, m.Stream, m.Partition, m.Offset, ErrFailedPrecondition)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	text := err.Error()
	if len(text) > maxErrorText {
		text = strings.ToValidUTF8(text[:maxErrorText], "")
	}
	return text
}

// dispatchShared starts a handler for each record of an event; false when
// the session is over. Records that come while the consumer stops are not
// started: the server gives them to another consumer when the
// subscription ends.
func (s *session) dispatchShared(ev *weirpb.Records) bool {
	counts := ev.GetDeliveryCounts()
	for i, pb := range ev.GetRecords() {
		m := &Message{Record: fromPBRecord(pb, s.cons.stream), sess: s}
		if i < len(counts) {
			m.DeliveryCount = counts[i]
		}
		select {
		case s.handlerSlots <- struct{}{}:
		case <-s.ctx.Done():
			return false
		}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			<-s.handlerSlots
			continue
		}
		s.workers.Add(1)
		s.mu.Unlock()
		go s.handleShared(m)
	}
	return true
}

// handleShared runs the handler for m and settles m by its return, unless
// the handler settled it.
func (s *session) handleShared(m *Message) {
	defer func() {
		<-s.handlerSlots
		s.workers.Done()
	}()
	err := s.cons.handler(s.cons.handlerCtx, m)
	switch {
	case m.settled.Load():
	case err == nil:
		if m.settled.CompareAndSwap(false, true) && !s.acker.add(m, nil) {
			s.cons.c.logger.Debug("weir: ack after the subscription ended", "stream", m.Stream, "partition", m.Partition, "offset", m.Offset)
		}
	case (s.cons.stopping() || s.cons.handlerCtx.Err() != nil) && errors.Is(err, context.Canceled):
		// The handler gave up because the consumer stops: the record goes
		// to another consumer when this one's subscription ends.
	default:
		s.handlerFailed(m, err)
	}
}

// handlerFailed nacks m, whose handler returned err. It is apart from
// handleShared so that the frame a handler's new goroutine starts with
// stays small.
func (s *session) handlerFailed(m *Message, err error) {
	if !m.settled.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, commitTimeout)
	defer cancel()
	if nerr := s.nack(ctx, m, errorText(err), 0); nerr != nil && s.ctx.Err() == nil {
		s.cons.c.logger.Warn("weir: nack failed; the record is delivered again at its deadline",
			"stream", m.Stream, "partition", m.Partition, "offset", m.Offset, "err", nerr)
	}
}

func (s *session) nack(ctx context.Context, m *Message, text string, delay time.Duration) error {
	return s.settle(ctx, "nack", s.cons.c.api.Nack, &weirpb.SettleRequest{
		SubscriptionId: s.id, Records: toPBRefs([]*Message{m}), Error: text, Delay: optionalDuration(delay),
	})
}

// settle makes one Ack, Nack, Reject or Extend call.
func (s *session) settle(ctx context.Context, op string, fn func(context.Context, *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error), req *weirpb.SettleRequest) error {
	recs := req.GetRecords()
	if err := s.ended(op, len(recs)); err != nil {
		return err
	}
	var first PartitionOffset
	if len(recs) > 0 {
		first = PartitionOffset{Partition: recs[0].GetPartition(), Offset: recs[0].GetOffset()}
	}
	_, err := call(ctx, s.cons.c, s.settleOp(op, len(recs), first), fn, req)
	return err
}

// ended is the error of settling n records once the subscription that
// delivered them has ended, nil before.
func (s *session) ended(op string, n int) error {
	if s.ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("%s %d records of %q: %w: the subscription that delivered them ended; the server delivers them again",
		op, n, s.cons.stream, ErrFailedPrecondition)
}

// settleOp names the settling of n records, the first of them first, in
// errors.
func (s *session) settleOp(op string, n int, first PartitionOffset) string {
	if n == 1 {
		return fmt.Sprintf("%s %s/%d@%d", op, s.cons.stream, first.Partition, first.Offset)
	}
	return fmt.Sprintf("%s %d records of %q", op, n, s.cons.stream)
}
