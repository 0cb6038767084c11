package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	cleanedSuffix   = ".cleaned" // a compacted segment being written
	tmpSuffix       = ".tmp"     // an index file being written
	offsetNameWidth = 20
)

func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%0*d%s", offsetNameWidth, base, suffix)
}

// parseSegmentName returns the base offset of a "<base>.log" file name.
func parseSegmentName(name string) (int64, bool) {
	stem, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(stem) != offsetNameWidth {
		return 0, false
	}
	base, err := strconv.ParseInt(stem, 10, 64)
	return base, err == nil && base >= 0
}

// segment is one log file and its indexes. The log's segment list holds one
// reference; readers take another for the duration of a read, so a segment
// removed by retention or replaced by compaction closes its file only when the
// last reader is done.
type segment struct {
	fs   vfs.FS
	dir  string
	base int64

	refs atomic.Int64

	// size is the number of bytes readers may read: for the active segment,
	// what the writer committed; for a closed one, the file size.
	size atomic.Int64

	mu    sync.Mutex // guards the lazy opening of file and index
	file  vfs.File
	index *segmentIndex
}

func newSegment(fs vfs.FS, dir string, base int64) *segment {
	s := &segment{fs: fs, dir: dir, base: base}
	s.refs.Store(1)
	return s
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base, suffix))
}

func (s *segment) tryAcquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.mu.Lock()
		if s.file != nil {
			s.file.Close()
			s.file = nil
			openFiles.Add(-1)
		}
		s.mu.Unlock()
	}
}

// openFiles counts the segment files held open by every log of the
// process: a file descriptor each, as OpenFiles reports.
var openFiles atomic.Int64

// OpenFiles is the number of segment files the logs of this process hold
// open (one for each partition's active segment, one for each sealed
// segment read since it was opened), so that a server can leave them room
// under the process's open-file limit.
func OpenFiles() int64 { return openFiles.Load() }

// setFile makes f the segment's open log file; s.mu is held or s is not
// shared yet.
func (s *segment) setFile(f vfs.File) {
	s.file = f
	openFiles.Add(1)
}

// openFile returns the segment's file, opening it read-only on first use.
// The active segment's file is set by the writer when it creates or recovers
// the segment.
func (s *segment) openFile() (vfs.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		return s.file, nil
	}
	f, err := s.fs.Open(s.path(logSuffix))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errSegmentGone
		}
		return nil, err
	}
	s.setFile(f)
	return f, nil
}

