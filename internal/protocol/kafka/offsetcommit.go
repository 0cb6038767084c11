package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleOffsetCommit answers OffsetCommit (key 8). Offsets go to Weir's
// offsets table under the group's name, shared with native groups. A
// member commits with its generation; v0, or generation -1 with no member
// id, commits for a group without members (standalone consumers, tools).
func handleOffsetCommit(c *conn, req *kmsg.OffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	generation, member := req.Generation, req.MemberID
	if req.Version == 0 {
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
	errs, err := c.s.cfg.Broker.ClassicCommit(c.ctx, req.Group, member, deref(req.InstanceID), generation, commits)
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = commitErrorCode(err, errs, i)
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
