package state

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestCursors(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.LoadCursor("sub1", 0)
	if err != nil || st.Floor != 0 || len(st.Acked) != 0 || len(st.Deliveries) != 0 {
		t.Fatalf("empty cursor: %+v, %v", st, err)
	}
	err = s.Update(func(tx *Tx) error {
		for _, off := range []int64{12, 5, 7} {
			if err := tx.AckCursor("sub1", 0, off); err != nil {
				return err
			}
		}
		if err := tx.SetDelivery("sub1", 0, 3, Delivery{Count: 2, LastError: "boom"}); err != nil {
			return err
		}
		if err := tx.SetDelivery("sub1", 0, 9, Delivery{Count: 1}); err != nil {
			return err
		}
		// Another partition and a subscription whose name extends this one.
		if err := tx.AckCursor("sub1", 1, 5); err != nil {
			return err
		}
		return tx.AckCursor("sub10", 0, 6)
	})
	if err != nil {
		t.Fatal(err)
	}
	st, _ = s.LoadCursor("sub1", 0)
	want := CursorState{Floor: 0, Acked: []int64{5, 7, 12}, Deliveries: map[int64]Delivery{3: {2, "boom"}, 9: {1, ""}}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	// Raising the floor forgets what is below it; acking a delivered record
	// removes its delivery record with DeleteDelivery.
	err = s.Update(func(tx *Tx) error {
		if err := tx.AckCursor("sub1", 0, 9); err != nil {
			return err
		}
		if err := tx.DeleteDelivery("sub1", 0, 9); err != nil {
			return err
		}
		return tx.SetCursorFloor("sub1", 0, 3, 8)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(filepath.Join(dir, "db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, _ = s.LoadCursor("sub1", 0)
	want = CursorState{Floor: 8, Acked: []int64{9, 12}, Deliveries: map[int64]Delivery{}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("after floor 8 and reopen: got %+v, want %+v", st, want)
	}
	if st, _ := s.LoadCursor("sub10", 0); !reflect.DeepEqual(st.Acked, []int64{6}) {
		t.Fatalf("sub10 affected: %+v", st)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DeleteCursors("sub1") }); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		if st, _ := s.LoadCursor("sub1", p); st.Floor != 0 || len(st.Acked) != 0 {
			t.Fatalf("deleted cursor %d: %+v", p, st)
		}
	}
	if st, _ := s.LoadCursor("sub10", 0); len(st.Acked) != 1 {
		t.Fatal("deleting sub1 deleted sub10")
	}
	if _, err := s.LoadCursor("", 0); err == nil {
		t.Fatal("empty subscription name accepted")
	}
}

// TestCursorFloorRaisesInSteps raises a floor many times with acks above
// it each time (out-of-order acks of a busy queue), across a reopen: every
// raise forgets exactly the keys below it, also those acked in the same
// transaction, and a floor that does not rise deletes nothing.
func TestCursorFloorRaisesInSteps(t *testing.T) {
	fs := vfs.NewMem()
	s := openAt(t, fs, "/db", Options{})
	for step := range int64(50) {
		if step == 25 {
			mustClose(t, s)
			s = openAt(t, fs, "/db", Options{})
		}
		base := step * 10
		mustUpdate(t, s, func(tx *Tx) error {
			for _, off := range []int64{base + 3, base + 12, base + 15} {
				if err := tx.AckCursor("q", 0, off); err != nil {
					return err
				}
			}
			if err := tx.SetDelivery("q", 0, base+11, Delivery{Count: 1}); err != nil {
				return err
			}
			return tx.SetCursorFloor("q", 0, base, base+10) // the keys stored are at or above the last floor
		})
		st, err := s.LoadCursor("q", 0)
		if err != nil {
			t.Fatal(err)
		}
		want := CursorState{Floor: base + 10, Acked: []int64{base + 12, base + 15}, Deliveries: map[int64]Delivery{base + 11: {Count: 1}}}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("step %d: got %+v, want %+v", step, st, want)
		}
	}
	before := s.rangeDels.Load()
	mustUpdate(t, s, func(tx *Tx) error { return tx.SetCursorFloor("q", 0, 491, 300) }) // lower than stored
	if s.rangeDels.Load() != before {
		t.Error("a floor that did not rise wrote range deletions")
	}
	st, _ := s.LoadCursor("q", 0)
	if st.Floor != 300 || len(st.Acked) != 2 || len(st.Deliveries) != 1 {
		t.Fatalf("after lowering: %+v", st)
	}
}

// Range deletions gather in the memtable only up to a bound once the store
// is read: past it a read flushes, so reads do not each fragment every
// deletion since the last flush. Writes alone (a busy queue raising its
// floors) do not flush. What the deletions deleted stays deleted, in the
// memtable, in the flushed tables and after a reopen, and nothing else is.
func TestRangeDeletionsAreFlushedPastABound(t *testing.T) {
	fs := vfs.NewMem()
	s := openAt(t, fs, "/db", Options{})
	const subs = 4 * maxUnflushedRangeDels
	name := func(i int) string { return fmt.Sprintf("sub%04d", i) }
	for i := range subs {
		mustUpdate(t, s, func(tx *Tx) error {
			if err := tx.AckCursor(name(i), 0, 5); err != nil {
				return err
			}
			return tx.AckCursor(name(i), 1, 7)
		})
	}
	stats := func() Stats {
		t.Helper()
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	deleted := func(i int) bool {
		t.Helper()
		st0, err := s.LoadCursor(name(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		st1, err := s.LoadCursor(name(i), 1)
		if err != nil {
			t.Fatal(err)
		}
		return len(st0.Acked) == 0 && len(st1.Acked) == 0
	}
	check := func() {
		t.Helper()
		for i := range subs {
			if got, want := deleted(i), i%2 == 0 || i < 2*maxUnflushedRangeDels && i%4 == 1; got != want {
				t.Fatalf("%s: deleted %v, want %v", name(i), got, want)
			}
		}
	}
	// Deletions without reads: no flush.
	before := stats()
	for i := 1; i < 2*maxUnflushedRangeDels; i += 4 {
		mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteCursors(name(i)) })
	}
	if st := stats(); st.Flushes != before.Flushes || st.RangeDeletions-before.RangeDeletions != maxUnflushedRangeDels/2 {
		t.Fatalf("%d flushes and %d range deletions, want none and %d", st.Flushes-before.Flushes, st.RangeDeletions-before.RangeDeletions, maxUnflushedRangeDels/2)
	}
	// Deletions each followed by a read, as a stream's deletion does.
	for i := 0; i < subs; i += 2 {
		mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteCursors(name(i)) })
		if !deleted(i) {
			t.Fatalf("%s not deleted", name(i))
		}
	}
	check()
	after := stats()
	deletions := after.RangeDeletions - before.RangeDeletions
	if want := deletions / maxUnflushedRangeDels; after.Flushes-before.Flushes < want {
		// The flushes run in the background: wait for them.
		deadline := time.Now().Add(10 * time.Second)
		for ; after.Flushes-before.Flushes < want; after = stats() {
			if time.Now().After(deadline) {
				t.Fatalf("%d flushes after %d range deletions read, want at least %d", after.Flushes-before.Flushes, deletions, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	check()
	mustClose(t, s)
	s = openAt(t, fs, "/db", Options{})
	check()
}
