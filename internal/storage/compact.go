package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

// CompactionStats reports what one Compact pass did.
type CompactionStats struct {
	SegmentsRewritten int
	RecordsRemoved    int64
	BytesBefore       int64 // of the rewritten segments
	BytesAfter        int64
}

// keyHash identifies a key by 128 bits of two independently seeded hashes,
// so the map's memory does not depend on key sizes; a collision would need
// both 64-bit halves to agree.
type keyHash [2]uint64

var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func hashKey(k []byte) keyHash {
	return keyHash{maphash.Bytes(keySeeds[0], k), maphash.Bytes(keySeeds[1], k)}
}

// Compact keeps, in every closed segment, only the newest record of each key
// (looking at the whole log, active segment included), drops tombstones (null
// values) older than TombstoneRetention, and keeps records without a key and
// control batches. Offsets are preserved, leaving gaps. Each segment is
// rewritten beside the original and swapped in with a rename, so appends and
// reads go on meanwhile and a crash leaves either the old or the new segment.
func (l *Log) Compact(ctx context.Context) (CompactionStats, error) {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	var st CompactionStats
	segs := *l.segs.Load()
	if len(segs) < 2 {
		return st, nil
	}
	latest := make(map[keyHash]int64)
	var it record.Iterator
	var rec record.Record
	for _, s := range segs {
		err := l.withSegment(s, func(f vfs.File, limit int64) error {
			return forEachBatch(f, limit, func(batch []byte, _ int64) error {
				if err := l.stopping(ctx); err != nil {
					return err
				}
				if err := it.Reset(batch); err != nil {
					return err
				}
				for it.Next(&rec) {
					if rec.Key != nil {
						latest[hashKey(rec.Key)] = rec.Offset
					}
				}
				return it.Err()
			})
		})
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if err != nil {
			return st, err
		}
	}
	horizon := l.opts.Now().Add(-l.opts.TombstoneRetention).UnixMilli()
	for _, s := range segs[:len(segs)-1] {
		if err := l.compactSegment(ctx, s, latest, horizon, &st); err != nil {
			if errors.Is(err, errSegmentGone) {
				continue
			}
			return st, err
		}
	}
	return st, nil
}

func (l *Log) stopping(ctx context.Context) error {
	select {
	case <-l.quit:
		return ErrClosed
	default:
	}
	return ctx.Err()
}

// withSegment runs fn with the segment's file and readable size while holding
// a reference to it.
func (l *Log) withSegment(s *segment, fn func(f vfs.File, limit int64) error) error {
	if !s.tryAcquire() {
		return errSegmentGone
	}
	defer s.release()
	f, err := s.openFile()
	if err != nil {
		return err
	}
	return fn(f, s.size.Load())
}

