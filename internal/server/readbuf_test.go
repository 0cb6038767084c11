package server

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countingListener counts the reads made on the connections it accepts,
// and notes the largest buffer one was given.
type countingListener struct {
	net.Listener
	reads   atomic.Int64
	largest atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: nc, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.l.reads.Add(1)
	if n := int64(len(b)); n > c.l.largest.Load() {
		c.l.largest.Store(n)
	}
	return c.Conn.Read(b)
}

// TestReadBufferListener: small reads of what arrived together are served
// from the buffer (one read of the connection, not one per frame header),
// reads as large as the buffer go to the connection, and the bytes come
// out as they went in.
func TestReadBufferListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingListener{Listener: ln}
	buffered := readBufferListener{counted}
	defer buffered.Close()

	frames := make([]byte, 100*9)
	for i := range frames {
		frames[i] = byte(i)
	}
	big := bytes.Repeat([]byte("x"), 4*readBufferSize)
	sent := make(chan error, 1)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := buffered.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		_, err := client.Write(frames)
		sent <- err
	}()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(frames))
	header := make([]byte, 9)
	for len(got) < len(frames) {
		if _, err := io.ReadFull(conn, header); err != nil {
			t.Fatal(err)
		}
		got = append(got, header...)
	}
	if !bytes.Equal(got, frames) {
		t.Fatal("the bytes read differ from those sent")
	}
	// The 900 bytes arrive in one segment on loopback; a second read of the
	// connection at most, should they not.
	if n := counted.reads.Load(); n > 2 {
		t.Errorf("100 reads of 9 bytes made %d reads of the connection, want 1 or 2", n)
	}

	go func() {
		_, err := client.Write(big)
		sent <- err
	}()
	whole := make([]byte, len(big))
	if _, err := io.ReadFull(conn, whole); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole, big) {
		t.Fatal("the large read differs from what was sent")
	}
	if n := counted.largest.Load(); n <= readBufferSize {
		t.Errorf("the largest read of the connection was of %d bytes: the large read went through the %d-byte buffer", n, readBufferSize)
	}
}
