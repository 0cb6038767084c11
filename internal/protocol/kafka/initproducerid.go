package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleInitProducerID answers InitProducerId (key 22) for idempotent
// producers: a new producer id, or (v3+, KIP-360) the next epoch of the
// producer's current id. Transactions are not supported, so a request with
// a transactional id is refused.
func handleInitProducerID(c *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	current, epoch := int64(-1), int16(-1)
	if req.Version >= 3 {
		current, epoch = req.ProducerID, req.ProducerEpoch
	}
	resp.ProducerID, resp.ProducerEpoch = c.s.cfg.Broker.InitProducerID(current, epoch)
	return resp, nil
}
