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
	s.countPublished(msg.GetStream(), recs, results)
	paceProduce(ctx, recs)
	return results, nil
}

// countPublished tells the observer what a publish stored in stream: the
// records that were not duplicates (results nil: all of them).
func (s *Service) countPublished(stream string, recs []broker.Record, results []broker.PublishResult) {
	stored, bytes := 0, 0
	for i := range recs {
		if results == nil || !results[i].Duplicate {
			stored++
			bytes += recordBytes(&recs[i])
		}
	}
	if stored > 0 {
		s.observer.Published(stream, stored, bytes)
	}
}

// PublishTo publishes records to a recipient list: streams and exchanges.
// When some destinations fail, the error names them; the others may hold
// the records, and a retry with the same message-ids stores nothing twice.
func (s *Service) PublishTo(ctx context.Context, req *connect.Request[weirpb.PublishToRequest]) (*connect.Response[weirpb.PublishToResponse], error) {
	msg := req.Msg
	if len(msg.GetRecords()) == 0 {
		return nil, invalidArgument("records: nothing to publish")
	}
	recs, err := recordsFromProto("records", msg.GetRecords())
	if err != nil {
		return nil, err
	}
	dests := make([]broker.Destination, len(msg.GetDestinations()))
	for i, d := range msg.GetDestinations() {
		dests[i] = broker.Destination{Stream: d.GetStream(), Exchange: d.GetExchange(), RoutingKey: d.GetRoutingKey()}
	}
	results, err := s.broker.PublishTo(ctx, dests, recs)
	if len(results) > 0 {
		paceProduce(ctx, recs) // once, however many destinations
	}
	resp := &weirpb.PublishToResponse{Results: make([]*weirpb.DestinationResult, len(results))}
	for i, r := range results {
		resp.Results[i] = &weirpb.DestinationResult{
			Destination: msg.GetDestinations()[i],
			Results:     publishResultsToProto(r.Results),
			Streams:     r.Streams,
			Unroutable:  r.Destination.Exchange != "" && len(r.Streams) == 0,
		}
		if r.Results != nil {
			s.countPublished(r.Destination.Stream, recs, r.Results)
		}
		for _, st := range r.Streams {
			s.countPublished(st, recs, nil)
		}
	}
	if err != nil {
		return nil, s.fail(ctx, "PublishTo", err)
	}
	return connect.NewResponse(resp), nil
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
