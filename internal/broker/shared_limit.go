package broker

import (
	"cmp"
	"fmt"
	"slices"
)

// checkRoom refuses a publish of n records to a stream when a shared
// subscription with the reject-publish policy would pass its max length.
func (s *stream) checkRoom(n int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ss := range s.subs {
		if ss.cfg.MaxLength <= 0 || ss.cfg.Overflow != OverflowRejectPublish {
			continue
		}
		ss.mu.Lock()
		d := ss.lengthForLimit()
		ss.mu.Unlock()
		if d+int64(n) > ss.cfg.MaxLength {
			return fmt.Errorf("%w: subscription %q of %q holds %d records, its max length is %d", ErrQueueFull, ss.cfg.Name, s.meta.Name, d, ss.cfg.MaxLength)
		}
	}
	return nil
}

// enforceMaxLength settles the oldest fetched records not in flight while a
// subscription is over its max length (drop-oldest and dead-letter
// policies), each through the committer like an ack. s.mu is held.
func (ss *sharedSub) enforceMaxLength() {
	if ss.cfg.MaxLength <= 0 || ss.cfg.Overflow == OverflowRejectPublish {
		return
	}
	excess := ss.lengthForLimit() - ss.cfg.MaxLength
	if excess <= 0 {
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
	for _, p := range victims[:min(int64(len(victims)), excess)] {
		excess--
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
		if ss.cfg.MaxLength > 0 && ss.cfg.Overflow != OverflowRejectPublish {
			ss.mu.Lock()
			ss.enforceMaxLength()
			ss.mu.Unlock()
		}
	}
}
