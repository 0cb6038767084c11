package weir

import (
	"time"
)

// Header is one record header. Names may repeat; order is kept.
type Header struct {
	Key   string
	Value []byte
}

// Reserved header names, understood by every protocol Weir speaks.
const (
	HeaderContentType   = "content-type"
	HeaderMessageID     = "message-id" // deduplicated within the stream's dedup window
	HeaderCorrelationID = "correlation-id"
	HeaderReplyTo       = "reply-to"
	HeaderType          = "type"
	HeaderSource        = "source"
	// HeaderDeliverAt holds a record back from shared subscriptions until
	// then (see DeliverAfter); group and ephemeral consumers are not
	// delayed.
	HeaderDeliverAt = "deliver-at"
	// HeaderExpiresAt drops (or dead-letters) a record that no shared
	// subscription acknowledged by then (see ExpiresAfter).
	HeaderExpiresAt = "expires-at"
)

// Headers the server adds to a dead-lettered record, besides its own.
const (
	HeaderDeadLetterStream    = "x-dead-letter-stream"    // the stream it came from
	HeaderDeadLetterPartition = "x-dead-letter-partition" // its partition there
	HeaderDeadLetterOffset    = "x-dead-letter-offset"    // its offset there
	HeaderDeadLetterReason    = "x-dead-letter-reason"    // rejected, max-deliveries or expired
	HeaderDeliveryCount       = "x-delivery-count"        // how many times it was delivered
	HeaderLastError           = "x-last-error"            // the last Nack's error text, or the Reject's reason
)

// Values of HeaderDeadLetterReason.
const (
	ReasonRejected      = "rejected"
	ReasonMaxDeliveries = "max-deliveries"
	ReasonExpired       = "expired"
)

// headerTimeLayout is how DeliverAt and ExpiresAt write times: RFC 3339
// with milliseconds, in UTC.
const headerTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// DeliverAt is a deliver-at header: shared subscriptions deliver the record
// no earlier than t.
//
//	c.Publish(ctx, "emails", weir.Record{Value: v, Headers: []weir.Header{weir.DeliverAt(t)}})
func DeliverAt(t time.Time) Header {
	return Header{Key: HeaderDeliverAt, Value: []byte(t.UTC().Format(headerTimeLayout))}
}

// DeliverAfter is a deliver-at header d from now (by this machine's
// clock).
func DeliverAfter(d time.Duration) Header { return DeliverAt(time.Now().Add(d)) }

// ExpiresAt is an expires-at header: a shared subscription that has not
// acknowledged the record by t drops it (or dead-letters it, when it is
// configured with ExpiredDeadLetter).
func ExpiresAt(t time.Time) Header {
	return Header{Key: HeaderExpiresAt, Value: []byte(t.UTC().Format(headerTimeLayout))}
}

// ExpiresAfter is an expires-at header d from now.
func ExpiresAfter(d time.Duration) Header { return ExpiresAt(time.Now().Add(d)) }

// Record is a record as published or read.
type Record struct {
	// Key chooses the partition (records with equal keys keep their order);
	// nil: none, records are spread over the partitions in turn.
	Key []byte
	// Value is the payload; nil is a tombstone in a compacted stream.
	Value   []byte
	Headers []Header
	// Timestamp is the record's time; zero on publish: the server's clock.
	Timestamp time.Time

	// Set on read.
	Stream    string
	Partition int32
	Offset    int64
}

// Header returns the value of the first header named key and whether there
// is one.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// PublishResult says where a published record was stored.
type PublishResult struct {
	Partition int32
	Offset    int64
	// Duplicate: the record's message-id header was seen within the
	// stream's dedup window, nothing was stored, and Partition and Offset
	// are the original record's.
	Duplicate bool
}

