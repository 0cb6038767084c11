package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// defaultFetchMaxBytes bounds a response when the request has no MaxBytes
// (Fetch before v3): Kafka's fetch.max.bytes default.
const defaultFetchMaxBytes = 50 << 20

// handleFetch answers Fetch (key 1) with the stored batches as they are on
// disk, not decoded or re-encoded. It waits up to MaxWaitMillis for MinBytes
// across the partitions (a long poll). Budgets: PartitionMaxBytes per
// partition and MaxBytes per response, except that the first batch of the
// first partition with data is returned whole, so a consumer always makes
// progress. A read-committed fetch (isolation level 1) stops at the last
// stable offset and lists the aborted transactions it covers. From v7 a
// fetch may open or use a fetch session (KIP-227, fetchsession.go).
func handleFetch(c *conn, req *kmsg.FetchRequest) (kmsg.Response, error) {
	ctx, span := c.s.cfg.Tracer.StartRequest(c.ctx, "fetch", nil)
	defer span.End()
	var sess *fetchSession
	incremental := false
	if req.Version >= 7 {
		var code int16
		if sess, incremental, code = c.fetchSession(req); code != 0 {
			resp := req.ResponseKind().(*kmsg.FetchResponse)
			resp.ErrorCode = code
			return resp, nil
		}
		if sess != nil {
			req = sess.request(req)
		}
	}
	maxWait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	deadline := time.Now().Add(maxWait)
	names := make([]string, len(req.Topics))
	codes := make([]int16, len(req.Topics))
	for i, t := range req.Topics {
		names[i], codes[i] = c.topicName(t.Topic, t.TopicID, req.Version >= 13)
		if codes[i] == 0 {
			codes[i] = c.authorizeRead(names[i])
		}
	}
	for {
		resp, bytes, failed := fetchOnce(c, req, names, codes)
		remaining := time.Until(deadline)
		if failed || bytes >= int(max(req.MinBytes, 1)) || remaining <= 0 || c.ctx.Err() != nil {
			c.fetchDelivered(ctx, req, names, resp)
			if sess != nil {
				sess.answer(req.Version, resp, incremental)
			}
			resp.ThrottleMillis = c.throttleFetch(bytes)
			return resp, nil
		}
		// Wait for records past what each partition holds now.
		var positions []broker.PartitionPosition
		for i, t := range req.Topics {
			for j, p := range t.Partitions {
				at := max(p.FetchOffset, resp.Topics[i].Partitions[j].HighWatermark)
				positions = append(positions, broker.PartitionPosition{Stream: names[i], Partition: p.Partition, Offset: at})
			}
		}
		if len(positions) == 0 {
			// Nothing to wait for (an empty session): just the wait.
			t := time.NewTimer(remaining)
			select {
			case <-t.C:
			case <-c.ctx.Done():
			}
			t.Stop()
			continue
		}
		c.s.cfg.Broker.WaitAny(c.ctx, positions, remaining)
	}
}

// isolationReadCommitted is the isolation level of read-committed
// consumers: they get records below the last stable offset only, and the
// aborted transactions among them (which they drop).
const isolationReadCommitted = 1

// readPartition reads one partition for a fetch, appending to dst.
func readPartition(b *broker.Broker, topic string, partition int32, offset int64, maxBytes int, committed bool, dst []byte) (broker.PartitionRead, error) {
	if committed {
		return b.ReadCommitted(topic, partition, offset, maxBytes, dst)
	}
	return b.ReadBatches(topic, partition, offset, maxBytes, dst)
}

// fetchOnce reads every partition of the request once, without waiting.
// It returns the response, the bytes of record data in it, and whether any
// partition failed (a fetch with an error is answered at once).
func fetchOnce(c *conn, req *kmsg.FetchRequest, names []string, codes []int16) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	b := c.s.cfg.Broker
	budget := defaultFetchMaxBytes
	if req.Version >= 3 && req.MaxBytes > 0 {
		budget = int(req.MaxBytes)
	}
	total := 0
	failed := false
	committed := req.IsolationLevel == isolationReadCommitted
	// Every partition's records are read into one buffer, the connection's
	// until the response is encoded; a partition's RecordBatches are its
	// part of it. A buffer that moves as it grows leaves the earlier
	// partitions' parts where they were, still valid.
	buf := c.fetchBuffer()
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	for i, t := range req.Topics {
		rt := &resp.Topics[i]
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = p.Partition
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
			rp.RecordBatches = []byte{} // empty, not null: librdkafka refuses a null record set
			limit := min(int(p.PartitionMaxBytes), budget-total)
			if limit <= 0 && total == 0 {
				limit = 1 // the first batch is returned whole anyway
			}
			if codes[i] != 0 {
				rp.ErrorCode = codes[i]
				failed = true
				rt.Partitions[j] = rp
				continue
			}
			read, err := readPartition(b, names[i], p.Partition, p.FetchOffset, max(limit, 1), committed, *buf)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				if rp.ErrorCode == kerr.OffsetOutOfRange.Code {
					rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = read.HighWater, read.LastStable, read.StartOffset
				}
				failed = true
				rt.Partitions[j] = rp
				continue
			}
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = read.HighWater, read.LastStable, read.StartOffset
			if committed {
				rp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				for _, a := range read.Aborted {
					rp.AbortedTransactions = append(rp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.First})
				}
			}
			if got := read.Data[min(len(*buf), len(read.Data)):]; len(got) > 0 && (limit > 0 && len(got) <= limit || total == 0) {
				rp.RecordBatches = got
				total += len(got)
				*buf = read.Data
			}
			rt.Partitions[j] = rp
		}
	}
	return resp, total, failed
}
