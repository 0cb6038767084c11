package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleShareAcknowledge answers ShareAcknowledge (key 79): the
// acknowledgements of ShareFetch without fetching, in the member's share
// session (it cannot open one; epoch -1 applies them and closes it,
// releasing what the member still holds).
func handleShareAcknowledge(c *conn, req *kmsg.ShareAcknowledgeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareAcknowledgeResponse)
	if req.GroupID == nil || req.MemberID == nil || *req.GroupID == "" || *req.MemberID == "" {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(errors.New("ShareAcknowledge needs a group id and a member id"))
		return resp, nil
	}
	group, member := *req.GroupID, *req.MemberID
	key := shareSessionKey{group, member}
	sc := c.s.share
	_, _, closed, code, err := sc.sessionStep(c, key, req.ShareSessionEpoch, false, nil, nil)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, errorMessage(err)
		return resp, nil
	}
	if req.Version >= 2 {
		resp.AcquisitionLockTimeoutMillis = int32(c.s.shareLockTimeout(group, req.Topics) / time.Millisecond)
	}
	budget := shareMaxAckOffsets
	for _, t := range req.Topics {
		rt := kmsg.NewShareAcknowledgeResponseTopic()
		rt.TopicID = t.TopicID
		stream, err := c.s.cfg.Broker.StreamNameByID(t.TopicID)
		for _, p := range t.Partitions {
			rp := kmsg.NewShareAcknowledgeResponseTopicPartition()
			rp.Partition = p.Partition
			rp.CurrentLeader.LeaderID, rp.CurrentLeader.LeaderEpoch = nodeID, 0
			if err != nil {
				rp.ErrorCode = kerr.UnknownTopicID.Code
			} else {
				batches := make([]ackBatch, len(p.AcknowledgementBatches))
				for i, ab := range p.AcknowledgementBatches {
					batches[i] = ackBatch{ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes}
				}
				rp.ErrorCode, rp.ErrorMessage = c.applyShareAcks(c.ctx, group, member, stream, p.Partition, batches, req.Version >= 2 && req.IsRenewAck, &budget)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if closed != nil {
		sc.releaseSession(key, closed)
	}
	return resp, nil
}

// shareLockTimeout is the acquisition lock of the group's subscriptions on
// the topics: the shortest ack timeout among them.
func (s *Server) shareLockTimeout(group string, topics []kmsg.ShareAcknowledgeRequestTopic) time.Duration {
	var lock time.Duration
	for _, t := range topics {
		name, err := s.cfg.Broker.StreamNameByID(t.TopicID)
		if err != nil {
			continue
		}
		if info, err := s.cfg.Broker.DescribeSubscription(name, group); err == nil && (lock == 0 || info.Config.AckTimeout < lock) {
			lock = info.Config.AckTimeout
		}
	}
	if lock == 0 {
		return 30 * time.Second
	}
	return lock
}
