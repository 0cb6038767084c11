package api

import (
	"context"
	"math"
	"sync"
)

// maxCredits bounds a subscription's outstanding credits; AddCredits beyond
// it saturates.
const maxCredits = math.MaxInt32

// credits counts the records a subscription may still send. AddCredits adds
// from any goroutine; the subscription's loop takes.
type credits struct {
	mu sync.Mutex
	n  int64
}

func (c *credits) add(n int64) {
	c.mu.Lock()
	c.n = min(c.n+n, maxCredits)
	c.mu.Unlock()
}

func (c *credits) available() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *credits) take(n int64) {
	c.mu.Lock()
	c.n -= n
	c.mu.Unlock()
}

// waker wakes a subscription's loop: notify when it waits for something to
// do (credits came back), interrupt also when it is blocked reading (the
// group's assignment changed and must be applied at once).
type waker struct {
	signal chan struct{} // buffered, one pending signal

	mu          sync.Mutex
	interrupted bool               // since the loop last called begin
	cancelRead  context.CancelFunc // of the read in progress, or nil
}

func newWaker() *waker {
	return &waker{signal: make(chan struct{}, 1)}
}

func (w *waker) notify() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *waker) interrupt() {
	w.mu.Lock()
	w.interrupted = true
	if w.cancelRead != nil {
		w.cancelRead()
	}
	w.mu.Unlock()
	w.notify()
}

// begin starts one round of the loop, before it looks at what changed.
func (w *waker) begin() {
	w.mu.Lock()
	w.interrupted = false
	w.mu.Unlock()
	select {
	case <-w.signal:
	default:
	}
}

// readContext returns the context for one blocking read, which interrupt
// cancels, also when it came between begin and now; call done after the
// read.
func (w *waker) readContext(ctx context.Context) (rctx context.Context, done func()) {
	rctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.cancelRead = cancel
	if w.interrupted {
		cancel()
	}
	w.mu.Unlock()
	return rctx, func() {
		w.mu.Lock()
		w.cancelRead = nil
		w.mu.Unlock()
		cancel()
	}
}
