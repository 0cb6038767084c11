package storage

import (
	"errors"
	"fmt"
	"sort"

	"github.com/weirmq/weir/internal/record"
)

// Read appends to dst whole batches starting with the one that holds offset,
// up to maxBytes in all; the first batch is returned whole even when it alone
// is larger, so a reader always makes progress. The first batch may start
// before offset (a batch is never split), and offsets may have gaps in a
// compacted log. Reading at EndOffset returns nothing and no error; below
// StartOffset or above EndOffset is ErrOffsetOutOfRange.
func (l *Log) Read(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	for {
		end, start := l.end.Load(), l.start.Load()
		if offset < start || offset > end {
			return dst, fmt.Errorf("%w: %d is outside [%d, %d]", ErrOffsetOutOfRange, offset, start, end)
		}
		if offset == end {
			return dst, nil
		}
		out, err := l.readFrom(dst, offset, maxBytes)
		if errors.Is(err, errSegmentGone) {
			continue // retention or compaction changed the list under us
		}
		return out, err
	}
}

func (l *Log) readFrom(dst []byte, offset int64, maxBytes int) ([]byte, error) {
	segs := *l.segs.Load()
	i := findSegment(segs, offset)
	for ; i < len(segs); i++ {
		s := segs[i]
		if !s.tryAcquire() {
			return dst, errSegmentGone
		}
		out, err := s.read(dst, offset, maxBytes, &l.opts)
		s.release()
		if err != nil || len(out) > len(dst) {
			return out, err
		}
		// Nothing at or past offset in this segment (a compacted tail): the
		// next segment's first batch is the answer.
	}
	return dst, nil
}

// findSegment returns the index of the last segment whose base is at most
// offset (0 when offset precedes all of them).
func findSegment(segs []*segment, offset int64) int {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset })
	return max(i-1, 0)
}

// read appends the batches of s that hold offset or later, as Log.Read.
func (s *segment) read(dst []byte, offset int64, maxBytes int, opts *Options) ([]byte, error) {
	x, err := s.loadIndex(opts)
	if err != nil {
		return dst, err
	}
	f, err := s.openFile()
	if err != nil {
		return dst, err
	}
	limit := s.size.Load()
	pos := x.lookup(offset)
	orig := len(dst)
	for pos < limit {
		// One read brings the batch holding offset (within an index interval
		// of pos) and what follows, up to maxBytes.
		window := min(limit-pos, int64(maxBytes)+2*opts.IndexIntervalBytes)
		dst = grow(dst[:orig], int(window))
		buf := dst[orig : orig+int(window)]
		if _, err := readFull(f, buf, pos); err != nil {
			return dst[:orig], fmt.Errorf("storage: read %s at %d: %w", s.path(logSuffix), pos, err)
		}
		rel := 0
		for rel+record.HeaderSize <= len(buf) {
			h, err := record.ParseHeader(buf[rel:])
			if err != nil {
				return dst[:orig], fmt.Errorf("%w: %s at byte %d: %w", ErrCorruptSegment, s.path(logSuffix), pos+int64(rel), err)
			}
			size := h.Size()
			if h.LastOffset() < offset {
				rel += size
				continue
			}
			if rel+size > len(buf) {
				// The batch is larger than what was read: read it whole.
				if pos+int64(rel+size) > limit {
					return dst[:orig], fmt.Errorf("%w: %s: batch at byte %d runs past the end", ErrCorruptSegment, s.path(logSuffix), pos+int64(rel))
				}
				dst = grow(dst[:orig], size)
				if _, err := readFull(f, dst[orig:orig+size], pos+int64(rel)); err != nil {
					return dst[:orig], err
				}
				return dst[:orig+size], nil
			}
			// Take whole batches from rel while they fit in maxBytes.
			taken := size
			for rel+taken+12 <= len(buf) {
				n, err := record.BatchSize(buf[rel+taken:])
				if err != nil || taken+n > maxBytes || rel+taken+n > len(buf) {
					break
				}
				taken += n
			}
			copy(dst[orig:], buf[rel:rel+taken])
			return dst[:orig+taken], nil
		}
		if rel == 0 {
			return dst[:orig], fmt.Errorf("%w: %s: truncated batch header at byte %d", ErrCorruptSegment, s.path(logSuffix), pos)
		}
		pos += int64(rel) // every batch read was before offset: read on
	}
	return dst[:orig], nil
}

// grow extends b by n bytes, at least doubling its capacity when it must
// move it, so that reads appended one after the other into one buffer (a
// fetch over many partitions) move it a few times, not at each read.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), max(len(b)+n, 2*cap(b)))
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// OffsetForTime returns the offset of the first record whose timestamp is at
// or after ts (milliseconds), and false when there is none (every record is
// older; a reader would start at EndOffset).
func (l *Log) OffsetForTime(ts int64) (int64, bool, error) {
	for {
		off, found, err := l.offsetForTime(ts)
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if found {
			off = max(off, l.start.Load())
		}
		return off, found, err
	}
}

func (l *Log) offsetForTime(ts int64) (int64, bool, error) {
	segs := *l.segs.Load()
	start := l.start.Load()
	for i := findSegment(segs, start); i < len(segs); i++ {
		s := segs[i]
		if !s.tryAcquire() {
			return 0, false, errSegmentGone
		}
		off, found, err := s.offsetForTime(ts, &l.opts)
		s.release()
		if err != nil || found {
			return off, found, err
		}
	}
	return 0, false, nil
}

func (s *segment) offsetForTime(ts int64, opts *Options) (int64, bool, error) {
	x, err := s.loadIndex(opts)
	if err != nil {
		return 0, false, err
	}
	if x.maxTimestamp() < ts {
		return 0, false, nil
	}
	f, err := s.openFile()
	if err != nil {
		return 0, false, err
	}
	pos := int64(0)
	if from := x.timeLookup(ts); from >= 0 {
		pos = x.lookup(from)
	}
	limit := s.size.Load()
	var candidate *record.Header
	var candidatePos int64
	_, err = scanBatches(f, pos, limit, false, func(h *record.Header, p int64) bool {
		if h.MaxTimestamp >= ts {
			hc := *h
			candidate, candidatePos = &hc, p
			return false
		}
		return true
	})
	if err != nil || candidate == nil {
		return 0, false, err
	}
	// The batch holds a record at or after ts; find the first one.
	batch := make([]byte, candidate.Size())
	if _, err := readFull(f, batch, candidatePos); err != nil {
		return 0, false, err
	}
	var it record.Iterator
	if err := it.Reset(batch); err != nil {
		return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
	}
	var r record.Record
	for it.Next(&r) {
		if r.Timestamp >= ts {
			return r.Offset, true, nil
		}
	}
	if err := it.Err(); err != nil {
		return 0, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
	}
	// maxTimestamp promised a record; a batch whose records disagree with
	// its header counts from its last offset.
	return candidate.LastOffset(), true, nil
}
