package storage

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/weirmq/weir/internal/record"
)

// testRecord is what the tests write and expect back.
type testRecord struct {
	Offset    int64
	Key       []byte
	Value     []byte
	Timestamp int64
}

// makeBatch builds one uncompressed batch of recs (offsets are assigned by
// the log; only key, value and timestamp matter).
func makeBatch(t testing.TB, recs []testRecord) []byte {
	t.Helper()
	rs := make([]record.Record, len(recs))
	for i, r := range recs {
		rs[i] = record.Record{Offset: int64(i), Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	}
	b, err := record.AppendBatch(nil, record.DefaultBatchOptions(), rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustOpen(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.JanitorInterval == 0 {
		opts.JanitorInterval = -1
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, recs []testRecord) AppendResult {
	t.Helper()
	res, err := l.Append(context.Background(), makeBatch(t, recs))
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

// readAll reads every record from offset from to the end of the log.
func readAll(t testing.TB, l *Log, from int64) []testRecord {
	t.Helper()
	var out []testRecord
	var it record.Iterator
	var r record.Record
	off := from
	for off < l.EndOffset() {
		data, err := l.Read(nil, off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(data) == 0 {
			break
		}
		for p := 0; p < len(data); {
			size, err := record.BatchSize(data[p:])
			if err != nil {
				t.Fatalf("read at %d returned a broken batch: %v", off, err)
			}
			if err := it.Reset(data[p : p+size]); err != nil {
				t.Fatalf("read at %d: batch: %v", off, err)
			}
			for it.Next(&r) {
				if r.Offset < off {
					continue
				}
				out = append(out, testRecord{Offset: r.Offset, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value), Timestamp: r.Timestamp})
				off = r.Offset + 1
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			h, _ := record.ParseHeader(data[p:])
			off = max(off, h.LastOffset()+1)
			p += size
		}
	}
	return out
}

func value(i int) []byte { return []byte(fmt.Sprintf("value-%06d", i)) }

func equalRecords(t testing.TB, got, want []testRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) || g.Timestamp != w.Timestamp {
			t.Fatalf("record %d: got {off %d key %q value %q ts %d}, want {off %d key %q value %q ts %d}",
				i, g.Offset, g.Key, g.Value, g.Timestamp, w.Offset, w.Key, w.Value, w.Timestamp)
		}
	}
}
