package postgres_test

// The SDK outbox's header columns (client.Outbox.HeaderColumns) against a
// real PostgreSQL: written with database/sql and through pgx, relayed as
// headers of the records (a null adds none), as the CDC router's headers
// option reads the same columns.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	client "github.com/weirmq/weir/client"
)

func TestOutboxRelayHeaderColumnsPostgres(t *testing.T) {
	ctx, c, db, pg := startRelayEnv(t)
	if _, err := db.ExecContext(ctx, client.OutboxTablePostgres+
		"; ALTER TABLE outbox ADD COLUMN tenant varchar(255), ADD COLUMN trace_parent varchar(55)"); err != nil {
		t.Fatal(err)
	}
	ob := client.Outbox{HeaderColumns: []string{"tenant", "trace_parent:traceparent"}}

	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if err := ob.Write(ctx, db,
		client.OutboxEvent{AggregateType: "invoice", AggregateID: "1", Type: "Sent", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "acme", "traceparent": trace}},
		client.OutboxEvent{AggregateType: "invoice", AggregateID: "2", Type: "Sent", Payload: []byte(`{}`)},
	); err != nil {
		t.Fatal(err)
	}
	// A header without a column is refused, nothing written.
	err := ob.Write(ctx, db, client.OutboxEvent{AggregateType: "invoice", AggregateID: "9", Type: "Sent", Headers: map[string]string{"region": "eu"}})
	if !errors.Is(err, client.ErrInvalidOutboxEvent) {
		t.Fatalf("a header without a column: %v", err)
	}
	conn, err := pgx.Connect(ctx, pg.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec := client.OutboxExecFunc(func(ctx context.Context, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	})
	if err := ob.Write(ctx, exec, client.OutboxEvent{AggregateType: "invoice", AggregateID: "3", Type: "Sent", Payload: []byte(`{}`), Headers: map[string]string{"tenant": "globex"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	relay := &client.OutboxRelay{DB: db, Client: c, Outbox: ob}
	if n, err := relay.RelayOnce(ctx); err != nil || n != 3 {
		t.Fatalf("relay: %d events, %v", n, err)
	}
	res, err := c.Fetch(ctx, "outbox.event.invoice", 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"1": "message-id type content-type=application/json tenant=acme traceparent=" + trace,
		"2": "message-id type content-type=application/json",
		"3": "message-id type content-type=application/json tenant=globex",
	}
	if len(res.Records) != len(want) {
		t.Fatalf("%d records, want %d", len(res.Records), len(want))
	}
	for _, r := range res.Records {
		var got []string
		for _, h := range r.Headers {
			if h.Key == client.HeaderMessageID || h.Key == client.HeaderType {
				got = append(got, h.Key)
			} else {
				got = append(got, fmt.Sprintf("%s=%s", h.Key, h.Value))
			}
		}
		if s := strings.Join(got, " "); s != want[string(r.Key)] {
			t.Errorf("event %s: headers %q, want %q", r.Key, s, want[string(r.Key)])
		}
	}
}

// A relayed record has the content-type application/json when the payload
// column is json or jsonb and the payload is not null, as the CDC outbox
// router gives it; a text payload has none.
func TestOutboxRelayContentTypePostgres(t *testing.T) {
	ctx, c, db, _ := startRelayEnv(t)
	textTable := strings.Replace(client.OutboxTablePostgres, "outbox", "outbox_text", 1)
	textTable = strings.Replace(textTable, "jsonb", "text ", 1)
	if _, err := db.ExecContext(ctx, client.OutboxTablePostgres+"; "+textTable); err != nil {
		t.Fatal(err)
	}
	jsonb, text := client.Outbox{}, client.Outbox{Table: "outbox_text"}
	if err := jsonb.Write(ctx, db,
		client.OutboxEvent{AggregateType: "json", AggregateID: "1", Type: "T", Payload: []byte(`{"a": 1}`)},
		client.OutboxEvent{AggregateType: "json", AggregateID: "2", Type: "T"}, // a null payload: a tombstone
	); err != nil {
		t.Fatal(err)
	}
	if err := text.Write(ctx, db, client.OutboxEvent{AggregateType: "text", AggregateID: "3", Type: "T", Payload: []byte(`{"a": 1}`)}); err != nil {
		t.Fatal(err)
	}
	for _, ob := range []client.Outbox{jsonb, text} {
		relay := &client.OutboxRelay{DB: db, Client: c, Outbox: ob}
		if _, err := relay.RelayOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"1": "application/json", "2": "", "3": ""}
	for _, stream := range []string{"outbox.event.json", "outbox.event.text"} {
		res, err := c.Fetch(ctx, stream, 0, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			ct, _ := r.Header(client.HeaderContentType)
			if string(ct) != want[string(r.Key)] {
				t.Errorf("event %s of %s: content-type %q, want %q", r.Key, stream, ct, want[string(r.Key)])
			}
			delete(want, string(r.Key))
		}
	}
	if len(want) != 0 {
		t.Errorf("events not relayed: %v", want)
	}
}
