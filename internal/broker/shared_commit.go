package broker

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/state"
)

// commitOp is a change to a subscription's durable state: records to
// settle. done (nil: nobody waits) gets the outcome. Delivery states are not
// ops: the committer takes the dirty ones (sharedSub.dirty) into each
// transaction.
type commitOp struct {
	acks []*pending
	done chan error
}

// deliveryNote is a delivery state being written.
type deliveryNote struct {
	p *pending
	d deliveryState
}

// maxCommitOps bounds how many queued ops one transaction takes.
const maxCommitOps = 1024

// commit queues op and waits for it to be durable. Once records are marked
// for settling their op must reach the committer (which settles them or puts
// them back), so queueing ignores ctx; only the wait for the outcome
// honours it (the op is then applied all the same).
func (ss *sharedSub) commit(ctx context.Context, op *commitOp) error {
	select {
	case ss.commits <- op:
	case <-ss.ctx.Done():
		return ErrClosed
	}
	select {
	case err := <-op.done:
		return err
	case <-ss.ctx.Done():
		return ErrClosed
	}
}

// commitAsync queues op without waiting (s.mu may be held: the queue is
// drained by the committer, which takes s.mu only between transactions).
func (ss *sharedSub) commitAsync(op *commitOp) {
	go func() {
		select {
		case ss.commits <- op:
		case <-ss.ctx.Done():
		}
	}()
}

// commitLoop writes queued ops and dirty delivery states to the state
// store, as many per transaction as are waiting: the group commit of a
// subscription. A transaction under way holds the next ones back, so the
// acks and delivery counts of a whole cycle of the consumers share one
// fsync. Being the only writer of the subscription's state, it keeps each
// partition's floor growing, and writes a record's counts in order.
func (ss *sharedSub) commitLoop() {
	defer ss.wg.Done()
	var ops []*commitOp
	for {
		ops = ops[:0]
		select {
		case op := <-ss.commits:
			ops = append(ops, op)
		case <-ss.kick:
		case <-ss.ctx.Done():
			return
		}
	gather:
		for len(ops) < maxCommitOps {
			select {
			case op := <-ss.commits:
				ops = append(ops, op)
			default:
				break gather
			}
		}
		ss.commitBatch(ops)
	}
}

// takeDirty takes the delivery states to write: those of dirty records
// that are still unsettled (a settling record's ack or dead-lettering
// deletes its state; if that fails, unsettle marks it dirty again); s.mu
// is held.
func (ss *sharedSub) takeDirty() []deliveryNote {
	var notes []deliveryNote
	for _, p := range ss.dirty {
		p.dirty = false
		switch p.state {
		case stateSettling, stateSettled:
			continue
		}
		notes = append(notes, deliveryNote{p: p, d: deliveryState{count: p.count, lastError: p.lastError}})
	}
	clear(ss.dirty)
	ss.dirty = ss.dirty[:0]
	return notes
}

// wroteDirty records that notes are durable (ok) or puts them back to be
// written again, and lets the records that waited for their counts go;
// s.mu is held.
func (ss *sharedSub) wroteDirty(notes []deliveryNote, ok bool) {
	for _, n := range notes {
		if ok {
			n.p.durable = max(n.p.durable, n.d.count)
		} else if n.p.state != stateSettled && n.p.state != stateSettling && !n.p.dirty {
			n.p.dirty = true // no kick: retried with the next transaction
			ss.dirty = append(ss.dirty, n.p)
		}
	}
	if len(ss.unconfirmed) > 0 {
		// Back at the head of the line, where they were.
		ss.again = append(ss.unconfirmed, ss.again...)
		ss.unconfirmed = nil
	}
}

