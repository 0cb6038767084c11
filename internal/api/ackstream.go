package api

import (
	"context"
	"errors"
	"io"
	"sync"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// maxAckStreamPending bounds the requests of one AckStream settled at
// once: past it the stream is read no further until one is answered, so a
// client that sends without reading the answers holds no more goroutines
// than this. The SDK sends the acks of all of a client's consumers on one
// stream, a few batches under way for each: a client with hundreds of busy
// queues has hundreds of requests waiting for their fsync at once.
const maxAckStreamPending = 1024

// AckStream acks records as Ack does, for a stream of requests. Each
// request is settled on a goroutine of its own, so that the requests under
// way share the subscription's group commit, and answered with its id once
// durable or refused; a refused request does not end the stream. When the
// client closes its side, the stream ends once every request is answered.
// The requests are read on a goroutine of their own, so that the stream
// also ends when the service shuts down (a read of the request would wait
// for the client).
func (s *Service) AckStream(ctx context.Context, stream *connect.BidiStream[weirpb.AckStreamRequest, weirpb.AckStreamResponse]) error {
	ctx, done := s.bind(ctx)
	defer done()
	var (
		sendMu  sync.Mutex
		sendErr error // the first failed Send: no more answers go out
		pending sync.WaitGroup
	)
	answer := func(id uint64, err error) {
		resp := &weirpb.AckStreamResponse{Id: id}
		if err != nil {
			var ce *connect.Error
			if errors.As(s.fail(ctx, "AckStream", err), &ce) {
				resp.Code, resp.Message = ce.Code().String(), ce.Message()
			}
		}
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(resp)
		}
	}
	defer pending.Wait()
	requests := make(chan *weirpb.AckStreamRequest)
	received := make(chan error, 1) // why the reading ended
	go func() {
		for {
			req, err := stream.Receive()
			if err != nil {
				received <- err
				return
			}
			select {
			case requests <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	slots := make(chan struct{}, maxAckStreamPending)
	for {
		var req *weirpb.AckStreamRequest
		select {
		case req = <-requests:
		case err := <-received:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return s.fail(ctx, "AckStream", context.Cause(ctx))
		}
		sub, refs, err := s.ackStreamRequest(req)
		if err != nil {
			answer(req.GetId(), err)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return s.fail(ctx, "AckStream", context.Cause(ctx))
		}
		pending.Add(1)
		go func() {
			defer func() {
				<-slots
				pending.Done()
			}()
			answer(req.GetId(), s.ack(ctx, sub, refs))
		}()
	}
}

// ackStreamRequest finds the subscription an AckStreamRequest names and
// converts its records.
func (s *Service) ackStreamRequest(req *weirpb.AckStreamRequest) (*subscription, []broker.DeliveryRef, error) {
	sub, err := s.sharedSubscription(req.GetSubscriptionId())
	if err != nil {
		return nil, nil, err
	}
	refs, err := deliveryRefsFromLists(req.GetPartitions(), req.GetOffsets())
	if err != nil {
		return nil, nil, err
	}
	return sub, refs, nil
}
