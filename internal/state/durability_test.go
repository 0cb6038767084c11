package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestDurableAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, s, func(tx *Tx) error {
		if err := tx.PutCatalog(KindExchange, "ex", []byte("fanout")); err != nil {
			return err
		}
		return tx.CommitOffset(OffsetKey{"g", "s", 1}, CommittedOffset{Offset: 99, Metadata: "md"})
	})
	mustClose(t, s)

	s = openAt(t, vfs.Default, dir, Options{})
	if got, err := s.GetCatalog(KindExchange, "ex"); err != nil || string(got) != "fanout" {
		t.Errorf("catalog after reopen = %q, %v", got, err)
	}
	if got, err := s.GetOffset(OffsetKey{"g", "s", 1}); err != nil || got.Offset != 99 || got.Metadata != "md" {
		t.Errorf("offset after reopen = %+v, %v", got, err)
	}
}

// TestCrashAfterSyncedUpdate simulates a power loss right after synced
// Updates returned: everything they wrote must be there on restart.
func TestCrashAfterSyncedUpdate(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openAt(t, fs, "/db", Options{})
	for i := range 50 {
		mustUpdate(t, s, func(tx *Tx) error {
			return tx.CommitOffset(OffsetKey{"g", "s", int32(i)}, CommittedOffset{Offset: int64(i)})
		})
	}
	// The crashed image holds exactly the synced data, nothing more. (Pebble
	// v2 replaced vfs.NewStrictMem, SetIgnoreSyncs and ResetToSyncedState
	// with NewCrashableMem and CrashClone.)
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	mustClose(t, s)

	s = openAt(t, crashed, "/db", Options{})
	list, err := s.ListOffsets("g")
	if err != nil || len(list) != 50 {
		t.Fatalf("after crash: %d offsets, %v; want 50", len(list), err)
	}
}

// TestCrashWithNoSync checks Pebble's model for unsynced writes: data synced
// before the crash survives; of the writes after the last sync, a crash
// keeps some prefix of them in commit order (possibly none), never a later
// write without an earlier one.
func TestCrashWithNoSync(t *testing.T) {
	const unsynced = 200
	for seed := range uint64(16) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s := openAt(t, fs, "/db", Options{NoSync: true})
			mustUpdate(t, s, func(tx *Tx) error { return tx.PutCatalog(KindStream, "synced", nil) })
			mustClose(t, s) // closing syncs the log

			s = openAt(t, fs, "/db", Options{NoSync: true})
			// Enough data for the log to write many blocks to the file.
			metadata := strings.Repeat("m", 1000)
			for i := range unsynced {
				mustUpdate(t, s, func(tx *Tx) error {
					return tx.CommitOffset(OffsetKey{"g", "s", int32(i)}, CommittedOffset{Offset: int64(i), Metadata: metadata})
				})
			}
			images := map[string]*vfs.MemFS{
				"exactly synced": fs.CrashClone(vfs.CrashCloneCfg{}),
				"some unsynced": fs.CrashClone(vfs.CrashCloneCfg{
					UnsyncedDataPercent: 90,
					RNG:                 rand.New(rand.NewPCG(seed, seed)),
				}),
			}
			mustClose(t, s)
			for name, image := range images {
				s := openAt(t, image, "/db", Options{})
				if _, err := s.GetCatalog(KindStream, "synced"); err != nil {
					t.Errorf("%s: synced entry lost: %v", name, err)
				}
				list, err := s.ListOffsets("g")
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for i, o := range list {
					if o.Partition != int32(i) {
						t.Fatalf("%s: recovered offsets are not a prefix: position %d holds partition %d", name, i, o.Partition)
					}
				}
				if name == "exactly synced" && len(list) != 0 {
					t.Errorf("%s: %d unsynced writes survived", name, len(list))
				}
				t.Logf("%s: %d of %d unsynced writes survived", name, len(list), unsynced)
				mustClose(t, s)
			}
		})
	}
}

func TestSecondOpenFailsWhileLocked(t *testing.T) {
	for name, fs := range map[string]vfs.FS{"os": vfs.Default, "mem": vfs.NewMem()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			second, err := Open(dir, Options{FS: fs})
			if !errors.Is(err, ErrLocked) {
				if second != nil {
					_ = second.Close()
				}
				t.Fatalf("second Open: err = %v, want ErrLocked", err)
			}
			mustClose(t, s)
			s, err = Open(dir, Options{FS: fs})
			if err != nil {
				t.Fatalf("Open after Close: %v", err)
			}
			mustClose(t, s)
		})
	}
}

func TestClosedStore(t *testing.T) {
	s := openMem(t)
	mustClose(t, s)
	checks := map[string]error{
		"Close":  s.Close(),
		"Update": s.Update(func(*Tx) error { return nil }),
	}
	_, checks["GetCatalog"] = s.GetCatalog(KindStream, "s")
	_, checks["ListCatalog"] = s.ListCatalog(KindStream)
	_, checks["GetOffset"] = s.GetOffset(OffsetKey{"g", "s", 0})
	_, checks["ListOffsets"] = s.ListOffsets("g")
	_, checks["ListGroups"] = s.ListGroups()
	_, checks["Stats"] = s.Stats()
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func TestNewerFormatRefused(t *testing.T) {
	fs := vfs.NewMem()
	s := openAt(t, fs, "/db", Options{})
	if err := s.db.Set(formatKey, []byte{storeFormat + 1}, nil); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	if _, err := Open("/db", Options{FS: fs}); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("Open of newer format: err = %v, want ErrIncompatible", err)
	}
	// The failed Open released the directory lock.
	lock, err := pebble.LockDirectory("/db", fs)
	if err != nil {
		t.Fatalf("lock after failed Open: %v", err)
	}
	_ = lock.Close()
}
