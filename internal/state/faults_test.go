package state

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// Fault injection under Pebble, through Pebble's own errorfs over a
// crashable in-memory filesystem (whose CrashClone keeps only what was
// synced: a power loss). docs/RELIABILITY.md, "The state store's faults".

// faultInjector fails the operations its current rule selects.
type faultInjector struct {
	rule atomic.Pointer[func(errorfs.Op) error]
}

func (f *faultInjector) String() string { return "faultInjector" }

func (f *faultInjector) MaybeError(op errorfs.Op) error {
	if rule := f.rule.Load(); rule != nil {
		return (*rule)(op)
	}
	return nil
}

func (f *faultInjector) set(rule func(errorfs.Op) error) { f.rule.Store(&rule) }
func (f *faultInjector) clear()                          { f.rule.Store(nil) }

func isWAL(op errorfs.Op) bool { return strings.HasSuffix(op.Path, ".log") }

func isSync(op errorfs.Op) bool {
	return op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
}

// The faults: each returns the injected error for the operations it hits.
var storeFaults = []struct {
	name string
	err  error
	rule func(errorfs.Op) error
}{
	{"WAL fsync fails", syscall.EIO, func(op errorfs.Op) error {
		if isWAL(op) && isSync(op) {
			return syscall.EIO
		}
		return nil
	}},
	{"disk full", syscall.ENOSPC, func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileWriteAt || op.Kind == errorfs.OpCreate || op.Kind == errorfs.OpFilePreallocate {
			return syscall.ENOSPC
		}
		return nil
	}},
	{"read-only disk", syscall.EROFS, func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return syscall.EROFS
		}
		return nil
	}},
}

// pairKeys are the two offsets one commit writes, so that a half-applied
// commit shows as a pair that differs.
func pairKeys(i int) (OffsetKey, OffsetKey) {
	return OffsetKey{"g", "a", int32(i)}, OffsetKey{"g", "b", int32(i)}
}

func commitPair(s *Store, i int, value int64) error {
	a, b := pairKeys(i)
	// Metadata large enough that commits fill the log's blocks.
	meta := strings.Repeat("m", 600)
	return s.Update(func(tx *Tx) error {
		if err := tx.CommitOffset(a, CommittedOffset{Offset: value, Metadata: meta}); err != nil {
			return err
		}
		return tx.CommitOffset(b, CommittedOffset{Offset: value, Metadata: meta})
	})
}

// checkPairs verifies a reopened store: every pair in durable holds its
// value; every pair is whole (both keys, same offset) or absent; a pair in
// failed holds its failed value or is absent (a failed commit may have
// reached the log file without its fsync: docs/RELIABILITY.md).
func checkPairs(t *testing.T, s *Store, durable map[int]int64, failed map[int]int64, keepsFailed bool) {
	t.Helper()
	a, err := s.ListOffsets("g")
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	byStream := map[string]map[int32]int64{"a": {}, "b": {}}
	for _, o := range a {
		byStream[o.Stream][o.Partition] = o.Committed.Offset
	}
	if len(byStream["a"]) != len(byStream["b"]) {
		t.Errorf("half-applied commit: %d keys on a, %d on b", len(byStream["a"]), len(byStream["b"]))
	}
	for p, off := range byStream["a"] {
		if other, ok := byStream["b"][p]; !ok || other != off {
			t.Errorf("half-applied commit %d: a=%d, b=%d (present %v)", p, off, other, ok)
		}
	}
	for i, want := range durable {
		if got, ok := byStream["a"][int32(i)]; !ok || got != want {
			t.Errorf("durable commit %d lost: got %d (present %v), want %d", i, got, ok, want)
		}
	}
	for i, value := range failed {
		got, ok := byStream["a"][int32(i)]
		if !ok {
			continue
		}
		if got != value {
			t.Errorf("failed commit %d: stored %d, want its value %d or nothing", i, got, value)
		}
		if !keepsFailed {
			t.Errorf("failed commit %d survived a power loss", i)
		}
	}
	for p := range byStream["a"] {
		if _, d := durable[int(p)]; !d {
			if _, f := failed[int(p)]; !f {
				t.Errorf("phantom commit %d", p)
			}
		}
	}
}

