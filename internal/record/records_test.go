package record

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// roundTripCases are record lists with the shapes that matter: nulls,
// empties, headers, timestamps going backwards, offsets with gaps, size.
func roundTripCases() []struct {
	name string
	opts BatchOptions
	recs []Record
} {
	opts := DefaultBatchOptions()
	idempotent := BatchOptions{BaseOffset: 0, ProducerID: 4242, ProducerEpoch: 7, BaseSequence: 1000, LeaderEpoch: 3}
	transactional := idempotent
	transactional.Transactional = true
	control := transactional
	control.Control = true
	based := DefaultBatchOptions()
	based.BaseOffset = 1 << 40
	logAppend := DefaultBatchOptions()
	logAppend.LogAppendTime = true

	many := make([]Record, 1000)
	for i := range many {
		many[i] = Record{Offset: int64(i), Timestamp: 1_700_000_000_000 + int64(i%17)*1000 - 5000, Key: []byte{byte(i), byte(i >> 8)}, Value: payload(i%300, i%2 == 0)}
	}

	return []struct {
		name string
		opts BatchOptions
		recs []Record
	}{
		{"one", opts, []Record{{Timestamp: 1_700_000_000_000, Key: []byte("k"), Value: []byte("v")}}},
		{"null key", opts, sequential([]Record{{Timestamp: 1, Value: []byte("v")}, {Timestamp: 2, Value: []byte("w")}})},
		{"tombstone", opts, []Record{{Timestamp: 5, Key: []byte("gone")}}},
		{"empty key and value vs null", opts, sequential([]Record{
			{Key: []byte{}, Value: []byte{}},
			{Key: nil, Value: []byte{}},
			{Key: []byte{}, Value: nil},
			{},
		})},
		{"headers", opts, sequential([]Record{
			{Timestamp: 10, Value: []byte("a"), Headers: []RecordHeader{
				{Key: "content-type", Value: []byte("application/json")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "", Value: []byte("empty key")},
				{Key: "dup", Value: []byte("1")},
				{Key: "dup", Value: []byte("2")},
			}},
			{Timestamp: 11, Value: []byte("b")},
			{Timestamp: 12, Value: []byte("c"), Headers: []RecordHeader{{Key: "only", Value: nil}}},
		})},
		{"timestamps go backwards", opts, sequential([]Record{
			{Timestamp: 1_700_000_100_000, Value: []byte("late")},
			{Timestamp: 1_700_000_000_000, Value: []byte("early")},
			{Timestamp: 1_700_000_200_000, Value: []byte("latest")},
			{Timestamp: -1, Value: []byte("before epoch")},
		})},
		{"extreme timestamps", opts, sequential([]Record{
			{Timestamp: math.MaxInt64, Value: []byte("x")},
			{Timestamp: math.MinInt64, Value: []byte("y")},
		})},
		{"offset gaps and base", based, []Record{
			{Offset: 1<<40 + 3, Value: []byte("3")},
			{Offset: 1<<40 + 4, Value: []byte("4")},
			{Offset: 1<<40 + 90, Value: []byte("90")},
			{Offset: 1<<40 + math.MaxInt32, Value: []byte("last")},
		}},
		{"record attributes", opts, []Record{{Attributes: -128, Value: []byte("odd")}}},
		{"large compressible", opts, []Record{{Key: []byte("big"), Value: payload(3<<20, true)}}},
		{"large incompressible", opts, sequential([]Record{{Value: payload(1<<20, false)}, {Value: payload(70_000, false)}})},
		{"many", opts, many},
		{"idempotent", idempotent, sequential([]Record{{Value: []byte("a")}, {Value: []byte("b")}})},
		{"transactional", transactional, []Record{{Value: []byte("t")}}},
		{"control", control, []Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 5}}}},
		{"log append time", logAppend, sequential([]Record{{Timestamp: 3}, {Timestamp: 9}, {Timestamp: 4}})},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases() {
		for _, c := range codecs {
			t.Run(tc.name+"/"+c.String(), func(t *testing.T) {
				opts := tc.opts
				opts.Compression = c
				batch := mustBatch(t, opts, tc.recs)

				h, err := Validate(batch)
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if got, want := h.Options(), opts; got != want {
					t.Errorf("Options() = %+v, want %+v", got, want)
				}

				want := tc.recs
				if opts.LogAppendTime { // readers report maxTimestamp for every record
					want = make([]Record, len(tc.recs))
					copy(want, tc.recs)
					for i := range want {
						want[i].Timestamp = h.MaxTimestamp
					}
				}

				got, err := DecodeRecords(batch, nil)
				if err != nil {
					t.Fatalf("DecodeRecords: %v", err)
				}
				if d := diffRecords(got, want); d != "" {
					t.Fatalf("DecodeRecords: %s", d)
				}
				got, err = iterate(batch, 0)
				if err != nil {
					t.Fatalf("Iterator: %v", err)
				}
				if d := diffRecords(got, want); d != "" {
					t.Fatalf("Iterator: %s", d)
				}

				checkWithKmsg(t, batch, opts, tc.recs)
			})
		}
	}
}

