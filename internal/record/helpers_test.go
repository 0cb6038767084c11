package record

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"testing"

	"github.com/klauspost/compress/snappy/xerial"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var codecs = []Compression{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

// sameBytes is bytes.Equal that also tells nil (null) from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// diffRecords describes the first difference between two record lists, or
// returns "" when they are equal. nil and empty Headers are equal.
func diffRecords(got, want []Record) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := &got[i], &want[i]
		switch {
		case g.Offset != w.Offset:
			return fmt.Sprintf("record %d: offset %d, want %d", i, g.Offset, w.Offset)
		case g.Timestamp != w.Timestamp:
			return fmt.Sprintf("record %d: timestamp %d, want %d", i, g.Timestamp, w.Timestamp)
		case !sameBytes(g.Key, w.Key):
			return fmt.Sprintf("record %d: key %q (nil %t), want %q (nil %t)", i, g.Key, g.Key == nil, w.Key, w.Key == nil)
		case !sameBytes(g.Value, w.Value):
			return fmt.Sprintf("record %d: value of %d bytes (nil %t), want %d (nil %t)", i, len(g.Value), g.Value == nil, len(w.Value), w.Value == nil)
		case g.Attributes != w.Attributes:
			return fmt.Sprintf("record %d: attributes %d, want %d", i, g.Attributes, w.Attributes)
		case len(g.Headers) != len(w.Headers):
			return fmt.Sprintf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range g.Headers {
			gh, wh := g.Headers[j], w.Headers[j]
			if gh.Key != wh.Key || !sameBytes(gh.Value, wh.Value) {
				return fmt.Sprintf("record %d header %d: %q=%q (nil %t), want %q=%q (nil %t)",
					i, j, gh.Key, gh.Value, gh.Value == nil, wh.Key, wh.Value, wh.Value == nil)
			}
		}
	}
	return ""
}

// cloneRecord deep-copies r, so that it outlives the iterator's buffers.
func cloneRecord(r Record) Record {
	c := r
	c.Key = cloneNullable(r.Key)
	c.Value = cloneNullable(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, RecordHeader{Key: h.Key, Value: cloneNullable(h.Value)})
	}
	return c
}

func cloneNullable(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// iterate decodes batch with a fresh Iterator, copying every record.
func iterate(batch []byte, limit int) ([]Record, error) {
	it := Iterator{MaxDecompressed: limit}
	if err := it.Reset(batch); err != nil {
		return nil, err
	}
	var out []Record
	var r Record
	for it.Next(&r) {
		out = append(out, cloneRecord(r))
	}
	return out, it.Err()
}

// mustBatch encodes recs or fails the test.
func mustBatch(t testing.TB, opts BatchOptions, recs []Record) []byte {
	t.Helper()
	b, err := AppendBatch(nil, opts, recs)
	if err != nil {
		t.Fatalf("AppendBatch: %v", err)
	}
	return b
}

// rawBatch builds a batch around an arbitrary records section, with a
// correct length and CRC, for feeding malformed records to the decoder.
func rawBatch(records []byte, count, lastOffsetDelta int32, c Compression) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(records))
	b = append(b, records...)
	be := binary.BigEndian
	be.PutUint32(b[offBatchLength:], uint32(len(b)-lengthFieldEnd))
	be.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], uint16(c))
	be.PutUint32(b[offLastOffsetDelta:], uint32(lastOffsetDelta))
	be.PutUint64(b[offProducerID:], ^uint64(0))
	be.PutUint16(b[offProducerEpoch:], 0xffff)
	be.PutUint32(b[offBaseSequence:], 0xffffffff)
	be.PutUint32(b[offRecordCount:], uint32(count))
	be.PutUint32(b[offCRC:], Checksum(b))
	return b
}

// refix recomputes the CRC after a test edited a batch's header.
func refix(b []byte) []byte {
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
	return b
}

// independentDecompress undoes a codec with the libraries directly (the
// standard library's gzip where it can), not with Decompress.
func independentDecompress(t testing.TB, c Compression, src []byte) []byte {
	t.Helper()
	var out []byte
	var err error
	switch c {
	case CompressionNone:
		return src
	case CompressionGzip:
		var zr *stdgzip.Reader
		if zr, err = stdgzip.NewReader(bytes.NewReader(src)); err == nil {
			out, err = io.ReadAll(zr)
		}
	case CompressionSnappy:
		out, err = xerial.Decode(src)
	case CompressionLZ4:
		out, err = io.ReadAll(lz4.NewReader(bytes.NewReader(src)))
	case CompressionZstd:
		var zd *zstd.Decoder
		if zd, err = zstd.NewReader(nil); err == nil {
			out, err = zd.DecodeAll(src, nil)
			zd.Close()
		}
	}
	if err != nil {
		t.Fatalf("independent %s decompression: %v", c, err)
	}
	return out
}

