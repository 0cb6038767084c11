// Package record reads and writes Kafka RecordBatch v2 ("magic 2"), the one
// format Weir stores records in. A batch is a 61-byte header followed by its
// records, possibly compressed as a whole:
//
//	offset  size  field
//	0       8     baseOffset            (assigned by the log; outside the CRC)
//	8       4     batchLength           (bytes after this field)
//	12      4     partitionLeaderEpoch  (outside the CRC)
//	16      1     magic = 2
//	17      4     crc                   (CRC32C of bytes 21..end)
//	21      2     attributes            (bits 0-2 compression, 3 timestamp type,
//	                                     4 transactional, 5 control)
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp         (ms since epoch)
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
//	61      ...   records
//
// All integers are big-endian. Because baseOffset and partitionLeaderEpoch lie
// outside the CRC, the log can assign offsets without recomputing it.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a RecordBatch v2 header.
const HeaderSize = 61

// Byte offsets of the header fields.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// Attribute bits.
const (
	CompressionMask       = 0x07
	TimestampLogAppend    = 0x08
	TransactionalFlag     = 0x10
	ControlFlag           = 0x20
	DeleteHorizonFlag     = 0x40
	lengthFieldEnd        = offBatchLength + 4
	minBatchLengthPayload = HeaderSize - lengthFieldEnd
)

// Compression codecs, as numbered in the attributes.
type Compression int8

const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Errors returned when a batch is not well formed.
var (
	ErrShort        = errors.New("record: batch is truncated")
	ErrMagic        = errors.New("record: unsupported batch magic (only v2 is accepted)")
	ErrCorrupt      = errors.New("record: batch CRC mismatch")
	ErrBadLength    = errors.New("record: batch length out of range")
	ErrBadCount     = errors.New("record: record count does not match lastOffsetDelta")
	ErrCompression  = errors.New("record: unknown compression codec")
	ErrRecordFormat = errors.New("record: malformed record")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C a batch's crc field must hold.
func Checksum(batch []byte) uint32 {
	return crc32.Checksum(batch[offAttributes:], castagnoli)
}

// Header is the decoded header of one batch.
type Header struct {
	BaseOffset      int64
	Length          int32 // batchLength field: the batch occupies Length+12 bytes
	LeaderEpoch     int32
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the number of bytes the whole batch occupies.
func (h *Header) Size() int { return int(h.Length) + lengthFieldEnd }

// LastOffset is the offset of the batch's last record.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec the records are compressed with.
func (h *Header) Compression() Compression { return Compression(h.Attributes & CompressionMask) }

// IsControl reports whether this is a transaction control batch.
func (h *Header) IsControl() bool { return h.Attributes&ControlFlag != 0 }

// BatchSize reads only the length field of the batch starting at b and returns
// the number of bytes the whole batch occupies, or ErrShort when b holds fewer
// than the 12 bytes needed to know. It does not check that b holds the batch.
func BatchSize(b []byte) (int, error) {
	if len(b) < lengthFieldEnd {
		return 0, ErrShort
	}
	n := int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	if n < minBatchLengthPayload {
		return 0, ErrBadLength
	}
	return int(n) + lengthFieldEnd, nil
}

// ParseHeader decodes the header at the start of b. It checks the magic byte and
// the length field's lower bound, but not the CRC and not that b holds the
// whole batch.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrShort
	}
	if b[offMagic] != 2 {
		return h, ErrMagic
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offBatchLength:]))
	if h.Length < minBatchLengthPayload {
		return h, ErrBadLength
	}
	h.LeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(be.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(be.Uint32(b[offRecordCount:]))
	return h, nil
}

// Validate checks that b is exactly one well-formed batch: header, length,
// CRC, a known codec, and a record count that agrees with lastOffsetDelta
// (each batch's records have consecutive offset deltas 0..count-1 when it is
// produced; compaction may leave gaps, so count <= lastOffsetDelta+1 is
// allowed). It returns the decoded header.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		if h.Size() > len(b) {
			return h, ErrShort
		}
		return h, fmt.Errorf("%w: length field says %d bytes, got %d", ErrBadLength, h.Size(), len(b))
	}
	if Checksum(b) != h.CRC {
		return h, ErrCorrupt
	}
	if h.Compression() > CompressionZstd {
		return h, ErrCompression
	}
	if h.RecordCount < 0 || h.LastOffsetDelta < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return h, ErrBadCount
	}
	return h, nil
}

// SetBaseOffset rewrites the baseOffset field of the batch at the start of b.
// The CRC does not cover it, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch rewrites the partitionLeaderEpoch field (outside the CRC).
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}
