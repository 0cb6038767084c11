package postgres_test

// The SDK's outbox (client/outbox*.go) against a real PostgreSQL: events
// written in the caller's transaction (database/sql and pgx), and the
// polling relay, which works on PostgreSQL too (FOR UPDATE SKIP LOCKED),
// publishing to a real Weir node on loopback.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/weirmq/weir"
	client "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

func TestOutboxRelayPostgres(t *testing.T) {
	ctx, c, db, pg := startRelayEnv(t)
	if _, err := db.ExecContext(ctx, client.OutboxTablePostgres+"; CREATE TABLE orders (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}

	// Writers: database/sql transactions, and pgx transactions through the
	// adapter; every other one rolled back.
	const n = 40
	for i := range n {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders VALUES ($1)", i); err != nil {
			t.Fatal(err)
		}
		if err := client.WriteOutbox(ctx, tx, client.OutboxEvent{AggregateType: "order", AggregateID: fmt.Sprint(i), Type: "OrderPlaced",
			Payload: fmt.Appendf(nil, `{"order": %d}`, i)}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, pg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for i, commit := range []bool{true, false} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		exec := client.OutboxExecFunc(func(ctx context.Context, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
		if err := client.WriteOutbox(ctx, exec, client.OutboxEvent{AggregateType: "customer", AggregateID: fmt.Sprint("c", i), Type: "Registered", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rows := func() int {
		var k int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM outbox").Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if k := rows(); k != n+1 {
		t.Fatalf("%d rows in the outbox, want %d", k, n+1)
	}

	// A relay dies after the broker confirmed its first batch.
	killCtx, kill := context.WithCancel(ctx)
	dying := &client.OutboxRelay{DB: db, Client: c, BatchSize: 15, OnPublished: func(int) { kill() }}
	if err := dying.Run(killCtx); err != nil {
		t.Fatal(err)
	}
	if k := rows(); k != n+1 {
		t.Fatalf("after the relay died: %d rows, want all %d", k, n+1)
	}
	// Two relays share the rest (and the first batch again).
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		r := &client.OutboxRelay{DB: db, Client: c, BatchSize: 4, PollInterval: 20 * time.Millisecond}
		wg.Go(func() { errs[i] = r.Run(runCtx) })
	}
	for rows() > 0 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	seen := make(map[string]bool)
	for _, stream := range []string{"outbox.event.order", "outbox.event.customer"} {
		var offset int64
		for {
			res, err := c.Fetch(ctx, stream, 0, offset, 0, 0)
			if err != nil {
				t.Fatalf("fetch %s: %v", stream, err)
			}
			for _, r := range res.Records {
				id, _ := r.Header(client.HeaderMessageID)
				typ, _ := r.Header(client.HeaderType)
				if seen[string(id)] {
					t.Errorf("%s: event %s delivered twice", stream, id)
				}
				seen[string(id)] = true
				if stream == "outbox.event.order" && (string(typ) != "OrderPlaced" || string(r.Value) != fmt.Sprintf(`{"order": %s}`, r.Key)) {
					t.Errorf("event %s: key %q value %q type %q", id, r.Key, r.Value, typ)
				}
			}
			if res.NextOffset >= res.HighWater || len(res.Records) == 0 {
				break
			}
			offset = res.NextOffset
		}
	}
	if len(seen) != n+1 {
		t.Errorf("%d distinct events published, want %d", len(seen), n+1)
	}
}

// startRelayEnv starts a PostgreSQL server and a Weir node for a relay
// test, and returns a context for the test, a client of the node and a
// database/sql handle on the server, all closed at the test's end.
func startRelayEnv(t *testing.T) (context.Context, *client.Client, *sql.DB, *pgtest.Server) {
	t.Helper()
	pg := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	node, err := weir.Open(ctx, weir.Options{Dir: t.TempDir(), HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	c, err := node.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	db, err := sql.Open("pgx", pg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return ctx, c, db, pg
}
