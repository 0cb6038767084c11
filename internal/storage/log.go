package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

// Log is one partition's log. Append, Read, Wait and the accessors are safe
// for concurrent use. Appends are serialized by a single writer goroutine that
// group-commits; reads run concurrently with it and never take its locks.
//
// Locks (see docs/ARCHITECTURE.md, lock ordering): Log.mu serializes changes
// to the segment list (roll, retention, compaction swap) and is never held
// across file I/O other than directory entry changes; segment.mu guards a
// segment's lazily opened file and index and is taken inside Log.mu or alone;
// segmentIndex.mu is innermost.
type Log struct {
	dir  string
	opts Options
	fs   vfs.FS

	mu   sync.Mutex
	segs atomic.Pointer[[]*segment]

	start   atomic.Int64 // first readable offset
	end     atomic.Int64 // next offset to be assigned = first not readable
	durable atomic.Int64 // offsets below this are fsynced

	// Offsets and batch bytes appended since Open (metrics): one atomic
	// add each per group commit.
	appendedOffsets, appendedBytes atomic.Int64

	waitMu    sync.Mutex
	waitCh    chan struct{}
	listeners []chan<- struct{} // see Notify

	closeMu  sync.RWMutex // held shared while enqueueing an append
	closed   bool
	appends  chan *appendRequest
	requests requestPool
	quit     chan struct{}
	done     sync.WaitGroup

	failMu  sync.Mutex
	failure error // set when the log can no longer accept appends
	// failures counts the failed appends (Failures); only the writer
	// adds to it.
	failures atomic.Uint64

	compactMu sync.Mutex // one compaction at a time

	// janitorMu is held while the janitor runs; janitorT fires it (nil
	// with no background janitor), janitorOff ends it (see Close).
	janitorMu  sync.Mutex
	janitorT   *time.Timer
	janitorOff bool

	w writer // owned by the writer goroutine after Open
}

// Open opens (creating if needed) the log in dir, recovering the active
// segment: its tail is verified by CRC from the last index entry that checks
// out, and a torn or corrupt tail is truncated. Closed segments are not read
// at open; their indexes are loaded (and rebuilt if missing or damaged) on
// first use, so open time does not grow with the number of old segments.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, fs: opts.FS, appends: make(chan *appendRequest, 256), quit: make(chan struct{})}
	if err := makeDurableDir(l.fs, dir); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	names, err := l.fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list %s: %w", dir, err)
	}
	var bases []int64
	logs := make(map[string]bool)
	for _, name := range names {
		if stem, ok := strings.CutSuffix(name, logSuffix); ok {
			logs[stem] = true
		}
	}
	for _, name := range names {
		if stem, ok := cutIndexSuffix(name); ok && !logs[stem] {
			// The index of a segment whose log is gone (retention or a
			// compaction swap raced a crash).
			if err := l.fs.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("storage: remove orphan index %s: %w", name, err)
			}
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) || strings.HasSuffix(name, cleanedSuffix) {
			// An index write or a compaction that did not finish.
			if err := l.fs.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("storage: remove leftover %s: %w", name, err)
			}
			continue
		}
		if base, ok := parseSegmentName(name); ok {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	segs := make([]*segment, 0, len(bases)+1)
	for _, base := range bases[:max(len(bases)-1, 0)] {
		s := newSegment(l.fs, dir, base)
		fi, err := l.fs.Stat(s.path(logSuffix))
		if err != nil {
			return nil, fmt.Errorf("storage: stat segment: %w", err)
		}
		s.size.Store(fi.Size())
		segs = append(segs, s)
	}
	l.w.log = l
	if len(bases) == 0 {
		base := opts.StartOffset
		if err := l.w.createSegment(base); err != nil {
			return nil, err
		}
	} else if err := l.w.recoverSegment(bases[len(bases)-1]); err != nil {
		for _, s := range segs {
			s.release()
		}
		return nil, err
	}
	segs = append(segs, l.w.active)
	l.segs.Store(&segs)
	l.start.Store(max(segs[0].base, min(opts.StartOffset, l.w.nextOffset)))
	l.end.Store(l.w.nextOffset)
	l.durable.Store(l.w.nextOffset)

	l.done.Add(1)
	go l.w.run()
	if opts.JanitorInterval > 0 {
		// A timer rather than a goroutine per log: a node with 10,000
		// queues kept 10,000 goroutines asleep for it.
		l.janitorMu.Lock()
		l.janitorT = time.AfterFunc(opts.JanitorInterval, l.janitor)
		l.janitorMu.Unlock()
	}
	return l, nil
}

// makeDurableDir creates dir and its missing parents, and syncs the parent of
// each directory it created so that the new entries survive a crash.
func makeDurableDir(fs vfs.FS, dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir); err != nil {
		return err
	}
	for _, d := range created {
		if parent := filepath.Dir(d); parent != d {
			if err := fs.SyncDir(parent); err != nil {
				return err
			}
		}
	}
	return nil
}