func (ss *sharedSub) commitBatch(ops []*commitOp) {
	// Each partition's floor is stored as it will be once this batch's
	// acks are settled, in the same transaction: the acks below it need no
	// key of their own (in-order acks, the common case, write none), and
	// the floor is at most the offset of any unsettled record whose
	// delivery state the batch writes.
	ss.mu.Lock()
	for _, op := range ops {
		for _, p := range op.acks {
			p.committing = true
		}
	}
	type partFloor struct {
		floor int64
		taken []int64 // committing offsets floorPast took off the heap
	}
	floors := make(map[*sharedPart]*partFloor)
	for _, part := range ss.parts {
		f, taken := part.floorPast(nil)
		if f > part.durableFloor || len(taken) > 0 {
			floors[part] = &partFloor{floor: f, taken: taken}
		}
	}
	notes := ss.takeDirty()
	ss.mu.Unlock()
	if len(ops) == 0 && len(notes) == 0 && len(floors) == 0 {
		return
	}
	// The lowest offset each partition writes a key at in this batch (all
	// at or above the floor stored with them).
	wroteFrom := make(map[*sharedPart]int64)
	wroteKey := func(part *sharedPart, off int64) {
		if w, ok := wroteFrom[part]; !ok || off < w {
			wroteFrom[part] = off
		}
	}
	err := ss.writeState(func(tx *state.Tx) error {
		clear(wroteFrom)
		for _, n := range notes {
			if err := tx.SetDelivery(ss.id, n.p.part.id, n.p.rec.Offset, state.Delivery{Count: n.d.count, LastError: n.d.lastError}); err != nil {
				return err
			}
			wroteKey(n.p.part, n.p.rec.Offset)
		}
		for _, op := range ops {
			for _, p := range op.acks {
				if pf := floors[p.part]; pf != nil && p.rec.Offset < pf.floor {
					continue // below the floor stored with it
				}
				if err := tx.AckCursor(ss.id, p.part.id, p.rec.Offset); err != nil {
					return err
				}
				wroteKey(p.part, p.rec.Offset)
				if p.durable > 0 {
					if err := tx.DeleteDelivery(ss.id, p.part.id, p.rec.Offset); err != nil {
						return err
					}
				}
			}
		}
		for part, pf := range floors {
			if pf.floor <= part.durableFloor {
				continue
			}
			var err error
			if part.keysFrom < pf.floor {
				err = tx.SetCursorFloor(ss.id, part.id, part.keysFrom, pf.floor) // clears the keys below
			} else {
				err = tx.MoveCursorFloor(ss.id, part.id, pf.floor)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	ss.mu.Lock()
	ss.wroteDirty(notes, err == nil)
	for _, op := range ops {
		for _, p := range op.acks {
			p.committing = false
			if err == nil {
				if p.deadLetter {
					ss.deadLettered++ // counted as the record leaves the depth
				}
				ss.settle(p)
			} else if p.state == stateSettling {
				// Not durable: deliver it again rather than lose it.
				p.deadLetter = false
				ss.unsettle(p, stateReady)
				ss.again = append(ss.again, p)
			}
		}
	}
	raised := false
	if err == nil {
		for part, pf := range floors {
			if pf.floor > part.durableFloor && part.keysFrom < pf.floor {
				part.keysFrom = noKeys // cleared below the floor
			}
			part.durableFloor = max(part.durableFloor, pf.floor)
		}
		for part, off := range wroteFrom {
			part.keysFrom = min(part.keysFrom, off)
		}
		raised = len(floors) > 0
	} else {
		for part, pf := range floors {
			part.restore(pf.taken)
		}
		ss.b.cfg.Logger.Error("shared subscription state write failed", "stream", ss.cfg.Stream, "subscription", ss.cfg.Name, "err", err)
	}
	ss.signal()
	ss.mu.Unlock()
	for _, op := range ops {
		if op.done != nil {
			op.done <- err
		}
	}
	if raised {
		ss.b.trimUntilAcked(ss.s)
	}
}

// deadLetter moves a record to the dead-letter stream, then settles it;
// s.mu is held. If the dead-letter stream cannot take it, the record waits
// and is tried again after the backoff.
func (ss *sharedSub) deadLetter(p *pending, reason string) {
	ss.leaveBuffer(p)
	ss.markSettling(p)
	p.deadLetter = true
	rec := p.rec
	// The record's expiry and delay served the queue it leaves: in the
	// dead-letter queue it waits until someone looks (as RabbitMQ drops a
	// dead-lettered message's expiration).
	headers := make([]Header, 0, len(rec.Headers)+6)
	for _, h := range rec.Headers {
		if h.Key != HeaderExpiresAt && h.Key != HeaderDeliverAt {
			headers = append(headers, h)
		}
	}
	rec.Headers = append(headers,
		Header{Key: HeaderDeadLetterStream, Value: []byte(ss.cfg.Stream)},
		Header{Key: HeaderDeadLetterPartition, Value: []byte(strconv.Itoa(int(p.part.id)))},
		Header{Key: HeaderDeadLetterOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		Header{Key: HeaderDeadLetterReason, Value: []byte(reason)},
		Header{Key: HeaderDeliveryCount, Value: []byte(strconv.Itoa(int(p.count)))},
		Header{Key: HeaderLastError, Value: []byte(p.lastError)},
	)
	rec.Partition, rec.Offset = 0, 0
	go func() {
		err := ss.b.deadLetterTo(ss.ctx, &ss.cfg, rec)
		if err == nil {
			err = ss.commit(ss.ctx, &commitOp{acks: []*pending{p}, done: make(chan error, 1)})
		}
		if err == nil {
			return
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if errors.Is(err, ErrClosed) || ss.ctx.Err() != nil {
			return
		}
		ss.b.cfg.Logger.Warn("dead-lettering failed; will retry", "stream", ss.cfg.Stream, "subscription", ss.cfg.Name, "dead_letter_stream", ss.cfg.DeadLetterStream, "err", err)
		if p.state == stateSettling {
			p.deadLetter = false
			ss.unsettle(p, stateWaiting)
			ss.wait(p, stateWaiting, ss.b.now().Add(ss.cfg.backoff(p.count)))
		}
	}()
}

// ensureDeadLetterQueue creates the dead-letter queue if it is missing.
func (b *Broker) ensureDeadLetterQueue(ctx context.Context, dlq string) error {
	if _, err := b.stream(dlq); !errors.Is(err, ErrStreamNotFound) {
		return err
	}
	// No dedup: a record dead-lettered again after a redrive keeps its
	// message-id and must not be taken for a duplicate.
	_, err := b.CreateQueue(serverWork(ctx), QueueConfig{Name: dlq, DedupWindow: -1})
	if errors.Is(err, ErrStreamExists) {
		return nil
	}
	return err
}

// publishDeadLetter appends rec to the dead-letter stream, creating it (as
// a queue) if needed.
func (b *Broker) publishDeadLetter(ctx context.Context, dlq string, rec Record) error {
	if err := b.ensureDeadLetterQueue(ctx, dlq); err != nil {
		return err
	}
	rec.Timestamp = time.Time{} // the time it was dead-lettered
	_, err := b.publish(ctx, dlq, -1, []Record{rec}, false)
	return err
}
