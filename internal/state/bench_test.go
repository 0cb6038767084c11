package state

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// syncCounter counts the syncs of write-ahead log files, as an errorfs
// injector that never injects an error.
type syncCounter struct{ walSyncs atomic.Int64 }

func (c *syncCounter) String() string { return "syncCounter" }

func (c *syncCounter) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		if strings.HasSuffix(op.Path, ".log") {
			c.walSyncs.Add(1)
		}
	}
	return nil
}

// openBench opens a synced store on the real file system in a temporary
// directory, counting WAL syncs.
func openBench(b *testing.B) (*Store, *syncCounter) {
	b.Helper()
	counter := &syncCounter{}
	s, err := Open(b.TempDir(), Options{FS: errorfs.Wrap(vfs.Default, counter)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s, counter
}

// reportSyncs reports WAL syncs per operation: 1 means no group commit.
func reportSyncs(b *testing.B, counter *syncCounter, before int64) {
	b.ReportMetric(float64(counter.walSyncs.Load()-before)/float64(b.N), "walsyncs/op")
}

// BenchmarkCommitOffset is the serial baseline: every synced Update waits for
// its own fsync.
func BenchmarkCommitOffset(b *testing.B) {
	s, counter := openBench(b)
	before := counter.walSyncs.Load()
	b.ResetTimer()
	for i := range b.N {
		err := s.Update(func(tx *Tx) error {
			return tx.CommitOffset(OffsetKey{"group", "stream", int32(i % 16)}, CommittedOffset{Offset: int64(i)})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportSyncs(b, counter, before)
}

// BenchmarkCommitOffsetParallel runs 16 goroutines per CPU, each committing
// offsets of its own group with synced Updates. Pebble's commit pipeline
// shares one fsync among the batches that queue up behind it, so walsyncs/op
// is well below 1 and ns/op well below the serial benchmark's.
func BenchmarkCommitOffsetParallel(b *testing.B) {
	s, counter := openBench(b)
	var goroutines atomic.Int64
	before := counter.walSyncs.Load()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		group := fmt.Sprint("group", goroutines.Add(1))
		var i int64
		for pb.Next() {
			err := s.Update(func(tx *Tx) error {
				return tx.CommitOffset(OffsetKey{group, "stream", int32(i % 16)}, CommittedOffset{Offset: i})
			})
			if err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportSyncs(b, counter, before)
}

// BenchmarkGetOffset measures a point read of a committed offset.
func BenchmarkGetOffset(b *testing.B) {
	s, _ := openBench(b)
	key := OffsetKey{"group", "stream", 3}
	if err := s.Update(func(tx *Tx) error { return tx.CommitOffset(key, CommittedOffset{Offset: 1}) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.GetOffset(key); err != nil {
			b.Fatal(err)
		}
	}
}
