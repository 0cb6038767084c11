package weir

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// ackStreams carries the acks of a client's shared consumers over a few
// AckStream calls instead of an Ack call per batch. On HTTP/2 a request on
// an open stream costs the client and the server a frame each way, where
// an Ack call opens a stream of its own, with headers, trailers and a
// handler. Each batch is a request with an id and its subscription's id,
// which the server answers once its acks are durable. The consumers'
// sessions share ackLanes streams, each session one of them in turn: a
// client with 10,000 queues holds four streams (and the server four
// handlers), not one per queue, while a few busy consumers do not queue
// behind one stream's writes. A stream is opened at its first ack and
// closed when no session is left to use it; one that breaks fails the
// batches waiting on it, and the next batch opens another. A server
// without AckStream (older than the SDK) turns them off for the client:
// acks go in Ack calls.
type ackStreams struct {
	c     *Client
	off   atomic.Bool // the server has no AckStream
	next  atomic.Uint32
	lanes [ackLanes]ackStream
}

// ackLanes is how many AckStream calls a client's consumers share. With
// one for all, four busy consumers of one client spent 6% more CPU per
// record than with one each (the issue-4 bench).
const ackLanes = 4

func newAckStreams(c *Client) *ackStreams {
	p := &ackStreams{c: c}
	for i := range p.lanes {
		p.lanes[i].p = p
	}
	return p
}

// acquire gives a session the stream its acks go on.
func (p *ackStreams) acquire() *ackStream {
	a := &p.lanes[p.next.Add(1)%ackLanes]
	a.mu.Lock()
	a.users++
	a.mu.Unlock()
	return a
}

// ackStream is one lane: an AckStream call, open while sessions use it.
type ackStream struct {
	p *ackStreams

	mu     sync.Mutex
	users  int      // sessions that may ack (acquired, not released)
	cur    *ackCall // nil: none open
	nextID uint64
}

// ackCall is one AckStream call and the requests it has not answered.
type ackCall struct {
	stream  *connect.BidiStreamForClient[weirpb.AckStreamRequest, weirpb.AckStreamResponse]
	sendMu  sync.Mutex // one Send at a time
	cancel  context.CancelFunc
	waiting map[uint64]chan error // nil once the call has ended
}

// errNoAckStream: the server does not serve AckStream.
var errNoAckStream = errors.New("the server has no AckStream")

// release uncounts a session that has no acks under way; the last one out
// closes the call (the server answers what it has, then ends it).
func (a *ackStream) release() {
	a.mu.Lock()
	a.users--
	var c *ackCall
	if a.users == 0 {
		c, a.cur = a.cur, nil
	}
	a.mu.Unlock()
	if c != nil {
		c.sendMu.Lock()
		c.stream.CloseRequest()
		c.sendMu.Unlock()
	}
}

// ack acks msgs, records of the subscription sub, in one request and
// returns the server's answer (a *connect.Error when it refused them),
// ctx's error, or errNoAckStream.
func (a *ackStream) ack(ctx context.Context, sub string, msgs []*Message) error {
	req := &weirpb.AckStreamRequest{
		SubscriptionId: sub,
		Partitions:     make([]int32, len(msgs)),
		Offsets:        make([]int64, len(msgs)),
	}
	for i, m := range msgs {
		req.Partitions[i], req.Offsets[i] = m.Partition, m.Offset
	}
	done := make(chan error, 1)
	if a.p.off.Load() {
		return errNoAckStream
	}
	a.mu.Lock()
	c := a.cur
	if c == nil {
		// The call lives until released or the client closes, not as
		// long as the session that opens it.
		sctx, cancel := context.WithCancel(a.p.c.closedCtx)
		c = &ackCall{stream: a.p.c.api.AckStream(sctx), cancel: cancel, waiting: make(map[uint64]chan error)}
		a.cur = c
		go a.receive(c)
	}
	a.nextID++
	req.Id = a.nextID
	c.waiting[req.Id] = done
	a.mu.Unlock()
	// Sends take the call's own lock, not a.mu, which the answers need.
	// When Send fails the call has broken, and receive tells every waiter
	// why, this one included.
	c.sendMu.Lock()
	_ = c.stream.Send(req)
	c.sendMu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		a.mu.Lock()
		delete(c.waiting, req.Id)
		a.mu.Unlock()
		return ctx.Err()
	}
}

// receive hands the answers of c to their waiters until c ends.
func (a *ackStream) receive(c *ackCall) {
	defer c.cancel()
	for {
		resp, err := c.stream.Receive()
		if err != nil {
			a.end(c, err)
			return
		}
		a.mu.Lock()
		done, ok := c.waiting[resp.GetId()]
		delete(c.waiting, resp.GetId())
		a.mu.Unlock()
		if ok {
			done <- ackStreamError(resp)
		}
	}
}

// end fails the requests c has not answered with err, the reason it ended.
func (a *ackStream) end(c *ackCall, err error) {
	a.mu.Lock()
	if a.cur == c {
		a.cur = nil
	}
	switch {
	case connect.CodeOf(err) == connect.CodeUnimplemented:
		a.p.off.Store(true)
		err = errNoAckStream
	case errors.Is(err, io.EOF):
		err = connect.NewError(connect.CodeUnavailable, errors.New("the ack stream ended before the server answered"))
	}
	waiting := c.waiting
	c.waiting = nil
	a.mu.Unlock()
	for _, done := range waiting {
		done <- err
	}
	c.stream.CloseResponse()
}

// ackStreamError is the error an AckStreamResponse reports, nil when the
// acks are durable.
func ackStreamError(resp *weirpb.AckStreamResponse) error {
	if resp.GetCode() == "" {
		return nil
	}
	var code connect.Code
	if code.UnmarshalText([]byte(resp.GetCode())) != nil {
		code = connect.CodeUnknown
	}
	return connect.NewError(code, errors.New(resp.GetMessage()))
}
