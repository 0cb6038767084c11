package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// handleMetadata answers Metadata (key 3): this node as the only broker (at
// the address the client connected to) and leader of every partition, and
// the topics asked for (every stream when the list is null). A missing
// topic is created when the server and the client allow it.
func handleMetadata(c *conn, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: nodeID, Host: c.host, Port: c.port}}
	resp.ClusterID = &c.s.cfg.ClusterID
	resp.ControllerID = nodeID
	b := c.s.cfg.Broker
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, info := range b.ListStreams() {
			if c.topicVisible(info.Config.Name) {
				resp.Topics = append(resp.Topics, metadataTopic(info))
			}
		}
		return resp, nil
	}
	autoCreate := c.s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	var byID map[[16]byte]broker.StreamInfo
	for _, t := range req.Topics {
		if t.Topic == nil {
			if byID == nil {
				byID = make(map[[16]byte]broker.StreamInfo)
				for _, info := range b.ListStreams() {
					byID[info.ID] = info
				}
			}
			mt := kmsg.NewMetadataResponseTopic()
			if info, ok := byID[t.TopicID]; ok {
				mt = metadataTopic(info)
			} else {
				mt.TopicID = t.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		name := *t.Topic
		info, err := b.DescribeStream(name)
		if !c.topicVisible(name) {
			// As Kafka: a topic the user may not describe is refused
			// whether or not it exists.
			info, err = broker.StreamInfo{}, broker.Authorize(c.ctx, auth.ResourceStream, name, auth.ActionConsume)
		} else if errors.Is(err, broker.ErrStreamNotFound) && autoCreate {
			info, err = c.s.autoCreate(c, name)
		}
		if err != nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = &name
			mt.ErrorCode = topicErrorCode(err)
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(info))
	}
	return resp, nil
}

// autoCreate creates a topic with the default partition count; a topic
// created meanwhile by someone else is fine.
func (s *Server) autoCreate(c *conn, name string) (broker.StreamInfo, error) {
	info, err := s.cfg.Broker.CreateStream(c.ctx, broker.StreamConfig{Name: name, Partitions: s.cfg.DefaultPartitions})
	if errors.Is(err, broker.ErrStreamExists) {
		return s.cfg.Broker.DescribeStream(name)
	}
	if err == nil {
		s.log.Info("kafka: auto-created topic", "topic", name, "partitions", s.cfg.DefaultPartitions)
	}
	return info, err
}

// topicErrorCode is errorCode with INVALID_TOPIC_EXCEPTION for bad names.
func topicErrorCode(err error) int16 {
	if errors.Is(err, broker.ErrInvalidArgument) {
		return kerr.InvalidTopicException.Code
	}
	return errorCode(err)
}

func metadataTopic(info broker.StreamInfo) kmsg.MetadataResponseTopic {
	t := kmsg.NewMetadataResponseTopic()
	name := info.Config.Name
	t.Topic = &name
	t.TopicID = info.ID
	t.Partitions = make([]kmsg.MetadataResponseTopicPartition, len(info.Partitions))
	for i, p := range info.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.Partition
		mp.Leader = nodeID
		mp.LeaderEpoch = 0
		mp.Replicas = []int32{nodeID}
		mp.ISR = []int32{nodeID}
		t.Partitions[i] = mp
	}
	return t
}