// Batches built by another encoder (kmsg, and other compressors than ours:
// xerial-framed snappy, lz4 with 4 MiB blocks and checksums, zstd frames
// without a content size) must decode with ours.
func TestDecodeForeignBatches(t *testing.T) {
	for _, tc := range roundTripCases() {
		if tc.opts.BaseOffset != 0 || tc.opts.LogAppendTime || tc.opts.Control {
			continue
		}
		for _, c := range codecs {
			t.Run(tc.name+"/"+c.String(), func(t *testing.T) {
				batch := kmsgBatch(t, 0, tc.recs, c, independentCompress)
				got, err := DecodeRecords(batch, nil)
				if err != nil {
					t.Fatalf("DecodeRecords: %v", err)
				}
				if d := diffRecords(got, tc.recs); d != "" {
					t.Fatal(d)
				}
				h, _ := Validate(batch)
				if h.ProducerID != 12345 || h.ProducerEpoch != 3 || h.BaseSequence != 100 || h.LeaderEpoch != 7 {
					t.Errorf("header %+v", h)
				}
			})
		}
	}
}

func TestAppendBatchAppends(t *testing.T) {
	recs := sequential([]Record{{Value: []byte("a")}, {Value: []byte("b")}})
	for _, c := range codecs {
		opts := DefaultBatchOptions()
		opts.Compression = c
		first := mustBatch(t, opts, recs)
		prefix := []byte("existing bytes")
		both, err := AppendBatch(append([]byte{}, prefix...), opts, recs)
		if err != nil {
			t.Fatal(err)
		}
		if string(both[:len(prefix)]) != string(prefix) || string(both[len(prefix):]) != string(first) {
			t.Fatalf("%s: AppendBatch did not append the same batch after existing bytes", c)
		}
		n, err := BatchSize(both[len(prefix):])
		if err != nil || n != len(first) {
			t.Fatalf("%s: BatchSize = %d, %v; want %d", c, n, err, len(first))
		}
	}
}

func TestAppendBatchErrors(t *testing.T) {
	opts := DefaultBatchOptions()
	based := opts
	based.BaseOffset = 100
	badCodec := opts
	badCodec.Compression = 5
	for _, tc := range []struct {
		name string
		opts BatchOptions
		recs []Record
		want error
	}{
		{"no records", opts, nil, ErrNoRecords},
		{"all offsets zero", opts, []Record{{}, {}}, ErrBadOffsets},
		{"decreasing", opts, []Record{{Offset: 1}, {Offset: 0}}, ErrBadOffsets},
		{"below base", based, []Record{{Offset: 99}}, ErrBadOffsets},
		{"delta past int32", opts, []Record{{Offset: math.MaxInt32 + 1}}, ErrBadOffsets},
		{"unknown codec", badCodec, []Record{{}}, ErrCompression},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendBatch(dst, tc.opts, tc.recs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst changed to %q", got)
			}
		})
	}
}

// validBatch is a three-record uncompressed batch for the error tests.
func validBatch(t *testing.T) []byte {
	return mustBatch(t, DefaultBatchOptions(), sequential([]Record{
		{Timestamp: 1, Key: []byte("a"), Value: []byte("1")},
		{Timestamp: 2, Key: []byte("b"), Value: []byte("2")},
		{Timestamp: 3, Key: []byte("c"), Value: []byte("3")},
	}))
}

