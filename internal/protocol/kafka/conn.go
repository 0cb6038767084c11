package kafka

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
)

// maxQueued is how many decoded requests a connection reads ahead of the
// one being handled (clients pipeline up to 5 produce requests).
const maxQueued = 16

// Errors that close a connection.
var (
	ErrFrameTooLarge      = errors.New("kafka: request frame larger than the limit")
	ErrMalformed          = errors.New("kafka: malformed request")
	ErrUnknownAPI         = errors.New("kafka: unknown API key")
	ErrUnsupportedVersion = errors.New("kafka: unsupported API version")
)

// conn is one client connection. A reader goroutine reads and decodes
// requests ahead; the serving goroutine handles them one at a time, in
// order, and writes each response before handling the next, so responses
// are in request order (as Kafka, which handles one request per connection
// at a time; clients open separate connections for produce, fetch and
// group traffic).
type conn struct {
	s          *Server
	nc         net.Conn
	log        *slog.Logger
	clientHost string
	host       string // the address the client connected to, advertised in Metadata
	port       int32
	clientID   string // of the request being handled
	sasl       saslState
	// fetchSessions are the connection's fetch sessions (KIP-227), used
	// only by the serving goroutine.
	fetchSessions map[int32]*fetchSession
	// fetchBuf holds the record bytes of the fetch being answered, from
	// fetchBuffers, until its response is encoded (Serve).
	fetchBuf *[]byte
	// closeAfterResponse closes the connection once the response being
	// written is flushed (a failed SASL authentication).
	closeAfterResponse bool

	ctx    context.Context // ends when the connection or the server closes
	cancel context.CancelFunc
	// login is the user SASL (or the client certificate) authenticated: its
	// principal, against which ctx's broker calls are checked, and its
	// connection limit.
	login *broker.Login
	// throttleFor is how long to hold the connection after the response
	// being handled (a byte-rate quota, authz.go).
	throttleFor time.Duration
}

// request is one decoded request.
type request struct {
	key, version int16
	correlation  int32
	clientID     string
	flexible     bool
	body         kmsg.Request // nil for an ApiVersions request of a version Weir lacks
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.login, c.ctx = broker.NewLogin(c.ctx, s.cfg.Authenticator)
	if host, port, err := net.SplitHostPort(nc.LocalAddr().String()); err == nil {
		c.host = host
		p, _ := strconv.Atoi(port)
		c.port = int32(p)
	}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.clientHost = "/" + host
	}
	c.log = s.log.With("remote", nc.RemoteAddr().String())
	return c
}

// Close ends the connection at shutdown (tcpserve.Conn).
func (c *conn) Close() { c.nc.Close() }

