package api

import (
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// This file holds every conversion between the API's messages and the
// broker's types. Conversions of client input validate it and return
// InvalidArgument errors that name the offending field.

// dedupOff is how a stream without deduplication reports its dedup window:
// a negative duration, which is also how one is created.
const dedupOff = -time.Second

func streamConfigFromProto(c *weirpb.StreamConfig) (broker.StreamConfig, error) {
	if c == nil {
		return broker.StreamConfig{}, invalidArgument("config is required")
	}
	cfg := broker.StreamConfig{
		Name:           c.GetName(),
		Partitions:     c.GetPartitions(),
		RetentionBytes: c.GetRetentionBytes(),
		Compacted:      c.GetCompacted(),
		SegmentBytes:   c.GetSegmentBytes(),
	}
	var err error
	if cfg.RetentionAge, err = durationFromProto("config.retention_age", c.GetRetentionAge()); err != nil {
		return cfg, err
	}
	// Unset or zero: the broker's default; negative: off.
	if cfg.DedupWindow, err = durationFromProto("config.dedup_window", c.GetDedupWindow()); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func streamConfigToProto(c broker.StreamConfig) *weirpb.StreamConfig {
	out := &weirpb.StreamConfig{
		Name:           c.Name,
		Partitions:     c.Partitions,
		RetentionBytes: c.RetentionBytes,
		Compacted:      c.Compacted,
		SegmentBytes:   c.SegmentBytes,
	}
	if c.RetentionAge > 0 {
		out.RetentionAge = durationpb.New(c.RetentionAge)
	}
	if c.DedupWindow > 0 {
		out.DedupWindow = durationpb.New(c.DedupWindow)
	} else {
		out.DedupWindow = durationpb.New(dedupOff)
	}
	return out
}

func streamInfoToProto(info broker.StreamInfo) *weirpb.StreamInfo {
	out := &weirpb.StreamInfo{
		Config:     streamConfigToProto(info.Config),
		Id:         hex.EncodeToString(info.ID[:]),
		CreatedAt:  timestamppb.New(info.CreatedAt),
		Partitions: make([]*weirpb.PartitionInfo, len(info.Partitions)),
	}
	for i, p := range info.Partitions {
		out.Partitions[i] = &weirpb.PartitionInfo{
			Partition:     p.Partition,
			StartOffset:   p.StartOffset,
			EndOffset:     p.EndOffset,
			DurableOffset: p.DurableOffset,
			Bytes:         p.Bytes,
			Segments:      int32(p.Segments),
		}
	}
	return out
}

// recordsFromProto converts the records of a publish request. field names
// them in errors ("records").
func recordsFromProto(field string, recs []*weirpb.Record) ([]broker.Record, error) {
	out := make([]broker.Record, len(recs))
	for i, r := range recs {
		if r == nil {
			return nil, invalidArgument("%s[%d] is empty", field, i)
		}
		out[i] = broker.Record{Key: r.Key, Value: r.Value}
		if r.Timestamp != nil {
			if err := r.Timestamp.CheckValid(); err != nil {
				return nil, invalidArgument("%s[%d].timestamp: %v", field, i, err)
			}
			out[i].Timestamp = r.Timestamp.AsTime()
		}
		if len(r.Headers) > 0 {
			out[i].Headers = make([]broker.Header, len(r.Headers))
			for j, h := range r.Headers {
				out[i].Headers[j] = broker.Header{Key: h.GetKey(), Value: h.GetValue()}
			}
		}
	}
	return out, nil
}

func recordsToProto(stream string, recs []broker.Record) []*weirpb.Record {
	return recordsToProtoBy(stream, len(recs), func(i int) *broker.Record { return &recs[i] })
}

// recordsToProtoBy converts the n records rec gives, read from stream.
// Their byte slices are shared, not copied. The protobuf records, their
// timestamps and their headers are allocated in one block each rather than
// one by one: on a busy subscription the allocations per record were a
// measurable share of the server's CPU.
func recordsToProtoBy(stream string, n int, rec func(i int) *broker.Record) []*weirpb.Record {
	out := make([]*weirpb.Record, n)
	msgs := make([]weirpb.Record, n)
	stamps := make([]timestamppb.Timestamp, n)
	headers := 0
	for i := range n {
		headers += len(rec(i).Headers)
	}
	var hs []weirpb.Header
	var hrefs []*weirpb.Header
	if headers > 0 {
		hs = make([]weirpb.Header, headers)
		hrefs = make([]*weirpb.Header, headers)
	}
	for i := range n {
		r, m := rec(i), &msgs[i]
		stamps[i].Seconds, stamps[i].Nanos = r.Timestamp.Unix(), int32(r.Timestamp.Nanosecond())
		m.Key, m.Value, m.Timestamp = r.Key, r.Value, &stamps[i]
		m.Partition, m.Offset, m.Stream = r.Partition, r.Offset, stream
		if k := len(r.Headers); k > 0 {
			m.Headers, hrefs = hrefs[:k:k], hrefs[k:]
			for j, h := range r.Headers {
				hs[j].Key, hs[j].Value = h.Key, h.Value
				m.Headers[j] = &hs[j]
			}
			hs = hs[k:]
		}
		out[i] = m
	}
	return out
}

func publishResultsToProto(results []broker.PublishResult) []*weirpb.PublishResult {
	out := make([]*weirpb.PublishResult, len(results))
	for i, r := range results {
		out[i] = &weirpb.PublishResult{Partition: r.Partition, Offset: r.Offset, Duplicate: r.Duplicate}
	}
	return out
}

// startFromProto converts a start position; nil is def.
func startFromProto(field string, p *weirpb.StartPosition, def broker.StartPosition) (broker.StartPosition, error) {
	if p == nil || p.Position == nil {
		return def, nil
	}
	switch pos := p.Position.(type) {
	case *weirpb.StartPosition_Latest:
		return broker.StartPosition{Kind: broker.StartLatest}, nil
	case *weirpb.StartPosition_Earliest:
		return broker.StartPosition{Kind: broker.StartEarliest}, nil
	case *weirpb.StartPosition_Offset:
		if pos.Offset < 0 {
			return def, invalidArgument("%s.offset must not be negative, got %d", field, pos.Offset)
		}
		return broker.StartPosition{Kind: broker.StartOffset, Offset: pos.Offset}, nil
	case *weirpb.StartPosition_Time:
		if err := pos.Time.CheckValid(); err != nil {
			return def, invalidArgument("%s.time: %v", field, err)
		}
		return broker.StartPosition{Kind: broker.StartTime, Time: pos.Time.AsTime()}, nil
	}
	return def, invalidArgument("%s: unknown position", field)
}

// durationFromProto converts an optional duration (nil: 0).
func durationFromProto(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalidArgument("%s: %v", field, err)
	}
	return d.AsDuration(), nil
}

func partitionRefsToProto(refs []broker.PartitionRef) []*weirpb.PartitionRef {
	out := make([]*weirpb.PartitionRef, len(refs))
	for i, r := range refs {
		out[i] = &weirpb.PartitionRef{Stream: r.Stream, Partition: r.Partition}
	}
	return out
}

func offsetCommitsFromProto(offsets []*weirpb.OffsetCommit) ([]broker.OffsetCommit, error) {
	out := make([]broker.OffsetCommit, len(offsets))
	for i, o := range offsets {
		if o.GetStream() == "" {
			return nil, invalidArgument("offsets[%d].stream is required", i)
		}
		if o.GetOffset() < 0 {
			return nil, invalidArgument("offsets[%d].offset must not be negative, got %d", i, o.GetOffset())
		}
		out[i] = broker.OffsetCommit{Stream: o.GetStream(), Partition: o.GetPartition(), Offset: o.GetOffset(), Metadata: o.GetMetadata()}
	}
	return out, nil
}

func groupInfoToProto(info broker.GroupInfo) *weirpb.GroupInfo {
	out := &weirpb.GroupInfo{Group: info.Group, Strategy: info.Strategy, Generation: info.Generation}
	for _, m := range info.Members {
		gm := &weirpb.GroupMember{
			MemberId:       m.MemberID,
			ClientId:       m.ClientID,
			Streams:        m.Streams,
			SessionTimeout: durationpb.New(m.SessionTimeout),
			Assigned:       partitionRefsToProto(m.Assigned),
		}
		if !m.LastHeartbeat.IsZero() {
			gm.LastHeartbeat = timestamppb.New(m.LastHeartbeat)
		}
		out.Members = append(out.Members, gm)
	}
	for _, o := range info.Offsets {
		g := &weirpb.GroupOffset{
			Stream:    o.Stream,
			Partition: o.Partition,
			Offset:    o.Offset,
			Metadata:  o.Metadata,
			EndOffset: o.EndOffset,
			Lag:       o.Lag,
		}
		if !o.CommitTime.IsZero() {
			g.CommitTime = timestamppb.New(o.CommitTime)
		}
		out.Offsets = append(out.Offsets, g)
	}
	return out
}

// subscriptionConfigFromProto converts a shared subscription's settings;
// nil is the zero config (every default). field names it in errors.
func subscriptionConfigFromProto(field string, c *weirpb.SubscriptionConfig) (broker.SubscriptionConfig, error) {
	if c == nil {
		return broker.SubscriptionConfig{}, nil
	}
	cfg := broker.SubscriptionConfig{
		Stream:            c.GetStream(),
		Name:              c.GetName(),
		Filter:            c.GetFilter(),
		MaxDeliveries:     c.GetMaxDeliveries(),
		DeadLetterStream:  c.GetDeadLetterStream(),
		BackoffMultiplier: c.GetBackoffMultiplier(),
		KeyOrdered:        c.GetKeyOrdered(),
		ExpiredDeadLetter: c.GetExpiredDeadLetter(),
		MaxLength:         c.GetMaxLength(),
		Overflow:          c.GetOverflow(),
		MaxLengthBytes:    c.GetMaxLengthBytes(),
	}
	var err error
	if cfg.Start, err = startFromProto(field+".start", c.GetStart(), broker.StartPosition{Kind: broker.StartLatest}); err != nil {
		return cfg, err
	}
	durations := []struct {
		name string
		in   *durationpb.Duration
		out  *time.Duration
	}{
		{"ack_timeout", c.GetAckTimeout(), &cfg.AckTimeout},
		{"backoff_initial", c.GetBackoffInitial(), &cfg.BackoffInitial},
		{"backoff_max", c.GetBackoffMax(), &cfg.BackoffMax},
		{"message_ttl", c.GetMessageTtl(), &cfg.MessageTTL},
	}
	for _, d := range durations {
		if *d.out, err = durationFromProto(field+"."+d.name, d.in); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// subscriptionConfigToProto converts a subscription's settings, defaults
// applied. Start is left out: it only mattered when the subscription was
// created.
func subscriptionConfigToProto(c broker.SubscriptionConfig) *weirpb.SubscriptionConfig {
	out := &weirpb.SubscriptionConfig{
		Stream:            c.Stream,
		Name:              c.Name,
		Filter:            c.Filter,
		AckTimeout:        durationpb.New(c.AckTimeout),
		MaxDeliveries:     c.MaxDeliveries,
		DeadLetterStream:  c.DeadLetterStream,
		BackoffInitial:    durationpb.New(c.BackoffInitial),
		BackoffMax:        durationpb.New(c.BackoffMax),
		BackoffMultiplier: c.BackoffMultiplier,
		KeyOrdered:        c.KeyOrdered,
		ExpiredDeadLetter: c.ExpiredDeadLetter,
		MaxLength:         c.MaxLength,
		Overflow:          c.Overflow,
		MaxLengthBytes:    c.MaxLengthBytes,
	}
	if c.MessageTTL > 0 {
		out.MessageTtl = durationpb.New(c.MessageTTL)
	}
	return out
}

// subscriptionInfoToProto describes a shared subscription of stream. It is
// a queue's when it is the queue's own subscription (of the same name).
func subscriptionInfoToProto(info broker.SubscriptionInfo, stream broker.StreamInfo) *weirpb.SubscriptionInfo {
	return &weirpb.SubscriptionInfo{
		Config:       subscriptionConfigToProto(info.Config),
		Depth:        info.Depth,
		DepthBytes:   info.DepthBytes,
		InFlight:     int32(info.InFlight),
		Waiting:      int32(info.Waiting),
		Delayed:      int32(info.Delayed),
		Consumers:    int32(info.Consumers),
		DeadLettered: info.DeadLettered,
		Queue:        stream.Queue && info.Config.Name == info.Config.Stream,
		Partitions:   int32(len(stream.Partitions)),
	}
}

// deliveryRefsFromProto converts the records of a SettleRequest.
func deliveryRefsFromProto(refs []*weirpb.PartitionOffset) ([]broker.DeliveryRef, error) {
	return deliveryRefs("records", len(refs), func(i int) (int32, int64) { return refs[i].GetPartition(), refs[i].GetOffset() })
}

// deliveryRefsFromLists converts the parallel lists of an AckStreamRequest.
func deliveryRefsFromLists(partitions []int32, offsets []int64) ([]broker.DeliveryRef, error) {
	if len(partitions) != len(offsets) {
		return nil, invalidArgument("partitions and offsets must have one entry per record each, got %d partitions and %d offsets", len(partitions), len(offsets))
	}
	return deliveryRefs("partitions/offsets", len(partitions), func(i int) (int32, int64) { return partitions[i], offsets[i] })
}

// deliveryRefs checks and converts the n records that ref gives, which
// the request has in field.
func deliveryRefs(field string, n int, ref func(i int) (partition int32, offset int64)) ([]broker.DeliveryRef, error) {
	if n == 0 {
		return nil, invalidArgument("%s is required: the partition and offset of each record to settle", field)
	}
	out := make([]broker.DeliveryRef, n)
	for i := range n {
		p, o := ref(i)
		if p < 0 || o < 0 {
			return nil, invalidArgument("%s[%d] must have a partition and an offset of at least 0, got %d/%d", field, i, p, o)
		}
		out[i] = broker.DeliveryRef{Partition: p, Offset: o}
	}
	return out, nil
}

// deliveriesToProto converts records delivered through a shared
// subscription of stream into a Records event with their delivery counts.
func deliveriesToProto(stream string, ds []broker.Delivery) *weirpb.Records {
	out := &weirpb.Records{
		Records:        recordsToProtoBy(stream, len(ds), func(i int) *broker.Record { return &ds[i].Record }),
		DeliveryCounts: make([]int32, len(ds)),
	}
	for i := range ds {
		out.DeliveryCounts[i] = ds[i].DeliveryCount
	}
	return out
}
