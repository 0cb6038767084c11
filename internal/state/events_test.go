package state

import (
	"fmt"
	"testing"
)

func TestEventIndex(t *testing.T) {
	s := openMem(t)
	if cp, err := s.EventCheckpoint(); err != nil || cp != 0 {
		t.Fatalf("checkpoint of an empty store: %d %v", cp, err)
	}
	// Aggregates that are prefixes of one another, and versions past 255
	// (byte order must be numeric order).
	err := s.Update(func(tx *Tx) error {
		pos := int64(0)
		for v := int64(1); v <= 300; v++ {
			for _, agg := range []string{"order-1", "order-10", "order-1\x00"} {
				if err := tx.PutEvent(fmt.Sprintf("%s/%d", agg, v), EventRef{Aggregate: agg, Version: v, Position: pos}); err != nil {
					return err
				}
				pos++
			}
		}
		return tx.SetEventCheckpoint(pos)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cp, _ := s.EventCheckpoint(); cp != 900 {
		t.Fatalf("checkpoint %d, want 900", cp)
	}
	if v, err := s.AggregateVersion("order-10"); err != nil || v != 300 {
		t.Fatalf("version of order-10: %d %v", v, err)
	}
	if v, err := s.AggregateVersion("order-2"); err != nil || v != 0 {
		t.Fatalf("version of an aggregate without events: %d %v", v, err)
	}
	ref, ok, err := s.EventByID("order-10/256")
	if err != nil || !ok || ref != (EventRef{Aggregate: "order-10", Version: 256, Position: 255*3 + 1}) {
		t.Fatalf("event by id: %+v %v %v", ref, ok, err)
	}
	if _, ok, err := s.EventByID("nope"); ok || err != nil {
		t.Fatalf("unknown id: %v %v", ok, err)
	}
	got, err := s.AggregatePositions("order-1", 254, 5)
	if err != nil || len(got) != 5 {
		t.Fatalf("positions from 254: %+v %v", got, err)
	}
	for i, vp := range got {
		if want := (VersionPosition{Version: 254 + int64(i), Position: (253 + int64(i)) * 3}); vp != want {
			t.Fatalf("position %d: %+v, want %+v", i, vp, want)
		}
	}
	all, err := s.AggregatePositions("order-1\x00", 0, 0)
	if err != nil || len(all) != 300 || all[299].Position != 899 {
		t.Fatalf("all positions of order-1\\x00: %d %v", len(all), err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutEvent("x", EventRef{Aggregate: "a", Version: 0}) }); err == nil {
		t.Fatal("version 0 was accepted")
	}
	if err := s.Update(func(tx *Tx) error { return tx.PutEvent("", EventRef{Aggregate: "a", Version: 1}) }); err == nil {
		t.Fatal("an empty id was accepted")
	}
}
