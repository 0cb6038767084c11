package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// nativeProtocolType is how Kafka tools see a group whose members use
// Weir's native API (the broker assigns their partitions).
const nativeProtocolType = "weir"

// handleDescribeGroups answers DescribeGroups (key 15): a Kafka group with
// its members, metadata and assignments; a native group with members as
// Stable with protocol type "weir"; a group that only has committed offsets
// as Empty; any other name as Dead (Kafka's answer for unknown groups).
func handleDescribeGroups(c *conn, req *kmsg.DescribeGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	b := c.s.cfg.Broker
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		if !c.groupVisible(name) {
			rg.ErrorCode = kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if info, ok := b.DescribeClassicGroup(name); ok {
			rg.State, rg.ProtocolType, rg.Protocol = info.State, info.ProtocolType, info.Protocol
			for _, m := range info.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.ClientID, rm.ClientHost = m.MemberID, m.ClientID, m.ClientHost
				if m.InstanceID != "" {
					rm.InstanceID = &m.InstanceID
				}
				rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
				rg.Members = append(rg.Members, rm)
			}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		native, err := b.DescribeGroup(name)
		switch {
		case errors.Is(err, broker.ErrGroupNotFound):
			rg.State = "Dead"
		case err != nil:
			rg.ErrorCode = errorCode(err)
		case len(native.Members) > 0:
			rg.State, rg.ProtocolType, rg.Protocol = "Stable", nativeProtocolType, native.Strategy
			for _, m := range native.Members {
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.ClientID = m.MemberID, m.ClientID
				rm.ProtocolMetadata, rm.MemberAssignment = []byte{}, []byte{}
				rg.Members = append(rg.Members, rm)
			}
		default:
			rg.State, rg.ProtocolType = "Empty", "consumer"
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
