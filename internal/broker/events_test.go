package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/auth"
)

func newEvents(prefix string, n int) []NewEvent {
	out := make([]NewEvent, n)
	for i := range out {
		out[i] = NewEvent{ID: fmt.Sprintf("%s-%d", prefix, i), Type: "Happened", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return out
}

func appendEvents(t testing.TB, b *Broker, aggregate string, expected ExpectedVersion, events ...NewEvent) EventsAppended {
	t.Helper()
	res, err := b.AppendEvents(context.Background(), aggregate, expected, events)
	if err != nil {
		t.Fatalf("append to %q at %s: %v", aggregate, expected, err)
	}
	return res
}

func readAggregate(t testing.TB, b *Broker, aggregate string, from int64) []Event {
	t.Helper()
	evs, err := b.ReadAggregate(context.Background(), aggregate, from, 0)
	if err != nil {
		t.Fatalf("read %q: %v", aggregate, err)
	}
	return evs
}

func wantConflict(t *testing.T, err error, current int64) {
	t.Helper()
	var vc *VersionConflictError
	if !errors.As(err, &vc) || !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("got %v, want a version conflict", err)
	}
	if vc.Current != current {
		t.Fatalf("conflict says current version %d, want %d (%v)", vc.Current, current, err)
	}
}

func TestEventExpectedVersions(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()

	// No stream: only when the aggregate has no events.
	res := appendEvents(t, b, "order-1", NoStream, newEvents("a", 2)...)
	if res.FirstVersion != 1 || res.LastVersion != 2 || res.FirstPosition != 0 || res.LastPosition != 1 || res.Duplicate {
		t.Fatalf("first append: %+v", res)
	}
	_, err := b.AppendEvents(ctx, "order-1", NoStream, newEvents("b", 1))
	wantConflict(t, err, 2)
	if !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "no stream") {
		t.Fatalf("message does not say the versions: %v", err)
	}
	// Exact version 0 is no stream too.
	appendEvents(t, b, "order-2", 0, newEvents("c", 1)...)

	// Stream exists.
	_, err = b.AppendEvents(ctx, "order-3", StreamExists, newEvents("d", 1))
	wantConflict(t, err, 0)
	appendEvents(t, b, "order-1", StreamExists, newEvents("e", 1)...)

	// Exact: only the current version.
	for _, wrong := range []ExpectedVersion{0, 1, 2, 4, 100} {
		_, err = b.AppendEvents(ctx, "order-1", wrong, newEvents(fmt.Sprint("f", wrong), 1))
		wantConflict(t, err, 3)
	}
	res = appendEvents(t, b, "order-1", 3, newEvents("g", 3)...)
	if res.FirstVersion != 4 || res.LastVersion != 6 {
		t.Fatalf("exact append: %+v", res)
	}

	// Any: whatever the version, also none.
	appendEvents(t, b, "order-1", AnyVersion, newEvents("h", 1)...)
	appendEvents(t, b, "order-4", AnyVersion, newEvents("i", 1)...)

	evs := readAggregate(t, b, "order-1", 1)
	if len(evs) != 7 {
		t.Fatalf("order-1 has %d events, want 7", len(evs))
	}
	for i, e := range evs {
		if e.Version != int64(i+1) || e.Aggregate != "order-1" || e.Type != "Happened" {
			t.Fatalf("event %d: %+v", i, e)
		}
		if i > 0 && e.Position <= evs[i-1].Position {
			t.Fatalf("positions not increasing: %d then %d", evs[i-1].Position, e.Position)
		}
	}
	if evs[3].ID != "g-0" || string(evs[5].Data) != `{"n":2}` {
		t.Fatalf("event 4 %+v, event 6 %+v", evs[3], evs[5])
	}
	// From a version, at most max.
	evs, err = b.ReadAggregate(ctx, "order-1", 5, 2)
	if err != nil || len(evs) != 2 || evs[0].Version != 5 || evs[1].Version != 6 {
		t.Fatalf("read from 5, max 2: %+v %v", evs, err)
	}
	if evs := readAggregate(t, b, "nothing-here", 1); len(evs) != 0 {
		t.Fatalf("an aggregate without events has %d", len(evs))
	}
}

