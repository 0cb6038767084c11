package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleJoinGroup answers JoinGroup (key 11) once the group's rebalance
// completes (see broker.ClassicJoin). From v4 a new member first gets
// MEMBER_ID_REQUIRED with its id. From v5 a member may be static
// (group.instance.id, KIP-345): see broker/classic_static.go; from v9 a
// restarted static leader is told to skip the assignment (KIP-814).
func handleJoinGroup(c *conn, req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	rebalance := req.RebalanceTimeoutMillis
	if req.Version == 0 {
		rebalance = req.SessionTimeoutMillis
	}
	jr := broker.ClassicJoinRequest{
		Group: req.Group, MemberID: req.MemberID, ClientID: c.clientID, ClientHost: c.clientHost,
		ProtocolType:            req.ProtocolType,
		SessionTimeout:          time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:        time.Duration(rebalance) * time.Millisecond,
		RequireKnownMemberID:    req.Version >= 4,
		SkipAssignmentSupported: req.Version >= 9,
		InstanceID:              deref(req.InstanceID),
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, broker.ClassicProtocol{Name: p.Name, Metadata: p.Metadata})
	}
	res, err := c.s.cfg.Broker.ClassicJoin(c.ctx, jr)
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, c.ctx.Err()
		}
		resp.ErrorCode = errorCode(err)
		if errors.Is(err, broker.ErrInvalidArgument) {
			resp.ErrorCode = errorCodeInvalidGroup
		}
		resp.Generation = -1
		resp.MemberID = req.MemberID
		if errors.Is(err, broker.ErrMemberIDRequired) {
			resp.MemberID = res.MemberID
		}
		return resp, nil
	}
	resp.Generation = res.Generation
	resp.ProtocolType = &res.ProtocolType
	resp.Protocol = &res.Protocol
	resp.LeaderID = res.Leader
	resp.MemberID = res.MemberID
	resp.SkipAssignment = res.SkipAssignment
	for _, m := range res.Members {
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.ProtocolMetadata = m.MemberID, m.Metadata
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