// Serve runs the connection until it ends (tcpserve.Conn).
func (c *conn) Serve() {
	c.s.cfg.Observer.Connected()
	defer c.s.cfg.Observer.Disconnected()
	c.log.Debug("connection open")
	defer c.log.Debug("connection closed")
	defer c.s.share.connClosed(c) // after the last request was handled
	defer c.login.LoggedOut()
	defer c.nc.Close()
	defer c.cancel()
	queue := make(chan *request, maxQueued)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(queue)
		r := bufio.NewReaderSize(c.nc, tcpserve.BufferBytes)
		for {
			req, err := readRequest(r, c.s.cfg.MaxRequestBytes)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
					c.log.Info("kafka: closing connection", "err", err)
				}
				var bad *badRequestError
				if errors.As(err, &bad) {
					c.s.cfg.Observer.Handled(bad.key, true)
				}
				c.cancel()
				return
			}
			select {
			case queue <- req:
			case <-c.ctx.Done():
				return
			}
		}
	}()
	defer func() {
		c.cancel()
		c.nc.Close()
		<-readerDone
	}()
	w := bufio.NewWriterSize(c.nc, tcpserve.BufferBytes)
	// inflight are the produce requests submitted and not answered yet, in
	// request order (startProduce).
	var inflight []*inflightProduce
	// answerFirst writes the first one's response, flushed unless the
	// next one's is ready to go with it.
	answerFirst := func() bool {
		p := inflight[0]
		<-p.done
		inflight = inflight[1:]
		flush := len(inflight) == 0 && len(queue) == 0
		if len(inflight) > 0 {
			select {
			case <-inflight[0].done:
			default:
				flush = true
			}
		}
		return c.answer(w, p.req, p.resp, p.err, flush)
	}
	for {
		var req *request
		ok := true
		if len(inflight) > 0 {
			var ready <-chan *request
			if len(inflight) < maxQueued {
				ready = queue
			}
			select {
			case req, ok = <-ready:
			case <-inflight[0].done:
				if !answerFirst() {
					return
				}
				continue
			}
		} else {
			req, ok = <-queue
		}
		if ok {
			if p := c.startPipelined(req); p != nil {
				inflight = append(inflight, p)
				continue
			}
		}
		// Anything else is handled once the produce requests before it
		// are answered.
		for len(inflight) > 0 {
			if !answerFirst() {
				return
			}
		}
		if !ok {
			return
		}
		resp, err := c.handle(req)
		if !c.answer(w, req, resp, err, len(queue) == 0) {
			return
		}
	}
}

// inflightProduce is a produce request submitted ahead of its answer.
type inflightProduce struct {
	req  *request
	done chan struct{} // closed once resp and err are set
	resp kmsg.Response
	err  error
}

// startPipelined submits req and returns it in flight when it is a produce
// request that can be answered after later requests are submitted: one
// that is answered (acks 1 or -1), from a login without a produce quota
// (whose throttle holds the connection after the response).
func (c *conn) startPipelined(req *request) *inflightProduce {
	body, ok := req.body.(*kmsg.ProduceRequest)
	if !ok || body.Acks == 0 || c.checkAuthenticated(req.key) != nil || c.login.Principal().ProduceQuota() != nil {
		return nil
	}
	c.clientID = req.clientID
	p := &inflightProduce{req: req, done: make(chan struct{})}
	wait := startProduce(c, body)
	go func() {
		p.resp, p.err = wait()
		close(p.done)
	}()
	return p
}

// answer writes the response to req, flushing when flush is set or the
// connection is to close, and reports whether the connection goes on.
func (c *conn) answer(w *bufio.Writer, req *request, resp kmsg.Response, err error, flush bool) bool {
	c.s.cfg.Observer.Handled(req.key, err != nil || c.closeAfterResponse)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Info("kafka: closing connection", "api", kmsg.NameForKey(req.key), "version", req.version, "err", err)
		}
		return false
	}
	if resp == nil {
		return true // Produce with acks=0 has no response
	}
	buf := responseBuffers.Get().(*[]byte)
	dst := (*buf)[:0]
	if need := responseSizeHint(resp); need > cap(dst) {
		// Encoded into a buffer of its size at once: growing by append
		// (1.25× for large slices) copied a 4 MiB fetch response seven times.
		dst = make([]byte, 0, need)
	}
	out := appendResponse(dst, req, resp)
	c.releaseFetchBuffer()
	_, err = w.Write(out)
	if cap(out) <= keptBufferBytes {
		*buf = out
	}
	responseBuffers.Put(buf)
	if err != nil {
		return false
	}
	if flush || c.closeAfterResponse {
		if err := w.Flush(); err != nil {
			return false
		}
	}
	if c.closeAfterResponse {
		return false
	}
	if c.throttleFor > 0 {
		if err := w.Flush(); err != nil {
			return false
		}
		c.mute()
	}
	return true
}

// responseBuffers are the buffers responses are encoded in, shared by the
// connections: a connection kept its own, so each idle Kafka client held
// the buffer of its largest response (a Metadata response of thousands of
// topics: 280 MiB over the load campaign's 2,500 idle clients).
var responseBuffers = sync.Pool{New: func() any { return new([]byte) }}

