package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleDeleteGroups answers DeleteGroups (key 42): a group without members
// loses its committed offsets (shared with the native group of that name).
func handleDeleteGroups(c *conn, req *kmsg.DeleteGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		err := c.s.cfg.Broker.DeleteGroup(c.ctx, name)
		switch {
		case err == nil:
		case errors.Is(err, broker.ErrGroupNotEmpty):
			rg.ErrorCode = kerr.NonEmptyGroup.Code
		case errors.Is(err, broker.ErrInvalidArgument):
			rg.ErrorCode = errorCodeInvalidGroup
		default:
			rg.ErrorCode = errorCode(err)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}