func TestEventAppendRefusesBadInput(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	ok := NewEvent{ID: "x", Type: "T"}
	cases := []struct {
		name      string
		aggregate string
		expected  ExpectedVersion
		events    []NewEvent
	}{
		{"no aggregate", "", AnyVersion, []NewEvent{ok}},
		{"long aggregate", strings.Repeat("a", MaxAggregateLength+1), AnyVersion, []NewEvent{ok}},
		{"control character", "a\nb", AnyVersion, []NewEvent{ok}},
		{"not UTF-8", "a\xffb", AnyVersion, []NewEvent{ok}},
		{"bad expected version", "a", -4, []NewEvent{ok}},
		{"no events", "a", AnyVersion, nil},
		{"no id", "a", AnyVersion, []NewEvent{{Type: "T"}}},
		{"no type", "a", AnyVersion, []NewEvent{{ID: "x"}}},
		{"repeated id", "a", AnyVersion, []NewEvent{ok, ok}},
		{"bad correlation id", "a", AnyVersion, []NewEvent{{ID: "x", Type: "T", CorrelationID: "\x00"}}},
	}
	for _, c := range cases {
		_, err := b.AppendEvents(ctx, c.aggregate, c.expected, c.events)
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v, want invalid argument", c.name, err)
		}
	}
	big := NewEvent{ID: "big", Type: "T", Data: make([]byte, DefaultMaxRecordBytes+1)}
	if _, err := b.AppendEvents(ctx, "a", AnyVersion, []NewEvent{big}); !errors.Is(err, ErrRecordTooLarge) {
		t.Errorf("an event over the record limit: %v", err)
	}
	if _, err := b.ReadEvents(ctx, 5, 0, "", 0); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("read past the end: %v", err)
	}
	if _, err := b.ReadEvents(ctx, -1, 0, "", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative position: %v", err)
	}
	// Nothing was stored by any of it.
	if end, _ := b.EventLogEnd(); end != 0 {
		t.Fatalf("the event log has %d events after refused appends", end)
	}
}

func TestEventIdempotentRetry(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	batch := newEvents("pay", 3)
	batch[0].CorrelationID, batch[0].CausationID, batch[0].Metadata, batch[0].ContentType = "corr-1", "cause-1", []byte("meta"), "application/json"
	first := appendEvents(t, b, "payment-7", NoStream, batch...)
	appendEvents(t, b, "payment-7", 3, newEvents("later", 1)...)

	// The same batch again, with its original (now stale) expectation: the
	// original result, nothing stored.
	again, err := b.AppendEvents(ctx, "payment-7", NoStream, batch)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	want := first
	want.Duplicate = true
	if again != want {
		t.Fatalf("retry answered %+v, want %+v", again, want)
	}
	// Stored events in their order are a retry too (nothing is stored).
	if part, err := b.AppendEvents(ctx, "payment-7", AnyVersion, batch[1:]); err != nil || !part.Duplicate || part.FirstVersion != 2 || part.LastVersion != 3 {
		t.Fatalf("a stored batch's tail again: %+v %v", part, err)
	}
	// Another order, another aggregate, or new ids among stored ones: refused.
	for name, c := range map[string]struct {
		agg    string
		events []NewEvent
	}{
		"reordered":         {"payment-7", []NewEvent{batch[1], batch[0], batch[2]}},
		"another aggregate": {"payment-8", batch},
		"one new id":        {"payment-7", append(append([]NewEvent(nil), batch...), NewEvent{ID: "new", Type: "T"})},
	} {
		if _, err := b.AppendEvents(ctx, c.agg, AnyVersion, c.events); !errors.Is(err, ErrEventIDExists) {
			t.Errorf("%s: got %v, want ErrEventIDExists", name, err)
		}
	}
	if evs := readAggregate(t, b, "payment-7", 1); len(evs) != 4 {
		t.Fatalf("payment-7 has %d events after retries, want 4", len(evs))
	} else if e := evs[0]; e.CorrelationID != "corr-1" || e.CausationID != "cause-1" || string(e.Metadata) != "meta" || e.ContentType != "application/json" {
		t.Fatalf("event attributes not kept: %+v", e)
	}
	// After a restart the index answers the retry.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	again, err = b.AppendEvents(ctx, "payment-7", 0, batch)
	if err != nil || again != want {
		t.Fatalf("retry after restart: %+v, %v", again, err)
	}
	if end, _ := b.EventLogEnd(); end != 4 {
		t.Fatalf("event log ends at %d, want 4", end)
	}
}

