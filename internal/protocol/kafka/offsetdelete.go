package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleOffsetDelete answers OffsetDelete (key 47): a group's committed
// offsets of some partitions are deleted, except those of topics the
// group's members consume (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does. A
// classic group's subscriptions are read from its members' consumer
// protocol metadata; a group of another protocol type with members answers
// NON_EMPTY_GROUP.
func handleOffsetDelete(c *conn, req *kmsg.OffsetDeleteRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var parts []broker.PartitionRef
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			parts = append(parts, broker.PartitionRef{Stream: t.Topic, Partition: p.Partition})
		}
	}
	errs, err := c.s.cfg.Broker.DeleteGroupOffsets(c.ctx, req.Group, parts, consumerSubscriptions)
	switch {
	case errors.Is(err, broker.ErrInvalidArgument):
		resp.ErrorCode = errorCodeInvalidGroup
		return resp, nil
	case err != nil && errs == nil:
		resp.ErrorCode = errorCode(err)
		return resp, nil
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = errorCode(errs[i])
			if err != nil && errs[i] == nil {
				rp.ErrorCode = errorCode(err) // the deletion itself failed
			}
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// consumerSubscriptions reads the topics of consumer protocol metadata
// (ConsumerProtocolSubscription), what every consumer assignor sends.
func consumerSubscriptions(protocolType string, metadata [][]byte) ([]string, bool) {
	if protocolType != "consumer" {
		return nil, false
	}
	var topics []string
	for _, md := range metadata {
		var m kmsg.ConsumerMemberMetadata
		if err := m.ReadFrom(md); err != nil {
			return nil, false
		}
		topics = append(topics, m.Topics...)
	}
	return topics, true
}
