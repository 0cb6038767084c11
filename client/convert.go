package weir

// Conversions between the SDK's types and the generated weirpb types: the
// one place that knows both.

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func toPBRecord(r *Record) *weirpb.Record {
	pb := &weirpb.Record{Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		pb.Headers = make([]*weirpb.Header, len(r.Headers))
		for i, h := range r.Headers {
			pb.Headers[i] = &weirpb.Header{Key: h.Key, Value: h.Value}
		}
	}
	if !r.Timestamp.IsZero() {
		pb.Timestamp = timestamppb.New(r.Timestamp)
	}
	return pb
}

func toPBRecords(recs []Record) []*weirpb.Record {
	out := make([]*weirpb.Record, len(recs))
	for i := range recs {
		out[i] = toPBRecord(&recs[i])
	}
	return out
}

func fromPBRecord(pb *weirpb.Record, stream string) Record {
	r := Record{
		Key:       pb.Key,
		Value:     pb.Value,
		Stream:    pb.GetStream(),
		Partition: pb.GetPartition(),
		Offset:    pb.GetOffset(),
	}
	if r.Stream == "" {
		r.Stream = stream
	}
	if pb.Timestamp != nil {
		r.Timestamp = pb.Timestamp.AsTime()
	}
	if len(pb.Headers) > 0 {
		r.Headers = make([]Header, len(pb.Headers))
		for i, h := range pb.Headers {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	return r
}

func fromPBResults(pbs []*weirpb.PublishResult) []PublishResult {
	out := make([]PublishResult, len(pbs))
	for i, r := range pbs {
		out[i] = PublishResult{Partition: r.GetPartition(), Offset: r.GetOffset(), Duplicate: r.GetDuplicate()}
	}
	return out
}

func toPBStreamConfig(c StreamConfig) *weirpb.StreamConfig {
	pb := &weirpb.StreamConfig{
		Name:           c.Name,
		Partitions:     c.Partitions,
		RetentionBytes: c.RetentionBytes,
		Compacted:      c.Compacted,
		SegmentBytes:   c.SegmentBytes,
	}
	if c.RetentionAge != 0 {
		pb.RetentionAge = durationpb.New(c.RetentionAge)
	}
	if c.DedupWindow != 0 {
		pb.DedupWindow = durationpb.New(c.DedupWindow)
	}
	return pb
}

func fromPBStreamConfig(pb *weirpb.StreamConfig) StreamConfig {
	return StreamConfig{
		Name:           pb.GetName(),
		Partitions:     pb.GetPartitions(),
		RetentionAge:   duration(pb.GetRetentionAge()),
		RetentionBytes: pb.GetRetentionBytes(),
		Compacted:      pb.GetCompacted(),
		DedupWindow:    duration(pb.GetDedupWindow()),
		SegmentBytes:   pb.GetSegmentBytes(),
	}
}

func fromPBStreamInfo(pb *weirpb.StreamInfo) *StreamInfo {
	info := &StreamInfo{
		Config:    fromPBStreamConfig(pb.GetConfig()),
		ID:        pb.GetId(),
		CreatedAt: timestamp(pb.GetCreatedAt()),
	}
	for _, p := range pb.GetPartitions() {
		info.Partitions = append(info.Partitions, PartitionInfo{
			Partition:     p.GetPartition(),
			StartOffset:   p.GetStartOffset(),
			EndOffset:     p.GetEndOffset(),
			DurableOffset: p.GetDurableOffset(),
			Bytes:         p.GetBytes(),
			Segments:      p.GetSegments(),
		})
	}
	return info
}

func fromPBGroupInfo(pb *weirpb.GroupInfo) *GroupInfo {
	g := &GroupInfo{Group: pb.GetGroup(), Strategy: pb.GetStrategy(), Generation: pb.GetGeneration()}
	for _, m := range pb.GetMembers() {
		gm := GroupMember{
			MemberID:       m.GetMemberId(),
			ClientID:       m.GetClientId(),
			Streams:        m.GetStreams(),
			SessionTimeout: duration(m.GetSessionTimeout()),
			LastHeartbeat:  timestamp(m.GetLastHeartbeat()),
		}
		for _, p := range m.GetAssigned() {
			gm.Assigned = append(gm.Assigned, PartitionRef{Stream: p.GetStream(), Partition: p.GetPartition()})
		}
		g.Members = append(g.Members, gm)
	}
	for _, o := range pb.GetOffsets() {
		g.Offsets = append(g.Offsets, GroupOffset{
			Stream:     o.GetStream(),
			Partition:  o.GetPartition(),
			Offset:     o.GetOffset(),
			Metadata:   o.GetMetadata(),
			CommitTime: timestamp(o.GetCommitTime()),
			EndOffset:  o.GetEndOffset(),
			Lag:        o.GetLag(),
		})
	}
	return g
}

// toPBStart converts p; an unset p is nil (the server's default).
func toPBStart(p StartPosition) *weirpb.StartPosition {
	switch p.kind {
	case startLatest:
		return &weirpb.StartPosition{Position: &weirpb.StartPosition_Latest{Latest: true}}
	case startEarliest:
		return &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}}
	case startOffset:
		return &weirpb.StartPosition{Position: &weirpb.StartPosition_Offset{Offset: p.offset}}
	case startTime:
		return &weirpb.StartPosition{Position: &weirpb.StartPosition_Time{Time: timestamppb.New(p.time)}}
	}
	return nil
}

