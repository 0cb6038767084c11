package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// FindCoordinator's key types: consumer groups and transactional ids.
const (
	coordinatorGroup       = 0
	coordinatorTransaction = 1
)

// handleFindCoordinator answers FindCoordinator (key 10): this node
// coordinates every group and transactional id, at the address the client
// connected to.
func handleFindCoordinator(c *conn, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	answer := func(key string) (code int16, msg *string) {
		switch {
		case req.CoordinatorType == coordinatorTransaction && key == "":
			return kerr.InvalidRequest.Code, errorMessage(errors.New("empty transactional id"))
		case req.CoordinatorType == coordinatorTransaction:
			return 0, nil
		case req.CoordinatorType != coordinatorGroup:
			return kerr.InvalidRequest.Code, errorMessage(fmt.Errorf("coordinator type %d: Weir coordinates groups and transactions", req.CoordinatorType))
		case broker.ValidateGroupName(key) != nil:
			return kerr.InvalidGroupID.Code, errorMessage(broker.ValidateGroupName(key))
		}
		return 0, nil
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			rc := kmsg.NewFindCoordinatorResponseCoordinator()
			rc.Key = key
			rc.ErrorCode, rc.ErrorMessage = answer(key)
			if rc.ErrorCode == 0 {
				rc.NodeID, rc.Host, rc.Port = nodeID, c.host, c.port
			} else {
				rc.NodeID, rc.Port = -1, -1
			}
			resp.Coordinators = append(resp.Coordinators, rc)
		}
		return resp, nil
	}
	resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorKey)
	if resp.ErrorCode == 0 {
		resp.NodeID, resp.Host, resp.Port = nodeID, c.host, c.port
	} else {
		resp.NodeID, resp.Port = -1, -1
	}
	return resp, nil
}
