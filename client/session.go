package weir

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// commitTimeout bounds the commits made while stopping or revoking, whose
// callers have no context of their own.
const commitTimeout = 10 * time.Second

// session is one Subscribe call of a Consumer: its stream, its partition
// workers, the positions it handled and the credits it owes the server.
type session struct {
	cons     *Consumer
	stream   *connect.ServerStreamForClient[weirpb.SubscribeResponse]
	ctx      context.Context // the stream's; canceled last, ending the subscription
	cancel   context.CancelFunc
	id       string
	memberID string

	generation atomic.Int64
	stopCh     chan struct{} // closed: workers start no new message
	workers    sync.WaitGroup
	loops      sync.WaitGroup

	mu        sync.Mutex
	stopped   bool
	partition map[int32]*partitionWorker
	handled   map[int32]int64 // the position after the last message handled
	committed map[int32]int64 // the last position committed (group mode)

	commitMu sync.Mutex // one commit at a time, so positions only move forward

	creditsOwed atomic.Int64
	creditKick  chan struct{}

	// Shared mode: the acks' batching, and a token per handler call under
	// way (as many as the prefetch).
	acker        *acker
	handlerSlots chan struct{}
}

// partitionWorker runs the handler for one partition's messages in order.
type partitionWorker struct {
	queue   chan []*Message
	revoke  chan struct{} // closed: finish the message under way, drop the rest
	drained chan struct{} // closed when the worker exits
}

func newSession(cons *Consumer, stream *connect.ServerStreamForClient[weirpb.SubscribeResponse], ctx context.Context, cancel context.CancelFunc, id, memberID string) *session {
	var slots chan struct{}
	if cons.cfg.mode == modeShared {
		slots = make(chan struct{}, cons.cfg.credits)
	}
	return &session{
		cons: cons, stream: stream, ctx: ctx, cancel: cancel, id: id, memberID: memberID,
		stopCh:       make(chan struct{}),
		partition:    make(map[int32]*partitionWorker),
		handled:      make(map[int32]int64),
		committed:    make(map[int32]int64),
		creditKick:   make(chan struct{}, 1),
		handlerSlots: slots,
	}
}

// serve runs the session until its stream ends or the consumer stops, then
// tears it down: workers finish the messages under way, positions are
// committed (acks sent, in shared mode), and the stream is closed. It
// returns the stream's error (nil when it ended cleanly or the consumer
// stopped).
func (s *session) serve() error {
	shared := s.cons.cfg.mode == modeShared
	if shared {
		// Settling returns a shared consumer's credits.
		s.acker = newAcker(s)
	} else {
		s.loops.Add(1)
		go s.creditLoop()
	}
	if s.cons.cfg.mode == modeGroup && *s.cons.cfg.autoCommit {
		s.loops.Add(1)
		go s.autoCommitLoop()
	}
	received := make(chan error, 1)
	go func() { received <- s.receive() }()

	var err error
	stoppedFirst := false
	select {
	case err = <-received:
	case <-s.cons.stopCtx.Done():
		stoppedFirst = true
	}
	s.stopWorkers()
	if shared {
		// After a broken stream the server has given the records to
		// others: their acks would fail.
		s.acker.close(stoppedFirst)
	}
	// After a broken stream the server has let the member go, so only a
	// consumer that stops commits here.
	if stoppedFirst && s.cons.cfg.mode == modeGroup && *s.cons.cfg.autoCommit {
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		if cerr := s.commit(ctx, nil, s.generation.Load()); cerr != nil {
			s.cons.c.logger.Warn("weir: final commit failed", "stream", s.cons.stream, "group", s.cons.cfg.group, "err", cerr)
		}
		cancel()
	}
	s.cancel()
	if stoppedFirst {
		<-received
	}
	s.stream.Close()
	s.loops.Wait()
	return err
}

// receive reads the stream's events until it ends.
func (s *session) receive() error {
	for s.stream.Receive() {
		switch ev := s.stream.Msg().GetEvent().(type) {
		case *weirpb.SubscribeResponse_Assignment:
			s.assign(ev.Assignment)
		case *weirpb.SubscribeResponse_Records:
			if s.cons.cfg.mode == modeShared {
				if !s.dispatchShared(ev.Records) {
					return nil
				}
			} else if !s.dispatch(ev.Records.GetRecords()) {
				return nil
			}
		}
	}
	if s.ctx.Err() != nil {
		return nil // we ended it
	}
	return s.stream.Err()
}

