package record

import "testing"

// benchRecords is a typical producer batch: 16 records with a short key
// and a 100-byte value.
func benchRecords() []Record {
	recs := make([]Record, 16)
	for i := range recs {
		recs[i] = Record{
			Offset:    int64(i),
			Timestamp: 1_700_000_000_000 + int64(i),
			Key:       []byte("user-1234"),
			Value:     payload(100, true),
		}
	}
	return recs
}

func BenchmarkAppendBatch(b *testing.B) {
	recs := benchRecords()
	for _, c := range []Compression{CompressionNone, CompressionZstd, CompressionLZ4, CompressionSnappy, CompressionGzip} {
		b.Run(c.String(), func(b *testing.B) {
			opts := DefaultBatchOptions()
			opts.Compression = c
			dst := make([]byte, 0, 4096)
			b.SetBytes(int64(len(recs) * 100))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				dst, err = AppendBatch(dst[:0], opts, recs)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkIterator(b *testing.B) {
	recs := benchRecords()
	for _, c := range []Compression{CompressionNone, CompressionZstd, CompressionLZ4, CompressionSnappy, CompressionGzip} {
		b.Run(c.String(), func(b *testing.B) {
			opts := DefaultBatchOptions()
			opts.Compression = c
			batch := mustBatch(b, opts, recs)
			var it Iterator
			var r Record
			b.SetBytes(int64(len(recs) * 100))
			b.ReportAllocs()
			for b.Loop() {
				if err := it.Reset(batch); err != nil {
					b.Fatal(err)
				}
				n := 0
				for it.Next(&r) {
					n++
				}
				if it.Err() != nil || n != len(recs) {
					b.Fatal(n, it.Err())
				}
			}
		})
	}
}

func BenchmarkDecodeRecords(b *testing.B) {
	batch := mustBatch(b, DefaultBatchOptions(), benchRecords())
	var dst []Record
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = DecodeRecords(batch, dst[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}
