package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Errors returned by the package, wrapped with details; test with errors.Is.
var (
	// ErrNotFound: the requested catalog entry or offset does not exist.
	ErrNotFound = errors.New("state: not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("state: store closed")
	// ErrLocked: another open store holds the directory's lock.
	ErrLocked = errors.New("state: directory is locked by another open store")
	// ErrInvalidName: a name the key encoding does not accept (empty).
	ErrInvalidName = errors.New("state: invalid name")
	// ErrInvalidKind: a catalog Kind that is not one of the defined constants.
	ErrInvalidKind = errors.New("state: invalid catalog kind")
	// ErrInvalidOffset: a committed offset that cannot be stored.
	ErrInvalidOffset = errors.New("state: invalid committed offset")
	// ErrTxDone: a Tx used after its Update returned.
	ErrTxDone = errors.New("state: transaction already finished")
	// ErrCorrupt: a stored key or value that does not decode.
	ErrCorrupt = errors.New("state: corrupt data")
	// ErrIncompatible: the directory holds a newer or foreign store format.
	ErrIncompatible = errors.New("state: incompatible store format")
	// ErrFailed: a commit failed in the write-ahead log (an fsync or write
	// error, a full or read-only disk). The store refuses every further
	// Update until the process reopens it; see the package documentation.
	ErrFailed = errors.New("state: store failed and must be reopened")
)

// storeFormat is the version of the store as a whole, recorded in the meta
// table when the store is created. Open refuses a store with a newer format.
const storeFormat = 1

// formatKey is the meta table key that holds the store format.
var formatKey = appendString(metaTable.key(8), "format")

// FS is the file system interface the store runs on: Pebble's, so that
// Pebble's in-memory, crash-simulating and error-injecting file systems
// (vfs.NewCrashableMem, vfs/errorfs) serve tests of the layers above.
type FS = vfs.FS

// Options configures Open. The zero value is the production configuration.
type Options struct {
	// FS is the file system holding the store; nil means the operating
	// system's. Tests use vfs.NewMem or vfs.NewCrashableMem.
	FS vfs.FS
	// NoSync makes Update return before its batch is synced: a crash may
	// lose the latest acknowledged updates (never tear one). Only for tests
	// and benchmarks.
	NoSync bool
	// Logger receives Pebble's messages: informational ones at debug level,
	// errors at error level. Nil means slog.Default().
	Logger *slog.Logger
}

// Store is an open state database. Its methods are safe for concurrent use.
type Store struct {
	db        *pebble.DB
	lock      *pebble.Lock
	writeOpts *pebble.WriteOptions
	logger    *slog.Logger

	// prepareMu makes the failure check and the log write of a commit one
	// step (failure.go).
	prepareMu sync.Mutex

	// commitMu orders commits against DeleteStreamOffsets (see the package
	// documentation): shared while a batch commits, exclusive from a
	// DeleteStreamOffsets call until its transaction ends.
	commitMu sync.RWMutex

	life lifecycle
	// failure holds the error that failed the store (ErrFailed wrapped
	// with the cause); nil while it works.
	failure atomic.Pointer[error]
	// rangeDels counts the range deletions committed since Open.
	rangeDels atomic.Int64
	// unflushedRangeDels counts those committed since the store last asked
	// for a flush (see beforeRead).
	unflushedRangeDels atomic.Int64
}

// Open opens the store in dir, creating it if needed. It fails with ErrLocked
// while another Store (in this or another process) has dir open.
func Open(dir string, opts Options) (*Store, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = vfs.Default
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: create %s: %w", dir, err)
	}
	lock, err := pebble.LockDirectory(dir, fsys)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			// The lock file could not be created: not a lock conflict.
			return nil, fmt.Errorf("state: lock %s: %w", dir, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
	}
	s := &Store{writeOpts: pebble.Sync, logger: logger}
	if opts.NoSync {
		s.writeOpts = pebble.NoSync
	}
	s.life.init()
	db, err := pebble.Open(dir, &pebble.Options{
		FS:                 walGuardFS{FS: fsys, failed: func(err error) { s.fail(fmt.Errorf("write-ahead log: %w", err)) }},
		Lock:               lock,
		Logger:             pebbleLogger{logger.With("component", "pebble", "dir", dir)},
		FormatMajorVersion: pebble.FormatNewest,
		MaxOpenFiles:       MaxOpenFiles,
	})
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s.db, s.lock = db, lock
	if err := s.checkFormat(); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	return s, nil
}

// MaxOpenFiles bounds the table files the store keeps open (Pebble's
// default is 1,000); a server counts them in the descriptors it keeps
// free of connections.
const MaxOpenFiles = 256

