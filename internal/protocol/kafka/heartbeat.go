package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleHeartbeat answers Heartbeat (key 12); REBALANCE_IN_PROGRESS tells
// the member to join again.
func handleHeartbeat(c *conn, req *kmsg.HeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = errorCode(c.s.cfg.Broker.ClassicHeartbeat(req.Group, req.MemberID, deref(req.InstanceID), req.Generation))
	return resp, nil
}