// dispatch queues the records of an event for their partitions' workers,
// one batch per partition (the server sends one partition per event, so
// usually one batch); false when the session is over.
func (s *session) dispatch(pbs []*weirpb.Record) bool {
	for len(pbs) > 0 {
		p := pbs[0].GetPartition()
		n := 1
		for n < len(pbs) && pbs[n].GetPartition() == p {
			n++
		}
		batch := make([]*Message, n)
		msgs := make([]Message, n) // one allocation for the batch
		for i, pb := range pbs[:n] {
			msgs[i] = Message{Record: fromPBRecord(pb, s.cons.stream), sess: s}
			batch[i] = &msgs[i]
		}
		pbs = pbs[n:]
		s.mu.Lock()
		w, ok := s.partition[p]
		if !ok && !s.stopped && s.cons.cfg.mode != modeGroup {
			w = s.startWorker(p, batch[0].Offset)
			ok = true
		}
		s.mu.Unlock()
		if !ok {
			// Not ours (a group partition already revoked) or stopping.
			s.returnCredits(int64(n))
			continue
		}
		select {
		case w.queue <- batch:
		case <-s.ctx.Done():
			return false
		}
	}
	return true
}

// startWorker starts the worker of a partition whose next record is at
// offset. s.mu is held.
func (s *session) startWorker(partition int32, offset int64) *partitionWorker {
	w := &partitionWorker{
		queue:   make(chan []*Message, s.cons.cfg.credits), // a batch holds at least one credit
		revoke:  make(chan struct{}),
		drained: make(chan struct{}),
	}
	s.partition[partition] = w
	s.handled[partition] = offset
	s.committed[partition] = offset
	s.workers.Add(1)
	go s.work(w)
	return w
}

func (s *session) work(w *partitionWorker) {
	defer s.workers.Done()
	defer close(w.drained)
	for {
		select {
		case <-s.stopCh:
			return
		case <-w.revoke:
			w.drop(s)
			return
		default:
		}
		select {
		case <-s.stopCh:
			return
		case <-w.revoke:
			w.drop(s)
			return
		case batch := <-w.queue:
			for i, m := range batch {
				if i > 0 && w.revoked() {
					s.returnCredits(int64(len(batch) - i))
					w.drop(s)
					return
				}
				if !s.handle(m) {
					return
				}
			}
		}
	}
}

// revoked reports whether the partition was revoked (without blocking).
func (w *partitionWorker) revoked() bool {
	select {
	case <-w.revoke:
		return true
	default:
		return false
	}
}

// drop discards the messages of a revoked partition that were not started:
// its next owner reads them from the committed offset. The server sends
// nothing more of the partition after the revocation.
func (w *partitionWorker) drop(s *session) {
	for {
		select {
		case batch := <-w.queue:
			s.returnCredits(int64(len(batch)))
		default:
			return
		}
	}
}

// handle runs the handler for m; false if it failed, which stops the
// consumer.
func (s *session) handle(m *Message) bool {
	defer s.returnCredits(1)
	if !s.cons.skip(m) {
		if err := s.cons.handler(s.cons.handlerCtx, m); err != nil {
			if (s.cons.stopping() || s.cons.handlerCtx.Err() != nil) && errors.Is(err, context.Canceled) {
				return false // the handler gave up because the consumer stops
			}
			s.cons.fail(fmt.Errorf("handler failed on %s/%d at offset %d: %w", m.Stream, m.Partition, m.Offset, err))
			return false
		}
	}
	s.mu.Lock()
	s.handled[m.Partition] = m.Offset + 1
	s.mu.Unlock()
	s.cons.advance(m.Partition, m.Offset+1)
	return true
}

// stopWorkers makes the workers exit after the message they are handling
// and waits for them.
func (s *session) stopWorkers() {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stopCh)
	}
	s.mu.Unlock()
	s.workers.Wait()
}

