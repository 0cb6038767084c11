package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// ListOffsets timestamps with a special meaning.
const (
	listLatest   = -1
	listEarliest = -2
)

// handleListOffsets answers ListOffsets (key 2): a partition's earliest
// offset (-2), its end (-1; for read-committed clients the last stable
// offset), or the first offset whose record timestamp is
// at or after a time (found with the time index), with that record's
// timestamp; -1 when every record is older.
func handleListOffsets(c *conn, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	b := c.s.cfg.Broker
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		info, infoErr := b.DescribeStream(t.Topic)
		if infoErr == nil {
			infoErr = c.describeTopic(t.Topic)
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset, rp.LeaderEpoch = -1, -1, 0
			switch {
			case infoErr != nil:
				rp.ErrorCode = errorCode(infoErr)
			case p.Partition < 0 || int(p.Partition) >= len(info.Partitions):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				part := info.Partitions[p.Partition]
				switch ts := p.Timestamp; {
				case ts == listEarliest:
					rp.Offset = part.StartOffset
				case ts == listLatest && req.IsolationLevel == isolationReadCommitted:
					lso, err := b.LastStableOffset(t.Topic, p.Partition)
					rp.Offset, rp.ErrorCode = lso, errorCode(err)
				case ts == listLatest:
					rp.Offset = part.EndOffset
				case ts >= 0:
					off, err := b.ResolveStart(t.Topic, p.Partition, broker.StartPosition{Kind: broker.StartTime, Time: time.UnixMilli(ts)})
					if err != nil {
						rp.ErrorCode = errorCode(err)
						break
					}
					if off >= part.EndOffset {
						break // no record that late: -1, -1
					}
					res, err := b.Fetch(c.ctx, t.Topic, p.Partition, off, 1, 0)
					if err != nil {
						rp.ErrorCode = errorCode(err)
						break
					}
					rp.Offset = off
					for _, r := range res.Records {
						if r.Timestamp.UnixMilli() >= ts {
							rp.Offset, rp.Timestamp = r.Offset, r.Timestamp.UnixMilli()
							break
						}
					}
				default:
					rp.ErrorCode = kerr.InvalidRequest.Code
				}
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}
