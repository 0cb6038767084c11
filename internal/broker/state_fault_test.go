package broker

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/weirmq/weir/internal/state"
)

// stateFaults are the faults TestStateStoreFaults injects under the state
// store (Pebble), on the real filesystem: the write-ahead log's fsync
// fails; every write fails with ENOSPC; the disk turns read-only.
var stateFaults = []struct {
	name string
	err  error
	// written: the failed commit's bytes may reach the log file (only its
	// fsync failed), so a restart without a power loss may find it.
	written bool
	hits    func(errorfs.Op) bool
}{
	{"WAL fsync fails", syscall.EIO, true, func(op errorfs.Op) bool {
		return isLogFile(op.Path) && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo)
	}},
	{"disk full", syscall.ENOSPC, false, func(op errorfs.Op) bool {
		return op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt || op.Kind == errorfs.OpCreate
	}},
	{"read-only disk", syscall.EROFS, false, func(op errorfs.Op) bool { return op.Kind.ReadOrWrite() == errorfs.OpIsWrite }},
}

func isLogFile(path string) bool { return len(path) > 4 && path[len(path)-4:] == ".log" }

// TestStateStoreFaults: a fault under the state store makes queue acks and
// group offset commits fail with the fault's error (state.ErrFailed), never
// succeed; from then on every state write is refused, also after the
// fault clears, while publishing and reading go on. After a restart every
// ack and commit that succeeded is there; what failed is redelivered (or,
// when only the fsync failed, may have been kept whole); the queue and the
// group work again.
func TestStateStoreFaults(t *testing.T) {
	for _, fault := range stateFaults {
		t.Run(fault.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var on atomic.Bool
			fs := errorfs.Wrap(pebblevfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if on.Load() && fault.hits(op) {
					return fault.err
				}
				return nil
			}))
			b, err := Open(Config{DataDir: dir, StateFS: fs, JanitorInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			ds := floorQueue(t, b, 6)
			createStream(t, b, StreamConfig{Name: "s", Partitions: 1})
			commit := func(offset int64) error {
				errs, err := b.ClassicCommit(ctx, "g", "", "", -1, []OffsetCommit{{Stream: "s", Partition: 0, Offset: offset}})
				return errors.Join(append(errs, err)...)
			}
			if err := b.Ack(ctx, "q", "q", "c", refs(ds[:2])); err != nil {
				t.Fatal(err)
			}
			if err := commit(10); err != nil {
				t.Fatal(err)
			}

			on.Store(true)
			err = b.Ack(ctx, "q", "q", "c", refs(ds[2:4]))
			if !errors.Is(err, state.ErrFailed) || !errors.Is(err, fault.err) {
				t.Fatalf("ack under the fault: err = %v, want state.ErrFailed and %v", err, fault.err)
			}
			if err := commit(20); !errors.Is(err, state.ErrFailed) {
				t.Fatalf("offset commit under the fault: err = %v, want state.ErrFailed", err)
			}
			on.Store(false)
			// The store stays failed: no write reaches it until a restart.
			if err := b.Ack(ctx, "q", "q", "c", refs(ds[4:])); !errors.Is(err, state.ErrFailed) {
				t.Fatalf("ack after the fault cleared: err = %v, want state.ErrFailed", err)
			}
			if err := commit(30); !errors.Is(err, state.ErrFailed) {
				t.Fatalf("offset commit after the fault cleared: err = %v, want state.ErrFailed", err)
			}
			// Publishing (partition logs) and first deliveries go on; a
			// redelivery waits for its delivery count to be stored, which
			// the failed store cannot do, so the records whose acks failed
			// wait for the restart.
			publish(t, b, "q", Record{Value: []byte("after")})
			if got := offsets(receiveAll(t, b, "q", "c2", 1, 5*time.Second)); !slices.Equal(got, []int64{6}) {
				t.Fatalf("delivered on the failed store: %v, want the new record 6", got)
			}
			if err := b.Close(); err != nil {
				t.Logf("Close of a broker whose state store failed: %v", err)
			}

			b = openBroker(t, dir)
			defer b.Close()
			got, err := b.state.GetOffset(state.OffsetKey{Group: "g", Stream: "s", Partition: 0})
			if err != nil || (got.Offset != 10 && !(fault.written && got.Offset == 20)) {
				t.Fatalf("offset after the restart: %+v, %v; want 10 (or the failed 20 when only the fsync failed)", got, err)
			}
			redelivered := offsets(receiveAll(t, b, "q", "d", 5, 5*time.Second))
			redelivered = append(redelivered, offsets(receive(t, b, "q", "d", 10, 300*time.Millisecond))...)
			want := []int64{2, 3, 4, 5, 6}
			if fault.written && slices.Equal(redelivered, []int64{4, 5, 6}) {
				want = redelivered // the failed ack's batch reached the log whole
			}
			if !slices.Equal(redelivered, want) {
				t.Fatalf("after the restart: delivered %v, want %v (the acks that succeeded never again)", redelivered, want)
			}
			if err := b.Ack(ctx, "q", "q", "d", refsAt(redelivered)); err != nil {
				t.Fatalf("ack after the restart: %v", err)
			}
			if err := commit(40); err != nil {
				t.Fatalf("offset commit after the restart: %v", err)
			}
		})
	}
}

// refsAt names records of partition 0 by offset.
func refsAt(offs []int64) []DeliveryRef {
	out := make([]DeliveryRef, len(offs))
	for i, o := range offs {
		out[i] = DeliveryRef{Partition: 0, Offset: o}
	}
	return out
}