// assign applies a group assignment. Revoked partitions are given up: the
// message under way is finished, those not started are dropped (the next
// owner gets them from the committed offset, so a handover waits for one
// handler call, not for the buffer), the positions are committed with the
// event's generation and the revocation is acknowledged. Assigned
// partitions get a worker.
func (s *session) assign(a *weirpb.Assignment) {
	gen := a.GetGeneration()
	s.generation.Store(gen)
	ev := AssignmentEvent{Generation: gen}
	if revoked := a.GetRevoked(); len(revoked) > 0 {
		var parts []int32
		var draining []*partitionWorker
		s.mu.Lock()
		for _, r := range revoked {
			ev.Revoked = append(ev.Revoked, PartitionRef{Stream: r.GetStream(), Partition: r.GetPartition()})
			if r.GetStream() != s.cons.stream {
				continue
			}
			parts = append(parts, r.GetPartition())
			if w, ok := s.partition[r.GetPartition()]; ok {
				delete(s.partition, r.GetPartition())
				close(w.revoke)
				draining = append(draining, w)
			}
		}
		s.mu.Unlock()
		for _, w := range draining {
			<-w.drained
		}
		if *s.cons.cfg.autoCommit {
			ctx, cancel := context.WithTimeout(s.ctx, commitTimeout)
			if err := s.commit(ctx, parts, gen); err != nil {
				s.cons.c.logger.Warn("weir: commit of revoked partitions failed", "stream", s.cons.stream, "group", s.cons.cfg.group, "err", err)
			}
			cancel()
		}
		s.mu.Lock()
		for _, p := range parts {
			delete(s.handled, p)
			delete(s.committed, p)
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(s.ctx, commitTimeout)
		_, err := call(ctx, s.cons.c, "acknowledge revocation", s.cons.c.api.AckRevocation,
			&weirpb.AckRevocationRequest{SubscriptionId: s.id, Generation: gen})
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.cons.c.logger.Warn("weir: acknowledging a revocation failed", "stream", s.cons.stream, "group", s.cons.cfg.group, "err", err)
		}
	}
	s.mu.Lock()
	for _, pa := range a.GetAssigned() {
		ev.Assigned = append(ev.Assigned, PartitionOffset{Stream: pa.GetStream(), Partition: pa.GetPartition(), Offset: pa.GetOffset()})
		if pa.GetStream() != s.cons.stream || s.stopped {
			continue
		}
		if _, ok := s.partition[pa.GetPartition()]; !ok {
			s.startWorker(pa.GetPartition(), pa.GetOffset())
		}
	}
	s.mu.Unlock()
	if fn := s.cons.cfg.onAssignment; fn != nil {
		fn(ev)
	}
}

// partitions lists the partitions the session reads.
func (s *session) partitions() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int32, 0, len(s.partition))
	for p := range s.partition {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// commit commits the handled positions of parts (nil: all) that moved
// since their last commit.
func (s *session) commit(ctx context.Context, parts []int32, gen int64) error {
	if s.cons.cfg.mode != modeGroup {
		return ErrNoGroup
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	var offsets []PartitionOffset
	s.mu.Lock()
	for p, next := range s.handled {
		if next > s.committed[p] && (parts == nil || slices.Contains(parts, p)) {
			offsets = append(offsets, PartitionOffset{Stream: s.cons.stream, Partition: p, Offset: next})
		}
	}
	s.mu.Unlock()
	return s.send(ctx, gen, offsets)
}

// commitOne commits one partition's position (Message.Commit).
func (s *session) commitOne(ctx context.Context, partition int32, next int64) error {
	if s.cons.cfg.mode != modeGroup {
		return ErrNoGroup
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	done := s.committed[partition] >= next
	s.mu.Unlock()
	if done {
		return nil
	}
	return s.send(ctx, s.generation.Load(), []PartitionOffset{{Stream: s.cons.stream, Partition: partition, Offset: next}})
}

// send makes one Commit call. s.commitMu is held.
func (s *session) send(ctx context.Context, gen int64, offsets []PartitionOffset) error {
	if len(offsets) == 0 {
		return nil
	}
	_, err := call(ctx, s.cons.c, "commit offsets of group "+quote(s.cons.cfg.group), s.cons.c.api.Commit, &weirpb.CommitRequest{
		Group: s.cons.cfg.group, MemberId: s.memberID, Generation: gen, Offsets: toPBCommits(offsets),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, o := range offsets {
		if o.Offset > s.committed[o.Partition] {
			s.committed[o.Partition] = o.Offset
		}
	}
	s.mu.Unlock()
	return nil
}

func (s *session) autoCommitLoop() {
	defer s.loops.Done()
	t := time.NewTicker(s.cons.cfg.autoCommitInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.stopCh:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, commitTimeout)
		err := s.commit(ctx, nil, s.generation.Load())
		cancel()
		if err != nil && s.ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			// A rebalance may have raced the commit; the next one retries.
			s.cons.c.logger.Warn("weir: automatic commit failed", "stream", s.cons.stream, "group", s.cons.cfg.group, "err", err)
		}
	}
}

// returnCredits owes the server n credits, sent in batches of a quarter of
// the consumer's credits: the server, out of credits, always has sent at
// least that many records, so the batch fills once they are handled.
func (s *session) returnCredits(n int64) {
	if s.creditsOwed.Add(n) >= max(int64(s.cons.cfg.credits)/4, 1) {
		select {
		case s.creditKick <- struct{}{}:
		default:
		}
	}
}

func (s *session) creditLoop() {
	defer s.loops.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.creditKick:
		}
		n := s.creditsOwed.Swap(0)
		if n <= 0 {
			continue
		}
		_, err := call(s.ctx, s.cons.c, "add credits", s.cons.c.api.AddCredits,
			&weirpb.AddCreditsRequest{SubscriptionId: s.id, Credits: int32(n)})
		if err != nil && s.ctx.Err() == nil {
			s.cons.c.logger.Warn("weir: returning credits failed", "stream", s.cons.stream, "err", err)
		}
	}
}
