package bench

import "sync"

// channelsPerConnection is how many consumers share a connection: a
// workload of thousands of queues has thousands of consumers.
const channelsPerConnection = 100

// connPool hands out connections, each shared by up to perConn users.
type connPool[C any] struct {
	dial    func() (C, error)
	closeFn func(C) error
	perConn int
	mu      sync.Mutex
	conns   []C
	users   int
}

func newConnPool[C any](perConn int, dial func() (C, error), closeFn func(C) error) *connPool[C] {
	return &connPool[C]{dial: dial, closeFn: closeFn, perConn: perConn}
}

func (p *connPool[C]) get() (C, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users%p.perConn == 0 {
		c, err := p.dial()
		if err != nil {
			return c, err
		}
		p.conns = append(p.conns, c)
	}
	p.users++
	return p.conns[len(p.conns)-1], nil
}

func (p *connPool[C]) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		p.closeFn(c) //nolint:errcheck // closing at the end of a run
	}
	p.conns, p.users = nil, 0
}
