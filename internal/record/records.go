package record

// The record level of a batch. After the 61-byte header come recordCount
// records (compressed as a whole when the codec bits say so), each:
//
//	length          varint   bytes after this field
//	attributes      int8     unused by Kafka, 0
//	timestampDelta  varlong  from the batch's baseTimestamp; may be negative
//	offsetDelta     varint   from the batch's baseOffset
//	keyLength       varint   -1 = null key
//	key             bytes
//	valueLength     varint   -1 = null value
//	value           bytes
//	headerCount     varint
//	headers         headerCount times:
//	  keyLength     varint   never null
//	  key           bytes    (UTF-8 in Kafka; not checked)
//	  valueLength   varint   -1 = null value
//	  value         bytes
//
// varint and varlong are zigzag-encoded (see varint.go).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// RecordHeader is one header of a record. Kafka header keys are never null;
// a nil Value is a null header value, which is not the same as an empty one.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one record of a batch, with its offset and timestamp absolute.
type Record struct {
	// Offset is the record's absolute offset: the batch's baseOffset plus
	// the record's offsetDelta.
	Offset int64
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp int64
	// Key is nil for a null key; an empty non-nil Key is an empty key.
	Key []byte
	// Value is nil for a null value, which in a compacted stream is a
	// tombstone; an empty non-nil Value is an empty value.
	Value []byte
	// Headers are kept in order; keys may repeat.
	Headers []RecordHeader
	// Attributes is the record-level attributes byte. Kafka defines no bits
	// in it and writes 0; it is carried through unchanged.
	Attributes int8
}

// BatchOptions are the batch-level fields AppendBatch writes.
//
// ProducerID, ProducerEpoch and BaseSequence identify an idempotent or
// transactional producer's batch; -1 in all three (as DefaultBatchOptions
// sets) means the batch comes from no idempotent producer.
type BatchOptions struct {
	// BaseOffset is written as the batch's baseOffset; each record's
	// offsetDelta is its Offset minus BaseOffset. The log normally rewrites
	// it when it appends the batch (SetBaseOffset).
	BaseOffset int64
	// Compression is the codec the records section is compressed with.
	Compression Compression
	// ProducerID is the idempotent producer's id, or -1.
	ProducerID int64
	// ProducerEpoch is the idempotent producer's epoch, or -1.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the batch's first record, or -1.
	BaseSequence int32
	// Transactional marks a batch written inside a transaction.
	Transactional bool
	// Control marks a transaction control batch (commit or abort markers).
	Control bool
	// LeaderEpoch is the partitionLeaderEpoch field; -1 when unknown. It
	// lies outside the CRC (see SetLeaderEpoch).
	LeaderEpoch int32
	// LogAppendTime sets the timestamp-type bit: the batch's maxTimestamp is
	// the time the log appended it, and readers report that time as every
	// record's timestamp (Kafka's message.timestamp.type=LogAppendTime).
	LogAppendTime bool
}

// DefaultBatchOptions returns the options of a plain, uncompressed batch
// from no idempotent producer: base offset 0, producer id, epoch and base
// sequence -1, leader epoch -1.
func DefaultBatchOptions() BatchOptions {
	return BatchOptions{
		ProducerID:    -1,
		ProducerEpoch: -1,
		BaseSequence:  -1,
		LeaderEpoch:   -1,
	}
}

// Options returns the BatchOptions that reproduce this batch's header when
// its records are encoded again (as compaction does): AppendBatch with
// these options and the batch's decoded records yields a batch whose
// records decode equal. Bits AppendBatch does not write (the delete
// horizon) are dropped.
func (h *Header) Options() BatchOptions {
	return BatchOptions{
		BaseOffset:    h.BaseOffset,
		Compression:   h.Compression(),
		ProducerID:    h.ProducerID,
		ProducerEpoch: h.ProducerEpoch,
		BaseSequence:  h.BaseSequence,
		Transactional: h.Attributes&TransactionalFlag != 0,
		Control:       h.IsControl(),
		LeaderEpoch:   h.LeaderEpoch,
		LogAppendTime: h.Attributes&TimestampLogAppend != 0,
	}
}

// Errors AppendBatch returns for records it cannot encode.
var (
	ErrNoRecords  = errors.New("record: a batch needs at least one record")
	ErrBadOffsets = errors.New("record: record offsets must increase and lie within 0..2^31-1 of the base offset")
)

