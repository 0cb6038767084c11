package broker

import (
	"container/heap"
	"errors"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/filter"
)

// fetchBytes is how much the fetcher reads from one partition at a time.
const fetchBytes = 256 << 10

// fetchLoop reads records ahead of the consumers into the buffer.
func (ss *sharedSub) fetchLoop() {
	defer ss.wg.Done()
	idle := time.NewTimer(maxFetchSleep)
	defer idle.Stop()
	next := 0
	for ss.ctx.Err() == nil {
		ss.mu.Lock()
		full, room := ss.buffered >= maxBuffered, ss.room
		ss.mu.Unlock()
		if full {
			// While the buffer is full, size the records ahead of it (a
			// byte limit needs their sizes; a backlog left at a restart
			// has none yet).
			if ss.cfg.MaxLengthBytes > 0 && ss.sizeAhead(ss.ctx, fetchBytes) {
				ss.mu.Lock()
				ss.enforceMaxLength()
				ss.mu.Unlock()
				continue
			}
			select {
			case <-room:
			case <-ss.ctx.Done():
				return
			}
			continue
		}
		fetched, moved, failed := false, false, false
		// Fetch positions are read under the lock: a purge moves them.
		ss.mu.Lock()
		parts := ss.parts
		from := make([]int64, len(parts))
		for i, part := range parts {
			from[i] = part.fetch
		}
		ss.mu.Unlock()
		for i := range len(parts) {
			part, at := parts[(next+i)%len(parts)], from[(next+i)%len(parts)]
			if at >= part.log.EndOffset() {
				continue
			}
			res, err := fetchLog(ss.ctx, nil, part.log, part.id, at, fetchBytes, 0)
			if errors.Is(err, ErrOffsetOutOfRange) && res.StartOffset > at {
				// Retention (by age or size) removed records this
				// subscription had not settled: they are gone.
				ss.b.cfg.Logger.Warn("shared subscription fell behind retention", "stream", ss.cfg.Stream, "subscription", ss.cfg.Name, "partition", part.id, "from", at, "to", res.StartOffset)
				ss.mu.Lock()
				part.fetch = max(part.fetch, res.StartOffset)
				if part.sized < part.fetch {
					part.sized, part.aheadBytes = part.fetch, 0
				} else {
					ss.resizeAhead(part)
				}
				ss.mu.Unlock()
				moved = true
				continue
			}
			if err != nil {
				if ss.ctx.Err() == nil {
					ss.b.cfg.Logger.Warn("shared subscription fetch failed", "stream", ss.cfg.Stream, "subscription", ss.cfg.Name, "partition", part.id, "err", err)
				}
				failed = true
				continue
			}
			ss.mu.Lock()
			now := ss.b.now()
			for i := range res.Records {
				ss.fetchedAhead(part, &res.Records[i])
				ss.admit(part, &res.Records[i], now)
			}
			part.fetch = max(part.fetch, res.NextOffset)
			ss.enforceMaxLength()
			ss.signal()
			ss.mu.Unlock()
			fetched = true
			next = (next + i + 1) % len(parts)
			break
		}
		if !fetched && !moved {
			sleep := maxFetchSleep
			if failed {
				sleep = fetchRetry
			}
			ss.waitForRecords(idle, sleep)
		}
	}
}

// maxFetchSleep bounds the fetcher's sleep while no records arrive (they
// are checked for at least this often even if a signal were missed);
// fetchRetry is its sleep after a failed read.
const (
	maxFetchSleep = time.Minute
	fetchRetry    = time.Second
)

// waitForRecords blocks until a partition's log signals an append (the
// subscription's logs signal ss.arrived, see Log.Notify), partitions are
// added, or sleep passes. A signal that came since the fetcher last looked
// at the logs is still standing, so none is lost; one goroutine waits for
// every partition, where a goroutine per partition blocked in Log.Wait
// (and two more) were started for each wait.
func (ss *sharedSub) waitForRecords(idle *time.Timer, sleep time.Duration) {
	ss.mu.Lock()
	grown := ss.grown
	ss.mu.Unlock()
	idle.Reset(sleep)
	select {
	case <-ss.arrived:
	case <-grown:
	case <-idle.C:
	case <-ss.ctx.Done():
	}
}