// checkFormat records the store format in a new store and refuses a store
// written by a newer format or by something other than this package.
func (s *Store) checkFormat() error {
	value, err := s.get(formatKey)
	switch {
	case errors.Is(err, ErrNotFound):
		empty, err := s.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("%w: database has data but no format marker", ErrIncompatible)
		}
		batch := s.db.NewBatch()
		defer batch.Close()
		if err := batch.Set(formatKey, []byte{storeFormat}, nil); err != nil {
			return err
		}
		return s.commit(batch)
	case err != nil:
		return err
	case len(value) != 1:
		return fmt.Errorf("%w: format marker %x", ErrCorrupt, value)
	case value[0] > storeFormat:
		return fmt.Errorf("%w: format %d is newer than supported %d", ErrIncompatible, value[0], storeFormat)
	}
	return nil
}

func (s *Store) isEmpty() (bool, error) {
	iter, err := s.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !iter.First()
	if err := iter.Close(); err != nil {
		return false, err
	}
	return empty, nil
}

// Close waits for operations in flight, then closes the database and releases
// the directory lock. Calls after Close fail with ErrClosed.
func (s *Store) Close() error {
	if !s.life.close() {
		return ErrClosed
	}
	err := s.db.Close()
	if lockErr := s.lock.Close(); err == nil {
		err = lockErr
	}
	if err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// get returns a copy of the value stored under key, or ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) {
	s.beforeRead()
	value, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	out := bytes.Clone(value)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("state: get: %w", err)
	}
	return out, nil
}

// scan calls fn for every key with the given prefix, in key order. The key
// and value passed to fn are only valid during the call.
func (s *Store) scan(prefix []byte, fn func(key, value []byte) error) error {
	return s.scanRange(prefix, prefixEnd(prefix), fn)
}

// scanRange calls fn for every key in [lower, upper), in key order.
func (s *Store) scanRange(lower, upper []byte, fn func(key, value []byte) error) error {
	s.beforeRead()
	iter, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	for valid := iter.First(); valid; valid = iter.Next() {
		value, err := iter.ValueAndErr()
		if err == nil {
			err = fn(iter.Key(), value)
		}
		if err != nil {
			_ = iter.Close()
			return err
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("state: scan: %w", err)
	}
	return nil
}

// Stats is a snapshot of the store's storage metrics.
type Stats struct {
	// DiskUsageBytes is the space the store's files take on disk, obsolete
	// files not yet deleted included.
	DiskUsageBytes uint64
	// WALBytes is the logical size of the live write-ahead log.
	WALBytes uint64
	// MemTableBytes is the memory held by memtables.
	MemTableBytes uint64
	// Tables and TableBytes count the live sstables and their size.
	Tables     int64
	TableBytes int64
	// Flushes and Compactions count those operations since Open.
	Flushes     int64
	Compactions int64
	// ReadAmplification is the number of sstable levels a read may consult.
	ReadAmplification int
	// RangeDeletions counts the range deletions committed since Open:
	// each stays in the memtable until a flush and is fragmented again by
	// every new iterator, so they are kept rare.
	RangeDeletions int64
}

// Stats returns current storage metrics, for the metrics endpoint.
func (s *Store) Stats() (Stats, error) {
	if err := s.life.enter(); err != nil {
		return Stats{}, err
	}
	defer s.life.leave()
	m := s.db.Metrics()
	total := m.Total()
	return Stats{
		DiskUsageBytes:    m.DiskSpaceUsage(),
		WALBytes:          m.WAL.Size,
		MemTableBytes:     m.MemTable.Size,
		Tables:            total.TablesCount,
		TableBytes:        total.TablesSize,
		Flushes:           m.Flush.Count,
		Compactions:       m.Compact.Count,
		ReadAmplification: m.ReadAmp(),
		RangeDeletions:    s.rangeDels.Load(),
	}, nil
}

// lifecycle counts the operations in flight so that Close can wait for them
// instead of pulling the database from under them.
type lifecycle struct {
	mu     sync.Mutex
	idle   sync.Cond
	closed bool
	active int
}

func (l *lifecycle) init() { l.idle.L = &l.mu }

// enter registers an operation; it fails once the store is closing.
func (l *lifecycle) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.active++
	return nil
}

func (l *lifecycle) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	if l.active == 0 && l.closed {
		l.idle.Broadcast()
	}
}

// close marks the store closed and waits until no operation is in flight.
// It reports false if the store was already closed.
func (l *lifecycle) close() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	for l.active > 0 {
		l.idle.Wait()
	}
	return true
}

// pebbleLogger routes Pebble's logging through slog. Pebble's informational
// messages (WAL recovery, format upgrades) are debug-level noise for Weir's
// users; its errors are not.
type pebbleLogger struct{ logger *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.logger.Enabled(context.Background(), slog.LevelDebug) {
		l.logger.Debug(fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.logger.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on an error after which it must not continue.
// It panics with a *fatalError: Store.apply recovers the one Pebble raises
// when a commit fails in the write-ahead log and fails the store (see
// failure.go); anywhere else the panic keeps the stack for the crash report.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.logger.Error(msg, "fatal", true)
	panic(newFatalError(msg, args))
}