// AppendBatch appends one complete RecordBatch v2 holding recs to dst and
// returns the extended slice. On error dst is returned unchanged.
//
// Each record's offsetDelta is rec.Offset - opts.BaseOffset; the deltas
// must be strictly increasing and within 0..math.MaxInt32. Keeping absolute
// offsets in the records lets a caller re-encode records with gaps between
// their offsets (as compaction does). A caller building a fresh batch sets
// recs[i].Offset = opts.BaseOffset + i (usually just i, with BaseOffset 0,
// since the log assigns the real base offset on append).
//
// As in Kafka, baseTimestamp is the first record's timestamp (not the
// smallest), each timestampDelta is relative to it and may be negative, and
// maxTimestamp is the largest record timestamp. lastOffsetDelta is the last
// record's offsetDelta. The records section is compressed with
// opts.Compression and the CRC is computed last.
//
// For an uncompressed batch AppendBatch allocates nothing beyond growing
// dst once; give dst enough capacity and it allocates nothing at all.
func AppendBatch(dst []byte, opts BatchOptions, recs []Record) ([]byte, error) {
	if len(recs) == 0 {
		return dst, ErrNoRecords
	}
	if opts.Compression < CompressionNone || opts.Compression > CompressionZstd {
		return dst, ErrCompression
	}

	baseTimestamp := recs[0].Timestamp
	maxTimestamp := baseTimestamp
	var size int64 // of the uncompressed records section
	prevDelta := int64(-1)
	for i := range recs {
		r := &recs[i]
		delta := r.Offset - opts.BaseOffset
		if delta <= prevDelta || delta > math.MaxInt32 {
			return dst, fmt.Errorf("%w: record %d has offset %d with base offset %d", ErrBadOffsets, i, r.Offset, opts.BaseOffset)
		}
		prevDelta = delta
		maxTimestamp = max(maxTimestamp, r.Timestamp)
		body := bodySize(r, delta, r.Timestamp-baseTimestamp)
		if body > math.MaxInt32 {
			return dst, fmt.Errorf("%w: record %d is %d bytes", ErrBadLength, i, body)
		}
		size += int64(varintSize(body)) + body
		if size > math.MaxInt32-minBatchLengthPayload {
			return dst, fmt.Errorf("%w: records take more than %d bytes", ErrBadLength, math.MaxInt32-minBatchLengthPayload)
		}
	}

	start := len(dst)
	if opts.Compression == CompressionNone {
		dst = slices.Grow(dst, HeaderSize+int(size))
		dst = appendRecords(dst[:start+HeaderSize], opts.BaseOffset, baseTimestamp, recs)
	} else {
		scratch := getScratch(int(size))
		*scratch = appendRecords(*scratch, opts.BaseOffset, baseTimestamp, recs)
		dst = slices.Grow(dst, HeaderSize)
		var err error
		dst, err = Compress(dst[:start+HeaderSize], opts.Compression, *scratch)
		putScratch(scratch)
		if err != nil {
			return dst[:start], err
		}
		if len(dst)-start-lengthFieldEnd > math.MaxInt32 {
			return dst[:start], fmt.Errorf("%w: compressed batch is %d bytes", ErrBadLength, len(dst)-start)
		}
	}

	attributes := int16(opts.Compression)
	if opts.LogAppendTime {
		attributes |= TimestampLogAppend
	}
	if opts.Transactional {
		attributes |= TransactionalFlag
	}
	if opts.Control {
		attributes |= ControlFlag
	}
	b := dst[start:]
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(opts.BaseOffset))
	be.PutUint32(b[offBatchLength:], uint32(len(b)-lengthFieldEnd))
	be.PutUint32(b[offLeaderEpoch:], uint32(opts.LeaderEpoch))
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], uint16(attributes))
	be.PutUint32(b[offLastOffsetDelta:], uint32(prevDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(baseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTimestamp))
	be.PutUint64(b[offProducerID:], uint64(opts.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(opts.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(opts.BaseSequence))
	be.PutUint32(b[offRecordCount:], uint32(len(recs)))
	be.PutUint32(b[offCRC:], Checksum(b))
	return dst, nil
}

// bodySize is the encoded size of r after its length field.
func bodySize(r *Record, offsetDelta, timestampDelta int64) int64 {
	n := 1 + // attributes
		varintSize(timestampDelta) +
		varintSize(offsetDelta) +
		nullableSize(r.Key) +
		nullableSize(r.Value) +
		varintSize(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintSize(int64(len(h.Key))) + len(h.Key) + nullableSize(h.Value)
	}
	return int64(n)
}

// appendRecords appends the records section for recs. The offsets and sizes
// must have been checked by the caller.
func appendRecords(dst []byte, baseOffset, baseTimestamp int64, recs []Record) []byte {
	for i := range recs {
		r := &recs[i]
		offsetDelta := r.Offset - baseOffset
		timestampDelta := r.Timestamp - baseTimestamp
		dst = binary.AppendVarint(dst, bodySize(r, offsetDelta, timestampDelta))
		dst = append(dst, byte(r.Attributes))
		dst = binary.AppendVarint(dst, timestampDelta)
		dst = binary.AppendVarint(dst, offsetDelta)
		dst = appendNullable(dst, r.Key)
		dst = appendNullable(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for j := range r.Headers {
			h := &r.Headers[j]
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendNullable(dst, h.Value)
		}
	}
	return dst
}

// Scratch buffers for the uncompressed records section of a compressed
// batch. Buffers above maxPooledScratch are left to the garbage collector
// so that one huge batch does not pin its memory in the pool.
const maxPooledScratch = 4 << 20

var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

func getScratch(n int) *[]byte {
	p := scratchPool.Get().(*[]byte)
	*p = slices.Grow((*p)[:0], n)
	return p
}

func putScratch(p *[]byte) {
	if cap(*p) > maxPooledScratch {
		return
	}
	*p = (*p)[:0]
	scratchPool.Put(p)
}
