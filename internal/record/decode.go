package record

import (
	"fmt"
	"slices"
)

// minRecordSize is the smallest encoded record: a one-byte length and six
// one-byte fields (attributes, timestampDelta, offsetDelta, null key, null
// value, no headers). It bounds how many records a records section can hold.
const minRecordSize = 7

// Iterator decodes the records of one batch at a time without allocating a
// []Record. The zero value is ready to use:
//
//	var it record.Iterator
//	var r record.Record
//	if err := it.Reset(batch); err != nil { ... }
//	for it.Next(&r) {
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// The Key, Value and header Value slices Next stores alias the batch, or,
// for a compressed batch, the Iterator's decompression buffer, which the
// next Reset overwrites: copy what must outlive the batch. Header keys are
// strings and so are copies (the one allocation Next makes, per non-empty
// header key). The decompression buffer grows to the largest records
// section seen and is kept; drop the Iterator to release it. An Iterator
// is not safe for concurrent use.
type Iterator struct {
	// MaxDecompressed bounds the size a compressed batch's records section
	// may decompress to; a batch over it fails with ErrTooLarge instead of
	// allocating without bound. Zero or less means DefaultMaxDecompressed.
	MaxDecompressed int

	header    Header
	data      []byte // the uncompressed records section
	buf       []byte // decompression buffer, reused across batches
	pos       int    // of the next record in data
	index     int32  // of the next record
	prevDelta int32  // offsetDelta of the previous record
	err       error
}

// Reset validates batch (see Validate), decompresses its records section if
// needed, and positions the iterator before its first record. It returns
// the error Err would report; after an error Next returns false.
func (it *Iterator) Reset(batch []byte) error {
	it.header, it.data, it.pos, it.index, it.prevDelta, it.err = Header{}, nil, 0, 0, -1, nil
	h, err := Validate(batch)
	if err != nil {
		it.err = err
		return err
	}
	it.header = h
	data := batch[HeaderSize:]
	if c := h.Compression(); c != CompressionNone {
		limit := it.MaxDecompressed
		if limit <= 0 {
			limit = DefaultMaxDecompressed
		}
		out, err := Decompress(it.buf[:0], c, data, limit)
		if err != nil {
			it.err = err
			return err
		}
		it.buf, data = out, out
	}
	switch {
	case h.RecordCount == 0 && len(data) > 0:
		it.err = fmt.Errorf("%w: batch holds no records but %d bytes follow its header", ErrRecordFormat, len(data))
	case int64(h.RecordCount)*minRecordSize > int64(len(data)):
		it.err = fmt.Errorf("%w: batch header says %d records but its records section is %d bytes", ErrRecordFormat, h.RecordCount, len(data))
	default:
		it.data = data
	}
	return it.err
}

// Header returns the header of the batch last passed to Reset.
func (it *Iterator) Header() Header { return it.header }

// Err returns the first error Reset or Next met, or nil.
func (it *Iterator) Err() error { return it.err }

// Next decodes the next record into *r and reports whether there was one.
// It overwrites every field of *r and reuses r.Headers' backing array.
// It returns false at the end of the batch and on error; Err tells which.
// A records section that holds fewer or more records than the batch header
// counts is an error, reported when Next reaches the point of difference.
func (it *Iterator) Next(r *Record) bool {
	if it.err != nil || it.index >= it.header.RecordCount {
		return false
	}
	headers, err := it.decodeRecord(r, r.Headers[:0])
	r.Headers = headers
	if err != nil {
		it.err = err
		return false
	}
	return true
}