// loadIndex returns the segment's index, reading the index files of a closed
// segment on first use and rebuilding them from the log when they are
// missing or damaged.
func (s *segment) loadIndex(opts *Options) (*segmentIndex, error) {
	s.mu.Lock()
	x := s.index
	s.mu.Unlock()
	if x != nil {
		return x, nil
	}
	f, err := s.openFile()
	if err != nil {
		return nil, err
	}
	size := s.size.Load()
	offsets, err1 := readWholeFile(s.fs, s.path(indexSuffix))
	times, err2 := readWholeFile(s.fs, s.path(timeIndexSuffix))
	var ok bool
	if err1 == nil && err2 == nil {
		x, ok = decodeIndexes(s.base, size, offsets, times)
		if ok && size > 0 && len(x.times) == 0 {
			ok = false // a non-empty segment always has a time entry
		}
	}
	if !ok {
		opts.Logger.Warn("rebuilding segment index", "segment", s.path(logSuffix), "index_error", errors.Join(err1, err2))
		x = newSegmentIndex()
		var last int64 = -1
		end, err := scanBatches(f, 0, size, true, func(h *record.Header, pos int64) bool {
			x.observe(h.BaseOffset, pos, h.MaxTimestamp, opts.IndexIntervalBytes)
			last = h.BaseOffset
			return true
		})
		if err != nil {
			return nil, err
		}
		if end != size {
			return nil, fmt.Errorf("%w: %s: invalid batch at byte %d of %d", ErrCorruptSegment, s.path(logSuffix), end, size)
		}
		x.seal(last)
		if err := writeIndexFiles(s.fs, s.dir, s.base, x); err != nil {
			opts.Logger.Warn("could not persist rebuilt index", "segment", s.path(logSuffix), "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index == nil {
		s.index = x
	}
	return s.index, nil
}

func readWholeFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return b, nil
}

// writeIndexFiles replaces both index files of a segment atomically (write a
// temporary file, sync it, rename it over the old one, sync the directory).
func writeIndexFiles(fs vfs.FS, dir string, base int64, x *segmentIndex) error {
	offsets, times := x.encode(base)
	for _, f := range []struct {
		suffix string
		data   []byte
	}{{indexSuffix, offsets}, {timeIndexSuffix, times}} {
		final := filepath.Join(dir, segmentName(base, f.suffix))
		if err := writeFileAtomic(fs, final, f.data, false); err != nil {
			return err
		}
	}
	return fs.SyncDir(dir)
}

// writeFileAtomic writes data to name through a temporary file and a rename;
// with syncDir the directory is synced too.
func writeFileAtomic(fs vfs.FS, name string, data []byte, syncDir bool) error {
	tmp := name + tmpSuffix
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, name)
	}
	if err != nil {
		fs.Remove(tmp)
		return err
	}
	if syncDir {
		return fs.SyncDir(filepath.Dir(name))
	}
	return nil
}

// scanChunk is how much scanBatches reads at a time.
const scanChunk = 1 << 20

// scanBatches walks the batches of f from byte pos up to limit, calling fn
// with each header and its position until fn returns false. With verify, each
// batch's CRC and structure are checked. It stops at the first batch that is
// incomplete or invalid, or that fn refused, and returns the position where
// that batch starts (limit when every batch was valid and accepted); err is
// only an I/O error.
func scanBatches(f vfs.File, pos, limit int64, verify bool, fn func(h *record.Header, pos int64) bool) (int64, error) {
	buf := make([]byte, 0, scanChunk)
	bufStart := pos // file position of buf[0]
	for pos < limit {
		// Make sure buf holds the batch header at pos.
		if pos+record.HeaderSize > bufStart+int64(len(buf)) {
			if err := refill(f, &buf, &bufStart, pos, limit, record.HeaderSize); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return pos, nil
				}
				return pos, err
			}
		}
		rel := pos - bufStart
		size, err := record.BatchSize(buf[rel:])
		if err != nil || pos+int64(size) > limit {
			return pos, nil
		}
		if verify && pos+int64(size) > bufStart+int64(len(buf)) {
			if err := refill(f, &buf, &bufStart, pos, limit, size); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return pos, nil
				}
				return pos, err
			}
			rel = 0
		}
		var h record.Header
		if verify {
			h, err = record.Validate(buf[rel : rel+int64(size)])
		} else {
			h, err = record.ParseHeader(buf[rel:])
		}
		if err != nil {
			return pos, nil
		}
		if !fn(&h, pos) {
			return pos, nil
		}
		pos += int64(size)
	}
	return pos, nil
}

// refill reads from pos into buf so that at least need bytes (bounded by
// limit) are present; it returns io.ErrUnexpectedEOF when limit comes first.
func refill(f vfs.File, buf *[]byte, bufStart *int64, pos, limit int64, need int) error {
	if pos+int64(need) > limit {
		return io.ErrUnexpectedEOF
	}
	n := max(int64(need), scanChunk)
	n = min(n, limit-pos)
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	*buf = (*buf)[:n]
	*bufStart = pos
	if _, err := readFull(f, *buf, pos); err != nil {
		return err
	}
	return nil
}

// readFull reads exactly len(b) bytes at off; a file shorter than that is
// io.ErrUnexpectedEOF.
func readFull(f vfs.File, b []byte, off int64) (int, error) {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
