package broker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// What counts against MaxLengthBytes is a record's size as MaxRecordBytes
// counts it (recordSize: key, value, header names and values; not the
// stored batch's framing), summed over the records MaxLength counts: those
// not settled and not being settled. The sizes of fetched records are
// known; records beyond the fetcher's buffer are sized ahead of it
// (sizeAhead) by the fetcher while its buffer is full, and before a
// publish is checked or enforced against the bound.

// syncSizeBytes bounds the log sizeAhead reads per partition on a
// publisher's behalf (the records published since it last looked; a
// larger backlog, as after a restart, is sized by the fetcher).
const syncSizeBytes = 1 << 20

// checkRoom refuses a publish of n records to a stream when a shared
// subscription with the reject-publish policy would pass its max length,
// or is at or past its max length in bytes (as RabbitMQ's reject-publish,
// the publish that crosses the byte bound is taken, the next refused).
// Under the block policy the publish waits instead, until the
// subscription's consumers settle records or ctx ends.
func (s *stream) checkRoom(ctx context.Context, n int) error {
	for {
		ss, space, err := s.room(n)
		if space == nil {
			return err
		}
		select {
		case <-space:
		case <-ss.ctx.Done(): // the subscription went away: look again
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for room in subscription %q of %q (overflow %s): %w",
				ErrQueueFull, ss.cfg.Name, s.meta.Name, OverflowBlock, context.Cause(ctx))
		}
	}
}

// room checks the bounds of the stream's subscriptions for a publish of n
// records: an error for a reject-publish subscription with no room, or a
// block subscription with no room and the channel closed when its length
// next drops.
func (s *stream) room(n int) (*sharedSub, <-chan struct{}, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ss := range s.subs {
		if !ss.cfg.holdsPublishes() {
			continue
		}
		if ss.cfg.MaxLengthBytes > 0 {
			ss.sizeAhead(ss.ctx, syncSizeBytes)
		}
		ss.mu.Lock()
		d, full := ss.lengthForLimit(), false
		var err error
		// Reject-publish refuses what would pass the bound; block holds
		// publishes only while the subscription is at it, so one publish
		// may pass it (a batch never waits for room it cannot get).
		if ss.cfg.MaxLength > 0 && (d+int64(n) > ss.cfg.MaxLength && ss.cfg.Overflow == OverflowRejectPublish || d >= ss.cfg.MaxLength) {
			full = true
			err = fmt.Errorf("%w: subscription %q of %q holds %d records, its max length is %d", ErrQueueFull, ss.cfg.Name, s.meta.Name, d, ss.cfg.MaxLength)
		}
		if !full && ss.cfg.MaxLengthBytes > 0 {
			if b := ss.bytesForLimit(); b >= ss.cfg.MaxLengthBytes {
				full = true
				err = fmt.Errorf("%w: subscription %q of %q holds %d bytes, its max length is %d bytes", ErrQueueFull, ss.cfg.Name, s.meta.Name, b, ss.cfg.MaxLengthBytes)
			}
		}
		if !full || ss.closed {
			ss.mu.Unlock()
			continue
		}
		if ss.cfg.Overflow == OverflowRejectPublish {
			ss.mu.Unlock()
			return ss, nil, err
		}
		if ss.space == nil {
			ss.space = make(chan struct{})
		}
		space := ss.space
		ss.mu.Unlock()
		return ss, space, nil
	}
	return nil, nil, nil
}

// bytesForLimit is the size of the records not settled and not being
// settled that are fetched or sized ahead: what MaxLengthBytes is enforced
// on; s.mu is held.
func (ss *sharedSub) bytesForLimit() int64 {
	b := ss.liveBytes - ss.settlingBytes
	for _, part := range ss.parts {
		b += part.aheadBytes
	}
	return b
}

// depthBytes is the size of the records not settled: fetched, sized ahead,
// and, for records not sized yet, the average size of the records fetched
// so far (an estimate; none are left once sized, which a subscription with
// a byte bound keeps up with); s.mu is held.
func (ss *sharedSub) depthBytes() int64 {
	b := ss.liveBytes
	var unsized int64
	for _, part := range ss.parts {
		b += part.aheadBytes
		unsized += max(part.log.EndOffset()-max(part.fetch, part.sized), 0)
	}
	if unsized > 0 && ss.seenRecords > 0 {
		b += unsized * (ss.seenBytes / ss.seenRecords)
	}
	return b
}