func cutIndexSuffix(name string) (string, bool) {
	if stem, ok := strings.CutSuffix(name, indexSuffix); ok {
		return stem, true
	}
	return strings.CutSuffix(name, timeIndexSuffix)
}

// SegmentBytes is the segment size: no single Append may be larger.
func (l *Log) SegmentBytes() int64 { return l.opts.SegmentBytes }

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }

// StartOffset is the first offset that can be read.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// EndOffset is the offset the next appended record will get; every offset
// below it that is at least StartOffset can be read (the high-water mark).
func (l *Log) EndOffset() int64 { return l.end.Load() }

// DurableOffset is the offset below which every record is fsynced. With
// FSyncAlways it equals EndOffset.
func (l *Log) DurableOffset() int64 { return l.durable.Load() }

// Stats describes the log's on-disk state.
type Stats struct {
	StartOffset, EndOffset, DurableOffset int64
	Segments                              int
	Bytes                                 int64
	// AppendedOffsets and AppendedBytes count what was appended since the
	// log was opened: offsets (records and transaction markers) and
	// RecordBatch bytes as stored.
	AppendedOffsets, AppendedBytes int64
}

// Stats returns the current offsets, segment count and bytes on disk.
func (l *Log) Stats() Stats {
	segs := *l.segs.Load()
	st := Stats{StartOffset: l.StartOffset(), EndOffset: l.EndOffset(), DurableOffset: l.DurableOffset(), Segments: len(segs),
		AppendedOffsets: l.appendedOffsets.Load(), AppendedBytes: l.appendedBytes.Load()}
	for _, s := range segs {
		st.Bytes += s.size.Load()
	}
	return st
}

// Wait blocks until a record at offset or later can be read, ctx is done, or
// the log closes.
func (l *Log) Wait(ctx context.Context, offset int64) error {
	for {
		if l.end.Load() > offset {
			return nil
		}
		l.waitMu.Lock()
		if l.waitCh == nil {
			l.waitCh = make(chan struct{})
		}
		ch := l.waitCh
		l.waitMu.Unlock()
		if l.end.Load() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.quit:
			return ErrClosed
		}
	}
}

// Notify makes the log signal ch each time records become readable, until
// the returned function is called: a send that does not block, so ch
// should have room for one signal, which then stands for every append
// since the receiver last took it. One goroutine can so follow many logs
// without a goroutine blocked in Wait for each.
func (l *Log) Notify(ch chan<- struct{}) (stop func()) {
	l.waitMu.Lock()
	l.listeners = append(l.listeners, ch)
	l.waitMu.Unlock()
	return func() {
		l.waitMu.Lock()
		defer l.waitMu.Unlock()
		if i := slices.Index(l.listeners, ch); i >= 0 {
			l.listeners = slices.Delete(l.listeners, i, i+1)
		}
	}
}

func (l *Log) notifyWaiters() {
	l.waitMu.Lock()
	if l.waitCh != nil {
		close(l.waitCh)
		l.waitCh = nil
	}
	for _, ch := range l.listeners {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	l.waitMu.Unlock()
}

// AppendResult says where an append landed.
type AppendResult struct {
	BaseOffset int64 // offset of the first record
	LastOffset int64 // offset of the last record
}

// Append validates data (one or more whole RecordBatch v2 batches), assigns
// them consecutive offsets by rewriting each batch's baseOffset field in place,
// and returns once they are committed under the log's fsync policy: with
// FSyncAlways, once they are on stable storage. Batches appended concurrently
// are written and flushed together. The caller must not touch data until
// Append returns. If ctx ends first, Append returns ctx.Err() and the batches
// may or may not be written.
func (l *Log) Append(ctx context.Context, data []byte) (AppendResult, error) {
	p, err := l.Submit(ctx, data)
	if err != nil {
		return AppendResult{}, err
	}
	return p.Wait(ctx)
}

// Submit is the first half of Append: it validates data and hands it to the
// log's writer, without waiting for the write. Data submitted one after
// another (by one goroutine, or in an order the callers agree on) gets
// offsets in that order, and data submitted before an earlier submission's
// write is done joins that write or the next, so that a caller with several
// appends to make in order need not wait for each one's flush before
// submitting the next. Wait returns the result; the caller must not touch
// data until Wait returns.
func (l *Log) Submit(ctx context.Context, data []byte) (PendingAppend, error) {
	return l.submit(ctx, data, false, 0)
}

// SubmitAfter is Submit for data that must not be stored if data its
// caller submitted earlier failed: the append fails with ErrEarlierFailed
// if the log's Failures, read before that earlier submission, has gone
// past failures when the writer reaches it. The writer counts a failure
// before it answers the failed append, so any data submitted after the
// failed data, before or after its failure, is refused (along with that of
// other callers submitted behind any failure, a retry away from stored).
// An idempotent producer's next batch uses it: it must not land where the
// batch before it failed.
func (l *Log) SubmitAfter(ctx context.Context, data []byte, failures uint64) (PendingAppend, error) {
	return l.submit(ctx, data, true, failures)
}

func (l *Log) submit(ctx context.Context, data []byte, afterFailures bool, failures uint64) (PendingAppend, error) {
	if int64(len(data)) > l.opts.SegmentBytes {
		return PendingAppend{}, fmt.Errorf("%w: %d bytes, segment size %d", ErrBatchTooLarge, len(data), l.opts.SegmentBytes)
	}
	if err := validateBatches(data); err != nil {
		return PendingAppend{}, err
	}
	if err := l.err(); err != nil {
		return PendingAppend{}, err
	}
	req := l.requests.get(data)
	req.afterFailures, req.failures = afterFailures, failures
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		l.requests.put(req)
		return PendingAppend{}, ErrClosed
	}
	select {
	case l.appends <- req:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		l.requests.put(req)
		return PendingAppend{}, ctx.Err()
	}
	l.closeMu.RUnlock()
	return PendingAppend{l: l, req: req}, nil
}

