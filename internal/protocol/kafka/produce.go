package kafka

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"go.opentelemetry.io/otel/trace"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/tracing"
)

// handleProduce answers Produce (key 0). Each partition's records, one or
// more RecordBatch v2 batches as the client encoded them, are stored as
// they are (see broker.AppendBatches), group-committed with whatever else
// is being written. acks=1 and acks=-1 both answer once the batch is
// committed under the node's fsync policy (there are no replicas to wait
// for); acks=0 gets no response. The request's timeout bounds the wait, as
// Kafka's bounds the wait for replicas: a partition that holds its
// publishers (a queue at its max length with overflow block) or a commit
// that takes longer answers REQUEST_TIMED_OUT (retriable; the records may
// still be stored, as in Kafka).
func handleProduce(c *conn, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp, err := startProduce(c, req)()
	if req.Acks == 0 {
		c.mute() // no response to carry the throttle time: just hold
	}
	return resp, err
}

// startProduce submits the request's batches (broker.SubmitBatches) and
// returns what waits for them to be stored and
// makes the response. Serve submits the next produce request of the
// connection before the previous one is answered: batches of pipelined
// requests reach their partitions in request order and share flushes,
// instead of taking one flush each (a client with five requests in flight,
// as idempotent producers keep, waited for five flushes in a row).
func startProduce(c *conn, req *kmsg.ProduceRequest) func() (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx, cancel := c.ctx, context.CancelFunc(func() {})
	if req.TimeoutMillis > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
	}
	var ackErr int16
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		ackErr = kerr.InvalidRequiredAcks.Code
	}
	type submitted struct {
		rp      *kmsg.ProduceResponseTopicPartition
		topic   string
		p       *kmsg.ProduceRequestTopicPartition
		pending broker.PendingAppend
		span    trace.Span
	}
	var parts []submitted
	b := c.s.cfg.Broker
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
			parts = append(parts, submitted{rp: rp, topic: topic, p: p})
		}
	}
	// The partitions are submitted in parallel, so that one that holds its
	// publishers does not hold the others, and all before the next request
	// is.
	submit := func(s *submitted) {
		var sctx context.Context
		sctx, s.span = c.s.cfg.Tracer.StartPublishBatches(ctx, s.topic, s.p.Partition, s.p.Records)
		s.pending = b.SubmitBatches(sctx, s.topic, s.p.Partition, s.p.Records)
	}
	if len(parts) == 1 {
		submit(&parts[0])
	} else {
		var wg sync.WaitGroup
		for i := range parts {
			wg.Go(func() { submit(&parts[i]) })
		}
		wg.Wait()
	}
	resp.ThrottleMillis = c.throttleProduce(req)
	return func() (kmsg.Response, error) {
		defer cancel()
		for _, s := range parts {
			res, err := s.pending.Wait(ctx)
			tracing.End(s.span, err)
			if err != nil {
				s.rp.ErrorCode = errorCode(err)
				if req.Version >= 8 {
					s.rp.ErrorMessage = errorMessage(err)
				}
				continue
			}
			s.rp.BaseOffset = res.BaseOffset
			s.rp.LogStartOffset = res.StartOffset
		}
		if req.Acks == 0 {
			return nil, nil
		}
		return resp, nil
	}
}
