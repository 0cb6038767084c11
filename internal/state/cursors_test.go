package state

import (
	"path/filepath"
	"reflect"
	"testing"

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
