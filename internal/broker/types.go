// Package broker is Weir's model: streams split into partitions, publishing
// with key partitioning and deduplication, reading by offset with long-poll,
// consumer groups and ephemeral subscriptions. It knows nothing of wire
// formats: protocol front ends and the native API translate to these calls.
package broker

import (
	"errors"
	"time"

	"github.com/weirmq/weir/internal/filter"
)

// Errors. Front ends map them to their protocol's codes (see internal/api).
var (
	ErrInvalidArgument   = errors.New("invalid argument")
	ErrStreamNotFound    = errors.New("stream not found")
	ErrStreamExists      = errors.New("stream already exists")
	ErrPartitionNotFound = errors.New("partition not found")
	ErrRecordTooLarge    = errors.New("record too large")
	ErrOffsetOutOfRange  = errors.New("offset out of range")
	ErrGroupNotFound     = errors.New("group not found")
	ErrUnknownMember     = errors.New("unknown group member")
	ErrStaleGeneration   = errors.New("stale group generation")
	ErrNotAssigned       = errors.New("partition not assigned to this member")
	ErrGroupBusy         = errors.New("group has active members")
	ErrClosed            = errors.New("broker is closed")
)

// Limits.
const (
	MaxNameLength         = 249 // Kafka's topic name limit
	MaxPartitions         = 10000
	DefaultMaxRecordBytes = 1 << 20
	DefaultDedupWindow    = 2 * time.Minute
)

// Header is one record header; names may repeat and order is kept. It is
// the filter package's type, so records are filtered without copying.
type Header = filter.Header

// Reserved header names shared by every protocol (DESIGN.md section 1).
const (
	HeaderContentType   = "content-type"
	HeaderMessageID     = "message-id"
	HeaderCorrelationID = "correlation-id"
	HeaderReplyTo       = "reply-to"
	HeaderDeliverAt     = "deliver-at"
	HeaderExpiresAt     = "expires-at"
	HeaderType          = "type"
	HeaderSource        = "source"
)

// Record is a record as published or read.
type Record struct {
	Key       []byte // nil: no key (round-robin partitioning)
	Value     []byte // nil: a tombstone in a compacted stream
	Headers   []Header
	Timestamp time.Time // zero on publish: the broker's clock

	// Set on read.
	Partition int32
	Offset    int64
}

// StreamConfig is what a stream is created with.
type StreamConfig struct {
	Name       string
	Partitions int32 // default 1
	// RetentionAge drops segments older than this (0: keep forever).
	RetentionAge time.Duration
	// RetentionBytes caps each partition's size (0: no cap).
	RetentionBytes int64
	// Compacted keeps only the newest record per key.
	Compacted bool
	// DedupWindow is how long a message-id is remembered (0: the default,
	// negative: no deduplication).
	DedupWindow time.Duration
	// SegmentBytes is the partition segment size (0: the storage default).
	SegmentBytes int64
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition     int32
	StartOffset   int64
	EndOffset     int64
	DurableOffset int64
	Bytes         int64
	Segments      int
	// AppendedOffsets and AppendedBytes count, since the node started,
	// the offsets (records and transaction markers) and the stored batch
	// bytes appended to the partition.
	AppendedOffsets, AppendedBytes int64
}

// StreamInfo describes a stream.
type StreamInfo struct {
	Config     StreamConfig
	ID         [16]byte // stable across restarts (Kafka topic IDs use it)
	CreatedAt  time.Time
	Partitions []PartitionInfo
	// Queue: records are dropped once every shared subscription settled
	// them (the stream of a queue).
	Queue bool
}

// PublishResult says where one published record landed.
type PublishResult struct {
	Partition int32
	Offset    int64
	// Duplicate is set when the record's message-id was seen within the
	// dedup window: nothing was stored and Partition/Offset are the original's.
	Duplicate bool
}

// StartPosition says where a reader without a committed offset starts.
type StartPosition struct {
	Kind   StartKind
	Offset int64     // StartOffset
	Time   time.Time // StartTime
}

type StartKind int

const (
	StartLatest   StartKind = iota // only records published from now on
	StartEarliest                  // the oldest record retained
	StartOffset                    // an explicit offset (clamped to the retained range)
	StartTime                      // the first record at or after a time
)

// FetchResult is what one Fetch returns for one partition.
type FetchResult struct {
	Records []Record
	// NextOffset is where the next fetch should start.
	NextOffset int64
	// HighWater is the partition's end offset when the fetch was answered.
	HighWater   int64
	StartOffset int64
}
