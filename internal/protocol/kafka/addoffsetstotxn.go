package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleAddOffsetsToTxn answers AddOffsetsToTxn (key 25): the group's
// offsets join the producer's transaction, so TxnOffsetCommit may stage
// them.
func handleAddOffsetsToTxn(c *conn, req *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	err := c.s.cfg.Broker.AddTxnGroup(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group)
	resp.ErrorCode = errorCode(err)
	if errors.Is(err, broker.ErrInvalidArgument) {
		resp.ErrorCode = errorCodeInvalidGroup
	}
	return resp, nil
}
