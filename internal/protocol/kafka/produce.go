package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/tracing"
)

// handleProduce answers Produce (key 0). Each partition's records, one or
// more RecordBatch v2 batches as the client encoded them, are stored as
// they are (see broker.AppendBatches); the partitions of a request are
// appended in parallel, and group-committed with whatever else is being
// written. acks=1 and acks=-1 both answer once the batch is committed under
// the node's fsync policy (there are no replicas to wait for); acks=0 gets
// no response. The request's timeout bounds the wait, as Kafka's bounds
// the wait for replicas: a partition that holds its publishers (a queue at
// its max length with overflow block) or a commit that takes longer
// answers REQUEST_TIMED_OUT (retriable; the records may still be stored,
// as in Kafka).
func handleProduce(c *conn, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx := c.ctx
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	var ackErr int16
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		ackErr = kerr.InvalidRequiredAcks.Code
	}
	b := c.s.cfg.Broker
	var wg sync.WaitGroup
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := &resp.Topics[i]
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		topic, topicErr := c.topicName(t.Topic, t.TopicID, req.Version >= 13)
		rt.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			rp := &rt.Partitions[j]
			*rp = kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.BaseOffset = -1
			rp.LogAppendTime = -1
			rp.LogStartOffset = -1
			if ackErr != 0 || topicErr != 0 {
				rp.ErrorCode = max(ackErr, topicErr)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, span := c.s.cfg.Tracer.StartPublishBatches(ctx, topic, p.Partition, p.Records)
				res, err := b.AppendBatches(ctx, topic, p.Partition, p.Records)
				tracing.End(span, err)
				if err != nil {
					rp.ErrorCode = errorCode(err)
					if req.Version >= 8 {
						rp.ErrorMessage = errorMessage(err)
					}
					return
				}
				rp.BaseOffset = res.BaseOffset
				rp.LogStartOffset = res.StartOffset
			}()
		}
	}
	wg.Wait()
	resp.ThrottleMillis = c.throttleProduce(req)
	if req.Acks == 0 {
		c.mute() // no response to carry the throttle time: just hold
		return nil, nil
	}
	return resp, nil
}
