package kafka

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleCreatePartitions answers CreatePartitions (key 37): a topic grows to
// Count partitions. As in Kafka, keys may map to other partitions after.
func handleCreatePartitions(c *conn, req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	b := c.s.cfg.Broker
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		info, err := b.DescribeStream(t.Topic)
		switch {
		case err != nil:
		case t.Count <= int32(len(info.Partitions)):
			rt.ErrorCode = kerr.InvalidPartitions.Code
			rt.ErrorMessage = errorMessage(fmt.Errorf("topic %q has %d partitions; the new count must be larger", t.Topic, len(info.Partitions)))
		case req.ValidateOnly:
		default:
			_, err = b.AddPartitions(c.ctx, t.Topic, t.Count)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			if rt.ErrorCode == kerr.InvalidRequest.Code {
				rt.ErrorCode = kerr.InvalidPartitions.Code
			}
			rt.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
