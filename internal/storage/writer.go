package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

// appendRequest is one Append (or Sync) waiting for the writer.
type appendRequest struct {
	data     []byte
	syncOnly bool
	// afterFailures: the request fails with ErrEarlierFailed if the log's
	// Failures has gone past failures when the writer reaches it
	// (SubmitAfter).
	afterFailures bool
	failures      uint64
	done          chan struct{} // capacity 1
	result        AppendResult
	err           error
}

// requestPool recycles a log's append requests (one per log, so that a
// request's channel never outlives the log it was made for).
type requestPool struct{ pool sync.Pool }

func (rp *requestPool) get(data []byte) *appendRequest {
	r, _ := rp.pool.Get().(*appendRequest)
	if r == nil {
		r = &appendRequest{done: make(chan struct{}, 1)}
	}
	r.data = data
	return r
}

func (rp *requestPool) put(r *appendRequest) {
	*r = appendRequest{done: r.done}
	rp.pool.Put(r)
}

func (r *appendRequest) finish(res AppendResult, err error) {
	r.result, r.err = res, err
	r.done <- struct{}{}
}

// batchMeta is what the writer notes of each batch it writes, to index it
// once the write is committed.
type batchMeta struct {
	offset, pos, maxTs int64
}

// Offsets of fields the writer reads straight from a validated batch.
const (
	lastOffsetDeltaAt = 23
	maxTimestampAt    = 35
	// maxMergeWait bounds how long the writer waits after a flush for the
	// appenders it answered to append again (see run).
	maxMergeWait = 200 * time.Microsecond
	// indexFlushEntries is how many offset-index entries the writer keeps in
	// memory before appending them to the index files; recovery re-scans at
	// most about this many index intervals of the active segment.
	indexFlushEntries = 64
)

// writer is the single goroutine that appends to the active segment.
type writer struct {
	log *Log

	active *segment
	file   vfs.File // the active segment's log file
	// flushes is the flush group of file's filesystem (Options.Flusher),
	// nil to fdatasync the file on its own.
	flushes *flushGroup
	// The index files are opened only to append (flushIndex): an idle
	// partition holds one file descriptor, not three.
	size            int64 // bytes written to the active segment
	durableSize     int64 // bytes of it known to be fsynced
	nextOffset      int64
	lastBatchOffset int64 // base offset of the active segment's last batch, -1 if none
	createdAt       time.Time
	dirty           bool          // written since the last fsync
	lastAcked       int           // requests the last commit answered
	flushEnd        time.Time     // when the last commit finished
	lastSync        time.Duration // how long the last fsync took
	merge           mergeGate

	pendingIdx  []byte
	pendingTime []byte
	metas       []batchMeta
	group       []*appendRequest
}

