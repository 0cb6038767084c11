package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// OpenInbox creates an inbox (a temporary stream), sends its name, then
// every record published to it, until the client goes away or the server
// stops; then the inbox is deleted. HTTP/2 flow control holds the reads
// back when the client is slow; the inbox's retention bounds what waits.
func (s *Service) OpenInbox(ctx context.Context, req *connect.Request[weirpb.OpenInboxRequest], out *connect.ServerStream[weirpb.InboxResponse]) error {
	ctx, done := s.bind(ctx)
	defer done()
	name, err := s.broker.CreateInbox(ctx)
	if err != nil {
		return s.fail(ctx, "OpenInbox", err)
	}
	defer func() {
		if err := s.broker.DeleteStream(context.WithoutCancel(ctx), name); err != nil && !errors.Is(err, broker.ErrClosed) && !errors.Is(err, broker.ErrStreamNotFound) {
			s.logger.Warn("could not delete an inbox", "inbox", name, "err", err)
		}
	}()
	err = s.serveInbox(ctx, name, out)
	if ctx.Err() != nil && context.Cause(ctx) != errShuttingDown {
		return nil // the requester went away
	}
	return s.fail(ctx, "OpenInbox", err)
}

func (s *Service) serveInbox(ctx context.Context, name string, out *connect.ServerStream[weirpb.InboxResponse]) error {
	reader, err := s.broker.NewReader(name, map[int32]int64{0: 0})
	if err != nil {
		return err
	}
	if err := out.Send(&weirpb.InboxResponse{Msg: &weirpb.InboxResponse_Inbox{Inbox: name}}); err != nil {
		return err
	}
	for {
		recs, err := reader.Read(ctx, subscribeReadBytes, idleWait)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			// Idle: end if someone deleted the inbox under us.
			if _, err := s.broker.DescribeStream(name); err != nil {
				return fmt.Errorf("inbox %q was deleted: %w", name, err)
			}
			continue
		}
		event := &weirpb.Records{Records: recordsToProto(name, recs)}
		if err := out.Send(&weirpb.InboxResponse{Msg: &weirpb.InboxResponse_Records{Records: event}}); err != nil {
			return err
		}
		bytes := 0
		for i := range recs {
			bytes += recordBytes(&recs[i])
		}
		s.observer.Delivered(name, len(recs), bytes)
		paceDelivered(ctx, bytes)
	}
}
