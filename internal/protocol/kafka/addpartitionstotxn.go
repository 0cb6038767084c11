package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleAddPartitionsToTxn answers AddPartitionsToTxn (key 24, v0-v3, the
// client's form): the partitions join the producer's transaction (see
// broker.AddTxnPartitions); when one cannot, the others answer
// OPERATION_NOT_ATTEMPTED.
func handleAddPartitionsToTxn(c *conn, req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var parts []broker.PartitionRef
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, broker.PartitionRef{Stream: t.Topic, Partition: p})
		}
	}
	errs, err := c.s.cfg.Broker.AddTxnPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, parts)
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			if err != nil {
				rp.ErrorCode = errorCode(err)
			} else {
				rp.ErrorCode = errorCode(errs[i])
			}
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