func (w *writer) run() {
	defer w.log.done.Done()
	l := w.log
	var tick <-chan time.Time
	if l.opts.FSync == FSyncInterval {
		t := time.NewTicker(l.opts.FSyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var first *appendRequest
		select {
		case first = <-l.appends:
		case <-tick:
			if w.dirty {
				if err := w.sync(); err != nil {
					// Acknowledged data may not be durable: refuse further appends.
					l.fail(err)
				}
			}
			continue
		case <-l.quit:
			// Close holds closeMu exclusively before closing quit, so no
			// Append can enqueue now: finish what is queued.
			for {
				select {
				case r := <-l.appends:
					w.commit(append(w.group[:0], r))
				default:
					return
				}
			}
		}
		group, bytes := w.drain(append(w.group[:0], first), len(first.data))
		if l.opts.FSync == FSyncAlways && w.lastAcked > 0 && w.merge.wait() {
			// The appenders the last flush answered may be about to append
			// again (appenders that wait for each append, closed loop).
			// Waiting a moment for them merges them into this group
			// instead of leaving them for the next flush: one flush then
			// carries twice the data. Only right after a flush (a busy
			// writer), for a fraction of the flush time, and while such
			// waits bring them back (mergeGate).
			window := min(maxMergeWait, w.lastSync/2)
			before := len(group)
			target := before + w.lastAcked
			for len(group) < target && bytes < l.opts.MaxGroupBytes && time.Since(w.flushEnd) < window {
				runtime.Gosched()
				group, bytes = w.drain(group, bytes)
			}
			w.merge.waited(len(group)-before, w.lastAcked)
		}
		acked := w.commit(group)
		w.lastAcked, w.flushEnd = acked, time.Now()
		clear(group)
		w.group = group[:0]
	}
}

// mergeGate decides whether the writer waits after a flush for the
// appenders it answered (writer.run). The wait spins, so it costs a core
// while it lasts: worth it when those appenders come straight back, waste
// when appends arrive on their own schedule (producers that keep requests
// in flight, a light load), where it took a tenth of a core at 5,000
// records/s over 16 partitions and added its window to every append. A
// wait that brings back at least half of the answered appenders pays; after
// one that does not, the writer skips the next 1, 2, 4, ... 64 waits,
// then tries again.
type mergeGate struct {
	skip    int // waits still to skip
	backoff int // skips after the next wait that does not pay
}

const maxMergeSkip = 64

func (g *mergeGate) wait() bool {
	if g.skip > 0 {
		g.skip--
		return false
	}
	return true
}

// waited notes what a wait brought: gained appends, acked the last flush
// answered.
func (g *mergeGate) waited(gained, acked int) {
	if 2*gained >= acked {
		g.backoff = 0
		return
	}
	g.backoff = min(max(2*g.backoff, 1), maxMergeSkip)
	g.skip = g.backoff
}

// drain adds what is queued, without waiting, to group.
func (w *writer) drain(group []*appendRequest, bytes int) ([]*appendRequest, int) {
	for bytes < w.log.opts.MaxGroupBytes {
		select {
		case r := <-w.log.appends:
			group = append(group, r)
			bytes += len(r.data)
		default:
			return group, bytes
		}
	}
	return group, bytes
}

// commit writes a group of requests, rolling segments where they fill up,
// and returns how many it answered.
func (w *writer) commit(group []*appendRequest) int {
	l := w.log
	n := len(group)
	if err := l.err(); err != nil {
		for _, r := range group {
			r.finish(AppendResult{}, err)
		}
		return n
	}
	for len(group) > 0 {
		if r := group[0]; r.afterFailures && l.failures.Load() > r.failures {
			// Submitted behind data of its caller's that has failed since.
			r.finish(AppendResult{}, ErrEarlierFailed)
			group = group[1:]
			continue
		}
		if group[0].syncOnly {
			var err error
			if w.dirty {
				err = w.sync()
			}
			group[0].finish(AppendResult{}, err)
			group = group[1:]
			continue
		}
		fit, offsets := 0, int64(0)
		room := l.opts.SegmentBytes - w.size
		for _, r := range group {
			if r.syncOnly || r.afterFailures && l.failures.Load() > r.failures {
				break
			}
			c := countOffsets(r.data)
			if int64(len(r.data)) > room || w.nextOffset+offsets+c-w.active.base > maxRelativeOffset {
				break
			}
			room -= int64(len(r.data))
			offsets += c
			fit++
		}
		if fit == 0 && w.size == 0 {
			// Cannot happen for input Append accepted; never loop on it.
			w.log.failures.Add(1)
			group[0].finish(AppendResult{}, ErrBatchTooLarge)
			group = group[1:]
			continue
		}
		if fit == 0 || w.segmentExpired() {
			err := w.roll()
			if err == nil {
				continue
			}
			if fit == 0 {
				// No room and no new segment: fail this request and go on
				// (the next may fit, or space may come back).
				w.log.failures.Add(1)
				group[0].finish(AppendResult{}, fmt.Errorf("storage: roll segment: %w", err))
				group = group[1:]
				continue
			}
			l.opts.Logger.Warn("could not roll an expired segment", "dir", l.dir, "err", err)
		}
		w.commitRun(group[:fit])
		group = group[fit:]
	}
	return n
}

func (w *writer) segmentExpired() bool {
	return w.size > 0 && w.log.opts.Now().Sub(w.createdAt) >= w.log.opts.SegmentMaxAge
}

// countOffsets returns how many offsets the batches in data take.
func countOffsets(data []byte) int64 {
	var n int64
	for p := 0; p < len(data); {
		size := int(binary.BigEndian.Uint32(data[p+8:])) + 12
		n += int64(int32(binary.BigEndian.Uint32(data[p+lastOffsetDeltaAt:]))) + 1
		p += size
	}
	return n
}

// groupBufs holds the buffers in which a commit gathers the data of its
// requests for one write, shared by the writers of every partition. A
// writer holds one only during its write, so what they take follows the
// writes under way rather than the number of partitions: a buffer kept by
// each writer grew to the largest group its partition ever wrote (770 MB
// over 1,000 partitions in a firehose, docs/BENCHMARKS.md).
var groupBufs sync.Pool // of *[]byte

// commitRun writes requests that all fit in the active segment with one
// write, flushes per policy, then makes them visible and acknowledges them.
func (w *writer) commitRun(reqs []*appendRequest) {
	l := w.log
	metas := w.metas[:0]
	next := w.nextOffset
	pos := w.size
	for _, r := range reqs {
		r.result.BaseOffset = next
		for p := 0; p < len(r.data); {
			b := r.data[p:]
			size := int(binary.BigEndian.Uint32(b[8:])) + 12
			record.SetBaseOffset(b, next)
			metas = append(metas, batchMeta{offset: next, pos: pos, maxTs: int64(binary.BigEndian.Uint64(b[maxTimestampAt:]))})
			next += int64(int32(binary.BigEndian.Uint32(b[lastOffsetDeltaAt:]))) + 1
			pos += int64(size)
			p += size
		}
		r.result.LastOffset = next - 1
	}
	w.metas = metas

	var err error
	if len(reqs) == 1 {
		err = w.writeAll(reqs[0].data)
	} else {
		buf, _ := groupBufs.Get().(*[]byte)
		if buf == nil {
			buf = new([]byte)
		}
		data := (*buf)[:0]
		for _, r := range reqs {
			data = append(data, r.data...)
		}
		err = w.writeAll(data)
		if cap(data) <= 4*l.opts.MaxGroupBytes { // not a huge one for ever
			*buf = data
			groupBufs.Put(buf)
		}
	}
	if err == nil && l.opts.FSync == FSyncAlways {
		err = w.syncFile()
	}
	if err != nil {
		w.undo(err)
		l.failures.Add(1)
		for _, r := range reqs {
			r.finish(AppendResult{}, fmt.Errorf("storage: append: %w", err))
		}
		return
	}
	l.appendedOffsets.Add(next - w.nextOffset)
	l.appendedBytes.Add(pos - w.size)
	w.size = pos
	w.nextOffset = next
	w.dirty = l.opts.FSync != FSyncAlways
	if !w.dirty {
		w.durableSize = pos
	}
	x := w.active.index
	for _, m := range metas {
		addedOff, addedTime := x.observe(m.offset, m.pos, m.maxTs, l.opts.IndexIntervalBytes)
		if addedOff {
			w.pendingIdx = appendOffsetEntry(w.pendingIdx, w.active.base, offsetEntry{offset: m.offset, pos: m.pos})
		}
		if addedTime {
			w.pendingTime = appendTimeEntry(w.pendingTime, w.active.base, timeEntry{ts: m.maxTs, offset: m.offset})
		}
	}
	w.lastBatchOffset = metas[len(metas)-1].offset
	if len(w.pendingIdx) >= indexFlushEntries*offsetEntrySize {
		if err := w.flushIndex(); err != nil {
			// The index is an accelerator: recovery rebuilds it from the log.
			l.opts.Logger.Warn("index write failed", "dir", l.dir, "err", err)
		}
	}
	w.active.size.Store(pos)
	l.end.Store(next)
	if !w.dirty {
		l.durable.Store(next)
	}
	l.notifyWaiters()
	for _, r := range reqs {
		r.finish(r.result, nil)
	}
}

func (w *writer) writeAll(b []byte) error {
	n, err := w.file.Write(b)
	if err == nil && n < len(b) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
	}
	return err
}

