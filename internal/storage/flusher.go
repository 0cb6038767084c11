package storage

import (
	"errors"
	"sync"

	"github.com/weirmq/weir/internal/vfs"
)

// ErrFlusherClosed is returned by a flush asked of a closed Flusher.
var ErrFlusherClosed = errors.New("storage: flusher closed")

// A Flusher makes the appends of many logs durable together: one syncfs(2)
// per filesystem for every log that wants a flush at the time, instead of
// one fdatasync per partition file (Options.Flusher). With a thousand
// partitions a produce request touches hundreds of files; their flushes
// become one. A flush joins the next syncfs to start after it was asked, so
// it covers everything its log wrote before asking.
//
// Files that are not the operating system's (vfs.NewMem, vfs.NewErrorFS) are
// flushed one by one as without a Flusher. A Flusher is shared by the logs
// of a broker and closed after them.
type Flusher struct {
	mu     sync.Mutex
	groups map[uint64]*flushGroup // by device
	closed bool
	// device and open find and open a file's filesystem; tests replace them.
	device func(vfs.File) (uint64, bool)
	open   func(vfs.File) (syncer, error)
}

// syncer flushes a whole filesystem.
type syncer interface {
	Sync() error
	Close() error
}

// NewFlusher returns a Flusher, or an error if this system cannot flush a
// filesystem with the guarantees a flush needs (vfs.SyncFSSupported).
func NewFlusher() (*Flusher, error) {
	if err := vfs.SyncFSSupported(); err != nil {
		return nil, err
	}
	return &Flusher{
		groups: make(map[uint64]*flushGroup),
		device: vfs.DeviceOf,
		open:   func(f vfs.File) (syncer, error) { return vfs.OpenFileSystem(f) },
	}, nil
}

// groupFor returns the flush group of f's filesystem, or nil when f is to be
// flushed on its own: no Flusher, a file that is not the operating system's,
// or a closed Flusher.
func (fl *Flusher) groupFor(f vfs.File) *flushGroup {
	if fl == nil {
		return nil
	}
	dev, ok := fl.device(f)
	if !ok {
		return nil
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if g := fl.groups[dev]; g != nil || fl.closed {
		return g
	}
	s, err := fl.open(f)
	if err != nil {
		return nil
	}
	g := &flushGroup{s: s, wake: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go g.run()
	fl.groups[dev] = g
	return g
}

// Close stops the flush groups once the flushes asked of them are done, and
// releases their descriptors. Flushes asked after Close fail.
func (fl *Flusher) Close() error {
	fl.mu.Lock()
	fl.closed = true
	groups := fl.groups
	fl.groups = nil
	fl.mu.Unlock()
	var errs []error
	for _, g := range groups {
		errs = append(errs, g.close())
	}
	return errors.Join(errs...)
}

// flushGroup runs the flushes of one filesystem, one at a time: the flushes
// asked while one runs share the next.
type flushGroup struct {
	s       syncer
	mu      sync.Mutex
	next    *flushRound // the round the next caller joins; nil until one asks
	closed  bool
	wake    chan struct{} // capacity 1: a round is waiting
	quit    chan struct{}
	stopped chan struct{}
}

// flushRound is one syncfs and the callers waiting for it.
type flushRound struct {
	done    chan struct{}
	err     error
	waiters int // flushes that joined it (for tests)
}

// flush returns once a syncfs that started after the call has finished, with
// that syncfs's error.
func (g *flushGroup) flush() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrFlusherClosed
	}
	r := g.next
	if r == nil {
		r = &flushRound{done: make(chan struct{})}
		g.next = r
		select {
		case g.wake <- struct{}{}:
		default: // the runner was already woken for this round
		}
	}
	r.waiters++
	g.mu.Unlock()
	<-r.done
	return r.err
}

func (g *flushGroup) run() {
	defer close(g.stopped)
	for {
		select {
		case <-g.wake:
		case <-g.quit:
			g.round() // what was asked before close
			return
		}
		g.round()
	}
}

// round takes the waiting round, if any, and runs its syncfs. Callers that
// come while it runs make the next round.
func (g *flushGroup) round() {
	g.mu.Lock()
	r := g.next
	g.next = nil
	g.mu.Unlock()
	if r == nil {
		return
	}
	r.err = g.s.Sync()
	close(r.done)
}

func (g *flushGroup) close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	close(g.quit)
	<-g.stopped
	return g.s.Close()
}
