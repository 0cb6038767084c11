package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// Publish stores a batch of records and answers once they are committed
// under the server's fsync policy.
func (s *Service) Publish(ctx context.Context, req *connect.Request[weirpb.PublishRequest]) (*connect.Response[weirpb.PublishResponse], error) {
	results, err := s.publish(ctx, req.Msg)
	if err != nil {
		return nil, s.fail(ctx, "Publish", err)
	}
	return connect.NewResponse(&weirpb.PublishResponse{Results: publishResultsToProto(results)}), nil
}

// PublishStream publishes the records of each request as it arrives and
// answers once, at the end, with the results of all of them in order. The
// first request that fails ends the call with its error; the requests before
// it stay published.
func (s *Service) PublishStream(ctx context.Context, stream *connect.ClientStream[weirpb.PublishRequest]) (*connect.Response[weirpb.PublishStreamResponse], error) {
	var all []broker.PublishResult
	for n := 0; stream.Receive(); n++ {
		results, err := s.publish(ctx, stream.Msg())
		if err != nil {
			var ce *connect.Error
			if errors.As(err, &ce) {
				return nil, connect.NewError(ce.Code(), fmt.Errorf("request %d: %s", n, ce.Message()))
			}
			return nil, s.fail(ctx, "PublishStream", fmt.Errorf("request %d: %w", n, err))
		}
		all = append(all, results...)
	}
	if err := stream.Err(); err != nil {
		return nil, err // connect's own error: a malformed message, a cancelled call
	}
	return connect.NewResponse(&weirpb.PublishStreamResponse{Results: publishResultsToProto(all)}), nil
}

// publish validates and publishes one request. Its errors are either
// connect errors (validation) or the broker's.
func (s *Service) publish(ctx context.Context, msg *weirpb.PublishRequest) ([]broker.PublishResult, error) {
	if msg.GetStream() == "" {
		return nil, invalidArgument("stream is required")
	}
	if len(msg.GetRecords()) == 0 {
		return nil, invalidArgument("records: nothing to publish")
	}
	recs, err := recordsFromProto("records", msg.GetRecords())
	if err != nil {
		return nil, err
	}
	var results []broker.PublishResult
	if msg.Partition != nil {
		if msg.GetPartition() < 0 {
			return nil, invalidArgument("partition must not be negative, got %d", msg.GetPartition())
		}
		results, err = s.broker.PublishPartition(ctx, msg.GetStream(), msg.GetPartition(), recs)
	} else {
		results, err = s.broker.Publish(ctx, msg.GetStream(), recs)
	}
	if err != nil {
		return nil, err
	}
	stored, bytes := 0, 0
	for i, r := range results {
		if !r.Duplicate {
			stored++
			bytes += recordBytes(&recs[i])
		}
	}
	if stored > 0 {
		s.observer.Published(msg.GetStream(), stored, bytes)
	}
	return results, nil
}

// recordBytes is a record's size as the metrics count it: key, value and
// headers, as the broker's record size limit does.
func recordBytes(r *broker.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
