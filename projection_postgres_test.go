package weir_test

// The SDK's CQRS projection runner (client/projection.go) against a real
// PostgreSQL through pgx's database/sql driver. It lives in the server
// module, which starts PostgreSQL for tests (pgtest) and embeds a node;
// the SDK's own tests cover SQLite and the crash of a runner.

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/weirmq/weir"
	client "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

const pgReadModel = `CREATE TABLE applied (
    id    text   PRIMARY KEY,
    times bigint NOT NULL,
    value text   NOT NULL,
    place text   NOT NULL
)`

func pgCountApply(id func(*client.ProjectionEvent) string) func(context.Context, *sql.Tx, *client.ProjectionEvent) error {
	return func(ctx context.Context, tx *sql.Tx, ev *client.ProjectionEvent) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO applied (id, times, value, place) VALUES ($1, 1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET times = applied.times + 1`, id(ev), string(ev.Value), ev.String())
		return err
	}
}

func pgReadApplied(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT id, times, value, place FROM applied`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, value, place string
		var times int64
		if err := rows.Scan(&id, &times, &value, &place); err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%d %s %s", times, value, place)
	}
	return out
}

// pgProject runs p until the read model has n rows, then stops it.
func pgProject(t *testing.T, c *client.Client, db *sql.DB, p client.Projection, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Project(ctx, p) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var rows int
		if err := db.QueryRow(`SELECT count(*) FROM applied`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows == n {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Project stopped with %d of %d rows: %v", rows, n, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d rows after 2 minutes", rows, n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestProjectionPostgres(t *testing.T) {
	ctx, c, db := startProjectionEnv(t)

	// A stream of three partitions.
	if _, err := c.CreateStream(ctx, client.StreamConfig{Name: "orders", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	var recs []client.Record
	for i := range 120 {
		recs = append(recs, client.Record{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "ev-%d", i)})
	}
	if _, err := c.Publish(ctx, "orders", recs...); err != nil {
		t.Fatal(err)
	}
	reset := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM applied`)
		return err
	}
	byValue := func(ev *client.ProjectionEvent) string { return string(ev.Value) }
	stream := client.Projection{Name: "orders", DB: db, Dialect: client.OutboxPostgres, Stream: "orders", BatchSize: 16,
		Apply: pgCountApply(byValue), Reset: reset}
	pgProject(t, c, db, stream, 120)
	got := pgReadApplied(t, db)
	for i := range 120 {
		v := fmt.Sprintf("ev-%d", i)
		if row := got[v]; !strings.HasPrefix(row, "1 "+v+" ") {
			t.Errorf("event %s: %q, want applied once", v, row)
		}
	}
	var sum int64
	if err := db.QueryRow(`SELECT sum(next_position) FROM ` + client.ProjectionTable + ` WHERE name = 'orders'`).Scan(&sum); err != nil || sum != 120 {
		t.Errorf("checkpoints sum to %d (%v), want 120", sum, err)
	}

	// Rebuilt, the read model is the same.
	if err := c.RebuildProjection(ctx, stream); err != nil {
		t.Fatal(err)
	}
	if rows := pgReadApplied(t, db); len(rows) != 0 {
		t.Fatalf("%d rows after the rebuild", len(rows))
	}
	pgProject(t, c, db, stream, 120)
	if again := pgReadApplied(t, db); !maps.Equal(got, again) {
		t.Errorf("rebuilt read model differs:\nbefore %v\nafter  %v", got, again)
	}

	// An event-store category, into the same (cleared) table.
	if err := c.RebuildProjection(ctx, stream); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 20 {
		aggregate := fmt.Sprintf("cart-%d", i%3)
		if i%4 == 0 {
			aggregate = "user-1"
		}
		id := fmt.Sprintf("evt-%02d", i)
		if _, err := c.Append(ctx, aggregate, client.AnyVersion, client.EventData{ID: id, Type: "Changed", Data: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
		if client.Category(aggregate) == "cart" {
			want[id] = fmt.Sprint(i)
		}
	}
	carts := client.Projection{Name: "carts", DB: db, Dialect: client.OutboxPostgres, Category: "cart", BatchSize: 4,
		Apply: pgCountApply(func(ev *client.ProjectionEvent) string { return ev.Event.ID }), Reset: reset}
	pgProject(t, c, db, carts, len(want))
	got = pgReadApplied(t, db)
	for id, value := range want {
		if row := got[id]; !strings.HasPrefix(row, "1 "+value+" ") {
			t.Errorf("event %s: %q, want applied once with value %s", id, row, value)
		}
	}
	var position int64
	if err := db.QueryRow(`SELECT next_position FROM ` + client.ProjectionTable + ` WHERE name = 'carts' AND partition_id = -1`).Scan(&position); err != nil || position < 19 {
		t.Errorf("carts checkpoint at %d (%v), want past the last cart event", position, err)
	}
}

// TestProjectionPostgresConcurrentStart starts four projections at once on
// a database without the checkpoint table: each creates it, and none fails
// for another's concurrent CREATE TABLE IF NOT EXISTS.
func TestProjectionPostgresConcurrentStart(t *testing.T) {
	ctx, c, db := startProjectionEnv(t)
	if _, err := c.CreateStream(ctx, client.StreamConfig{Name: "s", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var recs []client.Record
	for i := range 10 {
		recs = append(recs, client.Record{Value: fmt.Appendf(nil, "ev-%d", i)})
	}
	if _, err := c.Publish(ctx, "s", recs...); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 4)
	for i := range 4 {
		name := fmt.Sprintf("p%d", i)
		p := client.Projection{Name: name, DB: db, Dialect: client.OutboxPostgres, Stream: "s",
			Apply: pgCountApply(func(ev *client.ProjectionEvent) string { return name + "/" + string(ev.Value) })}
		go func() { done <- c.Project(runCtx, p) }()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for rows := 0; rows != 40; {
		if err := db.QueryRow(`SELECT count(*) FROM applied`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("a projection stopped with %d of 40 rows: %v", rows, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 40 rows after 2 minutes", rows)
		}
	}
	cancel()
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for id, row := range pgReadApplied(t, db) {
		if !strings.HasPrefix(row, "1 ") {
			t.Errorf("%s: %q, want applied once", id, row)
		}
	}
}

// startProjectionEnv starts a PostgreSQL server holding the read model's
// tables and a Weir node, and returns the test's context, a client of the
// node and a database/sql handle, all closed at the test's end.
func startProjectionEnv(t *testing.T) (context.Context, *client.Client, *sql.DB) {
	t.Helper()
	pg := pgtest.Start(t)
	pg.Exec(t, pgReadModel)
	db, err := sql.Open("pgx", pg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	node, err := weir.Open(ctx, weir.Options{Dir: t.TempDir(), FSync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	c, err := node.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c, db
}