// sizeAhead sizes, in each partition, the records after those the fetcher
// and earlier calls reached, up to about maxBytes of log per partition,
// and reports whether it sized any. The log is read outside s.mu; the
// result counts only records still ahead of the fetcher, so that a record
// is subtracted by fetchedAhead exactly when it was added here.
func (ss *sharedSub) sizeAhead(ctx context.Context, maxBytes int) bool {
	ss.sizeMu.Lock()
	defer ss.sizeMu.Unlock()
	ss.mu.Lock()
	parts := ss.parts
	ss.mu.Unlock()
	sized := false
	for _, part := range parts {
		ss.mu.Lock()
		from := max(part.fetch, part.sized)
		ss.mu.Unlock()
		if from >= part.log.EndOffset() {
			continue
		}
		res, err := fetchLog(ctx, nil, part.log, part.id, from, maxBytes, 0)
		if err != nil {
			continue // behind retention, or closing: the fetcher deals with it
		}
		ss.mu.Lock()
		lo := max(part.fetch, part.sized)
		for i := range res.Records {
			r := &res.Records[i]
			if r.Offset < lo {
				continue
			}
			if _, acked := part.storedAcks[r.Offset]; !acked {
				part.aheadBytes += int64(recordSize(r))
			}
		}
		part.sized = max(part.sized, res.NextOffset)
		ss.mu.Unlock()
		sized = sized || len(res.Records) > 0
	}
	return sized
}

// fetchedAhead takes a record the fetcher read out of its partition's
// sized-ahead bytes (before admit, which forgets stored acks); s.mu is
// held.
func (ss *sharedSub) fetchedAhead(part *sharedPart, r *Record) {
	if r.Offset < part.fetch || r.Offset >= part.sized {
		return
	}
	if _, acked := part.storedAcks[r.Offset]; !acked {
		part.aheadBytes -= int64(recordSize(r))
	}
}

// resizeAhead forgets what was sized ahead in part, after its fetch
// position jumped (records lost to retention); s.mu is held.
func (ss *sharedSub) resizeAhead(part *sharedPart) {
	part.sized, part.aheadBytes = part.fetch, 0
}

// enforceMaxLength settles the oldest fetched records not in flight while a
// subscription is over its max length in records or in bytes (drop-oldest
// and dead-letter policies), each through the committer like an ack. s.mu
// is held.
func (ss *sharedSub) enforceMaxLength() {
	if (ss.cfg.MaxLength <= 0 && ss.cfg.MaxLengthBytes <= 0) || ss.cfg.holdsPublishes() {
		return
	}
	var excess, excessBytes int64
	if ss.cfg.MaxLength > 0 {
		excess = ss.lengthForLimit() - ss.cfg.MaxLength
	}
	if ss.cfg.MaxLengthBytes > 0 {
		excessBytes = ss.bytesForLimit() - ss.cfg.MaxLengthBytes
	}
	if excess <= 0 && excessBytes <= 0 {
		return
	}
	var victims []*pending
	for _, part := range ss.parts {
		for _, p := range part.live {
			switch p.state {
			case stateFresh, stateReady, stateWaiting, stateDelayed, stateParked:
				victims = append(victims, p)
			}
		}
	}
	// Oldest first: by timestamp, then (within a millisecond) by position.
	slices.SortFunc(victims, func(a, b *pending) int {
		if c := a.rec.Timestamp.Compare(b.rec.Timestamp); c != 0 {
			return c
		}
		if a.part.id != b.part.id {
			return cmp.Compare(a.part.id, b.part.id)
		}
		return cmp.Compare(a.rec.Offset, b.rec.Offset)
	})
	var drop []*pending
	for _, p := range victims {
		if excess <= 0 && excessBytes <= 0 {
			break
		}
		excess--
		excessBytes -= p.bytes
		if p.state == stateParked {
			// It never held its key: settling it must not pass the key on.
			kq := ss.keys[p.key]
			kq.parked = slices.DeleteFunc(kq.parked, func(q *pending) bool { return q == p })
			p.keyed = false
		}
		if ss.cfg.Overflow == OverflowDeadLetter {
			ss.deadLetter(p, ReasonMaxLength)
			continue
		}
		ss.leaveBuffer(p)
		ss.markSettling(p)
		drop = append(drop, p)
	}
	if len(drop) > 0 {
		ss.commitAsync(&commitOp{acks: drop})
	}
	// What is over the limit and not fetched yet is dropped once the
	// fetcher brings it in (enforcement runs after every fetch): a record
	// skipped without being settled durably could come back after a crash.
	ss.signal()
}

// afterPublish applies the max length of the stream's subscriptions.
func (s *stream) afterPublish() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ss := range s.subs {
		if (ss.cfg.MaxLength <= 0 && ss.cfg.MaxLengthBytes <= 0) || ss.cfg.holdsPublishes() {
			continue
		}
		if ss.cfg.MaxLengthBytes > 0 {
			ss.sizeAhead(ss.ctx, syncSizeBytes)
		}
		ss.mu.Lock()
		ss.enforceMaxLength()
		ss.mu.Unlock()
	}
}
