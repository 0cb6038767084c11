package storage

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// TestGroupBuffersFollowWritesNotPartitions: after many partitions have
// each written groups of 64 KiB batches, the memory left behind is not a
// buffer per partition (each writer used to keep one as large as the
// largest group it wrote: gigabytes over 1,000 partitions).
func TestGroupBuffersFollowWritesNotPartitions(t *testing.T) {
	const partitions, appenders, appends = 100, 8, 4
	value := make([]byte, 64<<10)
	batch := makeBatch(t, []testRecord{{Value: value}})
	logs := make([]*Log, partitions)
	for i := range logs {
		logs[i] = mustOpen(t, t.TempDir(), Options{FSync: FSyncNever})
		defer logs[i].Close()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a sync.Pool keeps what it held until the second
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var wg sync.WaitGroup
	for _, l := range logs {
		for range appenders {
			wg.Go(func() {
				for range appends {
					// Each append gets its own copy: the log sets offsets in it.
					if _, err := l.Append(context.Background(), append([]byte(nil), batch...)); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d KiB over %d partitions", grown>>10, partitions)
	if limit := int64(partitions * 16 << 10); grown > limit {
		t.Errorf("the heap grew by %s after the writes, more than %s: buffers kept per partition", kib(grown), kib(limit))
	}
}

func kib(n int64) string { return fmt.Sprintf("%d KiB", n>>10) }