func duration(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func timestamp(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func toPBSubscriptionConfig(c SubscriptionConfig) *weirpb.SubscriptionConfig {
	return &weirpb.SubscriptionConfig{
		Stream:            c.Stream,
		Name:              c.Name,
		Filter:            c.Filter,
		Start:             toPBStart(c.Start),
		AckTimeout:        optionalDuration(c.AckTimeout),
		MaxDeliveries:     c.MaxDeliveries,
		DeadLetterStream:  c.DeadLetterStream,
		BackoffInitial:    optionalDuration(c.Backoff.Initial),
		BackoffMax:        optionalDuration(c.Backoff.Max),
		BackoffMultiplier: c.Backoff.Multiplier,
		KeyOrdered:        c.KeyOrdered,
		MessageTtl:        optionalDuration(c.MessageTTL),
		ExpiredDeadLetter: c.ExpiredDeadLetter,
		MaxLength:         c.MaxLength,
		MaxLengthBytes:    c.MaxLengthBytes,
		Overflow:          string(c.Overflow),
	}
}

func fromPBSubscriptionConfig(pb *weirpb.SubscriptionConfig) SubscriptionConfig {
	return SubscriptionConfig{
		Stream:           pb.GetStream(),
		Name:             pb.GetName(),
		Filter:           pb.GetFilter(),
		Start:            fromPBStart(pb.GetStart()),
		AckTimeout:       duration(pb.GetAckTimeout()),
		MaxDeliveries:    pb.GetMaxDeliveries(),
		DeadLetterStream: pb.GetDeadLetterStream(),
		Backoff: Backoff{
			Initial:    duration(pb.GetBackoffInitial()),
			Max:        duration(pb.GetBackoffMax()),
			Multiplier: pb.GetBackoffMultiplier(),
		},
		KeyOrdered:        pb.GetKeyOrdered(),
		MessageTTL:        duration(pb.GetMessageTtl()),
		ExpiredDeadLetter: pb.GetExpiredDeadLetter(),
		MaxLength:         pb.GetMaxLength(),
		MaxLengthBytes:    pb.GetMaxLengthBytes(),
		Overflow:          Overflow(pb.GetOverflow()),
	}
}

func fromPBSubscriptionInfo(pb *weirpb.SubscriptionInfo) *SubscriptionInfo {
	return &SubscriptionInfo{
		Config:       fromPBSubscriptionConfig(pb.GetConfig()),
		Queue:        pb.GetQueue(),
		Partitions:   pb.GetPartitions(),
		Depth:        pb.GetDepth(),
		DepthBytes:   pb.GetDepthBytes(),
		InFlight:     pb.GetInFlight(),
		Waiting:      pb.GetWaiting(),
		Delayed:      pb.GetDelayed(),
		Consumers:    pb.GetConsumers(),
		DeadLettered: pb.GetDeadLettered(),
	}
}

func fromPBSubscriptionInfos(pbs []*weirpb.SubscriptionInfo) []SubscriptionInfo {
	out := make([]SubscriptionInfo, len(pbs))
	for i, pb := range pbs {
		out[i] = *fromPBSubscriptionInfo(pb)
	}
	return out
}

// fromPBStart converts a start position; nil is unset.
func fromPBStart(pb *weirpb.StartPosition) StartPosition {
	switch p := pb.GetPosition().(type) {
	case *weirpb.StartPosition_Latest:
		return Latest()
	case *weirpb.StartPosition_Earliest:
		return Earliest()
	case *weirpb.StartPosition_Offset:
		return AtOffset(p.Offset)
	case *weirpb.StartPosition_Time:
		return AtTime(p.Time.AsTime())
	}
	return StartPosition{}
}

// optionalDuration is nil for 0: the server's default.
func optionalDuration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func toPBRefs(ms []*Message) []*weirpb.PartitionOffset {
	out := make([]*weirpb.PartitionOffset, len(ms))
	for i, m := range ms {
		out[i] = &weirpb.PartitionOffset{Partition: m.Partition, Offset: m.Offset}
	}
	return out
}
