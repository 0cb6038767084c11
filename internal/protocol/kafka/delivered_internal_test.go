package kafka

import (
	"math"
	"testing"

	"github.com/weirmq/weir/internal/record"
)

// deliveredBatches returns Kafka RecordBatch bytes: offsets 0-4, 5-9 and a
// transaction marker at 10.
func deliveredBatches(t testing.TB) []byte {
	t.Helper()
	var data []byte
	for base := int64(0); base < 10; base += 5 {
		opts := record.DefaultBatchOptions()
		opts.BaseOffset = base
		recs := make([]record.Record, 5)
		for i := range recs {
			recs[i] = record.Record{Offset: base + int64(i), Value: []byte("a record of some size")}
		}
		var err error
		if data, err = record.AppendBatch(data, opts, recs); err != nil {
			t.Fatal(err)
		}
	}
	opts := record.DefaultBatchOptions()
	opts.BaseOffset, opts.Control, opts.Transactional = 10, true, true
	data, err := record.AppendBatch(data, opts, []record.Record{{Offset: 10, Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCountRecords counts the records of fetched batches from their
// headers: a batch that begins before the offset fetched counts from it,
// markers are not records, and bytes that are no batch count nothing.
func TestCountRecords(t *testing.T) {
	data := deliveredBatches(t)
	for _, tc := range []struct {
		from int64
		want int
	}{
		{math.MinInt64, 10}, {0, 10}, {3, 7}, {5, 5}, {9, 1}, {10, 0}, {11, 0},
	} {
		if got := countRecords(data, tc.from); got != tc.want {
			t.Errorf("countRecords(from %d) = %d, want %d", tc.from, got, tc.want)
		}
	}
	if got := countRecords([]byte("not a batch at all, not even close"), 0); got != 0 {
		t.Errorf("countRecords(garbage) = %d, want 0", got)
	}
	if got := countRecords(data[:len(data)-3], 0); got != 10 {
		t.Errorf("countRecords of a truncated last batch = %d, want the 10 of the whole ones", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { countRecords(data, 3) }); allocs != 0 {
		t.Errorf("countRecords allocates %v times", allocs)
	}
}

// BenchmarkCountRecords measures what counting adds to a Fetch per
// partition with records: reading the batch headers.
func BenchmarkCountRecords(b *testing.B) {
	data := deliveredBatches(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		countRecords(data, 3)
	}
}
