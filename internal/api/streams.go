package api

import (
	"context"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// CreateStream creates a stream.
func (s *Service) CreateStream(ctx context.Context, req *connect.Request[weirpb.CreateStreamRequest]) (*connect.Response[weirpb.StreamInfo], error) {
	cfg, err := streamConfigFromProto(req.Msg.GetConfig())
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		return nil, invalidArgument("config.name is required")
	}
	info, err := s.broker.CreateStream(ctx, cfg)
	if err != nil {
		return nil, s.fail(ctx, "CreateStream", err)
	}
	return connect.NewResponse(streamInfoToProto(info)), nil
}

// ListStreams describes every stream, by name.
func (s *Service) ListStreams(ctx context.Context, req *connect.Request[weirpb.ListStreamsRequest]) (*connect.Response[weirpb.ListStreamsResponse], error) {
	out := &weirpb.ListStreamsResponse{}
	for _, info := range s.broker.ListStreams() {
		if broker.Visible(ctx, auth.ResourceStream, info.Config.Name) {
			out.Streams = append(out.Streams, streamInfoToProto(info))
		}
	}
	return connect.NewResponse(out), nil
}

// DescribeStream describes one stream.
func (s *Service) DescribeStream(ctx context.Context, req *connect.Request[weirpb.DescribeStreamRequest]) (*connect.Response[weirpb.StreamInfo], error) {
	if req.Msg.GetName() == "" {
		return nil, invalidArgument("name is required")
	}
	if err := broker.AuthorizeDescribe(ctx, auth.ResourceStream, req.Msg.GetName()); err != nil {
		return nil, s.fail(ctx, "DescribeStream", err)
	}
	info, err := s.broker.DescribeStream(req.Msg.GetName())
	if err != nil {
		return nil, s.fail(ctx, "DescribeStream", err)
	}
	return connect.NewResponse(streamInfoToProto(info)), nil
}

// DeleteStream deletes a stream with its records and committed offsets.
func (s *Service) DeleteStream(ctx context.Context, req *connect.Request[weirpb.DeleteStreamRequest]) (*connect.Response[weirpb.DeleteStreamResponse], error) {
	name := req.Msg.GetName()
	if name == "" {
		return nil, invalidArgument("name is required")
	}
	if err := s.broker.DeleteStream(ctx, name); err != nil {
		return nil, s.fail(ctx, "DeleteStream", err)
	}
	s.observer.StreamDeleted(name)
	return connect.NewResponse(&weirpb.DeleteStreamResponse{}), nil
}

// AddPartitions grows a stream.
func (s *Service) AddPartitions(ctx context.Context, req *connect.Request[weirpb.AddPartitionsRequest]) (*connect.Response[weirpb.StreamInfo], error) {
	if req.Msg.GetName() == "" {
		return nil, invalidArgument("name is required")
	}
	if req.Msg.GetTotal() <= 0 {
		return nil, invalidArgument("total must be the new partition count, larger than the current one; got %d", req.Msg.GetTotal())
	}
	info, err := s.broker.AddPartitions(ctx, req.Msg.GetName(), req.Msg.GetTotal())
	if err != nil {
		return nil, s.fail(ctx, "AddPartitions", err)
	}
	return connect.NewResponse(streamInfoToProto(info)), nil
}

// ServerInfo names the server's version and the caller's user.
func (s *Service) ServerInfo(ctx context.Context, _ *connect.Request[weirpb.ServerInfoRequest]) (*connect.Response[weirpb.ServerInfoResponse], error) {
	out := &weirpb.ServerInfoResponse{Version: s.version}
	if p, ok := broker.PrincipalFrom(ctx); ok {
		out.User = p.User()
	}
	return connect.NewResponse(out), nil
}
