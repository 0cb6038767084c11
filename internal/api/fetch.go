package api

import (
	"context"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// Bounds of Fetch.
const (
	// MaxFetchWait bounds FetchRequest.max_wait.
	MaxFetchWait = 30 * time.Second
	// DefaultFetchBytes is FetchRequest.max_bytes when unset.
	DefaultFetchBytes = 1 << 20
	// MaxFetchBytes bounds FetchRequest.max_bytes: a response must stay
	// below the 4 MiB that gRPC clients accept by default.
	MaxFetchBytes = 3 << 20
)

// Fetch reads one partition from an offset, waiting up to max_wait for a
// record when there is none yet.
func (s *Service) Fetch(ctx context.Context, req *connect.Request[weirpb.FetchRequest]) (*connect.Response[weirpb.FetchResponse], error) {
	msg := req.Msg
	if msg.GetStream() == "" {
		return nil, invalidArgument("stream is required")
	}
	if msg.GetPartition() < 0 {
		return nil, invalidArgument("partition must not be negative, got %d", msg.GetPartition())
	}
	if msg.GetOffset() < 0 {
		return nil, invalidArgument("offset must not be negative, got %d", msg.GetOffset())
	}
	maxBytes := int(msg.GetMaxBytes())
	switch {
	case maxBytes < 0 || maxBytes > MaxFetchBytes:
		return nil, invalidArgument("max_bytes must be 0 (for %d) to %d, got %d", DefaultFetchBytes, MaxFetchBytes, maxBytes)
	case maxBytes == 0:
		maxBytes = DefaultFetchBytes
	}
	wait, err := durationFromProto("max_wait", msg.GetMaxWait())
	if err != nil {
		return nil, err
	}
	if wait < 0 || wait > MaxFetchWait {
		return nil, invalidArgument("max_wait must be 0 to %v, got %v", MaxFetchWait, wait)
	}

	ctx, done := s.bind(ctx)
	defer done()
	res, err := s.broker.Fetch(ctx, msg.GetStream(), msg.GetPartition(), msg.GetOffset(), maxBytes, wait)
	if err != nil {
		return nil, s.fail(ctx, "Fetch", err)
	}
	if n := len(res.Records); n > 0 {
		bytes := 0
		for i := range res.Records {
			bytes += recordBytes(&res.Records[i])
		}
		s.observer.Delivered(msg.GetStream(), n, bytes)
		paceDelivered(ctx, bytes) // the answer waits out the consume quota's debt
	}
	return connect.NewResponse(&weirpb.FetchResponse{
		Records:     recordsToProto(msg.GetStream(), res.Records),
		NextOffset:  res.NextOffset,
		HighWater:   res.HighWater,
		StartOffset: res.StartOffset,
	}), nil
}
