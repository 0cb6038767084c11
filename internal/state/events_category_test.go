package state

import (
	"fmt"
	"testing"
)

func TestEventCategoryIndex(t *testing.T) {
	s := openMem(t)
	if cp, err := s.CategoryCheckpoint(); err != nil || cp != 0 {
		t.Fatalf("category checkpoint of an empty store: %d %v", cp, err)
	}
	// Categories that are prefixes of one another, positions past 255
	// (byte order must be numeric order).
	err := s.Update(func(tx *Tx) error {
		for pos := int64(0); pos < 900; pos++ {
			category := []string{"order", "orderline", "order\x00"}[pos%3]
			if err := tx.PutCategoryEvent(category, pos, pos/3+1); err != nil {
				return err
			}
		}
		return tx.SetCategoryCheckpoint(900)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.CategoryCheckpoint(); cp != 900 {
		t.Fatalf("category checkpoint %d, want 900", cp)
	}
	got, err := s.CategoryPositions("order", 250, 900, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[{85 252} {86 255} {87 258} {88 261}]"; fmt.Sprint(got) != want {
		t.Fatalf("order from 250, 4 of them: %v, want %v", got, want)
	}
	all, err := s.CategoryPositions("orderline", 0, 900, 0)
	if err != nil || len(all) != 300 || all[299].Position != 898 {
		t.Fatalf("all of orderline: %d %v", len(all), err)
	}
	below, err := s.CategoryPositions("order\x00", 0, 8, 0)
	if err != nil || fmt.Sprint(below) != "[{1 2} {2 5}]" {
		t.Fatalf("order\\x00 below 8: %v %v", below, err)
	}
	if none, err := s.CategoryPositions("ord", 0, 900, 0); err != nil || len(none) != 0 {
		t.Fatalf("a category without events: %v %v", none, err)
	}
	if empty, err := s.CategoryPositions("order", 10, 10, 0); err != nil || len(empty) != 0 {
		t.Fatalf("an empty range: %v %v", empty, err)
	}
	for _, bad := range []func(tx *Tx) error{
		func(tx *Tx) error { return tx.PutCategoryEvent("", 1, 1) },
		func(tx *Tx) error { return tx.PutCategoryEvent("a", -1, 1) },
		func(tx *Tx) error { return tx.PutCategoryEvent("a", 1, 0) },
	} {
		if err := s.Update(bad); err == nil {
			t.Fatal("a bad category entry was accepted")
		}
	}
	if _, err := s.CategoryPositions("", 0, 1, 0); err == nil {
		t.Fatal("an empty category was accepted")
	}

	// Dropped: entries and checkpoint gone, the version index kept.
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutEvent("e1", EventRef{Aggregate: "order-1", Version: 1, Position: 0}); err != nil {
			return err
		}
		return tx.SetEventCheckpoint(1)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.DropCategoryIndex() }); err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.CategoryCheckpoint(); cp != 0 {
		t.Fatalf("category checkpoint after the drop: %d", cp)
	}
	if left, err := s.CategoryPositions("orderline", 0, 900, 0); err != nil || len(left) != 0 {
		t.Fatalf("entries after the drop: %d %v", len(left), err)
	}
	if v, err := s.AggregateVersion("order-1"); err != nil || v != 1 {
		t.Fatalf("the version index after the drop: %d %v", v, err)
	}
	if cp, _ := s.EventCheckpoint(); cp != 1 {
		t.Fatalf("the event checkpoint after the drop: %d", cp)
	}
}
