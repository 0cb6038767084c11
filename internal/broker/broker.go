package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
	"github.com/weirmq/weir/internal/vfs"
)

// Config configures a Broker. The zero value with a DataDir is usable.
type Config struct {
	// DataDir holds state/ (the catalog and offsets) and streams/ (one
	// directory per stream ID, one per partition below it).
	DataDir string
	// FS is the filesystem for partition logs (nil: the OS). The state
	// store always uses the OS filesystem unless StateFS is set.
	FS vfs.FS
	// StateFS is the filesystem of the state store (nil: the OS), for
	// fault tests (state_fault_test.go).
	StateFS       state.FS
	FSync         storage.FSyncPolicy
	FSyncInterval time.Duration
	// Flusher, when set, flushes the partitions' appends filesystem by
	// filesystem (storage.Flusher); its owner closes it after the broker.
	Flusher *storage.Flusher
	// MaxRecordBytes bounds key + value + headers of one record.
	MaxRecordBytes int
	// JanitorInterval is how often partitions enforce retention and compact
	// (0: the storage default; negative: never, for tests).
	JanitorInterval time.Duration
	Logger          *slog.Logger
	// OnSync is called after each partition flush with its latency.
	OnSync func(time.Duration)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// The disk watermark (watermark.go): client publishes are refused
	// with ErrDiskFull while FreeSpace (nil: statfs of DataDir) reports
	// less than DiskFreeMin free, sampled every DiskCheckInterval, and for
	// DiskFullHold after a write failed with ENOSPC. Off when DiskFreeMin
	// is 0 and FreeSpace is nil.
	DiskFreeMin       uint64
	FreeSpace         FreeSpace
	DiskCheckInterval time.Duration
	DiskFullHold      time.Duration
}

// Broker is an open Weir node's model. It is safe for concurrent use.
type Broker struct {
	cfg   Config
	state *state.Store

	mu      sync.RWMutex
	streams map[string]*stream
	// byID names the streams by their IDs (Kafka's topic IDs), as
	// registerStream and removeStream keep it.
	byID map[[16]byte]string
	// busy holds the names of the streams being created or deleted, each
	// with a channel closed when that ends: the work (files, directory
	// syncs, the catalog's commit) runs without b.mu, which every publish
	// and fetch takes to find its stream, and Close waits for it
	// (changing).
	busy     map[string]chan struct{}
	changing sync.WaitGroup
	closed   bool

	groups groupRegistry
	ex     exchanges
	// Kafka front end support (rawbatch.go, producers.go, classic.go).
	producers producerRegistry
	classic   classicRegistry
	txns      txnCoordinator
	// events is the event store (events*.go).
	events *eventStore

	disk *diskWatermark // watermark.go

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	bg     sync.WaitGroup

	// stateFault, set by tests, fails shared subscriptions' state writes
	// with its error while it is not nil.
	stateFault atomic.Pointer[error]
}

// Open opens (creating if needed) the broker in cfg.DataDir: the state store,
// then every stream of the catalog. Stream directories that the catalog does
// not name (a create or delete interrupted by a crash) are removed.
func Open(cfg Config) (*Broker, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory", ErrInvalidArgument)
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	st, err := state.Open(filepath.Join(cfg.DataDir, "state"), state.Options{FS: cfg.StateFS, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{cfg: cfg, state: st, streams: make(map[string]*stream), byID: make(map[[16]byte]string), busy: make(map[string]chan struct{}), ctx: ctx, cancel: cancel}
	b.disk = newDiskWatermark(&cfg)
	b.groups.init(b)
	b.classic.init(b)
	err = b.loadStreams()
	if err == nil {
		err = b.loadSubscriptions()
	}
	if err == nil {
		err = b.loadExchanges()
	}
	if err == nil {
		err = b.txns.load(b)
	}
	if err == nil {
		b.events, err = openEventStore(b)
	}
	if err != nil {
		b.closeStreams()
		st.Close()
		cancel()
		return nil, err
	}
	if b.disk.enabled {
		b.bg.Go(func() { b.disk.loop(ctx) })
	}
	b.bg.Add(1)
	go b.groups.expireLoop()
	b.bg.Add(1)
	go b.classic.loop()
	b.bg.Add(1)
	go b.txns.loop()
	return b, nil
}

func (b *Broker) streamsDir() string { return filepath.Join(b.cfg.DataDir, "streams") }

func (b *Broker) loadStreams() error {
	entries, err := b.state.ListCatalog(state.KindStream)
	if err != nil {
		return err
	}
	known := make(map[string]bool)
	for _, e := range entries {
		var meta streamMeta
		if err := decodeMeta(e.Value, &meta); err != nil {
			return fmt.Errorf("broker: catalog entry of stream %q: %w", e.Name, err)
		}
		s, err := b.openStream(meta)
		if err != nil {
			return fmt.Errorf("broker: open stream %q: %w", e.Name, err)
		}
		b.registerStream(s)
		known[meta.dirName()] = true
	}
	names, err := b.cfg.FS.List(b.streamsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, name := range names {
		if !known[name] {
			b.cfg.Logger.Warn("removing stream directory not in the catalog", "dir", name)
			if err := b.cfg.FS.RemoveAll(filepath.Join(b.streamsDir(), name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrStateFailed is the error of every state write after the state store
// failed a commit (state.ErrFailed): acks, offset commits and catalog
// changes are refused until the process restarts.
var ErrStateFailed = state.ErrFailed

// StateErr is the state store's failure (state.ErrFailed and its cause),
// nil while it takes writes: after a failed commit it takes none until the
// process restarts, which /healthz reports.
func (b *Broker) StateErr() error { return b.state.Err() }

// Close closes every partition (flushing it) and the state store.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	b.mu.Unlock()
	b.changing.Wait()
	b.cancel()
	b.bg.Wait()
	err := errors.Join(b.closeEvents(), b.closeStreams())
	return errors.Join(err, b.removeTemporary(), b.state.Close())
}

func (b *Broker) closeStreams() error {
	var errs []error
	for _, s := range b.streams {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// stream returns an open stream by name.
func (b *Broker) stream(name string) (*stream, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	s, ok := b.streams[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrStreamNotFound, name)
	}
	return s, nil
}

func (b *Broker) now() time.Time { return b.cfg.Now() }
