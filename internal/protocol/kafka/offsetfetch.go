package kafka

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleOffsetFetch answers OffsetFetch (key 9) from Weir's offsets table,
// so offsets a native group committed are read by a Kafka group of the same
// name. A partition without a committed offset answers -1. A null topic
// list (v2+) asks for every committed offset of the group.
func handleOffsetFetch(c *conn, req *kmsg.OffsetFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	b := c.s.cfg.Broker
	if err := broker.ValidateGroupName(req.Group); err != nil {
		resp.ErrorCode = errorCodeInvalidGroup
		return resp, nil
	}
	groupAllowed := c.groupVisible(req.Group)
	if !groupAllowed && req.Version >= 2 {
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	partition := func(stream string, p int32) kmsg.OffsetFetchResponseTopicPartition {
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
		switch {
		case !groupAllowed: // v0 and v1 have no top-level error code
			rp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return rp
		case !c.topicVisible(stream):
			rp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			return rp
		}
		off, meta, found, err := b.CommittedOffset(req.Group, stream, p)
		if err != nil {
			rp.ErrorCode = errorCode(err)
		} else if found {
			rp.Offset, rp.Metadata = off, &meta
		}
		return rp
	}
	if req.Topics == nil && req.Version >= 2 {
		all, err := b.CommittedOffsets(req.Group)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp, nil
		}
		slices.SortFunc(all, func(x, y broker.OffsetCommit) int {
			return cmp.Or(cmp.Compare(x.Stream, y.Stream), cmp.Compare(x.Partition, y.Partition))
		})
		for _, o := range all {
			if !c.topicVisible(o.Stream) {
				continue // as Kafka leaves out topics without DESCRIBE
			}
			if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != o.Stream {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = o.Stream
				resp.Topics = append(resp.Topics, rt)
			}
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			meta := o.Metadata
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Partition, o.Offset, -1, &meta
			t := &resp.Topics[len(resp.Topics)-1]
			t.Partitions = append(t.Partitions, rp)
		}
		return resp, nil
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, partition(t.Topic, p))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
