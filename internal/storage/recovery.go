package storage

import (
	"fmt"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

// recoverSegment opens the last segment as the active one. Everything before
// the last offset-index entry that still points at a valid batch was flushed
// before that entry was written (the writer appends index entries only after
// the data they index was written, and with FSyncAlways after it was synced),
// so only the data after it is verified: batch by batch, by structure and
// CRC. The first batch that is incomplete or invalid marks a torn tail, which
// is truncated away. The cost is bounded by the index flush interval, not by
// the segment or log size.
func (w *writer) recoverSegment(base int64) (err error) {
	l := w.log
	fs := l.fs
	s := newSegment(fs, l.dir, base)
	f, err := fs.OpenAppend(s.path(logSuffix))
	if err != nil {
		return fmt.Errorf("storage: open active segment: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	size, err := f.Size()
	if err != nil {
		return err
	}
	offsets, _ := readWholeFile(fs, s.path(indexSuffix)) // missing or unreadable: rebuilt below
	times, _ := readWholeFile(fs, s.path(timeIndexSuffix))
	x, _ := decodeIndexes(base, size, offsets, times)

	// The last offset entry whose batch checks out is where verification starts.
	start, startOffset := int64(0), base
	kept := 0
	for i := len(x.offsets) - 1; i >= 0; i-- {
		e := x.offsets[i]
		if h, ok := validBatchAt(f, e.pos, size); ok && h.BaseOffset == e.offset {
			start, startOffset, kept = e.pos, e.offset, i+1
			break
		}
	}
	x.offsets = x.offsets[:kept]
	// Time entries at or past the start are re-derived by the scan.
	tk := 0
	for tk < len(x.times) && x.times[tk].offset < startOffset {
		tk++
	}
	x.times = x.times[:tk]
	if start > 0 && tk == 0 {
		// No time entry covers the data before start: scan it all so the
		// time index stays truthful.
		start, startOffset = 0, base
		x.offsets = x.offsets[:0]
	}
	x.maxTs = -1
	if tk > 0 {
		x.maxTs = x.times[tk-1].ts
	}
	x.lastIndexedPos = start

	next, lastBatch := startOffset, int64(-1)
	end, err := scanBatches(f, start, size, true, func(h *record.Header, pos int64) bool {
		// The active segment is never compacted, so its offsets are
		// contiguous: a valid batch with any other base offset is not ours.
		if h.BaseOffset != next {
			return false
		}
		x.observe(h.BaseOffset, pos, h.MaxTimestamp, l.opts.IndexIntervalBytes)
		next, lastBatch = h.LastOffset()+1, h.BaseOffset
		return true
	})
	if err != nil {
		return fmt.Errorf("storage: recover %s: %w", s.path(logSuffix), err)
	}
	if lastBatch < 0 && start > 0 { // the batch validBatchAt accepted was refused
		return fmt.Errorf("%w: %s: verified batch at %d vanished", ErrCorruptSegment, s.path(logSuffix), start)
	}
	if end < size {
		l.opts.Logger.Warn("truncating torn tail of segment", "segment", s.path(logSuffix), "valid_bytes", end, "dropped_bytes", size-end)
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("storage: truncate torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("storage: sync after truncation: %w", err)
		}
	}
	if err := writeIndexFiles(fs, l.dir, base, x); err != nil {
		return fmt.Errorf("storage: rewrite index of active segment: %w", err)
	}
	s.setFile(f)
	s.index = x
	s.size.Store(end)
	w.setActive(s, f)
	w.size, w.durableSize, w.nextOffset, w.lastBatchOffset = end, end, next, lastBatch
	w.createdAt = l.opts.Now()
	return nil
}

// validBatchAt reports whether a whole, valid batch starts at pos.
func validBatchAt(f vfs.File, pos, limit int64) (record.Header, bool) {
	var lenBuf [12]byte
	if pos+12 > limit {
		return record.Header{}, false
	}
	if _, err := readFull(f, lenBuf[:], pos); err != nil {
		return record.Header{}, false
	}
	size, err := record.BatchSize(lenBuf[:])
	if err != nil || pos+int64(size) > limit {
		return record.Header{}, false
	}
	b := make([]byte, size)
	if _, err := readFull(f, b, pos); err != nil {
		return record.Header{}, false
	}
	h, err := record.Validate(b)
	return h, err == nil
}
