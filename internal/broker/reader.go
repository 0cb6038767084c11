package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/filter"
)

// Reader reads several partitions of one stream from positions it keeps in
// memory: the building block of ephemeral subscriptions (a Tail reader) and
// of group consumers (positions from the group's assignment). A Reader is
// not safe for concurrent use.
type Reader struct {
	b      *Broker
	stream *stream
	pos    map[int32]int64
	order  []int32 // assigned partitions, sorted; reads start in turn
	next   int
	// follow makes the reader pick up partitions added to the stream later
	// (from their start), as a live subscriber expects.
	follow bool
	filter *filter.Filter
}

// SetFilter makes the reader skip records that do not match f (nil: none).
func (r *Reader) SetFilter(f *filter.Filter) { r.filter = f }

// NewReader returns a reader of the given partitions from the given offsets.
func (b *Broker) NewReader(streamName string, positions map[int32]int64) (*Reader, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return nil, err
	}
	r := &Reader{b: b, stream: s, pos: make(map[int32]int64)}
	for p, off := range positions {
		if _, err := s.partition(p); err != nil {
			return nil, err
		}
		r.Assign(p, off)
	}
	return r, nil
}

// Tail returns an ephemeral subscription: a reader of every partition from
// its end now, so it sees only records published from now on. Nothing about
// it is stored; if it falls behind retention it skips ahead (at most once).
func (b *Broker) Tail(streamName string) (*Reader, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return nil, err
	}
	r := &Reader{b: b, stream: s, pos: make(map[int32]int64), follow: true}
	for p, l := range s.partitions() {
		r.Assign(int32(p), l.EndOffset())
	}
	return r, nil
}

// Assign adds a partition (or moves it) to offset.
func (r *Reader) Assign(partition int32, offset int64) {
	if _, ok := r.pos[partition]; !ok {
		r.order = append(r.order, partition)
		slices.Sort(r.order)
	}
	r.pos[partition] = offset
}

// Unassign stops reading a partition.
func (r *Reader) Unassign(partition int32) {
	if _, ok := r.pos[partition]; !ok {
		return
	}
	delete(r.pos, partition)
	r.order = slices.DeleteFunc(r.order, func(p int32) bool { return p == partition })
}

// Positions returns the next offset to read of every assigned partition.
func (r *Reader) Positions() map[int32]int64 {
	out := make(map[int32]int64, len(r.pos))
	for p, off := range r.pos {
		out[p] = off
	}
	return out
}

// Read returns the next records of one assigned partition, up to about
// maxBytes, taking partitions in turn so none starves. When none has a
// record it waits up to maxWait for one; it then returns what it has (maybe
// nothing).
func (r *Reader) Read(ctx context.Context, maxBytes int, maxWait time.Duration) ([]Record, error) {
	if r.follow {
		if parts := r.stream.partitions(); len(parts) > len(r.order) {
			for p := int32(len(r.order)); p < int32(len(parts)); p++ {
				r.Assign(p, parts[p].StartOffset())
			}
		}
	}
	recs, err := r.readOnce(ctx, maxBytes)
	if err != nil || len(recs) > 0 || maxWait <= 0 {
		return recs, err
	}
	if err := r.waitAny(ctx, maxWait); err != nil {
		return nil, err
	}
	return r.readOnce(ctx, maxBytes)
}

func (r *Reader) readOnce(ctx context.Context, maxBytes int) ([]Record, error) {
	if maxBytes <= 0 {
		maxBytes = readChunk
	}
	parts := r.stream.partitions()
	// The first partition in turn that has records answers alone: its
	// records come back as decoded, never copied into a shared slice.
	for i := range len(r.order) {
		k := (r.next + i) % len(r.order)
		p := r.order[k]
		l := parts[p]
		off := r.pos[p]
		if off >= l.EndOffset() {
			continue
		}
		res, err := fetchLog(ctx, nil, l, p, off, maxBytes, 0)
		if errors.Is(err, ErrOffsetOutOfRange) {
			// Retention removed what this reader had not read yet: go on
			// from the oldest record retained.
			r.b.cfg.Logger.Warn("reader fell behind retention; skipping ahead", "stream", r.stream.meta.Name, "partition", p, "from", off, "to", res.StartOffset)
			r.pos[p] = res.StartOffset
			continue
		}
		if err != nil {
			return nil, err
		}
		r.pos[p] = res.NextOffset
		if r.filter != nil {
			res.Records = slices.DeleteFunc(res.Records, func(rec Record) bool {
				return !matchRecord(r.filter, r.stream.meta.Name, &rec)
			})
		}
		if len(res.Records) > 0 {
			r.next = (k + 1) % len(r.order)
			return res.Records, nil
		}
	}
	return nil, nil
}

// waitAny blocks until a record arrives in any assigned partition, maxWait
// passes, or ctx ends.
func (r *Reader) waitAny(ctx context.Context, maxWait time.Duration) error {
	if len(r.order) == 0 {
		select {
		case <-time.After(maxWait):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	parts := r.stream.partitions()
	var wg sync.WaitGroup
	for _, p := range r.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if parts[p].Wait(wctx, r.pos[p]) == nil {
				cancel() // data: wake the others
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.b.ctx.Err() != nil {
		return fmt.Errorf("%w", ErrClosed)
	}
	return nil
}