// TestFaultCommitFailsTheStore: a commit that fails in the log under each
// fault returns the fault's error wrapped in ErrFailed, and is never
// reported durable; every later Update is refused the same way without
// reaching Pebble (no panic), also once the fault clears; reads go on; the
// store closes. After a power loss exactly the durable commits are there;
// after a restart without one, the durable commits and possibly the failed
// one, whole.
func TestFaultCommitFailsTheStore(t *testing.T) {
	for _, fault := range storeFaults {
		t.Run(fault.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			inj := &faultInjector{}
			s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
			if err != nil {
				t.Fatal(err)
			}
			durable := map[int]int64{}
			for i := range 20 {
				if err := commitPair(s, i, int64(100+i)); err != nil {
					t.Fatalf("commit %d before the fault: %v", i, err)
				}
				durable[i] = int64(100 + i)
			}
			inj.set(fault.rule)
			err = commitPair(s, 20, 120)
			if !errors.Is(err, ErrFailed) || !errors.Is(err, fault.err) {
				t.Fatalf("commit under the fault: err = %v, want ErrFailed and %v", err, fault.err)
			}
			if !errors.Is(s.Err(), fault.err) {
				t.Errorf("Err() = %v, want the fault", s.Err())
			}
			failed := map[int]int64{20: 120}
			inj.clear()
			for i := 21; i < 25; i++ {
				if err := commitPair(s, i, int64(100+i)); !errors.Is(err, ErrFailed) || !errors.Is(err, fault.err) {
					t.Fatalf("commit %d after the fault cleared: err = %v, want the first failure", i, err)
				}
			}
			// Reads go on: the durable commits are there.
			for i, want := range durable {
				a, _ := pairKeys(i)
				if got, err := s.GetOffset(a); err != nil || got.Offset != want {
					t.Fatalf("read %d on the failed store: %+v, %v", i, got, err)
				}
			}
			powerLoss := mem.CrashClone(vfs.CrashCloneCfg{})
			// Closing a failed store reports the failure and releases it.
			if err := s.Close(); err != nil {
				t.Logf("Close of the failed store: %v", err)
			}
			if err := s.Update(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
				t.Errorf("Update after Close: %v, want ErrClosed", err)
			}

			t.Run("after a power loss", func(t *testing.T) {
				s := openAt(t, powerLoss, "/db", Options{})
				checkPairs(t, s, durable, failed, false)
				if err := commitPair(s, 30, 130); err != nil {
					t.Fatalf("commit after the restart: %v", err)
				}
			})
			t.Run("after a restart", func(t *testing.T) {
				s := openAt(t, mem, "/db", Options{})
				checkPairs(t, s, durable, failed, true)
				if err := commitPair(s, 30, 130); err != nil {
					t.Fatalf("commit after the restart: %v", err)
				}
				durable[30] = 130
				mustClose(t, s)
				s = openAt(t, mem, "/db", Options{})
				checkPairs(t, s, durable, failed, true)
			})
		})
	}
}

// TestFaultConcurrentCommits: 16 goroutines commit while the WAL's fsync
// starts failing. No commit panics; every commit reported durable is there
// after a power loss and after a restart; none is half-applied. A failed
// commit may be there even after a power loss: commits share the log's
// fsyncs, and one that succeeded can carry the bytes of a commit that was
// not yet waiting for it, whose own fsync then fails (its outcome is
// unknown, as a failed commit's is in any database).
func TestFaultConcurrentCommits(t *testing.T) {
	for _, fault := range storeFaults {
		t.Run(fault.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			inj := &faultInjector{}
			s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
			if err != nil {
				t.Fatal(err)
			}
			const writers, perWriter = 16, 60
			var (
				mu      sync.Mutex
				durable = map[int]int64{}
				failed  = map[int]int64{}
				wg      sync.WaitGroup
				done    atomic.Int64
			)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range perWriter {
						i := w*perWriter + j
						if done.Add(1) == writers*perWriter/3 {
							inj.set(fault.rule)
						}
						err := commitPair(s, i, int64(1000+i))
						mu.Lock()
						if err == nil {
							durable[i] = int64(1000 + i)
						} else {
							failed[i] = int64(1000 + i)
							if !errors.Is(err, ErrFailed) || !errors.Is(err, fault.err) {
								t.Errorf("commit %d: err = %v, want ErrFailed and %v", i, err, fault.err)
							}
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(failed) == 0 {
				t.Fatal("no commit failed")
			}
			powerLoss := mem.CrashClone(vfs.CrashCloneCfg{})
			inj.clear()
			_ = s.Close()
			t.Logf("%d commits durable, %d failed", len(durable), len(failed))
			s = openAt(t, powerLoss, "/db", Options{})
			checkPairs(t, s, durable, failed, true)
			mustClose(t, s)
			s = openAt(t, mem, "/db", Options{})
			checkPairs(t, s, durable, failed, true)
		})
	}
}

// TestFaultAtOpen: a store that cannot write its format marker (a new store
// on a read-only disk) fails to open with the fault's error, without
// a panic, and releases its directory.
func TestFaultAtOpen(t *testing.T) {
	mem := vfs.NewCrashableMem()
	inj := &faultInjector{}
	inj.set(func(op errorfs.Op) error {
		if isWAL(op) && isSync(op) {
			return syscall.EIO
		}
		return nil
	})
	_, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Open: err = %v, want EIO", err)
	}
	inj.clear()
	s := openAt(t, errorfs.Wrap(mem, inj), "/db", Options{})
	if err := commitPair(s, 1, 1); err != nil {
		t.Fatal(fmt.Errorf("commit after a failed open: %w", err))
	}
}

