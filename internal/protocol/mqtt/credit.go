package mqtt

import (
	"context"
	"sync"
)

// creditPool counts the QoS 1 and 2 messages the client may still be sent (its
// receive maximum less those in flight). Delivery loops wait for a credit
// to be available without holding one while the queue is empty, so a
// loop waiting on an idle queue does not starve another.
type creditPool struct {
	mu    sync.Mutex
	n     int
	ready chan struct{} // closed when n grows; replaced then
}

func newCreditPool(n int) *creditPool {
	return &creditPool{n: n, ready: make(chan struct{})}
}

// available returns how many credits there are, waiting until there is at
// least one; 0 once ctx is done.
func (p *creditPool) available(ctx context.Context) int {
	for {
		p.mu.Lock()
		n, ready := p.n, p.ready
		p.mu.Unlock()
		if n > 0 {
			return n
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return 0
		}
	}
}

// take takes one credit, waiting for it; false once ctx is done.
func (p *creditPool) take(ctx context.Context) bool {
	for {
		p.mu.Lock()
		if p.n > 0 {
			p.n--
			p.mu.Unlock()
			return true
		}
		ready := p.ready
		p.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return false
		}
	}
}

// tryTake takes a credit if there is one, without waiting.
func (p *creditPool) tryTake() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 0 {
		p.n--
		return true
	}
	return false
}

// takeNow takes a credit without waiting, even the pool's last: for
// messages a resumed session owes the client, which are in flight again
// whatever its receive maximum is now.
func (p *creditPool) takeNow() {
	p.mu.Lock()
	p.n--
	p.mu.Unlock()
}

// put gives a credit back.
func (p *creditPool) put() {
	p.mu.Lock()
	p.n++
	close(p.ready)
	p.ready = make(chan struct{})
	p.mu.Unlock()
}
