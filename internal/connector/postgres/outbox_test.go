package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
)

// outboxDDL is Debezium's outbox table, with two more columns for headers.
const outboxDDL = `CREATE TABLE public.outbox (id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL,
	aggregateid varchar(255) NOT NULL, type varchar(255) NOT NULL, payload jsonb, tenant text, trace text);
	CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)`

// rawRecords returns every record of a stream's partitions (none when the
// stream does not exist).
func rawRecords(t testing.TB, b *broker.Broker, stream string) []broker.Record {
	t.Helper()
	info, err := b.DescribeStream(stream)
	if errors.Is(err, broker.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []broker.Record
	for p := range int32(len(info.Partitions)) {
		var offset int64
		for {
			res, err := b.Fetch(context.Background(), stream, p, offset, 1<<20, 0)
			if err != nil {
				t.Fatalf("fetch %s/%d at %d: %v", stream, p, offset, err)
			}
			out = append(out, res.Records...)
			if res.NextOffset >= res.HighWater || len(res.Records) == 0 {
				break
			}
			offset = res.NextOffset
		}
	}
	return out
}

func header(r broker.Record, name string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value), true
		}
	}
	return "", false
}

// byMessageID indexes records by message-id, failing on a repeat.
func byMessageID(t testing.TB, stream string, recs []broker.Record) map[string]broker.Record {
	t.Helper()
	m := make(map[string]broker.Record)
	for _, r := range recs {
		id, _ := header(r, broker.HeaderMessageID)
		if _, dup := m[id]; dup {
			t.Errorf("%s: message-id %q stored twice", stream, id)
		}
		m[id] = r
	}
	return m
}

func outboxConfig(s *testServer, name string, o *OutboxConfig) Config {
	return Config{Name: name, DSN: s.ConnString(), Tables: []string{"orders"}, Outbox: o, StatusInterval: 200 * time.Millisecond}
}

func TestOutboxRouter(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, outboxDDL)
	// A row left in the table before the connector starts: the snapshot
	// routes it.
	s.Exec(t, `INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPlaced', '{"n": 1}', 'acme', NULL)`)
	rc := startConnector(t, b, outboxConfig(s, "shop", &OutboxConfig{Headers: []string{"tenant", "trace:traceparent"}}))
	waitFor(t, rc, "streaming", func() bool { return rc.c.Stats().State == StateStreaming })

	// Business change and events in one transaction, the events deleted
	// at once (the usual way to keep the table empty); an update too.
	s.Exec(t, `BEGIN;
		INSERT INTO orders VALUES (7, 19.90);
		INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000002', 'order', '7', 'OrderPlaced', '{"total": 19.9}', 'acme', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
		INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000003', 'customer', 'c-42', 'CustomerUpgraded', '{"tier": "gold"}', NULL, NULL);
		INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000004', 'order', '7', 'OrderPaid', NULL, 'acme', NULL);
		UPDATE outbox SET type = 'Changed' WHERE id = '00000000-0000-0000-0000-000000000002';
		DELETE FROM outbox WHERE id <> '00000000-0000-0000-0000-000000000001';
		COMMIT`)
	// Other payload types: text, then bytea (PostgreSQL sends the new
	// column types in a Relation message).
	s.Exec(t, `ALTER TABLE outbox ALTER COLUMN payload TYPE text;
		INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000005', 'Order Line', '7/1', 'LineAdded', 'plain text', NULL, NULL);
		ALTER TABLE outbox ALTER COLUMN payload TYPE bytea USING convert_to(payload, 'UTF8');
		INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000006', 'order', '7', 'Binary', '\x00ff10'::bytea, NULL, NULL);
		DELETE FROM outbox`)

	waitFor(t, rc, "the routed events", func() bool {
		return len(rawRecords(t, b, "outbox.event.order")) == 4 && len(rawRecords(t, b, "outbox.event.Order_Line")) == 1
	})
	orders := byMessageID(t, "outbox.event.order", rawRecords(t, b, "outbox.event.order"))
	type want struct {
		key, value, typ, contentType, tenant, trace string
		null                                        bool
	}
	for id, w := range map[string]want{
		"00000000-0000-0000-0000-000000000001": {key: "1", value: `{"n": 1}`, typ: "OrderPlaced", contentType: "application/json", tenant: "acme"},
		"00000000-0000-0000-0000-000000000002": {key: "7", value: `{"total": 19.9}`, typ: "OrderPlaced", contentType: "application/json", tenant: "acme",
			trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"00000000-0000-0000-0000-000000000004": {key: "7", typ: "OrderPaid", tenant: "acme", null: true},
		"00000000-0000-0000-0000-000000000006": {key: "7", value: "\x00\xff\x10", typ: "Binary"},
	} {
		r, ok := orders[id]
		if !ok {
			t.Errorf("event %s not on outbox.event.order", id)
			continue
		}
		typ, _ := header(r, broker.HeaderType)
		ct, _ := header(r, broker.HeaderContentType)
		tenant, _ := header(r, "tenant")
		trace, _ := header(r, "traceparent")
		if string(r.Key) != w.key || string(r.Value) != w.value || (r.Value == nil) != w.null || typ != w.typ || ct != w.contentType || tenant != w.tenant || trace != w.trace {
			t.Errorf("event %s = key %q value %q (nil %v) headers %v; want %+v", id, r.Key, r.Value, r.Value == nil, r.Headers, w)
		}
		if _, ok := header(r, "trace"); ok {
			t.Errorf("event %s: the trace column is mapped to traceparent, yet a trace header is there", id)
		}
	}
	if recs := rawRecords(t, b, "outbox.event.customer"); len(recs) != 1 || string(recs[0].Key) != "c-42" || string(recs[0].Value) != `{"tier": "gold"}` {
		t.Errorf("outbox.event.customer = %+v", recs)
	} else if _, ok := header(recs[0], "tenant"); ok {
		t.Errorf("a null header column gave a header: %v", recs[0].Headers)
	}
	if recs := rawRecords(t, b, "outbox.event.Order_Line"); len(recs) != 1 || string(recs[0].Value) != "plain text" || string(recs[0].Key) != "7/1" {
		t.Errorf("outbox.event.Order_Line = %+v", recs)
	}
	if n := len(rawRecords(t, b, "outbox.event.Changed")); n != 0 {
		t.Errorf("an update was routed")
	}
	if _, err := b.DescribeStream("shop.public.outbox"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Errorf("the outbox table's own change stream exists (err %v)", err)
	}
	if recs := readStream(t, b, "shop.public.orders"); len(recs) != 1 || recs[0].op() != "c" {
		t.Errorf("orders stream: %+v", recs)
	}
	info, err := b.DescribeStream("outbox.event.order")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Compacted || info.Config.DedupWindow != broker.DefaultDedupWindow {
		t.Errorf("outbox stream config %+v: want not compacted, the default dedup window", info.Config)
	}
}

