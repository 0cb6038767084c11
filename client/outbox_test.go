package weir_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	weir "github.com/weirmq/weir/client"
)

// readAll returns every record of partition 0 of a stream.
func readAll(t *testing.T, c *weir.Client, stream string) []weir.Record {
	t.Helper()
	var out []weir.Record
	var offset int64
	for {
		res, err := c.Fetch(t.Context(), stream, 0, offset, 0, 0)
		if errors.Is(err, weir.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatalf("fetch %s at %d: %v", stream, offset, err)
		}
		out = append(out, res.Records...)
		if res.NextOffset >= res.HighWater || len(res.Records) == 0 {
			return out
		}
		offset = res.NextOffset
	}
}

func openSQLite(t *testing.T) *sql.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(wal)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(weir.OutboxTableSQLite); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE orders (id INTEGER PRIMARY KEY, total TEXT)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestOutboxWriteValidates(t *testing.T) {
	db := openSQLite(t)
	ob := weir.Outbox{Dialect: weir.OutboxSQLite}
	err := ob.Write(t.Context(), db, weir.OutboxEvent{AggregateType: "order", AggregateID: "1"})
	if !errors.Is(err, weir.ErrInvalidOutboxEvent) || !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("event without a type: %v, want ErrInvalidOutboxEvent", err)
	}
	for _, table := range []string{"outbox; DROP TABLE orders", "a.b.c", "1outbox", "x.\"y\""} {
		err := weir.Outbox{Table: table, Dialect: weir.OutboxSQLite}.Write(t.Context(), db, weir.OutboxEvent{AggregateType: "order", AggregateID: "1", Type: "T"})
		if !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("table %q: %v, want ErrInvalidArgument", table, err)
		}
	}
	relay := &weir.OutboxRelay{DB: db}
	if err := relay.Run(t.Context()); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("relay without a client: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows after refused writes: %d (%v)", n, err)
	}
}

// writeOrders commits n orders with an outbox event each, ids first..,
// and one transaction that rolls back (its event must never appear).
func writeOrders(t *testing.T, db *sql.DB, ob weir.Outbox, first, n int) {
	t.Helper()
	ctx := t.Context()
	for i := first; i < first+n; i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO orders (id, total) VALUES (%d, '9.90')`, i)); err != nil {
			t.Fatal(err)
		}
		aggregate := "order"
		if i%3 == 0 {
			aggregate = "order line" // another stream: outbox.event.order_line
		}
		if err := ob.Write(ctx, tx, weir.OutboxEvent{AggregateType: aggregate, AggregateID: fmt.Sprint(i), Type: "OrderPlaced",
			Payload: fmt.Appendf(nil, `{"order": %d}`, i)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Write(ctx, tx, weir.OutboxEvent{ID: "rolled-back", AggregateType: "order", AggregateID: "x", Type: "Never"}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
}

// checkRelayed checks that the streams hold each of n events exactly once,
// in id order, with key, type and payload.
func checkRelayed(t *testing.T, c *weir.Client, n int) {
	t.Helper()
	seen := make(map[string]bool)
	for _, stream := range []string{"outbox.event.order", "outbox.event.order_line"} {
		var ids []string
		for _, r := range readAll(t, c, stream) {
			id, _ := r.Header(weir.HeaderMessageID)
			typ, _ := r.Header(weir.HeaderType)
			if seen[string(id)] {
				t.Errorf("%s: event %s seen twice", stream, id)
			}
			seen[string(id)] = true
			ids = append(ids, string(id))
			if string(typ) != "OrderPlaced" || string(r.Value) != fmt.Sprintf(`{"order": %s}`, r.Key) {
				t.Errorf("%s: event %s = key %q value %q type %q", stream, id, r.Key, r.Value, typ)
			}
		}
		if !slices.IsSorted(ids) {
			t.Errorf("%s: events not in id order: %v", stream, ids)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events on the streams, want %d", len(seen), n)
	}
	if seen["rolled-back"] {
		t.Error("the event of a rolled-back transaction was published")
	}
}

// relayKilledAfterPublish runs a relay that stops (its context cancelled,
// as a process killed) right after the broker confirmed its first batch,
// before the rows are deleted.
func relayKilledAfterPublish(t *testing.T, db *sql.DB, c *weir.Client, ob weir.Outbox) {
	t.Helper()
	ctx, kill := context.WithCancel(t.Context())
	relay := &weir.OutboxRelay{DB: db, Client: c, Outbox: ob, BatchSize: 10, OnPublished: func(int) { kill() }}
	if err := relay.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// runRelays runs k relays until the outbox is empty.
func runRelays(t *testing.T, db *sql.DB, c *weir.Client, ob weir.Outbox, k int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, k)
	for i := range k {
		relay := &weir.OutboxRelay{DB: db, Client: c, Outbox: ob, BatchSize: 7, PollInterval: 20 * time.Millisecond, LeaseDuration: 5 * time.Second}
		wg.Go(func() { errs[i] = relay.Run(ctx) })
	}
	for countRows(t, db) > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db); n != 0 {
		t.Fatalf("%d rows left in the outbox", n)
	}
}

func TestOutboxRelaySQLite(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db := openSQLite(t)
	ob := weir.Outbox{Dialect: weir.OutboxSQLite}
	writeOrders(t, db, ob, 1, 30)

	relayKilledAfterPublish(t, db, c, ob)
	if n := countRows(t, db); n != 30 {
		t.Fatalf("after the relay died: %d rows, want all 30 still there", n)
	}
	if n := len(readAll(t, c, "outbox.event.order")) + len(readAll(t, c, "outbox.event.order_line")); n != 10 {
		t.Fatalf("after the relay died: %d events published, want its first batch of 10", n)
	}
	// Restarted, two relays at once (one holds the lease): the first batch
	// is published again and dropped by the streams' dedup window.
	runRelays(t, db, c, ob, 2)
	checkRelayed(t, c, 30)

	// Events written later are relayed too.
	writeOrders(t, db, ob, 31, 5)
	runRelays(t, db, c, ob, 1)
	checkRelayed(t, c, 35)
}
