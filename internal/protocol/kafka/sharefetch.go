package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/record"
)

// handleShareFetch answers ShareFetch (key 78): it applies the piggybacked
// acknowledgements, then acquires records for the member from the group's
// shared subscription on each topic of its share session: broker.Receive,
// so a record is in flight to one member at a time, its delivery count is
// the broker's, and its acquisition lock is the subscription's ack
// deadline. It waits up to MaxWaitMillis for the first record, and returns
// at most MaxRecords (MaxBytes is not a bound: records are acquired before
// their size is known, as Kafka's "may not be honored"). Records are
// encoded as one uncompressed batch per partition, in offset order, with
// AcquiredRecords ranges covering exactly the records sent.
func handleShareFetch(c *conn, req *kmsg.ShareFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareFetchResponse)
	if req.GroupID == nil || req.MemberID == nil || *req.GroupID == "" || *req.MemberID == "" {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(errors.New("ShareFetch needs a group id and a member id"))
		return resp, nil
	}
	group, member := *req.GroupID, *req.MemberID
	key := shareSessionKey{group, member}
	sc := c.s.share

	var add, forget []topicPartitionID
	hasAcks := false
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			add = append(add, topicPartitionID{t.TopicID, p.Partition})
			hasAcks = hasAcks || len(p.AcknowledgementBatches) > 0
		}
	}
	for _, t := range req.ForgottenTopicsData {
		for _, p := range t.Partitions {
			forget = append(forget, topicPartitionID{t.TopicID, p})
		}
	}
	if req.ShareSessionEpoch == shareInitialEpoch && hasAcks {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, errorMessage(errors.New("a ShareFetch that opens a share session cannot acknowledge records"))
		return resp, nil
	}
	if req.ShareSessionEpoch == shareFinalEpoch {
		add = nil // a closing request only acknowledges
	}
	parts, replaced, closed, code, err := sc.sessionStep(c, key, req.ShareSessionEpoch, true, add, forget)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, errorMessage(err)
		return resp, nil
	}
	if replaced != nil {
		sc.releaseSession(key, replaced)
	}

	out := newShareFetchOutput(resp)
	names := make(map[[16]byte]string)
	name := func(id [16]byte) (string, bool) {
		if n, ok := names[id]; ok {
			return n, n != ""
		}
		n, err := c.s.cfg.Broker.StreamNameByID(id)
		if err != nil {
			n = ""
		}
		names[id] = n
		return n, n != ""
	}

	// Acknowledgements first: records released here may be fetched below.
	budget := shareMaxAckOffsets
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			rp := out.partition(t.TopicID, p.Partition)
			if len(p.AcknowledgementBatches) == 0 {
				continue
			}
			stream, ok := name(t.TopicID)
			if !ok {
				rp.AcknowledgeErrorCode = kerr.UnknownTopicID.Code
				continue
			}
			batches := make([]ackBatch, len(p.AcknowledgementBatches))
			for i, ab := range p.AcknowledgementBatches {
				batches[i] = ackBatch{ab.FirstOffset, ab.LastOffset, ab.AcknowledgeTypes}
			}
			rp.AcknowledgeErrorCode, rp.AcknowledgeErrorMessage = c.applyShareAcks(c.ctx, group, member, stream, p.Partition, batches, req.Version >= 2 && req.IsRenewAck, &budget)
		}
	}
	if closed != nil {
		sc.releaseSession(key, closed)
		return resp, nil
	}
	if req.Version >= 2 && req.IsRenewAck {
		return resp, nil // a renewal only acknowledges (KIP-1222)
	}

	// The session's partitions, by topic.
	byTopic := make(map[[16]byte]map[int32]bool)
	var topics []shareFetchTopic
	for _, tp := range parts {
		stream, ok := name(tp.id)
		if !ok {
			rp := out.partition(tp.id, tp.partition)
			rp.ErrorCode = kerr.UnknownTopicID.Code
			continue
		}
		if byTopic[tp.id] == nil {
			byTopic[tp.id] = make(map[int32]bool)
			topics = append(topics, shareFetchTopic{id: tp.id, name: stream})
		}
		byTopic[tp.id][tp.partition] = true
	}
	resp.AcquisitionLockTimeoutMillis = int32(broker.DefaultAckTimeout / time.Millisecond)
	if len(topics) == 0 {
		return resp, nil
	}
	lock := time.Duration(0)
	for _, t := range topics {
		if info, err := c.s.cfg.Broker.DescribeSubscription(t.name, group); err == nil && (lock == 0 || info.Config.AckTimeout < lock) {
			lock = info.Config.AckTimeout
		}
	}
	if lock > 0 {
		resp.AcquisitionLockTimeoutMillis = int32(min(lock/time.Millisecond, 1<<31-1))
	}

	maxRecords := int(req.MaxRecords)
	if maxRecords <= 0 {
		maxRecords = shareDefaultMaxRecords
	}
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	got := c.shareReceive(group, member, topics, maxRecords, wait)

	// Records of partitions outside the session (added to the topic since
	// the member's last assignment) go back at once.
	consumer := shareConsumerID(member)
	for _, t := range topics {
		ds := got[t.id]
		var stray []broker.DeliveryRef
		kept := ds[:0]
		for _, d := range ds {
			if byTopic[t.id][d.Partition] {
				kept = append(kept, d)
			} else {
				stray = append(stray, broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset})
			}
		}
		if len(stray) > 0 {
			if err := c.s.cfg.Broker.Nack(context.WithoutCancel(c.ctx), t.name, group, consumer, stray, "", time.Nanosecond); err != nil {
				c.log.Info("kafka: releasing records of an unassigned partition", "topic", t.name, "err", err)
			}
		}
		if err := out.addRecords(t.id, kept); err != nil {
			// Encoding failed (it cannot for records read from the log):
			// give the records back rather than lose them.
			refs := make([]broker.DeliveryRef, len(kept))
			for i, d := range kept {
				refs[i] = broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}
			}
			_ = c.s.cfg.Broker.Nack(context.WithoutCancel(c.ctx), t.name, group, consumer, refs, "", time.Nanosecond)
			return nil, fmt.Errorf("kafka: encoding share fetch records: %w", err)
		}
	}
	c.shareFetchDelivered(resp, names)
	return resp, nil
}