// Failures counts the appends of the log that failed since it was opened
// (see SubmitAfter).
func (l *Log) Failures() uint64 { return l.failures.Load() }

// A PendingAppend is data handed to a log's writer (Submit) whose append
// is not known to be done yet.
type PendingAppend struct {
	l   *Log
	req *appendRequest
}

// Wait returns once the submitted data is committed under the log's fsync
// policy, with where it landed, or with why it was not appended. If ctx
// ends first, Wait returns ctx.Err() and the data may or may not be
// written; an outcome known when Wait is called is returned whatever ctx.
// Wait is called once.
func (p PendingAppend) Wait(ctx context.Context) (AppendResult, error) {
	select {
	case <-p.req.done: // an outcome already known wins over an ended ctx
	default:
		select {
		case <-p.req.done:
		case <-ctx.Done():
			return AppendResult{}, ctx.Err() // req is still the writer's: not pooled
		}
	}
	res, err := p.req.result, p.req.err
	p.l.requests.put(p.req)
	return res, err
}

// validateBatches checks that data is a sequence of whole, valid batches.
func validateBatches(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidBatch)
	}
	for p := 0; p < len(data); {
		size, err := record.BatchSize(data[p:])
		if err == nil && p+size > len(data) {
			err = record.ErrShort
		}
		if err == nil {
			_, err = record.Validate(data[p : p+size])
		}
		if err != nil {
			return fmt.Errorf("%w at byte %d: %w", ErrInvalidBatch, p, err)
		}
		p += size
	}
	return nil
}

func (l *Log) err() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

func (l *Log) fail(err error) {
	l.failMu.Lock()
	if l.failure == nil {
		l.failure = fmt.Errorf("%w: %w", ErrFailed, err)
		l.opts.Logger.Error("log failed; appends are refused until it is reopened", "dir", l.dir, "err", err)
	}
	l.failMu.Unlock()
}

// Sync flushes everything appended so far to stable storage.
func (l *Log) Sync(ctx context.Context) error {
	req := &appendRequest{done: make(chan struct{}, 1), syncOnly: true}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case l.appends <- req:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return ctx.Err()
	}
	l.closeMu.RUnlock()
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close finishes the appends already queued, flushes and closes the log.
// Readers that are mid-read finish; later calls return ErrClosed.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.closeMu.Unlock()
	close(l.quit)
	// A janitor run under way finishes first (a compaction stops early
	// once quit is closed).
	l.janitorMu.Lock()
	l.janitorOff = true
	if l.janitorT != nil {
		l.janitorT.Stop()
	}
	l.janitorMu.Unlock()
	l.done.Wait()
	err := l.w.close()
	l.mu.Lock()
	for _, s := range *l.segs.Load() {
		s.release()
	}
	l.mu.Unlock()
	return err
}

// replaceSegments swaps the segment list under l.mu: keep decides, for the
// current list, the new list. It reports whether the list changed.
func (l *Log) replaceSegments(update func(cur []*segment) []*segment) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.segs.Load()
	next := update(cur)
	if next == nil {
		return false
	}
	l.segs.Store(&next)
	if s := l.start.Load(); next[0].base > s {
		l.start.Store(next[0].base)
	}
	return true
}

// janitor enforces retention, and compacts a compacted log, every
// JanitorInterval.
func (l *Log) janitor() {
	l.janitorMu.Lock()
	defer l.janitorMu.Unlock()
	if l.janitorOff {
		return
	}
	if _, err := l.EnforceRetention(); err != nil {
		l.opts.Logger.Warn("retention failed", "dir", l.dir, "err", err)
	}
	if l.opts.Compacted {
		if _, err := l.Compact(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
			l.opts.Logger.Warn("compaction failed", "dir", l.dir, "err", err)
		}
	}
	l.janitorT.Reset(l.opts.JanitorInterval)
}
