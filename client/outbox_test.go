package weir_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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

// relayStreams are the streams writeOrders' events go to.
var relayStreams = []string{"outbox.event.order", "outbox.event.order_line"}

// checkRelayed checks that the streams hold each of n events exactly once,
// in id order, with key, type and payload. With orderedFrom, only the
// records of each stream from that index on must be in id order (several
// relays sharing a table keep the order within a batch, not across
// relays); it returns how many records each stream holds.
func checkRelayed(t *testing.T, c *weir.Client, n int, orderedFrom ...map[string]int) map[string]int {
	t.Helper()
	seen := make(map[string]bool)
	counts := make(map[string]int)
	for _, stream := range relayStreams {
		var ids []string
		recs := readAll(t, c, stream)
		counts[stream] = len(recs)
		for _, r := range recs {
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
		if len(orderedFrom) > 0 {
			ids = ids[min(orderedFrom[0][stream], len(ids)):]
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
	return counts
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

// checkOutboxHeaderColumns adds two header columns to the outbox of db
// (alter: the ALTER TABLE statements of its dialect), writes events with
// and without their headers and relays them: the non-null ones are headers
// of the records, after message-id and type. Header names without a column
// and bad column lists are refused, and nothing is written then.
func checkOutboxHeaderColumns(t *testing.T, c *weir.Client, db *sql.DB, dialect weir.OutboxDialect, alter ...string) {
	t.Helper()
	ctx := t.Context()
	for _, q := range alter {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ob := weir.Outbox{Dialect: dialect, HeaderColumns: []string{"tenant", "trace_parent:traceparent"}}
	before := countRows(t, db)
	err := ob.Write(ctx, db,
		weir.OutboxEvent{AggregateType: "invoice", AggregateID: "1", Type: "Sent"},
		weir.OutboxEvent{AggregateType: "invoice", AggregateID: "2", Type: "Sent", Headers: map[string]string{"region": "eu"}})
	if !errors.Is(err, weir.ErrInvalidOutboxEvent) || countRows(t, db) != before {
		t.Fatalf("a header without a column: %v, %d rows (was %d)", err, countRows(t, db), before)
	}
	for _, bad := range [][]string{{"payload"}, {"tenant:message-id"}, {"a b"}, {"tenant", "tenant"}, {"tenant", "other:tenant"}, {"x:"}, {"1x"}} {
		err := weir.Outbox{Dialect: dialect, HeaderColumns: bad}.Write(ctx, db, weir.OutboxEvent{AggregateType: "invoice", AggregateID: "1", Type: "Sent"})
		if !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("HeaderColumns %q: %v, want ErrInvalidArgument", bad, err)
		}
		relay := &weir.OutboxRelay{DB: db, Client: c, Outbox: weir.Outbox{Dialect: dialect, HeaderColumns: bad}}
		if _, err := relay.RelayOnce(ctx); !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("relay with HeaderColumns %q: %v, want ErrInvalidArgument", bad, err)
		}
	}
	if n := countRows(t, db); n != before {
		t.Fatalf("%d rows after refused writes, want %d", n, before)
	}

	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	events := []weir.OutboxEvent{
		{AggregateType: "invoice", AggregateID: "1", Type: "Sent", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "acme", "traceparent": trace}},
		{AggregateType: "invoice", AggregateID: "2", Type: "Sent", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "globex"}},
		{AggregateType: "invoice", AggregateID: "3", Type: "Sent", Payload: []byte(`{}`)},
		{AggregateType: "invoice", AggregateID: "4", Type: "Sent", Payload: []byte(`{}`), Headers: map[string]string{"tenant": ""}},
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Write(ctx, tx, events...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	runRelays(t, db, c, ob, 1)
	want := map[string]string{
		"1": "message-id type tenant=acme traceparent=" + trace,
		"2": "message-id type tenant=globex",
		"3": "message-id type",
		"4": "message-id type tenant=",
	}
	recs := readAll(t, c, "outbox.event.invoice")
	if len(recs) != len(want) {
		t.Fatalf("%d records on outbox.event.invoice, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		var got []string
		for _, h := range r.Headers {
			if h.Key == weir.HeaderMessageID || h.Key == weir.HeaderType {
				got = append(got, h.Key)
			} else {
				got = append(got, h.Key+"="+string(h.Value))
			}
		}
		if s := strings.Join(got, " "); s != want[string(r.Key)] {
			t.Errorf("event %s: headers %q, want %q", r.Key, s, want[string(r.Key)])
		}
	}
}

func TestOutboxHeaderColumnsSQLite(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db := openSQLite(t)
	checkOutboxHeaderColumns(t, c, db, weir.OutboxSQLite,
		`ALTER TABLE outbox ADD COLUMN tenant TEXT`, `ALTER TABLE outbox ADD COLUMN trace_parent TEXT`)
}
