package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleEndTxn answers EndTxn (key 26): the producer's transaction commits
// or aborts, a COMMIT or ABORT marker written into each of its partitions
// before the answer (broker.EndTxn).
func handleEndTxn(c *conn, req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ErrorCode = errorCode(c.s.cfg.Broker.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit))
	return resp, nil
}
