package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleCreateTopics answers CreateTopics (key 19): each topic becomes a
// stream. Replication factors other than 1 (or -1, the default) are refused:
// Weir is one node. Topic configurations retention.ms, retention.bytes,
// segment.bytes and cleanup.policy map onto the stream's settings.
func handleCreateTopics(c *conn, req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	b := c.s.cfg.Broker
	seen := make(map[string]int)
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		rt.NumPartitions, rt.ReplicationFactor = -1, -1
		fail := func(code int16, err error) {
			rt.ErrorCode = code
			rt.ErrorMessage = errorMessage(err)
		}
		cfg := broker.StreamConfig{Name: t.Topic, Partitions: t.NumPartitions}
		if cfg.Partitions == -1 {
			cfg.Partitions = c.s.cfg.DefaultPartitions
		}
		if len(t.ReplicaAssignment) > 0 {
			cfg.Partitions = int32(len(t.ReplicaAssignment))
		}
		var err error
		for _, kv := range t.Configs {
			if err = applyTopicConfig(&cfg, kv.Name, kv.Value); err != nil {
				break
			}
		}
		switch {
		case seen[t.Topic] > 1:
			fail(kerr.InvalidRequest.Code, fmt.Errorf("topic %q is named more than once", t.Topic))
		case broker.ValidateStreamName(t.Topic) != nil:
			fail(kerr.InvalidTopicException.Code, broker.ValidateStreamName(t.Topic))
		case t.ReplicationFactor != -1 && t.ReplicationFactor != 1:
			fail(kerr.InvalidReplicationFactor.Code, fmt.Errorf("replication factor %d: Weir is a single node, use 1", t.ReplicationFactor))
		case cfg.Partitions < 1 || cfg.Partitions > broker.MaxPartitions:
			fail(kerr.InvalidPartitions.Code, fmt.Errorf("%d partitions: use 1 to %d", cfg.Partitions, broker.MaxPartitions))
		case err != nil:
			fail(kerr.InvalidConfig.Code, err)
		case req.ValidateOnly:
			if _, err := b.DescribeStream(t.Topic); err == nil {
				fail(kerr.TopicAlreadyExists.Code, fmt.Errorf("topic %q exists", t.Topic))
			} else {
				rt.NumPartitions, rt.ReplicationFactor = cfg.Partitions, 1
			}
		default:
			info, err := b.CreateStream(c.ctx, cfg)
			if err != nil {
				code := errorCode(err)
				if errors.Is(err, broker.ErrInvalidArgument) {
					code = kerr.InvalidConfig.Code
				}
				fail(code, err)
				break
			}
			rt.TopicID = info.ID
			rt.NumPartitions, rt.ReplicationFactor = int32(len(info.Partitions)), 1
			for _, kv := range topicConfigs(info, c.s.cfg.MaxRecordBytes) {
				rc := kmsg.NewCreateTopicsResponseTopicConfig()
				rc.Name, rc.Value = kv[0], &kv[1]
				rt.Configs = append(rt.Configs, rc)
			}
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
