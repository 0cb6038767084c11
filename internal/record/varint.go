package record

import (
	"encoding/binary"
	"math/bits"
)

// Kafka encodes the integers inside a record as zigzag varints, the same
// encoding as encoding/binary's Varint: a "varint" field holds an int32 in at
// most 5 bytes, a "varlong" an int64 in at most 10. binary.AppendVarint
// writes both (an int32 widened to int64 zigzags to the same bytes); the
// readers below enforce the per-type byte and value limits that
// binary.Varint does not.

const (
	maxVarintBytes  = 5
	maxVarlongBytes = 10
)

// varintSize is the number of bytes binary.AppendVarint uses for v.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// nullableSize is the encoded size of a nullable byte string: its varint
// length (-1 for nil) followed by its bytes.
func nullableSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// appendNullable appends a nullable byte string: varint length, -1 for nil.
func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// readUvarint decodes an unsigned LEB128 integer of at most maxBytes bytes
// starting at b[i]. lastMax is the largest value the final (maxBytes-th)
// byte may hold so that the result fits the field's width. It returns the
// value, the index just past it, and false when the bytes run out, the
// encoding is longer than maxBytes, or the value overflows.
func readUvarint(b []byte, i, maxBytes int, lastMax byte) (uint64, int, bool) {
	var x uint64
	var shift uint
	for n := 0; n < maxBytes; n++ {
		if i >= len(b) {
			return 0, i, false
		}
		c := b[i]
		i++
		if c < 0x80 {
			if n == maxBytes-1 && c > lastMax {
				return 0, i, false
			}
			return x | uint64(c)<<shift, i, true
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, i, false
}

// readVarint decodes a Kafka varint (zigzag int32) at b[i].
func readVarint(b []byte, i int) (int32, int, bool) {
	// One or two bytes (up to ±8191) cover nearly every length and delta.
	if i < len(b) && b[i] < 0x80 {
		u := uint32(b[i])
		return int32(u>>1) ^ -int32(u&1), i + 1, true
	}
	if i+1 < len(b) && b[i+1] < 0x80 {
		u := uint32(b[i]&0x7f) | uint32(b[i+1])<<7
		return int32(u>>1) ^ -int32(u&1), i + 2, true
	}
	// Five bytes carry 35 bits; the fifth may use only its low 4.
	x, next, ok := readUvarint(b, i, maxVarintBytes, 0x0f)
	if !ok {
		return 0, next, false
	}
	u := uint32(x)
	return int32(u>>1) ^ -int32(u&1), next, true
}

// readVarlong decodes a Kafka varlong (zigzag int64) at b[i].
func readVarlong(b []byte, i int) (int64, int, bool) {
	if i < len(b) && b[i] < 0x80 {
		u := uint64(b[i])
		return int64(u>>1) ^ -int64(u&1), i + 1, true
	}
	// Ten bytes carry 70 bits; the tenth may use only its lowest.
	x, next, ok := readUvarint(b, i, maxVarlongBytes, 0x01)
	if !ok {
		return 0, next, false
	}
	return int64(x>>1) ^ -int64(x&1), next, true
}
