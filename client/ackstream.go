package weir

import (
	"context"
	"errors"
	"io"
	"sync"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// ackStream carries a shared session's acks over one AckStream call
// instead of an Ack call per batch. On HTTP/2 a request on an open stream
// costs the client and the server a frame each way, where an Ack call
// opens a stream of its own, with headers, trailers and a handler. Each
// batch is a request with an id, which the server answers once its acks
// are durable. A stream that breaks fails the batches waiting on it; the
// next batch opens another. A server without AckStream (older than the
// SDK) turns it off for the session: its acks go in Ack calls.
type ackStream struct {
	s *session

	mu     sync.Mutex
	cur    *ackCall // nil: none open
	nextID uint64
	off    bool // the server has no AckStream
}

// ackCall is one AckStream call and the requests it has not answered.
type ackCall struct {
	stream  *connect.BidiStreamForClient[weirpb.AckStreamRequest, weirpb.AckStreamResponse]
	waiting map[uint64]chan error // nil once the call has ended
}

// errNoAckStream: the server does not serve AckStream.
var errNoAckStream = errors.New("the server has no AckStream")

// ack acks msgs in one request and returns the server's answer (a
// *connect.Error when it refused them), or errNoAckStream.
func (a *ackStream) ack(ctx context.Context, msgs []*Message) error {
	req := &weirpb.AckStreamRequest{
		SubscriptionId: a.s.id,
		Partitions:     make([]int32, len(msgs)),
		Offsets:        make([]int64, len(msgs)),
	}
	for i, m := range msgs {
		req.Partitions[i], req.Offsets[i] = m.Partition, m.Offset
	}
	done := make(chan error, 1)
	a.mu.Lock()
	if a.off {
		a.mu.Unlock()
		return errNoAckStream
	}
	c := a.cur
	if c == nil {
		c = &ackCall{stream: a.s.cons.c.api.AckStream(a.s.ctx), waiting: make(map[uint64]chan error)}
		a.cur = c
		a.s.loops.Add(1)
		go a.receive(c)
	}
	a.nextID++
	req.Id = a.nextID
	c.waiting[req.Id] = done
	// When Send fails the call has broken, and receive tells every waiter
	// why, this one included.
	_ = c.stream.Send(req)
	a.mu.Unlock()
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
	defer a.s.loops.Done()
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
		a.off = true
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

// close ends the open call, if any, once its requests are answered (the
// session has no acks under way when it closes).
func (a *ackStream) close() {
	a.mu.Lock()
	c := a.cur
	a.cur = nil
	a.mu.Unlock()
	if c != nil {
		c.stream.CloseRequest()
	}
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
