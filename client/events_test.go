package weir_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

func TestEventsAppendReadAndConflicts(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()

	placed := weir.EventData{ID: "e-1", Type: "OrderPlaced", Data: []byte(`{"total":10}`), ContentType: "application/json", CorrelationID: "req-9"}
	paid := weir.EventData{ID: "e-2", Type: "OrderPaid", CausationID: "e-1", CorrelationID: "req-9", Metadata: []byte("m")}
	res, err := c.Append(ctx, "order-1", weir.NoStream, placed, paid)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstVersion != 1 || res.LastVersion != 2 || res.FirstPosition != 0 || res.LastPosition != 1 || res.Duplicate {
		t.Fatalf("append: %+v", res)
	}
	// A conflict says the current version.
	_, err = c.Append(ctx, "order-1", 1, weir.EventData{Type: "OrderShipped"})
	var conflict *weir.VersionConflictError
	if !errors.As(err, &conflict) || !errors.Is(err, weir.ErrVersionConflict) || !errors.Is(err, weir.ErrAborted) {
		t.Fatalf("append at a stale version: %v", err)
	}
	if conflict.Current != 2 || conflict.Expected != 1 || conflict.Aggregate != "order-1" {
		t.Fatalf("conflict: %+v", conflict)
	}
	if _, err := c.Append(ctx, "order-1", weir.NoStream, weir.EventData{Type: "X"}); !errors.Is(err, weir.ErrVersionConflict) {
		t.Fatalf("no stream on an existing aggregate: %v", err)
	}
	if _, err := c.Append(ctx, "order-2", weir.StreamExists, weir.EventData{Type: "X"}); !errors.Is(err, weir.ErrVersionConflict) {
		t.Fatalf("stream exists on a new aggregate: %v", err)
	}
	// The same batch again: the first result, marked duplicate.
	again, err := c.Append(ctx, "order-1", weir.NoStream, placed, paid)
	if err != nil || !again.Duplicate || again.FirstVersion != 1 || again.LastPosition != 1 {
		t.Fatalf("retry: %+v %v", again, err)
	}
	// An id stored elsewhere is refused.
	if _, err := c.Append(ctx, "order-3", weir.AnyVersion, placed); !errors.Is(err, weir.ErrAlreadyExists) {
		t.Fatalf("a stored id on another aggregate: %v", err)
	}
	if _, err := c.Append(ctx, "", weir.AnyVersion, weir.EventData{Type: "X"}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("no aggregate: %v", err)
	}
	if _, err := c.Append(ctx, "customer-1", 0, weir.EventData{Type: "CustomerRegistered"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "order-1", 2, weir.EventData{Type: "OrderShipped"}); err != nil {
		t.Fatal(err)
	}

	evs, err := c.Read(ctx, "order-1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].ID != "e-1" || evs[1].CausationID != "e-1" || evs[1].CorrelationID != "req-9" ||
		string(evs[1].Metadata) != "m" || evs[0].ContentType != "application/json" || evs[2].Type != "OrderShipped" || evs[2].Version != 3 {
		t.Fatalf("read order-1: %+v", evs)
	}
	if evs[2].ID == "" || evs[0].Time.IsZero() {
		t.Fatalf("generated id %q, time %v", evs[2].ID, evs[0].Time)
	}
	if evs, err := c.Read(ctx, "order-1", 3); err != nil || len(evs) != 1 {
		t.Fatalf("read from version 3: %+v %v", evs, err)
	}
	all, next, err := c.ReadAll(ctx, 0, 0, "")
	if err != nil || len(all) != 4 || next != 4 {
		t.Fatalf("read all: %d events, next %d, %v", len(all), next, err)
	}
	orders, next, err := c.ReadAll(ctx, 0, 0, "order")
	if err != nil || len(orders) != 3 || next != 4 || orders[2].Position != 3 {
		t.Fatalf("read category order: %+v, next %d, %v", orders, next, err)
	}
}

// Writers at the same expected version through the SDK: exactly one wins.
func TestEventsConcurrentWritersOneWins(t *testing.T) {
	srv := startServer(t)
	writers := []*weir.Client{srv.dial(t), srv.dial(t), srv.dial(t, weir.WithProtocol(weir.ConnectJSON))}
	ctx := t.Context()
	version := int64(0)
	for round := range 10 {
		var wg sync.WaitGroup
		results := make([]*weir.AppendResult, len(writers))
		errs := make([]error, len(writers))
		for w, c := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[w], errs[w] = c.Append(ctx, "account-1", weir.ExpectedVersion(version), weir.EventData{Type: "Withdrawn", Data: fmt.Appendf(nil, "%d/%d", round, w)})
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
			} else if !errors.Is(err, weir.ErrVersionConflict) {
				t.Fatalf("round %d: writer %d: %v", round, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		version = results[winner].LastVersion
		if version != int64(round+1) {
			t.Fatalf("round %d: version %d", round, version)
		}
	}
}

// A subscription racing appenders sees every event once, in order; it
// resumes from its position across a server restart and a new subscription.
func TestEventsSubscribeAllResumes(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	appendSome := func(prefix string, appenders, appends int) int {
		var wg sync.WaitGroup
		for w := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range appends {
					agg := fmt.Sprintf("%s-%d", prefix, (w+i)%4)
					if _, err := c.Append(ctx, agg, weir.AnyVersion, weir.EventData{Type: "T", ID: fmt.Sprintf("%s-%d-%d", prefix, w, i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return appenders * appends
	}
	sub, err := c.SubscribeAll(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	total := 0
	done := make(chan int)
	go func() { done <- appendSome("acct", 3, 40) }()
	seen := map[string]bool{}
	last := int64(-1)
	expect := func(n int) {
		for len(seen) < n {
			e, err := sub.Next()
			if err != nil {
				t.Fatalf("next after %d events: %v", len(seen), err)
			}
			if e.Position != last+1 || seen[e.ID] {
				t.Fatalf("event %s at %d after %d (seen before: %v)", e.ID, e.Position, last, seen[e.ID])
			}
			last = e.Position
			seen[e.ID] = true
		}
	}
	total += <-done
	expect(total)
	if sub.Position() != int64(total) {
		t.Fatalf("position %d after %d events", sub.Position(), total)
	}

	// The server restarts: the subscription reconnects from its position.
	srv.restart()
	total += appendSome("more", 2, 10)
	expect(total)

	// A new subscription from the stored position sees only what follows.
	pos := sub.Position()
	sub.Close()
	if _, err := sub.Next(); err == nil {
		t.Fatal("Next after Close returned an event")
	}
	total += appendSome("late", 1, 5)
	sub2, err := c.SubscribeAll(ctx, pos)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	sub = sub2
	expect(total)
}

func TestEventsSubscribeCategory(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	for i, agg := range []string{"order-1", "customer-1", "order-2", "orderline-1", "customer-2", "order-1"} {
		if _, err := c.Append(ctx, agg, weir.AnyVersion, weir.EventData{Type: "T", ID: fmt.Sprint("id-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.SubscribeCategory(ctx, "order", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	for range 3 {
		e, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s@%d", e.Aggregate, e.Position))
	}
	if fmt.Sprint(got) != "[order-1@0 order-2@2 order-1@5]" {
		t.Fatalf("category order: %v", got)
	}
	if p := sub.Position(); p != 6 {
		t.Fatalf("position %d, want 6", p)
	}
	// From the end: only new events of the category.
	tail, err := c.SubscribeCategory(ctx, "customer", weir.FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	if _, err := c.Append(ctx, "order-9", weir.AnyVersion, weir.EventData{Type: "T"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(ctx, "customer-3", weir.NoStream, weir.EventData{Type: "Registered"}); err != nil {
		t.Fatal(err)
	}
	nextCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go func() { <-nextCtx.Done(); tail.Close() }()
	e, err := tail.Next()
	if err != nil || e.Aggregate != "customer-3" || e.Position != 7 {
		t.Fatalf("tail from the end: %+v %v", e, err)
	}
	if _, err := c.SubscribeCategory(ctx, "", 0); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("no category: %v", err)
	}
}