type shareFetchTopic struct {
	id   [16]byte
	name string
}

// shareReceive acquires up to maxRecords records for a member across the
// topics, waiting up to wait for the first. Records come back by topic id.
func (c *conn) shareReceive(group, member string, topics []shareFetchTopic, maxRecords int, wait time.Duration) map[[16]byte][]broker.Delivery {
	b := c.s.cfg.Broker
	consumer := shareConsumerID(member)
	got := make(map[[16]byte][]broker.Delivery)
	total := 0
	// Receive waits for as long as it takes when wait is 0: the shortest
	// wait is a nanosecond, after taking what is there.
	receive := func(ctx context.Context, t shareFetchTopic, n int, wait time.Duration) []broker.Delivery {
		wait = max(wait, time.Nanosecond)
		ds, err := b.Receive(ctx, t.name, group, consumer, n, wait)
		if errors.Is(err, broker.ErrSubscriptionNotFound) {
			// Deleted since the member joined: created again.
			if err := c.s.share.ensureSubscription(ctx, t.name, group); err == nil {
				ds, err = b.Receive(ctx, t.name, group, consumer, n, wait)
			}
		}
		if err != nil && ctx.Err() == nil {
			c.log.Debug("kafka: share fetch", "topic", t.name, "group", group, "err", err)
		}
		return ds
	}
	fill := func() {
		for _, t := range topics {
			if total >= maxRecords {
				return
			}
			ds := receive(c.ctx, t, maxRecords-total, 0)
			got[t.id] = append(got[t.id], ds...)
			total += len(ds)
		}
	}
	fill()
	if total > 0 || wait <= 0 {
		return got
	}
	// Wait on every topic at once for the first records: each takes one
	// record (all it can when there is one topic), so the first to arrive
	// ends the wait, and the rest are filled up without waiting.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	per := 1
	if len(topics) == 1 {
		per = maxRecords
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range topics {
		wg.Go(func() {
			ds := receive(ctx, t, per, wait)
			if len(ds) == 0 {
				return
			}
			cancel()
			mu.Lock()
			got[t.id] = append(got[t.id], ds...)
			total += len(ds)
			mu.Unlock()
		})
	}
	wg.Wait()
	if total > 0 {
		fill()
	}
	return got
}

// shareFetchOutput builds a ShareFetch response partition by partition.
type shareFetchOutput struct {
	resp   *kmsg.ShareFetchResponse
	topics map[[16]byte]int
	parts  map[topicPartitionID]int
}

func newShareFetchOutput(resp *kmsg.ShareFetchResponse) *shareFetchOutput {
	return &shareFetchOutput{resp: resp, topics: make(map[[16]byte]int), parts: make(map[topicPartitionID]int)}
}

// partition returns the response entry of a partition, adding it.
func (o *shareFetchOutput) partition(id [16]byte, partition int32) *kmsg.ShareFetchResponseTopicPartition {
	ti, ok := o.topics[id]
	if !ok {
		ti = len(o.resp.Topics)
		o.topics[id] = ti
		t := kmsg.NewShareFetchResponseTopic()
		t.TopicID = id
		o.resp.Topics = append(o.resp.Topics, t)
	}
	t := &o.resp.Topics[ti]
	key := topicPartitionID{id, partition}
	pi, ok := o.parts[key]
	if !ok {
		pi = len(t.Partitions)
		o.parts[key] = pi
		p := kmsg.NewShareFetchResponseTopicPartition()
		p.Partition = partition
		p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = nodeID, 0
		t.Partitions = append(t.Partitions, p)
	}
	return &t.Partitions[pi]
}

// addRecords encodes a topic's acquired records, partition by partition.
func (o *shareFetchOutput) addRecords(id [16]byte, ds []broker.Delivery) error {
	slices.SortFunc(ds, func(a, b broker.Delivery) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	for start := 0; start < len(ds); {
		end := start + 1
		for end < len(ds) && ds[end].Partition == ds[start].Partition {
			end++
		}
		if err := o.addPartition(id, ds[start:end]); err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (o *shareFetchOutput) addPartition(id [16]byte, ds []broker.Delivery) error {
	rp := o.partition(id, ds[0].Partition)
	recs := make([]record.Record, len(ds))
	for i, d := range ds {
		r := record.Record{Offset: d.Offset, Timestamp: d.Timestamp.UnixMilli(), Key: d.Key, Value: d.Value}
		if len(d.Headers) > 0 {
			r.Headers = make([]record.RecordHeader, len(d.Headers))
			for j, h := range d.Headers {
				r.Headers[j] = record.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		recs[i] = r
	}
	opts := record.DefaultBatchOptions()
	opts.BaseOffset = ds[0].Offset
	opts.LeaderEpoch = 0
	data, err := record.AppendBatch(rp.Records, opts, recs)
	if err != nil {
		return err
	}
	rp.Records = data
	for i := 0; i < len(ds); {
		j := i + 1
		for j < len(ds) && ds[j].Offset == ds[j-1].Offset+1 && ds[j].DeliveryCount == ds[i].DeliveryCount {
			j++
		}
		ar := kmsg.NewShareFetchResponseTopicPartitionAcquiredRecord()
		ar.FirstOffset, ar.LastOffset = ds[i].Offset, ds[j-1].Offset
		ar.DeliveryCount = int16(min(ds[i].DeliveryCount, 1<<15-1))
		rp.AcquiredRecords = append(rp.AcquiredRecords, ar)
		i = j
	}
	return nil
}
