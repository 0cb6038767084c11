package tcpserve

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

type echoConn struct {
	nc     net.Conn
	closed atomic.Bool
}

func (c *echoConn) Serve() {
	defer c.nc.Close()
	io.Copy(c.nc, c.nc)
}

func (c *echoConn) Close() {
	c.closed.Store(true)
	c.nc.Close()
}

func TestServeAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s Server[*echoConn]
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln, func(nc net.Conn) *echoConn { return &echoConn{nc: nc} }) }()

	var clients []net.Conn
	for range 3 {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := nc.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q, %v", buf, err)
		}
		clients = append(clients, nc)
	}
	conns := s.Conns()
	if len(conns) != 3 {
		t.Fatalf("%d connections tracked, want 3", len(conns))
	}
	// One client leaves: its connection is forgotten.
	clients[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Conns()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked after one left, want 2", len(s.Conns()))
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	thenCalled := false
	if err := s.Close(ctx, func() { thenCalled = true }); err != nil || !thenCalled {
		t.Fatalf("Close: %v (then called: %v)", err, thenCalled)
	}
	if err := <-served; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v, want ErrClosed", err)
	}
	for _, c := range conns {
		if c.nc.RemoteAddr().String() != clients[0].LocalAddr().String() && !c.closed.Load() {
			t.Fatal("a connection open at shutdown was not closed by Close")
		}
	}
	for _, nc := range clients[1:] {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Fatal("a client could still read after shutdown")
		}
	}
	if err := s.Close(ctx, nil); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := s.Serve(ln2, func(nc net.Conn) *echoConn { return &echoConn{nc: nc} }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve on a closed server: %v", err)
	}
	if _, err := net.Dial("tcp", ln2.Addr().String()); err == nil {
		t.Fatal("Serve on a closed server left its listener open")
	}
}

// A connection that does not end in time makes Close return ctx's error.
func TestCloseWaitsUntilCtx(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s Server[*stuckConn]
	release := make(chan struct{})
	go s.Serve(ln, func(nc net.Conn) *stuckConn { return &stuckConn{nc: nc, release: release} })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for len(s.Conns()) != 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a stuck connection: %v, want deadline exceeded", err)
	}
	close(release)
}

type stuckConn struct {
	nc      net.Conn
	release chan struct{}
}

func (c *stuckConn) Serve() { <-c.release; c.nc.Close() }
func (c *stuckConn) Close() {}
