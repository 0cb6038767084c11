// Package storage is Weir's partition log: an append-only sequence of Kafka
// RecordBatch v2 batches split into segment files, with a sparse offset index
// and a time index per segment, one group-committing writer, recovery of a torn
// tail on open, retention by age and size, and compaction by key.
//
// A Log knows nothing of streams, subscriptions or protocols; the broker keeps
// one Log per partition.
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// FSyncPolicy says when appended data is flushed to stable storage.
type FSyncPolicy int

const (
	// FSyncAlways acknowledges an append only after the data is fsynced.
	// Appends that arrive while a flush runs are written and flushed together
	// (group commit).
	FSyncAlways FSyncPolicy = iota
	// FSyncInterval acknowledges after the write and flushes every
	// Options.FSyncInterval.
	FSyncInterval
	// FSyncNever leaves flushing to the operating system (and to segment
	// roll and Close, which always flush).
	FSyncNever
)

func (p FSyncPolicy) String() string {
	switch p {
	case FSyncAlways:
		return "always"
	case FSyncInterval:
		return "interval"
	case FSyncNever:
		return "never"
	}
	return fmt.Sprintf("FSyncPolicy(%d)", int(p))
}

// ParseFSyncPolicy parses "always", "interval" or "never".
func ParseFSyncPolicy(s string) (FSyncPolicy, error) {
	switch s {
	case "always", "":
		return FSyncAlways, nil
	case "interval":
		return FSyncInterval, nil
	case "never":
		return FSyncNever, nil
	}
	return 0, fmt.Errorf("storage: unknown fsync policy %q (want always, interval or never)", s)
}

// Defaults and bounds of Options.
const (
	DefaultSegmentBytes       = 1 << 30
	MaxSegmentBytes           = 2 << 30 // positions in the offset index are uint32
	DefaultSegmentMaxAge      = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes = 4096
	DefaultFSyncInterval      = 50 * time.Millisecond
	DefaultMaxGroupBytes      = 4 << 20
	DefaultTombstoneRetention = 24 * time.Hour
	DefaultJanitorInterval    = time.Minute
)

// Options configure a Log. The zero value is usable: every zero field takes
// its default.
type Options struct {
	// FS is the filesystem; nil means the operating system's.
	FS vfs.FS
	// FSync is the flush policy; the zero value is FSyncAlways.
	FSync         FSyncPolicy
	FSyncInterval time.Duration
	// Flusher, when set, flushes the active segment together with the other
	// logs' that share it (one syncfs per filesystem) instead of on its own.
	Flusher *Flusher
	// SegmentBytes rolls the active segment once it would grow past this size.
	SegmentBytes int64
	// SegmentMaxAge rolls the active segment once its first batch is this old
	// (by the clock, measured from when it was written or recovered).
	SegmentMaxAge time.Duration
	// IndexIntervalBytes is the spacing of sparse offset-index entries.
	IndexIntervalBytes int64
	// MaxGroupBytes caps how much one group commit writes at once.
	MaxGroupBytes int

	// RetentionAge deletes closed segments whose newest record is older than
	// this (0: keep forever).
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest closed segments while the log is
	// larger than this (0: no limit).
	RetentionBytes int64
	// Compacted keeps only the newest record per key in closed segments.
	Compacted bool
	// TombstoneRetention is how long a tombstone (a record with a null value)
	// survives compaction after its timestamp.
	TombstoneRetention time.Duration
	// JanitorInterval is how often retention and compaction run in the
	// background; negative turns the background janitor off (tests call
	// EnforceRetention and Compact directly).
	JanitorInterval time.Duration

	// StartOffset is the log start offset the owner recorded (after
	// DeleteBefore); the log starts at the larger of it and the first
	// segment's base offset. The log does not persist it itself: mutable
	// state belongs in internal/state.
	StartOffset int64

	// Now is the clock (for retention, segment age and compaction); nil
	// means time.Now.
	Now func() time.Time
	// Logger receives warnings about recovery and background work.
	Logger *slog.Logger
	// OnSync, if set, is called by the writer after each flush of a segment
	// with how long it took (for the fsync latency metric). It must be quick.
	OnSync func(time.Duration)
}

func (o Options) withDefaults() (Options, error) {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.FSync < FSyncAlways || o.FSync > FSyncNever {
		return o, fmt.Errorf("storage: invalid fsync policy %d", int(o.FSync))
	}
	if o.FSyncInterval <= 0 {
		o.FSyncInterval = DefaultFSyncInterval
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < 1024 || o.SegmentBytes > MaxSegmentBytes {
		return o, fmt.Errorf("storage: segment size %d out of range [1024, %d]", o.SegmentBytes, int64(MaxSegmentBytes))
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = DefaultSegmentMaxAge
	}
	if o.IndexIntervalBytes <= 0 {
		o.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if o.MaxGroupBytes <= 0 {
		o.MaxGroupBytes = DefaultMaxGroupBytes
	}
	if o.TombstoneRetention <= 0 {
		o.TombstoneRetention = DefaultTombstoneRetention
	}
	if o.JanitorInterval == 0 {
		o.JanitorInterval = DefaultJanitorInterval
	}
	if o.RetentionAge < 0 || o.RetentionBytes < 0 || o.StartOffset < 0 {
		return o, errors.New("storage: negative retention or start offset")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Errors returned by the log.
var (
	ErrClosed            = errors.New("storage: log is closed")
	ErrOffsetOutOfRange  = errors.New("storage: offset out of range")
	ErrInvalidBatch      = errors.New("storage: invalid record batch")
	ErrBatchTooLarge     = errors.New("storage: batch larger than a segment")
	ErrFailed            = errors.New("storage: log failed and must be reopened")
	ErrEarlierFailed     = errors.New("storage: an append submitted before this one failed")
	ErrCorruptSegment    = errors.New("storage: corrupt segment")
	errSegmentGone       = errors.New("storage: segment was removed")
	errNeedRoll          = errors.New("storage: segment full")
	errOffsetSpaceFilled = errors.New("storage: segment offset space full")
)
