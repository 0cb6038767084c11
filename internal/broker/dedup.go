package broker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/record"
)

// dedupIndex remembers the message-ids a stream stored within its dedup
// window. It lives in memory and is rebuilt at open from the records of the
// last window, so it agrees with the log by construction: nothing is written
// twice per publish and a crash cannot leave it ahead of or behind the data.
type dedupIndex struct {
	window time.Duration

	mu    sync.Mutex
	ids   map[string]*dedupEntry
	order []*dedupEntry // committed entries by expiry; order[head:] are live
	head  int
}

type dedupEntry struct {
	id        string
	partition int32
	offset    int64
	expires   time.Time
	committed bool
	done      chan struct{} // closed once committed or abandoned
	index     int           // the record's position in its publish call
}

func newDedupIndex(window time.Duration) *dedupIndex {
	return &dedupIndex{window: window, ids: make(map[string]*dedupEntry)}
}

// claim returns the committed entry for id (owner false: a duplicate), or a
// new pending entry that the caller owns until it commits or abandons it. If
// another publish holds id pending, claim waits for its outcome.
func (d *dedupIndex) claim(ctx context.Context, id string, now time.Time) (*dedupEntry, bool, error) {
	for {
		d.mu.Lock()
		d.prune(now)
		e, ok := d.ids[id]
		if !ok {
			e = &dedupEntry{id: id, done: make(chan struct{})}
			d.ids[id] = e
			d.mu.Unlock()
			return e, true, nil
		}
		if e.committed {
			d.mu.Unlock()
			return e, false, nil
		}
		done := e.done
		d.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// abandon releases pending entries whose publish failed.
func (d *dedupIndex) abandon(entries []*dedupEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		if d.ids[e.id] == e {
			delete(d.ids, e.id)
		}
		close(e.done)
	}
}

// commit records where the owned entries' records landed.
func (d *dedupIndex) commit(entries []*dedupEntry, results []PublishResult, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		r := results[e.index]
		d.add(e, r.Partition, r.Offset, now.Add(d.window))
		close(e.done)
	}
}

func (d *dedupIndex) add(e *dedupEntry, partition int32, offset int64, expires time.Time) {
	e.partition, e.offset, e.expires, e.committed = partition, offset, expires, true
	d.order = append(d.order, e)
}

// prune forgets entries whose window has passed.
func (d *dedupIndex) prune(now time.Time) {
	for d.head < len(d.order) && !d.order[d.head].expires.After(now) {
		e := d.order[d.head]
		if d.ids[e.id] == e {
			delete(d.ids, e.id)
		}
		d.order[d.head] = nil
		d.head++
	}
	if d.head > 1024 && d.head > len(d.order)/2 {
		d.order = append([]*dedupEntry(nil), d.order[d.head:]...)
		d.head = 0
	}
}

// rebuild reads the records of the last window from every partition and
// indexes their message-ids.
func (d *dedupIndex) rebuild(s *stream, now time.Time) error {
	since := now.Add(-d.window).UnixMilli()
	var it record.Iterator
	var r record.Record
	var entries []*dedupEntry
	for p, l := range s.parts {
		from, found, err := l.OffsetForTime(since)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		err = readRaw(l, from, func(batch []byte) error {
			if err := it.Reset(batch); err != nil {
				return err
			}
			for it.Next(&r) {
				for _, h := range r.Headers {
					if h.Key == HeaderMessageID && r.Timestamp >= since {
						e := &dedupEntry{id: string(h.Value), done: closedChan}
						e.partition, e.offset, e.committed = int32(p), r.Offset, true
						e.expires = time.UnixMilli(r.Timestamp).Add(d.window)
						entries = append(entries, e)
						break
					}
				}
			}
			return it.Err()
		})
		if err != nil {
			return err
		}
	}
	slices.SortStableFunc(entries, func(a, b *dedupEntry) int { return a.expires.Compare(b.expires) })
	for _, e := range entries {
		if _, seen := d.ids[e.id]; !seen {
			d.ids[e.id] = e
			d.order = append(d.order, e)
		}
	}
	return nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