// fetchBuffers are the buffers fetches read record bytes into, every
// partition of a fetch into one, shared by the connections. Each
// partition's read allocated its own: a third of the server's allocations
// in a Kafka firehose over 1,000 partitions, docs/BENCHMARKS.md.
var fetchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// keptBufferBytes is the largest buffer the pools above keep; a larger
// one is left to the garbage collector.
const keptBufferBytes = 8 << 20

// fetchBuffer returns the buffer of the fetch being answered, empty,
// taking one from fetchBuffers for the first read. The serving goroutine
// only: a fetch's reads and the encoding of its response happen there.
func (c *conn) fetchBuffer() *[]byte {
	if c.fetchBuf == nil {
		c.fetchBuf = fetchBuffers.Get().(*[]byte)
	}
	*c.fetchBuf = (*c.fetchBuf)[:0]
	return c.fetchBuf
}

// releaseFetchBuffer gives the fetch's buffer back once its response is
// encoded and nothing refers to the bytes any more.
func (c *conn) releaseFetchBuffer() {
	if c.fetchBuf == nil {
		return
	}
	if cap(*c.fetchBuf) <= keptBufferBytes {
		fetchBuffers.Put(c.fetchBuf)
	}
	c.fetchBuf = nil
}

// readRequest reads one size-prefixed frame and decodes its header and body.
// The size is checked against limit before anything is allocated for the
// frame (readFrame).
func readRequest(r *bufio.Reader, limit int) (*request, error) {
	var sizeBuf [4]byte
	if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
	if size < 0 || int64(size) > int64(limit) {
		return nil, &badRequestError{-1, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, size, limit)}
	}
	frame, err := readFrame(r, int(size))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	req, err := parseRequest(frame)
	if err != nil {
		key := int16(-1)
		if len(frame) >= 2 {
			key = int16(binary.BigEndian.Uint16(frame))
		}
		return nil, &badRequestError{key, err}
	}
	return req, nil
}

// directFrameBytes is the largest frame read straight into a buffer of
// its declared size; a larger one is read into a frameScratch first.
const directFrameBytes = 64 << 10

// frameScratch are the buffers large request frames are read into, shared
// by the connections' readers.
var frameScratch = sync.Pool{New: func() any { return new([]byte) }}

// readFrame reads a frame of size bytes. A large one is read into a pooled
// scratch buffer that grows only as bytes arrive, so that a size alone (a
// client that declares 100 MB and sends nothing) allocates little, and is
// then copied once into a frame of its size. The frame itself cannot be
// pooled: a produced batch is referred to by the partition writer after
// the request has ended. Growing the frame itself as bytes arrived (by 4×)
// allocated 1.7 bytes per byte read: three quarters of the server's
// allocations in a Kafka firehose over 1,000 partitions.
func readFrame(r *bufio.Reader, size int) ([]byte, error) {
	if size <= directFrameBytes {
		frame := make([]byte, size)
		_, err := io.ReadFull(r, frame)
		return frame, err
	}
	bp := frameScratch.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= keptBufferBytes {
			*bp = buf[:0]
			frameScratch.Put(bp)
		}
	}()
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(size, max(2*cap(buf), directFrameBytes))-len(buf))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, err
		}
	}
	return bytes.Clone(buf), nil
}

// badRequestError is a request that cannot be handled (too large, not
// decodable, an unknown API or version), with its API key when known.
type badRequestError struct {
	key int16
	err error
}

func (e *badRequestError) Error() string { return e.err.Error() }
func (e *badRequestError) Unwrap() error { return e.err }

