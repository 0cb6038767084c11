package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID answers InitProducerId (key 22): for an idempotent
// producer a new producer id, or (v3+, KIP-360) the next epoch of the
// producer's current id; for a transactional producer, the producer id of
// its transactional id with a new epoch, which fences older instances and
// aborts a transaction they left open (broker.InitTransactional).
func handleInitProducerID(c *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	current, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		current, epoch = req.ProducerID, req.ProducerEpoch
	}
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		timeout := time.Duration(req.TransactionTimeoutMillis) * time.Millisecond
		id, e, err := c.s.cfg.Broker.InitTransactional(c.ctx, *req.TransactionalID, timeout, current, epoch)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		resp.ProducerID, resp.ProducerEpoch = id, e
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = c.s.cfg.Broker.InitProducerID(current, epoch)
	return resp, nil
}
