package server

import (
	"bufio"
	"net"
)

// readBufferSize is the read buffer of a plain-text HTTP connection.
const readBufferSize = 16 << 10

// readBufferListener gives each accepted connection a read buffer. Go's
// HTTP/2 server reads frames from the connection it is handed without one:
// a frame header (9 bytes) and then its payload, two system calls per frame,
// and a busy gRPC client sends many small frames (an Ack call's headers and
// message, window updates). Over TLS the TLS layer buffers; without TLS
// (h2c) this listener does. Reads at least as large as the buffer skip it.
type readBufferListener struct {
	net.Listener
}

func (l readBufferListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readBufferConn{Conn: nc, r: bufio.NewReaderSize(nc, readBufferSize)}, nil
}

// readBufferConn reads through r; everything else goes to the connection.
type readBufferConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readBufferConn) Read(b []byte) (int, error) { return c.r.Read(b) }
