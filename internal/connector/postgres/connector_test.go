package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
)

// The connector tests run the connector against a PostgreSQL the test
// starts (harness_test.go) and a real broker in a temporary directory, and
// read what it wrote back from the broker.

// cdcRecord is a record of a change stream, its value decoded.
type cdcRecord struct {
	Offset   int64
	Key      map[string]any // nil: no key
	Envelope map[string]any // nil: a tombstone
	Headers  map[string]string
}

func (r cdcRecord) op() string {
	if r.Envelope == nil {
		return "tombstone"
	}
	return r.Envelope["op"].(string)
}

func (r cdcRecord) row(which string) map[string]any {
	m, _ := r.Envelope[which].(map[string]any)
	return m
}

func (r cdcRecord) source() map[string]any { return r.Envelope["source"].(map[string]any) }

func openBroker(t testing.TB, dir string) *broker.Broker {
	t.Helper()
	b, err := broker.Open(broker.Config{DataDir: dir, JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readStream returns every record of a one-partition stream (none when it
// does not exist).
func readStream(t testing.TB, b *broker.Broker, stream string) []cdcRecord {
	t.Helper()
	var out []cdcRecord
	var offset int64
	for {
		res, err := b.Fetch(context.Background(), stream, 0, offset, 1<<20, 0)
		if errors.Is(err, broker.ErrStreamNotFound) {
			return nil
		}
		if err != nil {
			t.Fatalf("fetch %s at %d: %v", stream, offset, err)
		}
		for _, r := range res.Records {
			rec := cdcRecord{Offset: r.Offset, Headers: map[string]string{}}
			if r.Key != nil {
				if err := json.Unmarshal(r.Key, &rec.Key); err != nil {
					t.Fatalf("%s offset %d: key %q: %v", stream, r.Offset, r.Key, err)
				}
			}
			if r.Value != nil {
				if err := json.Unmarshal(r.Value, &rec.Envelope); err != nil {
					t.Fatalf("%s offset %d: value %q: %v", stream, r.Offset, r.Value, err)
				}
			}
			for _, h := range r.Headers {
				rec.Headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
		}
		if res.NextOffset >= res.HighWater || len(res.Records) == 0 {
			return out
		}
		offset = res.NextOffset
	}
}

// runningConnector is a connector running in the background.
type runningConnector struct {
	c        *Connector
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

func startConnector(t testing.TB, b *broker.Broker, cfg Config) *runningConnector {
	t.Helper()
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = 200 * time.Millisecond
	}
	c, err := New(cfg, Options{
		Sink:  connector.NewBrokerSink(b, cfg.StreamDefaults()),
		Store: b,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := &runningConnector{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { rc.done <- c.Run(ctx) }()
	t.Cleanup(rc.stop)
	return rc
}

// stop stops the connector and waits for it; a failure other than the stop
// fails the test.
func (rc *runningConnector) stop() {
	rc.stopOnce.Do(func() {
		rc.cancel()
		if err := <-rc.done; err != nil {
			panic(fmt.Sprintf("connector stopped with %v", err))
		}
	})
}

// failed returns the connector's error if it stopped on its own.
func (rc *runningConnector) failed() error {
	select {
	case err := <-rc.done:
		rc.done <- err
		if err == nil {
			return errors.New("connector stopped")
		}
		return err
	default:
		return nil
	}
}

// waitFor polls cond until it holds, failing the test after a minute or
// when the connector stops.
func waitFor(t testing.TB, rc *runningConnector, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if rc != nil {
			if err := rc.failed(); err != nil {
				t.Fatalf("waiting for %s: connector failed: %v", what, err)
			}
		}
		if time.Now().After(deadline) {
			if rc != nil {
				t.Logf("connector stats: %+v", rc.c.Stats())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConnectorEnvelopes(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()

	s.Exec(t, `CREATE TABLE public.items (
			id int PRIMARY KEY, name text NOT NULL, big bigint, price numeric(10,2), ok bool,
			doc jsonb, at timestamptz, local timestamp, day date, uid uuid, raw bytea, tags int[], f float8);
		CREATE TABLE public.full_items (id int PRIMARY KEY, blob text, n int);
		ALTER TABLE public.full_items REPLICA IDENTITY FULL;
		ALTER TABLE public.full_items ALTER COLUMN blob SET STORAGE EXTERNAL;
		CREATE TABLE public.toasty (id int PRIMARY KEY, blob text, n int);
		ALTER TABLE public.toasty ALTER COLUMN blob SET STORAGE EXTERNAL;
		INSERT INTO public.items (id, name) VALUES (1, 'before the snapshot')`)

	rc := startConnector(t, b, Config{Name: "shop", DSN: s.ConnString(), Tables: []string{"items", "public.full_items", "toasty"}})
	waitFor(t, rc, "the snapshot", func() bool { return len(readStream(t, b, "shop.public.items")) == 1 })

	big := strings.Repeat("0123456789abcdef", 1024) // 16 KiB, stored out of line
	s.Exec(t, `INSERT INTO public.items VALUES (2, 'two', 9007199254740993, 12.50, true, '{"a": [1, "x"]}',
			'2026-11-22 10:00:00.25+00', '2026-11-22 10:00:00', '2026-11-22', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
			'\x00ff10', '{1,2,3}', 1.5)`)
	s.Exec(t, `UPDATE public.items SET name = 'deux' WHERE id = 2`)
	s.Exec(t, `DELETE FROM public.items WHERE id = 2`)
	s.Exec(t, `UPDATE public.items SET id = 3 WHERE id = 1`)
	s.Exec(t, `INSERT INTO public.full_items VALUES (1, '`+big+`', 1); UPDATE public.full_items SET n = 2 WHERE id = 1`)
	s.Exec(t, `INSERT INTO public.toasty VALUES (1, '`+big+`', 1); UPDATE public.toasty SET n = 2 WHERE id = 1`)
	s.Exec(t, `TRUNCATE public.items`)

	var items []cdcRecord
	waitFor(t, rc, "the changes", func() bool {
		items = readStream(t, b, "shop.public.items")
		return len(items) >= 9 && len(readStream(t, b, "shop.public.toasty")) >= 2
	})
	var ops []string
	for _, r := range items {
		ops = append(ops, r.op())
	}
	// r(1), c(2), u(2), d(2), tombstone(2), key change 1→3: d(1),
	// tombstone(1), c(3), then the truncate.
	want := []string{"r", "c", "u", "d", "tombstone", "d", "tombstone", "c", "t"}
	if strings.Join(ops, " ") != strings.Join(want, " ") {
		t.Fatalf("ops = %v, want %v", ops, want)
	}

	snap := items[0]
	if snap.Key["id"] != 1.0 || snap.row("after")["name"] != "before the snapshot" || snap.Envelope["before"] != nil {
		t.Errorf("snapshot record = %+v", snap)
	}
	if src := snap.source(); src["snapshot"] != "last" || src["connector"] != "postgresql" || src["name"] != "shop" ||
		src["db"] != "postgres" || src["schema"] != "public" || src["table"] != "items" || src["txId"] != nil {
		t.Errorf("snapshot source = %v", src)
	}

	create := items[1]
	after := create.row("after")
	wantAfter := map[string]any{
		"id": 2.0, "name": "two", "big": 9007199254740993.0, "price": "12.50", "ok": true, "doc": `{"a": [1, "x"]}`,
		"at": "2026-11-22T10:00:00.25Z", "local": "2026-11-22T10:00:00", "day": "2026-11-22",
		"uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "raw": base64.StdEncoding.EncodeToString([]byte{0, 0xff, 0x10}),
		"tags": "{1,2,3}", "f": 1.5,
	}
	for k, v := range wantAfter {
		if after[k] != v {
			t.Errorf("after[%s] = %#v, want %#v", k, after[k], v)
		}
	}
	src := create.source()
	if src["snapshot"] != "false" || src["txId"] == nil || src["lsn"].(float64) <= 0 || src["ts_ms"].(float64) <= 0 {
		t.Errorf("create source = %v", src)
	}
	if create.Headers["content-type"] != "application/json" || !strings.HasPrefix(create.Headers["message-id"], "pg:shop:") {
		t.Errorf("create headers = %v", create.Headers)
	}
	// The big bigint survives decoding as a JSON number: check the raw text.
	if raw := rawValue(t, b, "shop.public.items", create.Offset); !strings.Contains(raw, `"big":9007199254740993`) {
		t.Errorf("raw value %s does not carry the exact bigint", raw)
	}

	update := items[2]
	if update.Envelope["before"] != nil || update.row("after")["name"] != "deux" || update.Key["id"] != 2.0 {
		t.Errorf("update = %+v", update.Envelope)
	}
	del := items[3]
	if del.Envelope["after"] != nil || del.row("before")["id"] != 2.0 || del.Key["id"] != 2.0 {
		t.Errorf("delete = %+v", del.Envelope)
	}
	// Default replica identity: the before-image holds the key only, not
	// nulls for the other columns.
	if _, ok := del.row("before")["name"]; ok {
		t.Errorf("delete before-image = %v: non-key columns reported", del.row("before"))
	}
	if tomb := items[4]; tomb.Key["id"] != 2.0 || tomb.Envelope != nil {
		t.Errorf("tombstone = %+v", tomb)
	}
	if items[5].Key["id"] != 1.0 || items[6].Key["id"] != 1.0 || items[7].Key["id"] != 3.0 ||
		items[7].row("after")["name"] != "before the snapshot" {
		t.Errorf("key change = %+v / %+v / %+v", items[5], items[6], items[7])
	}
	if trunc := items[8]; trunc.Key != nil || trunc.Envelope["before"] != nil || trunc.Envelope["after"] != nil {
		t.Errorf("truncate = %+v", trunc)
	}
	// Events of one transaction share txId; sequence orders them.
	if items[5].source()["txId"] != items[7].source()["txId"] || items[5].source()["txId"] == items[1].source()["txId"] {
		t.Errorf("txIds: %v %v %v", items[5].source()["txId"], items[7].source()["txId"], items[1].source()["txId"])
	}

	// TOAST: an unchanged out-of-line value is never reported as null.
	full := readStream(t, b, "shop.public.full_items")
	if len(full) != 2 || full[1].op() != "u" || full[1].row("after")["blob"] != big || full[1].row("before")["blob"] != big ||
		full[1].row("before")["n"] != 1.0 {
		t.Errorf("REPLICA IDENTITY FULL update: %d records, last %v", len(full), full[len(full)-1].Envelope)
	}
	toasty := readStream(t, b, "shop.public.toasty")
	up := toasty[1].row("after")
	if v, ok := up["blob"]; ok || up["n"] != 2.0 || toasty[0].row("after")["blob"] != big {
		t.Errorf("default identity update: blob present=%v (%.20v), after=%v", ok, v, up)
	}
}

// rawValue returns the undecoded value of one record.
func rawValue(t testing.TB, b *broker.Broker, stream string, offset int64) string {
	t.Helper()
	res, err := b.Fetch(context.Background(), stream, 0, offset, 1<<20, 0)
	if err != nil || len(res.Records) == 0 {
		t.Fatalf("fetch %s at %d: %v", stream, offset, err)
	}
	for _, r := range res.Records {
		if r.Offset == offset {
			return string(r.Value)
		}
	}
	t.Fatalf("no record at %d", offset)
	return ""
}

// slotPosition returns the slot's confirmed flush position and the
// server's current WAL insert position: the end of every transaction
// committed so far. (pg_current_wal_lsn is the write position, which with
// the harness's synchronous_commit=off can lag behind the last commits.)
func slotPosition(t testing.TB, s *testServer, slot string) (confirmed, current LSN) {
	t.Helper()
	res := s.Exec(t, fmt.Sprintf(`SELECT coalesce(confirmed_flush_lsn::text, '0/0'), pg_current_wal_insert_lsn()::text
		FROM pg_replication_slots WHERE slot_name = '%s'`, slot))
	if len(res[0].Rows) == 0 {
		return 0, 0
	}
	var err error
	if confirmed, err = ParseLSN(string(res[0].Rows[0][0])); err != nil {
		t.Fatal(err)
	}
	if current, err = ParseLSN(string(res[0].Rows[0][1])); err != nil {
		t.Fatal(err)
	}
	return confirmed, current
}

// ids returns, for each record of a change stream, the id of its row
// (after-image, else before-image), with its op.
func idsByOp(recs []cdcRecord) map[string][]float64 {
	out := map[string][]float64{}
	for _, r := range recs {
		if r.Envelope == nil {
			continue
		}
		row := r.row("after")
		if row == nil {
			row = r.row("before")
		}
		out[r.op()] = append(out[r.op()], row["id"].(float64))
	}
	return out
}

// runWriter runs the statements sqlFor(id) for id from first to last by step
// on one connection in the background, pausing a little every 20 of them;
// the channel gets the first error or nil.
func runWriter(s *testServer, first, last, step int, sqlFor func(id int) string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		conn, err := connectSQL(ctx, s.ConnString())
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(ctx)
		for id, n := first, 1; id <= last; id, n = id+step, n+1 {
			if err := conn.exec(ctx, sqlFor(id)); err != nil {
				done <- err
				return
			}
			if n%200 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		done <- nil
	}()
	return done
}

// A writer inserts rows while the connector takes its snapshot and switches
// to streaming: every row arrives exactly once, as a snapshot read or as a
// create.
func TestConnectorSnapshotThenStreamingRace(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.seq (id int PRIMARY KEY, v text);
		INSERT INTO public.seq SELECT g, 'pre' FROM generate_series(1, 3000) g`)

	const total = 6000
	started, streaming := make(chan struct{}), make(chan struct{})
	writerDone := runWriter(s, 3001, total, 10, func(id int) string {
		switch id {
		case 3101:
			close(started)
		case 4501:
			// The second half waits for the switch, however long the
			// slot and the snapshot took: some rows must be streamed.
			select {
			case <-streaming:
			case <-time.After(2 * time.Minute):
			}
		}
		return fmt.Sprintf(`INSERT INTO public.seq SELECT g, 'live' FROM generate_series(%d, %d) g`, id, id+9)
	})
	<-started
	rc := startConnector(t, b, Config{Name: "race", DSN: s.ConnString(), Tables: []string{"seq"}, BatchRecords: 100})
	go func() {
		defer close(streaming)
		for deadline := time.Now().Add(2 * time.Minute); rc.c.Stats().State != StateStreaming && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	var recs []cdcRecord
	waitFor(t, rc, "every row", func() bool {
		recs = readStream(t, b, "race.public.seq")
		return len(recs) >= total
	})
	time.Sleep(500 * time.Millisecond) // anything doubled would arrive now
	recs = readStream(t, b, "race.public.seq")
	seen := make(map[float64]string)
	byOp := idsByOp(recs)
	for op, ids := range byOp {
		for _, id := range ids {
			if prev, ok := seen[id]; ok {
				t.Fatalf("row %v seen twice: as %s and as %s", id, prev, op)
			}
			seen[id] = op
		}
	}
	if len(seen) != total || len(recs) != total {
		t.Fatalf("%d distinct rows in %d records, want %d", len(seen), len(recs), total)
	}
	if len(byOp["r"]) < 3000 || len(byOp["c"]) == 0 {
		t.Fatalf("snapshot reads %d, creates %d: the switch was not raced", len(byOp["r"]), len(byOp["c"]))
	}
	t.Logf("%d rows from the snapshot, %d streamed", len(byOp["r"]), len(byOp["c"]))
}

// With nothing to capture, the slot's confirmed position still follows the
// server's WAL (other tables' writes, checkpoints), so it holds no WAL.
func TestConnectorIdleSlotAdvances(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.watched (id int PRIMARY KEY); CREATE TABLE public.other (id int, pad text)`)
	rc := startConnector(t, b, Config{Name: "idle", DSN: s.ConnString(), Tables: []string{"watched"}})
	waitFor(t, rc, "streaming", func() bool { return rc.c.Stats().State == StateStreaming })

	s.Exec(t, `INSERT INTO public.other SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`)
	_, target := slotPosition(t, s, "weir_idle")
	waitFor(t, rc, "the slot to pass "+target.String(), func() bool {
		confirmed, _ := slotPosition(t, s, "weir_idle")
		return confirmed >= target
	})
	confirmed, current := slotPosition(t, s, "weir_idle")
	t.Logf("target %s, confirmed %s, current %s", target, confirmed, current)
	waitFor(t, rc, "zero lag in the stats", func() bool {
		st := rc.c.Stats()
		return st.ConfirmedLSN >= target && st.LagBytes() == 0
	})
	if n := len(readStream(t, b, "idle.public.watched")); n != 0 {
		t.Fatalf("%d records from an idle table", n)
	}

	// Writes in another database of the cluster (WAL is shared) do not
	// hold the slot back either.
	s.Exec(t, `CREATE DATABASE elsewhere`)
	other, err := pgconn.Connect(context.Background(), strings.Replace(s.ConnString(), "dbname=postgres", "dbname=elsewhere", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(context.Background(), `CREATE TABLE t (id int, pad text);
		INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	_, target = slotPosition(t, s, "weir_idle")
	waitFor(t, rc, "the slot to pass "+target.String()+" after writes in another database", func() bool {
		confirmed, _ := slotPosition(t, s, "weir_idle")
		return confirmed >= target
	})
}

// A column added mid-stream appears in the events that follow; a dropped
// one leaves them.
func TestConnectorColumnsAddedAndDropped(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.evolving (id int PRIMARY KEY, a text, gone text)`)
	rc := startConnector(t, b, Config{Name: "ddl", DSN: s.ConnString(), Tables: []string{"evolving"}})
	waitFor(t, rc, "streaming", func() bool { return rc.c.Stats().State == StateStreaming })

	s.Exec(t, `INSERT INTO public.evolving VALUES (1, 'a1', 'g1')`)
	s.Exec(t, `ALTER TABLE public.evolving ADD COLUMN added int DEFAULT 7`)
	s.Exec(t, `INSERT INTO public.evolving (id, a, gone, added) VALUES (2, 'a2', 'g2', 42)`)
	s.Exec(t, `ALTER TABLE public.evolving DROP COLUMN gone`)
	s.Exec(t, `UPDATE public.evolving SET a = 'a1b' WHERE id = 1`)

	var recs []cdcRecord
	waitFor(t, rc, "three events", func() bool {
		recs = readStream(t, b, "ddl.public.evolving")
		return len(recs) >= 3
	})
	first, second, third := recs[0].row("after"), recs[1].row("after"), recs[2].row("after")
	if _, ok := first["added"]; ok || first["gone"] != "g1" {
		t.Errorf("before the ALTER: %v", first)
	}
	if second["added"] != 42.0 || second["gone"] != "g2" {
		t.Errorf("after ADD COLUMN: %v", second)
	}
	if _, ok := third["gone"]; ok || third["added"] != 7.0 || third["a"] != "a1b" {
		t.Errorf("after DROP COLUMN: %v", third)
	}
}

// failingSink fails every write after the first n.
type failingSink struct {
	next connector.Sink
	n    int
}

func (s *failingSink) Write(ctx context.Context, recs []connector.Record) error {
	if s.n == 0 {
		return errors.New("disk full (test)")
	}
	s.n--
	return s.next.Write(ctx, recs)
}

// A snapshot that failed half-way is taken again from a new slot; a slot
// the connector did not create is not used (nor dropped) without being
// told.
func TestConnectorSnapshotInterrupted(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.big (id int PRIMARY KEY);
		INSERT INTO public.big SELECT generate_series(1, 500)`)
	cfg := Config{Name: "interrupted", DSN: s.ConnString(), Tables: []string{"big"}, BatchRecords: 100}
	sink := connector.NewBrokerSink(b, cfg.StreamDefaults())
	c, err := New(cfg, Options{Sink: &failingSink{next: sink, n: 2}, Store: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Run with a failing sink: %v", err)
	}
	if n := len(readStream(t, b, "interrupted.public.big")); n != 200 {
		t.Fatalf("%d records written before the failure, want 200", n)
	}
	s.Exec(t, `INSERT INTO public.big VALUES (501)`)

	rc := startConnector(t, b, cfg)
	var recs []cdcRecord
	waitFor(t, rc, "the snapshot again", func() bool {
		recs = readStream(t, b, "interrupted.public.big")
		return len(recs) >= 200+501
	})
	reads := idsByOp(recs[200:])["r"]
	if len(reads) != 501 || recs[len(recs)-1].source()["snapshot"] != "last" {
		t.Fatalf("second snapshot: %d reads, last marked %v", len(reads), recs[len(recs)-1].source()["snapshot"])
	}
	rc.stop()

	// Someone else's slot of the same name.
	s.Exec(t, `SELECT pg_create_logical_replication_slot('weir_other', 'pgoutput')`)
	other, err := New(Config{Name: "other", DSN: s.ConnString(), Tables: []string{"big"}},
		Options{Sink: sink, Store: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Run(ctx); err == nil || !strings.Contains(err.Error(), "this connector did not create it") {
		t.Fatalf("Run on a foreign slot: %v", err)
	}
	if confirmed, _ := slotPosition(t, s, "weir_other"); confirmed == 0 {
		t.Fatal("the foreign slot was dropped")
	}
}

// A Transform sees the same changes and writes other records, acknowledged
// by the same rule: here a minimal outbox routing (inserted rows of the
// outbox table become records on outbox.event.<aggregatetype>, deletes are
// ignored) beside the default envelopes of another table.
func TestConnectorTransform(t *testing.T) {
	s := startPostgres(t)
	b := openBroker(t, t.TempDir())
	defer b.Close()
	s.Exec(t, `CREATE TABLE public.outbox (id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb);
		CREATE TABLE public.orders (id int PRIMARY KEY)`)
	route := func(ev Event) ([]connector.Record, error) {
		if ev.Table != "outbox" {
			return DebeziumRecords(ev), nil
		}
		if ev.Op != 'c' {
			return nil, nil
		}
		var row struct{ ID, AggregateType, AggregateID, Type string }
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(ev.After, &raw); err != nil {
			panic(err)
		}
		for k, dst := range map[string]*string{"id": &row.ID, "aggregatetype": &row.AggregateType, "aggregateid": &row.AggregateID, "type": &row.Type} {
			json.Unmarshal(raw[k], dst)
		}
		return []connector.Record{{Stream: "outbox.event." + row.AggregateType, Key: []byte(row.AggregateID), Value: raw["payload"],
			Headers: []broker.Header{{Key: broker.HeaderMessageID, Value: []byte(row.ID)}, {Key: broker.HeaderType, Value: []byte(row.Type)}}}}, nil
	}
	cfg := Config{Name: "outboxed", DSN: s.ConnString(), Tables: []string{"outbox", "orders"}, JSON: JSONAsObject, StatusInterval: 200 * time.Millisecond}
	c, err := New(cfg, Options{Sink: connector.NewBrokerSink(b, cfg.StreamDefaults()), Store: b, Transform: route})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, nil, "streaming", func() bool { return c.Stats().State == StateStreaming })
	s.Exec(t, `BEGIN;
		INSERT INTO public.orders VALUES (7);
		INSERT INTO public.outbox VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '7', 'OrderPlaced', '{"total": 19.9}');
		DELETE FROM public.outbox;
		COMMIT`)
	var res broker.FetchResult
	waitFor(t, nil, "the routed event", func() bool {
		res, err = b.Fetch(context.Background(), "outbox.event.order", 0, 0, 1<<20, 0)
		return err == nil && len(res.Records) == 1
	})
	r := res.Records[0]
	if string(r.Key) != "7" || string(r.Value) != `{"total": 19.9}` || string(r.Headers[0].Value) != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" || string(r.Headers[1].Value) != "OrderPlaced" {
		t.Errorf("routed record = %q %q %v", r.Key, r.Value, r.Headers)
	}
	if recs := readStream(t, b, "outboxed.public.orders"); len(recs) != 1 || recs[0].op() != "c" {
		t.Errorf("orders stream: %+v", recs)
	}
	if recs := readStream(t, b, "outboxed.public.outbox"); len(recs) != 0 {
		t.Errorf("the outbox table's own stream has %d records", len(recs))
	}
}