// decodeRecord decodes the record at it.pos into *r, appending its headers
// to headers (returned), and advances the iterator. A record that cannot be
// decoded leaves the iterator where it was.
func (it *Iterator) decodeRecord(r *Record, headers []RecordHeader) ([]RecordHeader, error) {
	h := &it.header
	data := it.data
	if it.pos >= len(data) {
		return headers, it.fail("batch header says %d records, the records section ends after %d", h.RecordCount, it.index)
	}
	length, p, ok := readVarint(data, it.pos)
	if !ok {
		return headers, it.fail("invalid length varint")
	}
	if length < 0 || int(length) > len(data)-p {
		return headers, it.fail("length %d past the end of the records section (%d bytes left)", length, len(data)-p)
	}
	end := p + int(length)
	body := data[:end] // reads below cannot stray past this record

	if p >= end {
		return headers, it.fail("truncated before attributes")
	}
	attributes := int8(body[p])
	p++
	timestampDelta, p, ok := readVarlong(body, p)
	if !ok {
		return headers, it.fail("invalid timestampDelta varlong")
	}
	offsetDelta, p, ok := readVarint(body, p)
	if !ok {
		return headers, it.fail("invalid offsetDelta varint")
	}
	if offsetDelta <= it.prevDelta || offsetDelta > h.LastOffsetDelta {
		return headers, it.fail("offsetDelta %d after %d (lastOffsetDelta %d)", offsetDelta, it.prevDelta, h.LastOffsetDelta)
	}
	key, p, err := readNullable(body, p)
	if err != "" {
		return headers, it.fail("key: %s", err)
	}
	value, p, err := readNullable(body, p)
	if err != "" {
		return headers, it.fail("value: %s", err)
	}
	count, p, ok := readVarint(body, p)
	if !ok {
		return headers, it.fail("invalid header count varint")
	}
	// Each header takes at least two bytes: an empty key and a null value.
	if count < 0 || int(count) > (end-p)/2 {
		return headers, it.fail("header count %d does not fit the record's %d remaining bytes", count, end-p)
	}
	headers = slices.Grow(headers, int(count))
	for i := range int(count) {
		var klen int32
		klen, p, ok = readVarint(body, p)
		if !ok {
			return headers, it.fail("header %d: invalid key length varint", i)
		}
		if klen < 0 || int(klen) > end-p {
			return headers, it.fail("header %d: key length %d with %d bytes left", i, klen, end-p)
		}
		hkey := string(body[p : p+int(klen)])
		p += int(klen)
		var hvalue []byte
		hvalue, p, err = readNullable(body, p)
		if err != "" {
			return headers, it.fail("header %d value: %s", i, err)
		}
		headers = append(headers, RecordHeader{Key: hkey, Value: hvalue})
	}
	if p != end {
		return headers, it.fail("length says %d bytes, fields take %d", length, int(length)-(end-p))
	}
	if it.index == h.RecordCount-1 && end != len(data) {
		return headers, it.fail("%d bytes of trailing data after the last of %d records", len(data)-end, h.RecordCount)
	}

	r.Offset = h.BaseOffset + int64(offsetDelta)
	if h.Attributes&TimestampLogAppend != 0 {
		r.Timestamp = h.MaxTimestamp
	} else {
		r.Timestamp = h.BaseTimestamp + timestampDelta
	}
	r.Key = key
	r.Value = value
	r.Attributes = attributes
	it.pos = end
	it.index++
	it.prevDelta = offsetDelta
	return headers, nil
}

// fail returns an ErrRecordFormat error naming the record being decoded.
func (it *Iterator) fail(format string, args ...any) error {
	return fmt.Errorf("%w: record %d: %s", ErrRecordFormat, it.index, fmt.Sprintf(format, args...))
}

// readNullable reads a nullable byte string at b[p:]: a varint length, -1
// for nil, then the bytes. The returned slice's capacity ends with it so
// that appending to it cannot overwrite what follows in the batch. A
// non-empty string describes what is wrong.
func readNullable(b []byte, p int) ([]byte, int, string) {
	n, p, ok := readVarint(b, p)
	switch {
	case !ok:
		return nil, p, "invalid length varint"
	case n == -1:
		return nil, p, ""
	case n < 0:
		return nil, p, fmt.Sprintf("negative length %d", n)
	case int(n) > len(b)-p:
		return nil, p, fmt.Sprintf("length %d with %d bytes left", n, len(b)-p)
	}
	end := p + int(n)
	return b[p:end:end], end, ""
}

// DecodeRecords validates batch, decompresses its records if needed, and
// appends its records to dst. With an error, dst is returned as it was.
//
// The Key, Value and header Value slices alias batch (or, for a compressed
// batch, a buffer allocated for this call), so batch must stay unchanged
// while they are in use. Each record's Headers has its own capacity, so
// appending to one never disturbs another. Decompression is bounded by
// DefaultMaxDecompressed; use an Iterator for another bound, or to avoid
// building a []Record.
func DecodeRecords(batch []byte, dst []Record) ([]Record, error) {
	var it Iterator
	if err := it.Reset(batch); err != nil {
		return dst, err
	}
	start := len(dst)
	n := int(it.header.RecordCount) // at most len(records section)/minRecordSize
	// Reserve room for the records up front, but not so much that a
	// corrupt count in a highly compressed batch costs a huge allocation
	// before the records prove to be there.
	dst = slices.Grow(dst, min(n, 4096))
	// Headers of all records share arena chunks rather than one allocation
	// per record.
	var arena []RecordHeader
	for range n {
		dst = append(dst, Record{})
		r := &dst[len(dst)-1]
		spare := cap(arena) - len(arena)
		headers, err := it.decodeRecord(r, arena[len(arena):])
		if err != nil {
			clear(dst[start:])
			return dst[:start], err
		}
		switch {
		case len(headers) == 0:
			headers = nil
		case len(headers) <= spare: // decoded in place in the arena
			arena = arena[:len(arena)+len(headers)]
			headers = headers[:len(headers):len(headers)]
		default: // the arena was too small: start a bigger one for the rest
			arena = make([]RecordHeader, 0, max(64, 4*len(headers)))
		}
		r.Headers = headers
	}
	return dst, nil
}