// admit takes a fetched record into the subscription; s.mu is held.
func (ss *sharedSub) admit(part *sharedPart, rec *Record, now time.Time) {
	off := rec.Offset
	if off < part.fetch {
		return
	}
	if _, ok := part.storedAcks[off]; ok {
		delete(part.storedAcks, off) // acknowledged before a restart
		return
	}
	if ss.filter != nil && !ss.matches(rec) {
		return // settled for this subscription; the filter decides the same way after a restart
	}
	p := &pending{part: part, rec: *rec, bytes: int64(recordSize(rec)), heapIndex: -1, expIndex: -1, flightIndex: -1}
	ss.liveBytes += p.bytes
	ss.seenRecords++
	ss.seenBytes += p.bytes
	if d, ok := part.storedDeliveries[off]; ok {
		p.count, p.durable, p.lastError, p.delivered = d.count, d.count, d.lastError, d.count > 0
		delete(part.storedDeliveries, off)
	}
	part.live[off] = p
	part.unsettled.push(off)
	if !p.delivered {
		ss.buffered++
	}
	if t, ok := headerTime(rec, HeaderExpiresAt); ok {
		p.expires = t
	} else if ss.cfg.MessageTTL > 0 {
		p.expires = rec.Timestamp.Add(ss.cfg.MessageTTL)
	}
	if !p.expires.IsZero() {
		heap.Push(&ss.expiring, p)
		ss.wakeTimer()
	}
	if ss.cfg.KeyOrdered && rec.Key != nil {
		p.key, p.keyed = string(rec.Key), true
		if kq, busy := ss.keys[p.key]; busy {
			p.state = stateParked
			kq.parked = append(kq.parked, p)
			return
		}
		ss.keys[p.key] = &keyQueue{}
	}
	ss.schedule(p, now)
}

// schedule queues a record that holds its key (if any) for its first
// delivery, now or at its deliver-at time; s.mu is held.
func (ss *sharedSub) schedule(p *pending, now time.Time) {
	if t, ok := headerTime(&p.rec, HeaderDeliverAt); ok && t.After(now) {
		ss.wait(p, stateDelayed, t)
		return
	}
	if p.delivered {
		p.state = stateReady
		ss.again = append(ss.again, p)
		return
	}
	p.state = stateFresh
	ss.fresh = append(ss.fresh, p)
}

func (ss *sharedSub) matches(rec *Record) bool { return matchRecord(ss.filter, ss.cfg.Stream, rec) }

// matchRecord evaluates a filter on a record. An expression that fails on a
// record (a header it needs is missing or malformed) does not select it.
func matchRecord(f *filter.Filter, stream string, rec *Record) bool {
	in := filter.Input{Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp, Partition: rec.Partition, Offset: rec.Offset, Stream: stream}
	ok, err := f.Match(&in)
	return err == nil && ok
}

// headerTime reads a time header: RFC 3339, or milliseconds since the epoch.
func headerTime(rec *Record, name string) (time.Time, bool) {
	for _, h := range rec.Headers {
		if h.Key != name {
			continue
		}
		v := string(h.Value)
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.UnixMilli(ms), true
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, true
		}
		return time.Time{}, false
	}
	return time.Time{}, false
}

// expire settles an expired record: dropped, or dead-lettered; s.mu is
// held.
func (ss *sharedSub) expire(p *pending) {
	if ss.cfg.ExpiredDeadLetter {
		ss.deadLetter(p, ReasonExpired)
		return
	}
	ss.leaveBuffer(p)
	ss.markSettling(p)
	ss.commitAsync(&commitOp{acks: []*pending{p}})
}

// leaveBuffer stops counting a never-delivered record in the buffer.
func (ss *sharedSub) leaveBuffer(p *pending) {
	if !p.delivered {
		p.delivered = true
		ss.buffered--
	}
}

// settle forgets a record whose settlement is durable, and lets the next
// record of its key go; s.mu is held.
func (ss *sharedSub) settle(p *pending) {
	if p.state == stateSettled {
		return
	}
	if p.state == stateSettling {
		ss.settling--
		ss.settlingBytes -= p.bytes
	}
	p.state = stateSettled
	if p.expIndex >= 0 {
		heap.Remove(&ss.expiring, p.expIndex)
	}
	if p.flightIndex >= 0 {
		heap.Remove(&ss.inflight, p.flightIndex)
	}
	delete(p.part.live, p.rec.Offset)
	ss.liveBytes -= p.bytes
	ss.leaveBuffer(p)
	if !p.keyed {
		return
	}
	kq := ss.keys[p.key]
	if kq == nil {
		return
	}
	if len(kq.parked) == 0 {
		delete(ss.keys, p.key)
		return
	}
	next := kq.parked[0]
	kq.parked = kq.parked[1:]
	ss.schedule(next, ss.b.now())
}
