package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleLeaveGroup answers LeaveGroup (key 13): one member (v0-v2) or a
// list of them (v3+) leave, and the rest rebalance. A static member may be
// named by its instance id alone (an administrator removing it).
func handleLeaveGroup(c *conn, req *kmsg.LeaveGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	b := c.s.cfg.Broker
	if req.Version < 3 {
		resp.ErrorCode = errorCode(b.ClassicLeave(req.Group, req.MemberID, ""))
		return resp, nil
	}
	for _, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, m.InstanceID
		rm.ErrorCode = errorCode(b.ClassicLeave(req.Group, m.MemberID, deref(m.InstanceID)))
		resp.Members = append(resp.Members, rm)
	}
	return resp, nil
}