func TestBatchErrors(t *testing.T) {
	setCount := func(b []byte, count, last int32) []byte {
		binary.BigEndian.PutUint32(b[offRecordCount:], uint32(count))
		binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(last))
		return refix(b)
	}
	for _, tc := range []struct {
		name  string
		batch func([]byte) []byte
		want  error
	}{
		{"empty", func([]byte) []byte { return nil }, ErrShort},
		{"header only", func(b []byte) []byte { return b[:HeaderSize] }, ErrShort},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, ErrShort},
		{"extra byte", func(b []byte) []byte { return append(b, 0) }, ErrBadLength},
		{"bad crc", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, ErrCorrupt},
		{"bad magic", func(b []byte) []byte { b[offMagic] = 1; return b }, ErrMagic},
		{"unknown codec", func(b []byte) []byte { b[offAttributes+1] |= 7; return refix(b) }, ErrCompression},
		{"count above lastOffsetDelta", func(b []byte) []byte { return setCount(b, 4, 2) }, ErrBadCount},
		{"count above records", func(b []byte) []byte { return setCount(b, 4, 3) }, ErrRecordFormat},
		{"count below records", func(b []byte) []byte { return setCount(b, 2, 2) }, ErrRecordFormat},
		{"zero count with records", func(b []byte) []byte { return setCount(b, 0, 2) }, ErrRecordFormat},
		{"count far above records", func(b []byte) []byte { return setCount(b, math.MaxInt32, math.MaxInt32) }, ErrRecordFormat},
		{"lastOffsetDelta below records", func(b []byte) []byte { return setCount(b, 3, 1) }, ErrBadCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch := tc.batch(validBatch(t))
			if _, err := DecodeRecords(batch, nil); !errors.Is(err, tc.want) {
				t.Errorf("DecodeRecords: err = %v, want %v", err, tc.want)
			}
			if _, err := iterate(batch, 0); !errors.Is(err, tc.want) {
				t.Errorf("Iterator: err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestMalformedRecords feeds hand-made records sections to the decoder.
// Each case is a list of records' bytes (after the length varint, which is
// computed unless the case gives the raw section).
func TestMalformedRecords(t *testing.T) {
	rec := func(body ...byte) []byte { // prefix with a correct length
		return append(binary.AppendVarint(nil, int64(len(body))), body...)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	// attributes 0, timestampDelta 0, offsetDelta d, null key, value "v", no headers
	good := func(d byte) []byte { return rec(0, 0, d*2, 1, 2, 'v', 0) }
	for _, tc := range []struct {
		name    string
		records []byte
		count   int32
	}{
		{"length varint too long", cat([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, make([]byte, 10)), 1},
		{"length varint overflows int32", cat([]byte{0xfe, 0xff, 0xff, 0xff, 0x1f}, make([]byte, 10)), 1},
		{"length varint cut off", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, 1},
		{"negative length", cat([]byte{0x01}, make([]byte, 8)), 1},
		{"length past end", cat([]byte{0x7e}, make([]byte, 8)), 1},
		{"zero length", cat([]byte{0x00}, make([]byte, 8)), 1},
		{"timestampDelta varlong too long", rec(0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 1, 1, 0), 1},
		{"timestampDelta varlong overflows", rec(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 1, 1, 0), 1},
		{"offsetDelta overflows int32", rec(0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 1, 0), 1},
		{"offsetDelta negative", rec(0, 0, 0x01, 1, 1, 0), 1},
		{"offsetDelta past lastOffsetDelta", rec(0, 0, 0x02, 1, 1, 0), 1},
		{"offsetDelta repeats", cat(good(0), good(0)), 2},
		{"key length -2", rec(0, 0, 0, 0x03, 1, 0), 1},
		{"key past record", rec(0, 0, 0, 0x08, 1, 0), 1},
		{"value length -5", rec(0, 0, 0, 1, 0x09, 0), 1},
		{"value past record", rec(0, 0, 0, 1, 0x10, 'x', 0), 1},
		{"missing header count", rec(0, 0, 0, 1, 1), 1},
		{"negative header count", rec(0, 0, 0, 1, 1, 0x01), 1},
		{"header count past record", rec(0, 0, 0, 1, 1, 0x7e, 0, 1), 1},
		{"null header key", rec(0, 0, 0, 1, 1, 2, 0x01, 1), 1},
		{"header key past record", rec(0, 0, 0, 1, 1, 2, 0x20, 1), 1},
		{"header value length -3", rec(0, 0, 0, 1, 1, 2, 2, 'k', 0x05), 1},
		{"header value past record", rec(0, 0, 0, 1, 1, 2, 2, 'k', 0x0a, 'x'), 1},
		{"fields shorter than length", rec(0, 0, 0, 1, 1, 0, 0xaa), 1},
		{"missing attributes", rec(), 1},
		{"trailing garbage", cat(good(0), []byte{0xde, 0xad}), 1},
		{"fewer records than counted", cat(good(0), good(1)), 3},
		{"second record broken", cat(good(0), rec(0, 0, 2, 0x03)), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			last := max(tc.count-1, 0)
			if tc.name == "fewer records than counted" {
				last = 2
			}
			batch := rawBatch(tc.records, tc.count, last, CompressionNone)
			_, err := DecodeRecords(batch, nil)
			if !errors.Is(err, ErrRecordFormat) {
				t.Errorf("DecodeRecords: err = %v, want ErrRecordFormat", err)
			}
			_, err = iterate(batch, 0)
			if !errors.Is(err, ErrRecordFormat) {
				t.Errorf("Iterator: err = %v, want ErrRecordFormat", err)
			}
			// The same records compressed fail the same way.
			zbatch := rawBatch(independentCompress(t, CompressionZstd, tc.records), tc.count, last, CompressionZstd)
			if _, err := DecodeRecords(zbatch, nil); !errors.Is(err, ErrRecordFormat) {
				t.Errorf("zstd: err = %v, want ErrRecordFormat", err)
			}
		})
	}

	// And the well-formed baseline decodes, so the cases above fail for
	// the reason they name.
	recs, err := DecodeRecords(rawBatch(cat(good(0), good(1)), 2, 1, CompressionNone), nil)
	if err != nil || len(recs) != 2 || string(recs[1].Value) != "v" || recs[1].Offset != 1 {
		t.Fatalf("baseline: %v %+v", err, recs)
	}
	// Non-minimal varints are accepted, as Kafka accepts them.
	recs, err = DecodeRecords(rawBatch(rec(0, 0x80, 0x00, 0x80, 0x80, 0x00, 1, 1, 0), 1, 0, CompressionNone), nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("non-minimal varints: %v", err)
	}
}

func TestEmptyBatch(t *testing.T) {
	// Compaction can leave a batch with no records; it is valid.
	batch := rawBatch(nil, 0, 5, CompressionNone)
	recs, err := DecodeRecords(batch, nil)
	if err != nil || len(recs) != 0 {
		t.Fatalf("got %d records, %v", len(recs), err)
	}
	var it Iterator
	var r Record
	if err := it.Reset(batch); err != nil || it.Next(&r) || it.Err() != nil {
		t.Fatalf("iterator over an empty batch: %v %v", err, it.Err())
	}
	// The zero Iterator yields nothing.
	var zero Iterator
	if zero.Next(&r) || zero.Err() != nil {
		t.Fatal("zero Iterator yielded a record")
	}
}

func TestDecodeRecordsAliasing(t *testing.T) {
	recs := sequential([]Record{
		{Key: []byte("k1"), Value: []byte("v1"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Key: []byte("k2"), Value: []byte("v2"), Headers: []RecordHeader{{Key: "h", Value: []byte("y")}}},
	})
	batch := mustBatch(t, DefaultBatchOptions(), recs)
	prev := []Record{{Offset: -5}}
	got, err := DecodeRecords(batch, prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Offset != -5 {
		t.Fatalf("DecodeRecords did not append: %+v", got)
	}
	// Appending to one record's slices must not clobber the batch or
	// another record.
	_ = append(got[1].Key, "XXXX"...)
	_ = append(got[1].Value, "XXXX"...)
	_ = append(got[1].Headers, RecordHeader{Key: "clobber"})
	if d := diffRecords(got[1:], recs); d != "" {
		t.Fatal(d)
	}
	if _, err := Validate(batch); err != nil {
		t.Fatalf("batch changed: %v", err)
	}
}

func TestIteratorReuse(t *testing.T) {
	var it Iterator
	var r Record
	for round := range 3 {
		for _, c := range codecs {
			opts := DefaultBatchOptions()
			opts.Compression = c
			want := sequential([]Record{
				{Value: payload(500+round, true), Headers: []RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}}},
				{Value: payload(10, false)},
			})
			batch := mustBatch(t, opts, want)
			if err := it.Reset(batch); err != nil {
				t.Fatal(err)
			}
			if h := it.Header(); h.RecordCount != 2 || h.Compression() != c {
				t.Fatalf("Header() = %+v", h)
			}
			var got []Record
			for it.Next(&r) {
				got = append(got, cloneRecord(r))
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			if d := diffRecords(got, want); d != "" {
				t.Fatalf("round %d %s: %s", round, c, d)
			}
		}
	}
	// A failed Reset stops the iterator until the next good one.
	if err := it.Reset([]byte("junk")); err == nil || it.Next(&r) {
		t.Fatal("junk accepted")
	}
	if err := it.Reset(validBatch(t)); err != nil || !it.Next(&r) {
		t.Fatalf("iterator did not recover: %v", err)
	}
}

func TestZeroAllocs(t *testing.T) {
	recs := make([]Record, 16)
	for i := range recs {
		recs[i] = Record{Offset: int64(i), Timestamp: 1_700_000_000_000 + int64(i), Key: []byte("key"), Value: payload(100, true)}
	}
	opts := DefaultBatchOptions()
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() {
		dst, _ = AppendBatch(dst[:0], opts, recs)
	}); n != 0 {
		t.Errorf("AppendBatch (uncompressed, capacity enough): %v allocs, want 0", n)
	}
	batch := mustBatch(t, opts, recs)
	var it Iterator
	var r Record
	if n := testing.AllocsPerRun(100, func() {
		it.Reset(batch)
		for it.Next(&r) {
		}
	}); n != 0 {
		t.Errorf("Iterator (uncompressed, no headers): %v allocs, want 0", n)
	}
}
