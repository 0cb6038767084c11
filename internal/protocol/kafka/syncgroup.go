package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSyncGroup answers SyncGroup (key 14): the leader hands over every
// member's assignment; each member gets its own once the leader's is in.
func handleSyncGroup(c *conn, req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	assignments := make(map[string][]byte, len(req.GroupAssignment))
	for _, a := range req.GroupAssignment {
		assignments[a.MemberID] = a.MemberAssignment
	}
	res, err := c.s.cfg.Broker.ClassicSync(c.ctx, req.Group, req.MemberID, deref(req.InstanceID), req.Generation, assignments)
	if err != nil {
		if c.ctx.Err() != nil {
			return nil, c.ctx.Err()
		}
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	resp.ProtocolType, resp.Protocol = &res.ProtocolType, &res.Protocol
	resp.MemberAssignment = res.Assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp, nil
}