// compactSegment rewrites one closed segment if it holds anything to drop.
func (l *Log) compactSegment(ctx context.Context, s *segment, latest map[keyHash]int64, horizon int64, st *CompactionStats) error {
	keep := func(r *record.Record) bool {
		if r.Key == nil {
			return true
		}
		if latest[hashKey(r.Key)] != r.Offset {
			return false
		}
		return r.Value != nil || r.Timestamp >= horizon
	}
	var out []byte
	var it record.Iterator
	var rec record.Record
	var kept []record.Record
	removed := int64(0)
	x := newSegmentIndex()
	lastBatch := int64(-1)
	var before int64
	err := l.withSegment(s, func(f vfs.File, limit int64) error {
		before = limit
		return forEachBatch(f, limit, func(batch []byte, _ int64) error {
			if err := l.stopping(ctx); err != nil {
				return err
			}
			h, err := record.ParseHeader(batch)
			if err != nil {
				return err
			}
			start := len(out)
			if h.IsControl() {
				out = append(out, batch...)
			} else {
				if err := it.Reset(batch); err != nil {
					return err
				}
				kept = kept[:0]
				total := 0
				for it.Next(&rec) {
					total++
					if keep(&rec) {
						kept = append(kept, cloneRecord(rec))
					}
				}
				if err := it.Err(); err != nil {
					return err
				}
				removed += int64(total - len(kept))
				switch {
				case len(kept) == total:
					out = append(out, batch...)
				case len(kept) > 0:
					opts := h.Options() // codec, producer, transactional and timestamp-type bits
					opts.BaseOffset = kept[0].Offset
					if out, err = record.AppendBatch(out, opts, kept); err != nil {
						return err
					}
				}
			}
			if len(out) > start {
				nh, _ := record.ParseHeader(out[start:])
				x.observe(nh.BaseOffset, int64(start), nh.MaxTimestamp, l.opts.IndexIntervalBytes)
				lastBatch = nh.BaseOffset
			}
			return nil
		})
	})
	if err != nil || removed == 0 {
		return err
	}
	if len(out) == 0 {
		// Everything in the segment is superseded. An empty segment keeps
		// its place (its base offset bounds the offsets of the one before),
		// so write it empty rather than deleting it.
		lastBatch = -1
	}
	x.seal(lastBatch)

	cleaned := s.path(logSuffix + cleanedSuffix)
	if err := writeFileAtomic(l.fs, cleaned, out, false); err != nil {
		return fmt.Errorf("storage: write compacted segment: %w", err)
	}
	ns := newSegment(l.fs, l.dir, s.base)
	ns.size.Store(int64(len(out)))
	ns.index = x
	var swapErr error
	changed := l.replaceSegments(func(cur []*segment) []*segment {
		i := 0
		for i < len(cur) && cur[i] != s {
			i++
		}
		if i == len(cur) {
			return nil // deleted by retention meanwhile
		}
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(s.path(suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				swapErr = err
				return nil
			}
		}
		if swapErr = l.fs.Rename(cleaned, s.path(logSuffix)); swapErr != nil {
			return nil
		}
		if swapErr = l.fs.SyncDir(l.dir); swapErr != nil {
			return nil
		}
		next := append([]*segment(nil), cur...)
		next[i] = ns
		return next
	})
	if !changed {
		l.fs.Remove(cleaned)
		return swapErr
	}
	s.release()
	if err := writeIndexFiles(l.fs, l.dir, s.base, x); err != nil {
		l.opts.Logger.Warn("could not write index of compacted segment; it will be rebuilt", "segment", s.path(logSuffix), "err", err)
	}
	st.SegmentsRewritten++
	st.RecordsRemoved += removed
	st.BytesBefore += before
	st.BytesAfter += int64(len(out))
	return nil
}

// cloneRecord copies what a record aliases from the iterator's buffers.
func cloneRecord(r record.Record) record.Record {
	r.Key = cloneBytes(r.Key)
	r.Value = cloneBytes(r.Value)
	if r.Headers != nil {
		hs := make([]record.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = record.RecordHeader{Key: h.Key, Value: cloneBytes(h.Value)}
		}
		r.Headers = hs
	}
	return r
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// forEachBatch calls fn with every whole batch of f below limit, reading
// sequentially in large chunks. A batch that does not parse is an error.
func forEachBatch(f vfs.File, limit int64, fn func(batch []byte, pos int64) error) error {
	buf := make([]byte, 0, scanChunk)
	var pos int64
	for pos < limit {
		n := min(int64(cap(buf)), limit-pos)
		buf = buf[:n]
		if _, err := readFull(f, buf, pos); err != nil {
			return err
		}
		rel := 0
		for rel < len(buf) {
			size, err := record.BatchSize(buf[rel:])
			if errors.Is(err, record.ErrShort) || (err == nil && rel+size > len(buf)) {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: at byte %d: %w", ErrCorruptSegment, pos+int64(rel), err)
			}
			if err := fn(buf[rel:rel+size], pos+int64(rel)); err != nil {
				return err
			}
			rel += size
		}
		if rel == 0 {
			// One batch larger than the buffer: grow to hold it.
			size, err := record.BatchSize(buf)
			if err != nil || pos+int64(size) > limit {
				return fmt.Errorf("%w: batch at byte %d runs past the end", ErrCorruptSegment, pos)
			}
			buf = make([]byte, 0, size)
			continue
		}
		pos += int64(rel)
	}
	return nil
}