// crashAfterWriteSink stores the first batch holding an outbox event, then
// fails as if Weir had died before acknowledging it to PostgreSQL.
type crashAfterWriteSink struct {
	connector.Sink
	mu      sync.Mutex
	crashed bool
	routed  int // outbox records written, replays included
}

func (s *crashAfterWriteSink) Write(ctx context.Context, recs []connector.Record) error {
	if err := s.Sink.Write(ctx, recs); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	crash := false
	for _, r := range recs {
		if strings.HasPrefix(r.Stream, "outbox.event.") {
			s.routed++
			crash = crash || !s.crashed
		}
	}
	if crash {
		s.crashed = true
		return errors.New("simulated crash after the write, before the acknowledgement")
	}
	return nil
}

func TestOutboxReplayDeduplicated(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, outboxDDL)
	cfg := outboxConfig(s, "replay", &OutboxConfig{})
	sink := &crashAfterWriteSink{Sink: connector.NewBrokerSink(b, cfg.StreamDefaults())}
	c, err := New(cfg, Options{Sink: sink, Store: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, nil, "streaming", func() bool { return c.Stats().State == StateStreaming })
	s.Exec(t, `BEGIN;
		INSERT INTO outbox SELECT ('00000000-0000-0000-0000-0000000000' || lpad(i::text, 2, '0'))::uuid, 'order', i::text, 'OrderPlaced', jsonb_build_object('n', i)
			FROM generate_series(10, 29) i;
		DELETE FROM outbox;
		COMMIT`)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "simulated crash") {
		t.Fatalf("first run ended with %v, want the simulated crash", err)
	}
	if n := len(rawRecords(t, b, "outbox.event.order")); n != 20 {
		t.Fatalf("before the restart: %d events stored, want 20", n)
	}
	// The restart reads the unacknowledged transaction again.
	go func() { done <- c.Run(ctx) }()
	waitFor(t, nil, "the replayed transaction acknowledged", func() bool { return c.Stats().Transactions >= 1 })
	s.Exec(t, `INSERT INTO outbox VALUES ('00000000-0000-0000-0000-000000000099', 'order', '99', 'OrderPlaced', '{}'); DELETE FROM outbox`)
	waitFor(t, nil, "the event after the replay", func() bool { return len(rawRecords(t, b, "outbox.event.order")) >= 21 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := rawRecords(t, b, "outbox.event.order")
	if len(recs) != 21 {
		t.Errorf("%d events stored, want 21 (20 + 1, the replay deduplicated)", len(recs))
	}
	if ids := byMessageID(t, "outbox.event.order", recs); len(ids) != 21 {
		t.Errorf("%d distinct message-ids, want 21", len(ids))
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.routed != 41 {
		t.Errorf("the router wrote %d records, want 41 (20, the same 20 again after the restart, 1)", sink.routed)
	}
}

func TestOutboxInvalidRows(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.events (id text PRIMARY KEY, aggregatetype text, aggregateid text, payload jsonb)`)

	// Without a dead-letter stream, a row missing the type column stops
	// the connector with an error naming the row's problem.
	cfg := Config{Name: "strict", DSN: s.ConnString(), Tables: []string{"events"}, StatusInterval: 200 * time.Millisecond,
		Outbox: &OutboxConfig{Table: "events"}, Snapshot: SnapshotNever}
	c, err := New(cfg, Options{Sink: connector.NewBrokerSink(b, cfg.StreamDefaults()), Store: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, nil, "streaming", func() bool { return c.Stats().State == StateStreaming })
	s.Exec(t, `INSERT INTO events VALUES ('e1', 'order', '1', '{}')`)
	err = <-done
	if !errors.Is(err, ErrInvalidOutboxRow) || !strings.Contains(err.Error(), `no column "type"`) || !strings.Contains(err.Error(), "dead-letter") {
		t.Fatalf("run ended with %v, want ErrInvalidOutboxRow naming the missing column", err)
	}
	// It is not acknowledged: a run with a dead-letter stream reads the
	// row again and sets it aside; a null aggregate type too; good rows
	// go on being routed.
	s.Exec(t, `ALTER TABLE events ADD COLUMN type text;
		INSERT INTO events VALUES ('e2', NULL, '2', '{}', 'OrderPlaced');
		INSERT INTO events VALUES ('e3', 'order', '3', '{"ok": true}', 'OrderPlaced')`)
	cfg.Outbox.DeadLetter = "outbox.invalid"
	c, err = New(cfg, Options{Sink: connector.NewBrokerSink(b, cfg.StreamDefaults()), Store: b})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- c.Run(ctx) }()
	waitFor(t, nil, "the good row", func() bool { return len(rawRecords(t, b, "outbox.event.order")) == 1 })
	waitFor(t, nil, "the dead letters", func() bool { return len(rawRecords(t, b, "outbox.invalid")) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dead := rawRecords(t, b, "outbox.invalid")
	for i, want := range []string{`no column "type"`, `column "aggregatetype" is null`} {
		reason, _ := header(dead[i], broker.HeaderDeadLetterReason)
		if !strings.Contains(reason, want) || !strings.Contains(string(dead[i].Value), `"id":"e`+string(rune('1'+i))+`"`) {
			t.Errorf("dead letter %d: reason %q value %s; want %q", i, reason, dead[i].Value, want)
		}
	}
	if r := rawRecords(t, b, "outbox.event.order")[0]; string(r.Key) != "3" {
		t.Errorf("routed %q, want e3's event", r.Key)
	}
}

func TestOutboxConfigValidation(t *testing.T) {
	base := Config{Name: "o", DSN: "postgres://localhost/db", Tables: []string{"orders"}}
	for _, tc := range []struct {
		outbox OutboxConfig
		want   string
	}{
		{OutboxConfig{Table: "a.b.c"}, "table"},
		{OutboxConfig{Route: "events/${routedByValue}"}, "route"},
		{OutboxConfig{Headers: []string{"tenant:"}}, "headers[0]"},
		{OutboxConfig{Headers: []string{"id:message-id"}}, "message-id"},
		{OutboxConfig{DeadLetter: "bad name"}, "dead-letter"},
		{OutboxConfig{DedupWindow: -time.Second}, "dedup-window"},
	} {
		cfg := base
		cfg.Outbox = &tc.outbox
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate = %v, want an error about %s", tc.outbox, err, tc.want)
		}
	}
	cfg := base
	cfg.Outbox = &OutboxConfig{Table: "app.outbox", Route: "events.${routedByValue}.v1"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := cfg.withDefaults()
	if strings.Join(d.Tables, ",") != "orders,app.outbox" || len(base.Tables) != 1 {
		t.Errorf("tables with the outbox: %v (given %v)", d.Tables, base.Tables)
	}
}
