package api

import (
	"context"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// Commit records a group's positions. A subscriber commits with the
// member_id of its Subscribed event and the generation of its latest
// Assignment event; tools commit to a group without active members with no
// member_id.
func (s *Service) Commit(ctx context.Context, req *connect.Request[weirpb.CommitRequest]) (*connect.Response[weirpb.CommitResponse], error) {
	msg := req.Msg
	if msg.GetGroup() == "" {
		return nil, invalidArgument("group is required")
	}
	if msg.GetMemberId() != "" && msg.GetGeneration() <= 0 {
		return nil, invalidArgument("generation is required with member_id: use the one of the latest Assignment event")
	}
	offsets, err := offsetCommitsFromProto(msg.GetOffsets())
	if err != nil {
		return nil, err
	}
	if err := s.broker.CommitOffsets(ctx, msg.GetGroup(), msg.GetMemberId(), msg.GetGeneration(), offsets); err != nil {
		return nil, s.fail(ctx, "Commit", err)
	}
	return connect.NewResponse(&weirpb.CommitResponse{}), nil
}

// ListGroups names every group with committed offsets or active members.
func (s *Service) ListGroups(ctx context.Context, req *connect.Request[weirpb.ListGroupsRequest]) (*connect.Response[weirpb.ListGroupsResponse], error) {
	groups, err := s.broker.ListGroups()
	if err != nil {
		return nil, s.fail(ctx, "ListGroups", err)
	}
	out := &weirpb.ListGroupsResponse{}
	for _, g := range groups {
		if broker.Visible(ctx, auth.ResourceGroup, g) {
			out.Groups = append(out.Groups, g)
		}
	}
	return connect.NewResponse(out), nil
}

// DescribeGroup returns a group's members, assignment and offsets with lag.
func (s *Service) DescribeGroup(ctx context.Context, req *connect.Request[weirpb.DescribeGroupRequest]) (*connect.Response[weirpb.GroupInfo], error) {
	if req.Msg.GetGroup() == "" {
		return nil, invalidArgument("group is required")
	}
	if err := broker.AuthorizeDescribe(ctx, auth.ResourceGroup, req.Msg.GetGroup()); err != nil {
		return nil, s.fail(ctx, "DescribeGroup", err)
	}
	info, err := s.broker.DescribeGroup(req.Msg.GetGroup())
	if err != nil {
		return nil, s.fail(ctx, "DescribeGroup", err)
	}
	return connect.NewResponse(groupInfoToProto(visibleGroupInfo(ctx, info))), nil
}

// ResetOffsets moves a group's committed offsets on one stream, every
// partition, to a position. The group must have no active members.
func (s *Service) ResetOffsets(ctx context.Context, req *connect.Request[weirpb.ResetOffsetsRequest]) (*connect.Response[weirpb.GroupInfo], error) {
	msg := req.Msg
	if msg.GetGroup() == "" {
		return nil, invalidArgument("group is required")
	}
	if msg.GetStream() == "" {
		return nil, invalidArgument("stream is required")
	}
	if msg.GetTo().GetPosition() == nil {
		return nil, invalidArgument("to is required: latest, earliest, an offset or a time")
	}
	to, err := startFromProto("to", msg.GetTo(), broker.StartPosition{})
	if err != nil {
		return nil, err
	}
	if _, err := s.broker.ResetOffsets(ctx, msg.GetGroup(), msg.GetStream(), to); err != nil {
		return nil, s.fail(ctx, "ResetOffsets", err)
	}
	info, err := s.broker.DescribeGroup(msg.GetGroup())
	if err != nil {
		return nil, s.fail(ctx, "ResetOffsets", err)
	}
	return connect.NewResponse(groupInfoToProto(visibleGroupInfo(ctx, info))), nil
}
