package storage

import (
	"errors"
	"os"
)

// EnforceRetention deletes the oldest closed segments that are past the
// retention age (their newest record is older than RetentionAge) or that
// keep the log over RetentionBytes. The active segment is never deleted. It
// returns how many segments were deleted.
func (l *Log) EnforceRetention() (int, error) {
	if l.opts.RetentionAge <= 0 && l.opts.RetentionBytes <= 0 {
		return 0, nil
	}
	segs := *l.segs.Load()
	closed := segs[:len(segs)-1]
	drop := 0
	if l.opts.RetentionAge > 0 {
		horizon := l.opts.Now().Add(-l.opts.RetentionAge).UnixMilli()
		for drop < len(closed) {
			s := closed[drop]
			if !s.tryAcquire() {
				break
			}
			x, err := s.loadIndex(&l.opts)
			s.release()
			if err != nil {
				return 0, err
			}
			if x.maxTimestamp() >= horizon {
				break
			}
			drop++
		}
	}
	if l.opts.RetentionBytes > 0 {
		var total int64
		for _, s := range segs {
			total += s.size.Load()
		}
		for _, s := range closed[:drop] {
			total -= s.size.Load()
		}
		for drop < len(closed) && total > l.opts.RetentionBytes {
			total -= closed[drop].size.Load()
			drop++
		}
	}
	return l.dropSegments(closed[:drop])
}

// DeleteBefore makes offset the new log start: records below it can no
// longer be read, and every closed segment that holds only such records is
// deleted. The owner persists offset and passes it back as
// Options.StartOffset when it reopens the log. It returns how many segments
// were deleted.
func (l *Log) DeleteBefore(offset int64) (int, error) {
	if offset > l.end.Load() {
		return 0, ErrOffsetOutOfRange
	}
	l.mu.Lock()
	if offset > l.start.Load() {
		l.start.Store(offset)
	}
	l.mu.Unlock()
	segs := *l.segs.Load()
	drop := 0
	for drop < len(segs)-1 && segs[drop+1].base <= offset {
		drop++
	}
	return l.dropSegments(segs[:drop])
}

// dropSegments removes victims, which must be a prefix of the segment list as
// it was read, from the list and deletes their files. Readers that hold one
// finish reading it from the open file.
func (l *Log) dropSegments(victims []*segment) (int, error) {
	if len(victims) == 0 {
		return 0, nil
	}
	changed := l.replaceSegments(func(cur []*segment) []*segment {
		if len(cur) <= len(victims) {
			return nil
		}
		for i, s := range victims {
			if cur[i] != s {
				return nil // the list changed since victims were chosen
			}
		}
		return append([]*segment(nil), cur[len(victims):]...)
	})
	if !changed {
		return 0, nil
	}
	var errs []error
	for _, s := range victims {
		for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if err := l.fs.Remove(s.path(suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		s.release()
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	return len(victims), errors.Join(errs...)
}
