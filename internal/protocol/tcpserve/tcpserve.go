// Package tcpserve is what Weir's TCP protocol front ends (Kafka, AMQP,
// MQTT) share around their connections: the accept loop, the set of open
// listeners and connections, and a shutdown that closes them all and waits
// for their goroutines.
package tcpserve

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// BufferBytes is the size of a connection's read buffer and write buffer in
// the front ends. Reads and writes larger than it go straight to the socket,
// so it only sets how many small frames one system call moves; it is held
// for as long as the connection is open, idle or not: at 64 KiB, the 10,000
// idle connections of the load campaign held 600 MiB of buffers.
const BufferBytes = 16 << 10

// ErrClosed is returned by Serve once Close was called.
var ErrClosed = errors.New("server closed")

// Conn is one accepted connection of a front end.
type Conn interface {
	comparable
	// Serve runs the connection until it ends; it closes the net.Conn.
	Serve()
	// Close ends the connection at shutdown (with the protocol's goodbye,
	// if it has one), making Serve return soon.
	Close()
}

// Server tracks listeners and connections. The zero value is ready to use.
type Server[C Conn] struct {
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[C]struct{}
	wg        sync.WaitGroup
}

// Serve accepts connections on ln until Close, making each with accept and
// serving it on a goroutine of its own. It closes ln when it returns.
// Temporary accept errors (retriableAccept) are retried with a backoff of
// up to a second.
func (s *Server[C]) Serve(ln net.Listener, accept func(net.Conn) C) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[C]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrClosed
			}
			if retriableAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.Go(accept(nc), nc) {
			return ErrClosed
		}
	}
}

// retriableAccept reports whether an accept error passes: a timeout, the
// process or the system out of file descriptors (EMFILE, ENFILE: with
// thousands of connections open the listener must not stop for good, it
// accepts again once some close), or a connection aborted before it was
// accepted.
func retriableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}

// Go serves c, a connection over nc accepted elsewhere (a WebSocket, say),
// on a goroutine of its own, tracked as Serve's are. It returns false, and
// closes nc, when the server is closed.
func (s *Server[C]) Go(c C, nc net.Conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	if s.conns == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[C]struct{})
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.Serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	return true
}

func (s *Server[C]) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Conns returns the open connections.
func (s *Server[C]) Conns() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]C, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Close stops the listeners, closes every connection, calls then (when not
// nil: e.g. to cancel what the connections wait on), and waits for the
// connections' goroutines until ctx ends. Calling it again returns nil at
// once.
func (s *Server[C]) Close(ctx context.Context, then func()) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	for _, c := range s.Conns() {
		c.Close()
	}
	if then != nil {
		then()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
