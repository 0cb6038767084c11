package storage

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/record"
)

// Benchmarks write to b.TempDir(), so they measure the disk under TMPDIR.
// Figures and the machine they were taken on are in docs/BENCHMARKS.md.

func benchBatch(b *testing.B, recordSize, records int) []byte {
	recs := make([]record.Record, records)
	for i := range recs {
		v := make([]byte, recordSize)
		for j := range v {
			v[j] = byte(i*31 + j)
		}
		recs[i] = record.Record{Offset: int64(i), Timestamp: time.Now().UnixMilli(), Value: v}
	}
	batch, err := record.AppendBatch(nil, record.DefaultBatchOptions(), recs)
	if err != nil {
		b.Fatal(err)
	}
	return batch
}

// BenchmarkAppend measures append throughput. The byte rate (MB/s) counts
// record payload bytes (recordSize × records), not batch overhead.
//
//	go test -run '^$' -bench 'Append/' -benchtime 3s ./internal/storage/
func BenchmarkAppend(b *testing.B) {
	type cfg struct {
		policy     FSyncPolicy
		recordSize int
		records    int
		appenders  int
	}
	var cases []cfg
	for _, policy := range []FSyncPolicy{FSyncAlways, FSyncInterval, FSyncNever} {
		for _, size := range []int{100, 1024} {
			for _, records := range []int{1, 16, 256} {
				for _, appenders := range []int{1, 64} {
					cases = append(cases, cfg{policy, size, records, appenders})
				}
			}
		}
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s/record=%d/batch=%d/appenders=%d", c.policy, c.recordSize, c.records, c.appenders)
		b.Run(name, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{
				FSync:           c.policy,
				SegmentBytes:    256 << 20,
				RetentionBytes:  1 << 30, // keep the disk from filling on long runs
				JanitorInterval: time.Second,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetBytes(int64(c.recordSize * c.records))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / c.appenders
			for a := range c.appenders {
				n := per
				if a == 0 {
					n += b.N % c.appenders
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					batch := benchBatch(b, c.recordSize, c.records)
					for range n {
						if _, err := l.Append(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N*c.records)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReadSequential reads a 512 MiB log from the page cache in 1 MiB
// reads, as a consumer catching up does.
//
//	go test -run '^$' -bench ReadSequential ./internal/storage/
func BenchmarkReadSequential(b *testing.B) {
	l, err := Open(b.TempDir(), Options{FSync: FSyncNever, JanitorInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := benchBatch(b, 1024, 16)
	for l.Stats().Bytes < 512<<20 {
		if _, err := l.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 0, 2<<20)
	b.ResetTimer()
	var total int64
	off := int64(0)
	for range b.N {
		if off >= l.EndOffset() {
			off = 0
		}
		data, err := l.Read(buf[:0], off, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := record.ParseHeader(data[len(data)-int(len(batch)):])
		off = h.LastOffset() + 1
		total += int64(len(data))
	}
	b.SetBytes(total / int64(b.N))
}

// BenchmarkReopen opens a partition holding 2 GiB in 1 GiB segments (two
// closed and an active one), as a restart does.
//
//	go test -run '^$' -bench Reopen -benchtime 10x ./internal/storage/
func BenchmarkReopen(b *testing.B) {
	dir := b.TempDir()
	opts := Options{FSync: FSyncNever, SegmentBytes: 1 << 30, JanitorInterval: -1}
	l, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	batch := benchBatch(b, 1024, 64)
	for l.Stats().Bytes < 2<<30+64<<20 {
		if _, err := l.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		l, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		if l.EndOffset() != end {
			b.Fatalf("reopened at %d, want %d", l.EndOffset(), end)
		}
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}

// BenchmarkAppendManyLogs appends one 1 KiB record at a time to each of
// many logs at once under FSyncAlways, as a produce request spread over
// many partitions does: each log's file fdatasynced on its own, or flushed
// together by a Flusher (one syncfs per round). One op is one append.
func BenchmarkAppendManyLogs(b *testing.B) {
	for _, logs := range []int{16, 256} {
		for _, method := range []string{"fdatasync", "syncfs"} {
			b.Run(fmt.Sprintf("logs=%d/%s", logs, method), func(b *testing.B) {
				var fl *Flusher
				if method == "syncfs" {
					var err error
					if fl, err = NewFlusher(); err != nil {
						b.Fatal(err)
					}
					defer fl.Close()
				}
				dir := b.TempDir()
				ls := make([]*Log, logs)
				for i := range ls {
					l, err := Open(fmt.Sprintf("%s/%d", dir, i), Options{Flusher: fl, JanitorInterval: -1})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					ls[i] = l
				}
				batch := benchBatch(b, 1024, 1)
				b.SetBytes(1024)
				var next atomic.Int64
				b.SetParallelism(logs / runtime.GOMAXPROCS(0))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					l := ls[int(next.Add(1)-1)%logs]
					for pb.Next() {
						if _, err := l.Append(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
