package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/weirmq/weir/internal/state"
)

// readCategory pages through a category from position 0 with at most page
// events per call and returns "aggregate/version@position" of each event.
func readCategory(t *testing.T, b *Broker, category string, page int) []string {
	t.Helper()
	end, err := b.EventLogEnd()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for pos := int64(0); pos < end; {
		r, err := b.ReadEvents(context.Background(), pos, page, category, 0)
		if err != nil {
			t.Fatalf("read category %q at %d: %v", category, pos, err)
		}
		for _, e := range r.Events {
			if Category(e.Aggregate) != category || e.Position < pos {
				t.Fatalf("read category %q at %d: got %s/%d@%d", category, pos, e.Aggregate, e.Version, e.Position)
			}
			out = append(out, fmt.Sprintf("%s/%d@%d", e.Aggregate, e.Version, e.Position))
		}
		if r.Next <= pos {
			t.Fatalf("read category %q: no progress at %d", category, pos)
		}
		pos = r.Next
	}
	return out
}

// fromGlobalOrder returns the events of a category, read from the global
// order (which does not use the category index).
func fromGlobalOrder(t *testing.T, b *Broker, category string) []Event {
	t.Helper()
	var out []Event
	for pos := int64(0); ; {
		r, err := b.ReadEvents(context.Background(), pos, 0, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Events {
			if Category(e.Aggregate) == category {
				out = append(out, e)
			}
		}
		if r.Next >= r.End {
			return out
		}
		pos = r.Next
	}
}

// wantCategory returns what readCategory must return.
func wantCategory(t *testing.T, b *Broker, category string) []string {
	t.Helper()
	var out []string
	for _, e := range fromGlobalOrder(t, b, category) {
		out = append(out, fmt.Sprintf("%s/%d@%d", e.Aggregate, e.Version, e.Position))
	}
	return out
}

// checkCategories compares each category's read (whole, and in pages of
// 1 and 3) with the global order.
func checkCategories(t *testing.T, b *Broker, when string, categories ...string) {
	t.Helper()
	for _, c := range categories {
		want := wantCategory(t, b, c)
		if len(want) == 0 {
			t.Fatalf("%s: category %q has no events", when, c)
		}
		for _, page := range []int{0, 1, 3} {
			if got := readCategory(t, b, c, page); !slices.Equal(got, want) {
				t.Fatalf("%s: category %q read in pages of %d:\n got %v\nwant %v", when, c, page, got, want)
			}
		}
	}
}

// indexedPositions returns the positions the category index holds.
func indexedPositions(t *testing.T, b *Broker, category string) []int64 {
	t.Helper()
	vps, err := b.state.CategoryPositions(category, 0, 1<<62, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, vp := range vps {
		out = append(out, vp.Position)
	}
	return out
}

func positionsOf(t *testing.T, b *Broker, category string) []int64 {
	t.Helper()
	var out []int64
	for _, e := range fromGlobalOrder(t, b, category) {
		out = append(out, e.Position)
	}
	return out
}

// The category index is written with the version index and read by
// category reads; it survives a restart, and an aggregate without a
// category ("-x") is not in it.
func TestEventCategoryIndex(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	for i := range 12 {
		agg := fmt.Sprintf("%s-%d", []string{"order", "customer", "orderline"}[i%3], i%4)
		appendEvents(t, b, agg, AnyVersion, newEvents(fmt.Sprint("e", i), 1+i%3)...)
	}
	appendEvents(t, b, "-x", AnyVersion, newEvents("nocat", 2)...)
	appendEvents(t, b, "order", AnyVersion, newEvents("bare", 1)...) // its own category
	checkCategories(t, b, "before the restart", "order", "customer", "orderline")
	if _, err := b.ReadAggregate(context.Background(), "order", 1, 0); err != nil { // waits for the index
		t.Fatal(err)
	}
	for _, c := range []string{"order", "customer", "orderline"} {
		if got, want := indexedPositions(t, b, c), positionsOf(t, b, c); !slices.Equal(got, want) {
			t.Fatalf("index of %q: %v, want %v", c, got, want)
		}
	}
	end, _ := b.EventLogEnd()
	if cp, err := b.state.CategoryCheckpoint(); err != nil || cp != end {
		t.Fatalf("category checkpoint %d (%v), want %d", cp, err, end)
	}
	b.Close()

	b = openBroker(t, dir)
	defer b.Close()
	checkCategories(t, b, "after the restart", "order", "customer", "orderline")
	appendEvents(t, b, "customer-9", NoStream, newEvents("after", 2)...)
	checkCategories(t, b, "after an append", "customer")
}

// A crash between the log append and the index commit leaves the category
// index behind the log: reads stay right meanwhile (the tail the index has
// not reached is filtered), and the next open indexes the tail.
func TestEventCategoryIndexRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	appendEvents(t, b, "ship-1", NoStream, newEvents("s1", 2)...)
	appendEvents(t, b, "port-1", NoStream, newEvents("p1", 1)...)
	if _, err := b.ReadAggregate(ctx, "ship-1", 1, 0); err != nil { // indexed
		t.Fatal(err)
	}
	b.events.holdIndex.Store(true)
	appendEvents(t, b, "ship-2", NoStream, newEvents("s2", 2)...)
	appendEvents(t, b, "port-1", 1, newEvents("p1b", 1)...)
	appendEvents(t, b, "ship-1", 2, newEvents("s1b", 1)...)
	if cp, _ := b.state.CategoryCheckpoint(); cp != 3 {
		t.Fatalf("category checkpoint %d while the index is held, want 3", cp)
	}
	// Read across the indexed part and the tail it has not reached.
	checkCategories(t, b, "index held", "ship", "port")
	if got := readCategory(t, b, "ship", 0); len(got) != 5 {
		t.Fatalf("ship while the index is held: %v", got)
	}
	b.Close() // the index writes fail: as a crash

	b = openBroker(t, dir)
	if cp, _ := b.state.CategoryCheckpoint(); cp != 7 {
		t.Fatalf("category checkpoint after recovery %d, want 7", cp)
	}
	if got, want := indexedPositions(t, b, "ship"), []int64{0, 1, 3, 4, 6}; !slices.Equal(got, want) {
		t.Fatalf("ship index after recovery: %v, want %v", got, want)
	}
	checkCategories(t, b, "after recovery", "ship", "port")

	// A store indexed before the category index existed: the version
	// index is complete, the category index empty (its checkpoint 0). The
	// next open indexes the whole log by category, and leaves the version
	// index as it was.
	if err := b.state.Update(func(tx *state.Tx) error { return tx.DropCategoryIndex() }); err != nil {
		t.Fatal(err)
	}
	if cp, _ := b.state.CategoryCheckpoint(); cp != 0 || len(indexedPositions(t, b, "ship")) != 0 {
		t.Fatalf("after DropCategoryIndex: checkpoint %d, ship %v", cp, indexedPositions(t, b, "ship"))
	}
	b.Close()
	b = openBroker(t, dir)
	defer b.Close()
	if cp, _ := b.state.CategoryCheckpoint(); cp != 7 {
		t.Fatalf("category checkpoint after indexing an old store %d, want 7", cp)
	}
	if got, want := indexedPositions(t, b, "port"), []int64{2, 5}; !slices.Equal(got, want) {
		t.Fatalf("port index after indexing an old store: %v, want %v", got, want)
	}
	checkCategories(t, b, "after indexing an old store", "ship", "port")
	if res := appendEvents(t, b, "ship-2", 2, newEvents("s2b", 1)...); res.FirstVersion != 3 || res.FirstPosition != 7 {
		t.Fatalf("append after indexing an old store: %+v", res)
	}
}