// TestFaultNextLogCannotBeCreated: when Pebble rotates its log (its
// memtable is full) and the next log file cannot be created — no file
// descriptor left, a full or read-only disk — the commit that needed it
// fails with ErrFailed and the cause, and so does every later one; the
// process goes on (Pebble itself panics there with its mutex released,
// which no recover can catch), reads go on, and a restart finds every
// commit that was reported durable.
func TestFaultNextLogCannotBeCreated(t *testing.T) {
	// About 1.2 KiB a commit: Pebble's first memtable (256 KiB, growing to
	// 4 MiB) fills, and its log rotates, within a few hundred.
	const most = 20000
	// Early the store has no old log to reuse and creates the next one;
	// after some rotations Pebble recycles an old log file instead (a
	// rename), which fails the same way.
	for _, tc := range []struct {
		cause  error
		before int // commits before the fault
		kind   errorfs.OpKind
	}{
		{syscall.EMFILE, 0, errorfs.OpCreate},
		{syscall.ENOSPC, 0, errorfs.OpCreate},
		{syscall.EROFS, 0, errorfs.OpCreate},
		{syscall.EROFS, 5000, errorfs.OpReuseForWrite},
	} {
		cause := tc.cause
		t.Run(fmt.Sprintf("%v after %d commits", cause, tc.before), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			inj := &faultInjector{}
			s, err := Open("/db", Options{FS: errorfs.Wrap(mem, inj)})
			if err != nil {
				t.Fatal(err)
			}
			durable, failed := map[int]int64{}, map[int]int64{}
			for i := range tc.before {
				if err := commitPair(s, most+2+i, int64(i)); err != nil {
					t.Fatal(err)
				}
				durable[most+2+i] = int64(i)
			}
			var hit atomic.Int64
			inj.set(func(op errorfs.Op) error {
				if isWAL(op) && (op.Kind == errorfs.OpCreate || op.Kind == errorfs.OpReuseForWrite) {
					if op.Kind == tc.kind {
						hit.Add(1)
					}
					return cause
				}
				return nil
			})
			for i := range most {
				err := commitPair(s, i, int64(i))
				if err == nil {
					durable[i] = int64(i)
					continue
				}
				if !errors.Is(err, ErrFailed) || !errors.Is(err, cause) {
					t.Fatalf("commit %d: err = %v, want ErrFailed and %v", i, err, cause)
				}
				failed[i] = int64(i)
				break
			}
			if len(failed) == 0 {
				t.Fatalf("%d commits and no log rotation", most)
			}
			if hit.Load() == 0 {
				t.Fatalf("the rotation did not go through %v", tc.kind)
			}
			t.Logf("%d commits before the rotation failed", len(durable)-tc.before)
			inj.clear()
			if err := commitPair(s, most, most); !errors.Is(err, cause) {
				t.Errorf("commit after the failure: err = %v, want the first failure", err)
			}
			for i, want := range durable {
				a, _ := pairKeys(i)
				if got, err := s.GetOffset(a); err != nil || got.Offset != want {
					t.Fatalf("read %d on the failed store: %+v, %v", i, got, err)
				}
			}
			powerLoss := mem.CrashClone(vfs.CrashCloneCfg{})
			_ = s.Close()
			for name, fs := range map[string]vfs.FS{"after a power loss": powerLoss, "after a restart": mem} {
				t.Run(name, func(t *testing.T) {
					s := openAt(t, fs, "/db", Options{})
					checkPairs(t, s, durable, failed, true)
					if err := commitPair(s, most+1, 1); err != nil {
						t.Fatalf("commit after the restart: %v", err)
					}
				})
			}
		})
	}
}