// StreamConfig is what a stream is created with.
type StreamConfig struct {
	Name string
	// Partitions is the number of partitions; 0 means 1.
	Partitions int32
	// RetentionAge drops records older than this; 0 keeps them forever.
	RetentionAge time.Duration
	// RetentionBytes caps the size of each partition; 0: no cap.
	RetentionBytes int64
	// Compacted keeps only the newest record of each key.
	Compacted bool
	// DedupWindow is how long message-ids are remembered: 0 is the
	// server's default (2 minutes), a negative value turns dedup off.
	DedupWindow time.Duration
	// SegmentBytes is the size of partition segment files; 0: the server's
	// default.
	SegmentBytes int64
}

// PartitionInfo describes one partition of a stream.
type PartitionInfo struct {
	Partition     int32
	StartOffset   int64 // the oldest record retained
	EndOffset     int64 // the offset the next record gets
	DurableOffset int64 // records below it are on disk
	Bytes         int64
	Segments      int32
}

// StreamInfo describes a stream.
type StreamInfo struct {
	Config     StreamConfig
	ID         string // 32 hex digits, stable for the stream's life
	CreatedAt  time.Time
	Partitions []PartitionInfo
}

// Records returns the number of records the stream retains (the sum of its
// partitions' end minus start offsets; compaction may have removed some).
func (s *StreamInfo) Records() int64 {
	var n int64
	for _, p := range s.Partitions {
		n += p.EndOffset - p.StartOffset
	}
	return n
}

// Bytes returns the size of the stream's partitions.
func (s *StreamInfo) Bytes() int64 {
	var n int64
	for _, p := range s.Partitions {
		n += p.Bytes
	}
	return n
}

// PartitionRef names one partition of a stream.
type PartitionRef struct {
	Stream    string
	Partition int32
}

// PartitionOffset is a partition and a position in it.
type PartitionOffset struct {
	Stream    string
	Partition int32
	Offset    int64
}

// GroupMember describes a member of a consumer group.
type GroupMember struct {
	MemberID       string
	ClientID       string
	Streams        []string
	SessionTimeout time.Duration
	LastHeartbeat  time.Time
	Assigned       []PartitionRef
}

// GroupOffset is a group's committed position in a partition.
type GroupOffset struct {
	Stream     string
	Partition  int32
	Offset     int64 // the next record to process
	Metadata   string
	CommitTime time.Time
	EndOffset  int64
	Lag        int64
}

// GroupInfo describes a consumer group: its members, if it has any, and its
// committed offsets.
type GroupInfo struct {
	Group      string
	Strategy   string
	Generation int64
	Members    []GroupMember
	Offsets    []GroupOffset
}

// Lag returns the group's total lag over its committed partitions.
func (g *GroupInfo) Lag() int64 {
	var n int64
	for _, o := range g.Offsets {
		n += o.Lag
	}
	return n
}

// StartPosition is where reading starts: Earliest, Latest, AtOffset or
// AtTime.
type StartPosition struct {
	kind   startKind
	offset int64
	time   time.Time
}

type startKind int

const (
	startUnset startKind = iota
	startLatest
	startEarliest
	startOffset
	startTime
)

// Latest starts at the end: only records published from then on.
func Latest() StartPosition { return StartPosition{kind: startLatest} }

// Earliest starts at the oldest record retained.
func Earliest() StartPosition { return StartPosition{kind: startEarliest} }

// AtOffset starts at an offset (in every partition it applies to; moved
// into the retained range by the server).
func AtOffset(offset int64) StartPosition { return StartPosition{kind: startOffset, offset: offset} }

// AtTime starts at the first record with a timestamp at or after t.
func AtTime(t time.Time) StartPosition { return StartPosition{kind: startTime, time: t} }

// IsZero reports whether p was never set.
func (p StartPosition) IsZero() bool { return p.kind == startUnset }

func (p StartPosition) String() string {
	switch p.kind {
	case startLatest:
		return "latest"
	case startEarliest:
		return "earliest"
	case startOffset:
		return "offset " + itoa(p.offset)
	case startTime:
		return "time " + p.time.Format(time.RFC3339Nano)
	}
	return "unset"
}