// independentCompress compresses as other clients do: gzip from the
// standard library, xerial-framed snappy (the Java client), lz4 with the
// library's defaults (4 MiB blocks, content checksum), and streaming zstd,
// whose frames do not declare their content size.
func independentCompress(t testing.TB, c Compression, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch c {
	case CompressionNone:
		return src
	case CompressionGzip:
		zw := stdgzip.NewWriter(&buf)
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case CompressionSnappy:
		return xerial.Encode(nil, src)
	case CompressionLZ4:
		zw := lz4.NewWriter(&buf)
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case CompressionZstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(src)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// checkWithKmsg decodes batch with franz-go's kmsg and checks every field
// against what AppendBatch was asked to encode.
func checkWithKmsg(t *testing.T, batch []byte, opts BatchOptions, recs []Record) {
	t.Helper()
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(batch); err != nil {
		t.Fatalf("kmsg RecordBatch: %v", err)
	}
	wantAttrs := int16(opts.Compression)
	if opts.LogAppendTime {
		wantAttrs |= 0x08
	}
	if opts.Transactional {
		wantAttrs |= 0x10
	}
	if opts.Control {
		wantAttrs |= 0x20
	}
	maxTs := recs[0].Timestamp
	for _, r := range recs {
		maxTs = max(maxTs, r.Timestamp)
	}
	crc := crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli))
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"FirstOffset", kb.FirstOffset, opts.BaseOffset},
		{"Length", int64(kb.Length), int64(len(batch) - 12)},
		{"PartitionLeaderEpoch", int64(kb.PartitionLeaderEpoch), int64(opts.LeaderEpoch)},
		{"Magic", int64(kb.Magic), 2},
		{"CRC", int64(uint32(kb.CRC)), int64(crc)},
		{"Attributes", int64(kb.Attributes), int64(wantAttrs)},
		{"LastOffsetDelta", int64(kb.LastOffsetDelta), recs[len(recs)-1].Offset - opts.BaseOffset},
		{"FirstTimestamp", kb.FirstTimestamp, recs[0].Timestamp},
		{"MaxTimestamp", kb.MaxTimestamp, maxTs},
		{"ProducerID", kb.ProducerID, opts.ProducerID},
		{"ProducerEpoch", int64(kb.ProducerEpoch), int64(opts.ProducerEpoch)},
		{"FirstSequence", int64(kb.FirstSequence), int64(opts.BaseSequence)},
		{"NumRecords", int64(kb.NumRecords), int64(len(recs))},
	} {
		if c.got != c.want {
			t.Errorf("kmsg %s = %d, want %d", c.name, c.got, c.want)
		}
	}

	raw := independentDecompress(t, opts.Compression, kb.Records)
	for i, want := range recs {
		var kr kmsg.Record
		if err := kr.ReadFrom(raw); err != nil {
			t.Fatalf("kmsg record %d: %v", i, err)
		}
		got := Record{
			Offset:     opts.BaseOffset + int64(kr.OffsetDelta),
			Timestamp:  recs[0].Timestamp + kr.TimestampDelta64,
			Key:        kr.Key,
			Value:      kr.Value,
			Attributes: kr.Attributes,
		}
		for _, h := range kr.Headers {
			got.Headers = append(got.Headers, RecordHeader{Key: h.Key, Value: h.Value})
		}
		if d := diffRecords([]Record{got}, []Record{want}); d != "" {
			t.Fatalf("kmsg record %d: %s", i, d)
		}
		_, n := binary.Varint(raw)
		raw = raw[n+int(kr.Length):]
	}
	if len(raw) != 0 {
		t.Fatalf("kmsg: %d bytes after the last record", len(raw))
	}
}

// kmsgBatch builds a batch with kmsg's encoders from records whose offsets
// are relative to base, compressing the records section with compress.
func kmsgBatch(t testing.TB, base int64, recs []Record, c Compression, compress func(testing.TB, Compression, []byte) []byte) []byte {
	t.Helper()
	var raw []byte
	maxTs := recs[0].Timestamp
	for _, r := range recs {
		maxTs = max(maxTs, r.Timestamp)
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(r.Offset - base),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// Length counts the bytes after itself: encode once with 0 (one
		// byte) to measure.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		raw = kr.AppendTo(raw)
	}
	records := compress(t, c, raw)
	kb := kmsg.RecordBatch{
		FirstOffset:          base,
		Length:               int32(49 + len(records)),
		PartitionLeaderEpoch: 7,
		Magic:                2,
		Attributes:           int16(c),
		LastOffsetDelta:      int32(recs[len(recs)-1].Offset - base),
		FirstTimestamp:       recs[0].Timestamp,
		MaxTimestamp:         maxTs,
		ProducerID:           12345,
		ProducerEpoch:        3,
		FirstSequence:        100,
		NumRecords:           int32(len(recs)),
		Records:              records,
	}
	b := kb.AppendTo(nil)
	return refix(b)
}

// payload returns n bytes that compress (repetitive text) or do not.
func payload(n int, compressible bool) []byte {
	b := make([]byte, n)
	if compressible {
		for i := range b {
			b[i] = "weir records flow downstream "[i%29]
		}
		return b
	}
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func sequential(recs []Record) []Record {
	out := slices.Clone(recs)
	for i := range out {
		out[i].Offset = int64(i)
	}
	return out
}