// parseRequest decodes a request frame (without its size): the request
// header (v1, or v2 with tagged fields for flexible versions) and the body.
func parseRequest(frame []byte) (*request, error) {
	if len(frame) < 10 {
		return nil, fmt.Errorf("%w: %d-byte header", ErrMalformed, len(frame))
	}
	be := binary.BigEndian
	req := &request{
		key:         int16(be.Uint16(frame[0:])),
		version:     int16(be.Uint16(frame[2:])),
		correlation: int32(be.Uint32(frame[4:])),
	}
	n := int16(be.Uint16(frame[8:]))
	p := 10
	if n >= 0 {
		if len(frame) < p+int(n) {
			return nil, fmt.Errorf("%w: client id past the end", ErrMalformed)
		}
		req.clientID = string(frame[p : p+int(n)])
		p += int(n)
	} else if n != -1 {
		return nil, fmt.Errorf("%w: client id length %d", ErrMalformed, n)
	}
	a, ok := apis[req.key]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownAPI, req.key)
	}
	if req.version < a.min || req.version > a.max {
		if req.key == int16(kmsg.ApiVersions) {
			return req, nil // answered with error 35 and the supported versions
		}
		return nil, fmt.Errorf("%w: %s v%d (Weir supports v%d to v%d)", ErrUnsupportedVersion, kmsg.NameForKey(req.key), req.version, a.min, a.max)
	}
	body := kmsg.RequestForKey(req.key)
	body.SetVersion(req.version)
	req.flexible = body.IsFlexible()
	if req.flexible {
		var err error
		if p, err = skipTags(frame, p); err != nil {
			return nil, err
		}
		// kmsg spins on impossible tagged-field counts (tagguard.go).
		if err := checkFlexibleBody(req.key, req.version, frame[p:]); err != nil {
			return nil, fmt.Errorf("%w: %s v%d: %w", ErrMalformed, kmsg.NameForKey(req.key), req.version, err)
		}
	}
	if err := body.ReadFrom(frame[p:]); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %w", ErrMalformed, kmsg.NameForKey(req.key), req.version, err)
	}
	req.body = body
	return req, nil
}

// skipTags skips a tagged-field section starting at p.
func skipTags(b []byte, p int) (int, error) {
	count, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad tagged field count", ErrMalformed)
	}
	p += n
	for range count {
		_, n := binary.Uvarint(b[p:])
		if n <= 0 {
			return 0, fmt.Errorf("%w: bad tag", ErrMalformed)
		}
		p += n
		size, n := binary.Uvarint(b[p:])
		if n <= 0 || size > uint64(len(b)-p-n) {
			return 0, fmt.Errorf("%w: bad tagged field size", ErrMalformed)
		}
		p += n + int(size)
	}
	return p, nil
}

// responseSizeHint is at least the encoded size of a fetch response (the
// only one that carries records), 0 for the others.
func responseSizeHint(resp kmsg.Response) int {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	const (
		header    = 64 // frame size, correlation id, throttle, error, session id, counts, tags
		topic     = 48 // name length, topic id, partition count, tags
		partition = 64 // the fixed fields, the lengths and the tags
		aborted   = 24 // producer id, first offset, tags
	)
	n := header
	for i := range f.Topics {
		t := &f.Topics[i]
		n += topic + len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += partition + len(p.RecordBatches) + aborted*len(p.AbortedTransactions)
		}
	}
	return n
}

// appendResponse appends the size-prefixed response frame: the response
// header (v0: the correlation id; v1 adds empty tagged fields for flexible
// versions, except for ApiVersions, whose response header is always v0) and
// the body.
func appendResponse(dst []byte, req *request, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(req.correlation))
	if req.flexible && req.key != int16(kmsg.ApiVersions) {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// handle answers one request; an error closes the connection.
func (c *conn) handle(req *request) (kmsg.Response, error) {
	if req.body == nil {
		return unsupportedAPIVersions(), nil
	}
	c.clientID = req.clientID
	if err := c.checkAuthenticated(req.key); err != nil {
		return nil, err
	}
	return apis[req.key].handle(c, req)
}