// undo removes a failed write from the end of the active segment, so that
// nothing unacknowledged stays in the log. With FSyncAlways everything before
// it is durable; after a failed fsync the next commit flushes again, and what
// failed is never reported as written. If even the truncation fails the log
// refuses further appends.
func (w *writer) undo(cause error) {
	l := w.log
	if size, err := w.file.Size(); err == nil && size == w.size {
		return // nothing of the failed write reached the file (a read-only disk)
	}
	if err := w.file.Truncate(w.size); err != nil {
		l.fail(errors.Join(cause, fmt.Errorf("truncate after failed append: %w", err)))
		return
	}
	if l.opts.FSync == FSyncAlways {
		// The truncation itself must reach the disk before anything after it
		// is acknowledged; the next commit's fsync does that.
		w.dirty = true
	}
}

// sync flushes the active segment and advances the durable offset.
func (w *writer) sync() error {
	if err := w.syncFile(); err != nil {
		return err
	}
	w.dirty = false
	w.durableSize = w.size
	w.log.durable.Store(w.nextOffset)
	return nil
}

// setActive makes s, whose log file is f, the active segment.
func (w *writer) setActive(s *segment, f vfs.File) {
	w.active, w.file = s, f
	w.flushes = w.log.opts.Flusher.groupFor(f)
}