// Writers at the same expected version: exactly one wins, every time.
func TestEventConcurrentAppendsOneWins(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	const rounds, writers = 30, 4
	version := int64(0)
	for round := range rounds {
		var wg sync.WaitGroup
		results := make([]EventsAppended, writers)
		errs := make([]error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[w], errs[w] = b.AppendEvents(ctx, "cart-1", ExpectedVersion(version), newEvents(fmt.Sprintf("r%d-w%d", round, w), 1+w%2))
			}()
		}
		wg.Wait()
		winner := -1
		for w, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: writers %d and %d both won", round, winner, w)
				}
				winner = w
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		version = results[winner].LastVersion
		for w, err := range errs {
			if w != winner {
				wantConflict(t, err, version)
			}
		}
		evs := readAggregate(t, b, "cart-1", 1)
		if int64(len(evs)) != version || evs[len(evs)-1].ID != fmt.Sprintf("r%d-w%d-%d", round, winner, winner%2) {
			t.Fatalf("round %d: the aggregate has %d events, the winner left it at %d", round, len(evs), version)
		}
	}
}

func TestEventCategoryAndGlobalOrder(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	for _, c := range []struct{ agg, cat string }{{"order-123", "order"}, {"order-1-2", "order"}, {"order", "order"}, {"-x", ""}, {"a.b-c", "a.b"}} {
		if got := Category(c.agg); got != c.cat {
			t.Errorf("Category(%q) = %q, want %q", c.agg, got, c.cat)
		}
	}
	appendEvents(t, b, "order-1", NoStream, newEvents("o1", 2)...)
	appendEvents(t, b, "customer-1", NoStream, newEvents("c1", 3)...)
	appendEvents(t, b, "order-2", NoStream, newEvents("o2", 1)...)
	appendEvents(t, b, "orderline-9", NoStream, newEvents("ol", 1)...)
	appendEvents(t, b, "order-1", 2, newEvents("o1b", 1)...)

	all, err := b.ReadEvents(ctx, 0, 0, "", 0)
	if err != nil || len(all.Events) != 8 || all.Next != 8 || all.End != 8 {
		t.Fatalf("read all: %d events, next %d, %v", len(all.Events), all.Next, err)
	}
	for i, e := range all.Events {
		if e.Position != int64(i) {
			t.Fatalf("event %d has position %d", i, e.Position)
		}
	}
	orders, err := b.ReadEvents(ctx, 0, 0, "order", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range orders.Events {
		got = append(got, fmt.Sprintf("%s/%d@%d", e.Aggregate, e.Version, e.Position))
	}
	if want := "order-1/1@0 order-1/2@1 order-2/1@5 order-1/3@7"; strings.Join(got, " ") != want {
		t.Fatalf("category order: %s, want %s", strings.Join(got, " "), want)
	}
	// Paged: max events at a time, resuming from Next.
	var paged []int64
	for pos := int64(0); pos < 8; {
		r, err := b.ReadEvents(ctx, pos, 1, "order", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Events {
			paged = append(paged, e.Position)
		}
		if r.Next <= pos {
			t.Fatalf("no progress at %d", pos)
		}
		pos = r.Next
	}
	if fmt.Sprint(paged) != "[0 1 5 7]" {
		t.Fatalf("paged category read: %v", paged)
	}
	// A long poll at the end is answered by the next append of the category.
	done := make(chan EventRead, 1)
	go func() {
		r, err := b.ReadEvents(ctx, 8, 0, "order", time.Minute)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	appendEvents(t, b, "customer-1", 3, newEvents("c1b", 1)...)
	appendEvents(t, b, "order-2", 1, newEvents("o2b", 1)...)
	r := <-done
	if len(r.Events) != 1 || r.Events[0].Aggregate != "order-2" || r.Events[0].Position != 9 {
		t.Fatalf("long poll: %+v", r)
	}
}

// A reader following the global order while appenders race sees every
// event exactly once, in position order.
func TestEventReadAllRacingAppenders(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	const appenders, appends = 4, 60
	total := 0
	for w := range appenders {
		for i := range appends {
			total += 1 + (w+i)%3
		}
	}
	seen := make(map[string]bool)
	readerDone := make(chan error, 1)
	go func() {
		pos, last := int64(0), int64(-1)
		for len(seen) < total {
			r, err := b.ReadEvents(ctx, pos, 7, "", time.Minute)
			if err != nil {
				readerDone <- err
				return
			}
			for _, e := range r.Events {
				if e.Position != last+1 {
					readerDone <- fmt.Errorf("position %d after %d", e.Position, last)
					return
				}
				last = e.Position
				if seen[e.ID] {
					readerDone <- fmt.Errorf("event %s seen twice", e.ID)
					return
				}
				seen[e.ID] = true
			}
			pos = r.Next
		}
		readerDone <- nil
	}()
	var wg sync.WaitGroup
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				agg := fmt.Sprintf("acct-%d", (w+i)%5)
				if _, err := b.AppendEvents(ctx, agg, AnyVersion, newEvents(fmt.Sprintf("w%d-%d", w, i), 1+(w+i)%3)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-readerDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the reader saw %d of %d events", len(seen), total)
	}
	// Every aggregate's versions are contiguous.
	for a := range 5 {
		evs := readAggregate(t, b, fmt.Sprintf("acct-%d", a), 1)
		for i, e := range evs {
			if e.Version != int64(i+1) {
				t.Fatalf("acct-%d: event %d has version %d", a, i, e.Version)
			}
		}
	}
}

// A crash after the log append and before the index commit: the index is
// brought up to the log at the next open.
func TestEventIndexRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	appendEvents(t, b, "ship-1", NoStream, newEvents("s1", 2)...)
	if _, err := b.ReadAggregate(ctx, "ship-1", 1, 0); err != nil { // indexed
		t.Fatal(err)
	}
	b.events.holdIndex.Store(true)
	// Appended to the log, not to the index: the overlay answers.
	appendEvents(t, b, "ship-1", 2, newEvents("s1b", 2)...)
	appendEvents(t, b, "ship-2", NoStream, newEvents("s2", 1)...)
	_, err := b.AppendEvents(ctx, "ship-1", 2, newEvents("s1c", 1))
	wantConflict(t, err, 4)
	if again, err := b.AppendEvents(ctx, "ship-2", 5, newEvents("s2", 1)); err != nil || !again.Duplicate {
		t.Fatalf("retry answered from the overlay: %+v %v", again, err)
	}
	if cp, _ := b.state.EventCheckpoint(); cp != 2 {
		t.Fatalf("checkpoint %d while the index is held, want 2", cp)
	}
	b.Close() // the index writes fail: as a crash

	b = openBroker(t, dir)
	defer b.Close()
	if cp, _ := b.state.EventCheckpoint(); cp != 5 {
		t.Fatalf("checkpoint after recovery %d, want 5", cp)
	}
	evs := readAggregate(t, b, "ship-1", 1)
	if len(evs) != 4 || evs[3].ID != "s1b-1" || evs[3].Version != 4 {
		t.Fatalf("ship-1 after recovery: %+v", evs)
	}
	_, err = b.AppendEvents(ctx, "ship-1", 2, newEvents("s1d", 1))
	wantConflict(t, err, 4)
	if again, err := b.AppendEvents(ctx, "ship-1", 0, newEvents("s1b", 2)); err != nil || !again.Duplicate || again.FirstVersion != 3 {
		t.Fatalf("retry after recovery: %+v %v", again, err)
	}
	res := appendEvents(t, b, "ship-2", 1, newEvents("s2b", 1)...)
	if res.FirstVersion != 2 || res.FirstPosition != 5 {
		t.Fatalf("append after recovery: %+v", res)
	}
}

// The event store's entry points check the principal: rules of resource
// stream named "$events:…" cover aggregates and categories.
func TestEventAuthorization(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	appendEvents(t, b, "invoice-1", NoStream, newEvents("i", 1)...) // the server's own context
	alice := WithPrincipal(context.Background(), auth.NewPrincipal("alice", false, []auth.Permission{
		{Resource: auth.ResourceStream, Name: EventsAuthPrefix + "order-*", Actions: []auth.Action{auth.ActionPublish, auth.ActionConsume}},
		{Resource: auth.ResourceStream, Name: "orders", Actions: []auth.Action{auth.ActionPublish, auth.ActionConsume}},
	}))
	if _, err := b.AppendEvents(alice, "order-1", NoStream, newEvents("o", 1)); err != nil {
		t.Fatalf("append to an allowed aggregate: %v", err)
	}
	if _, err := b.ReadAggregate(alice, "order-1", 1, 0); err != nil {
		t.Fatalf("read an allowed aggregate: %v", err)
	}
	if r, err := b.ReadEvents(alice, 0, 0, "order", 0); err != nil || len(r.Events) != 1 {
		t.Fatalf("read an allowed category: %+v %v", r, err)
	}
	for name, err := range map[string]error{
		"append":        func() error { _, err := b.AppendEvents(alice, "invoice-1", AnyVersion, newEvents("x", 1)); return err }(),
		"read":          func() error { _, err := b.ReadAggregate(alice, "invoice-1", 1, 0); return err }(),
		"category":      func() error { _, err := b.ReadEvents(alice, 0, 0, "invoice", 0); return err }(),
		"every event":   func() error { _, err := b.ReadEvents(alice, 0, 0, "", 0); return err }(),
		"stream's name": func() error { _, err := b.AppendEvents(alice, "orders", AnyVersion, newEvents("y", 1)); return err }(),
	} {
		var fe *ForbiddenError
		if !errors.As(err, &fe) || !strings.HasPrefix(fe.Name, EventsAuthPrefix) {
			t.Errorf("%s: got %v, want forbidden on %s…", name, err, EventsAuthPrefix)
		}
	}
}

// Below the disk watermark new events are refused; a retry of stored ones
// is still answered, and reads go on.
func TestEventAppendRefusedWhenDiskLow(t *testing.T) {
	free := newFakeFree(plenty)
	b := openWatermarkBroker(t, t.TempDir(), nil, free, time.Second)
	defer b.Close()
	ctx := context.Background()
	stored := newEvents("w", 2)
	appendEvents(t, b, "order-1", NoStream, stored...)
	free.free.Store(tooLittle)
	waitDisk(t, b, true)
	if _, err := b.AppendEvents(ctx, "order-1", 2, newEvents("x", 1)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("append below the watermark: %v", err)
	}
	if res, err := b.AppendEvents(ctx, "order-1", NoStream, stored); err != nil || !res.Duplicate {
		t.Fatalf("a retry below the watermark: %+v %v", res, err)
	}
	if evs := readAggregate(t, b, "order-1", 1); len(evs) != 2 {
		t.Fatalf("read below the watermark: %d events", len(evs))
	}
	free.free.Store(plenty)
	waitDisk(t, b, false)
	appendEvents(t, b, "order-1", 2, newEvents("x", 1)...)
}
