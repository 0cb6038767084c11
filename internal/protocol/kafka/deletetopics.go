package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleDeleteTopics answers DeleteTopics (key 20): each topic's stream is
// deleted with its records and the committed offsets on it.
func handleDeleteTopics(c *conn, req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	b := c.s.cfg.Broker
	for _, name := range req.TopicNames {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic = &name
		info, err := b.DescribeStream(name)
		if err == nil {
			rt.TopicID = info.ID
			err = b.DeleteStream(c.ctx, name)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			if rt.ErrorCode == kerr.InvalidRequest.Code {
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			rt.ErrorMessage = errorMessage(err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