// syncFile flushes the active segment's log file, with its filesystem's
// flush group if it has one, reporting the latency.
func (w *writer) syncFile() error {
	start := time.Now()
	var err error
	if w.flushes != nil {
		err = w.flushes.flush()
	} else {
		err = w.file.Sync()
	}
	w.lastSync = time.Since(start)
	if w.log.opts.OnSync != nil {
		w.log.opts.OnSync(w.lastSync)
	}
	return err
}

// flushIndex appends the pending index entries to the index files (not
// synced: the index files are synced when the segment is rolled).
func (w *writer) flushIndex() error {
	return w.appendIndexes(false)
}

// appendIndexes appends the pending entries to the active segment's index
// files, opened for it and closed again, and syncs them when sync is set.
func (w *writer) appendIndexes(sync bool) error {
	for _, f := range []struct {
		suffix  string
		pending *[]byte
	}{{indexSuffix, &w.pendingIdx}, {timeIndexSuffix, &w.pendingTime}} {
		if len(*f.pending) == 0 && !sync {
			continue
		}
		if err := appendFile(w.log.fs, w.active.path(f.suffix), *f.pending, sync); err != nil {
			return err
		}
		*f.pending = (*f.pending)[:0]
	}
	return nil
}

// appendFile appends b to the file called name, and syncs it when sync is
// set.
func appendFile(fs vfs.FS, name string, b []byte, sync bool) error {
	f, err := fs.OpenAppend(name)
	if err != nil {
		return err
	}
	if len(b) > 0 {
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// seal makes the active segment complete on disk: the final time-index entry,
// index files and log flushed.
func (w *writer) seal() error {
	s := w.active
	if s.index.seal(w.lastBatchOffset) {
		x := s.index
		x.mu.RLock()
		last := x.times[len(x.times)-1]
		x.mu.RUnlock()
		w.pendingTime = appendTimeEntry(w.pendingTime, s.base, last)
	}
	if w.dirty || w.durableSize != w.size {
		if err := w.sync(); err != nil {
			return err
		}
	}
	return w.appendIndexes(true)
}

// roll seals the active segment and starts a new one at the next offset.
func (w *writer) roll() error {
	if w.size == 0 {
		w.createdAt = w.log.opts.Now()
		return nil // an empty segment is reused, not rolled
	}
	if err := w.seal(); err != nil {
		return err
	}
	if err := w.createSegment(w.nextOffset); err != nil {
		return err
	}
	w.log.replaceSegments(func(cur []*segment) []*segment {
		next := make([]*segment, 0, len(cur)+1)
		next = append(next, cur...)
		return append(next, w.active)
	})
	return nil
}

// createSegment creates the files of a new, empty active segment and makes
// their directory entries durable. It changes the writer only on success.
func (w *writer) createSegment(base int64) (err error) {
	fs := w.log.fs
	s := newSegment(fs, w.log.dir, base)
	var files []vfs.File
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
				fs.Remove(s.path(suffix))
			}
		}
	}()
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		f, err := fs.Create(s.path(suffix))
		if err != nil {
			return fmt.Errorf("storage: create %s: %w", s.path(suffix), err)
		}
		files = append(files, f)
	}
	if err := fs.SyncDir(w.log.dir); err != nil {
		return fmt.Errorf("storage: sync directory: %w", err)
	}
	for _, f := range files[1:] {
		if err := f.Close(); err != nil {
			return fmt.Errorf("storage: close new index file: %w", err)
		}
	}
	files = files[:1]
	s.setFile(files[0])
	s.index = newSegmentIndex()
	w.setActive(s, files[0])
	w.size, w.durableSize, w.nextOffset, w.lastBatchOffset = 0, 0, base, -1
	w.createdAt = w.log.opts.Now()
	w.dirty = false
	return nil
}

// close seals the active segment. The log file stays open until the
// segment's last reader is done.
func (w *writer) close() error {
	err := w.seal()
	if w.log.err() != nil {
		err = nil // a failed log was already reported
	}
	return err
}
