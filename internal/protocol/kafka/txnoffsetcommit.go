package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleTxnOffsetCommit answers TxnOffsetCommit (key 28): a group's
// offsets are staged in the producer's transaction and become the group's
// committed offsets only when it commits (broker.TxnCommitOffsets). From
// v3 the member and generation are checked as for OffsetCommit.
func handleTxnOffsetCommit(c *conn, req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	generation, member := req.Generation, req.MemberID
	if req.Version < 3 {
		generation, member = -1, ""
	}
	var commits []broker.OffsetCommit
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			oc := broker.OffsetCommit{Stream: t.Topic, Partition: p.Partition, Offset: p.Offset}
			if p.Metadata != nil {
				oc.Metadata = *p.Metadata
			}
			commits = append(commits, oc)
		}
	}
	errs, err := c.s.cfg.Broker.TxnCommitOffsets(req.TransactionalID, req.ProducerID, req.ProducerEpoch,
		req.Group, member, deref(req.InstanceID), generation, commits)
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = commitErrorCode(err, errs, i)
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
