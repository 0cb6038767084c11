package server

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector/postgres"
	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

func TestLoadConnectorsFromFile(t *testing.T) {
	cfg, _, err := loadConfig(t, `
connectors:
  - name: shop
    type: postgres
    dsn: "host=db user=weir dbname=shop"
    tables: [public.orders, customers]
    prefix: cdc.shop
    status-interval: 2s
  - name: billing
    dsn: postgres://weir@db/billing
    publication: billing_pub
    snapshot: never
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []ConnectorConfig{
		{Type: "postgres", Config: postgres.Config{Name: "shop", DSN: "host=db user=weir dbname=shop",
			Tables: []string{"public.orders", "customers"}, Prefix: "cdc.shop", StatusInterval: 2 * time.Second}},
		{Config: postgres.Config{Name: "billing", DSN: "postgres://weir@db/billing", Publication: "billing_pub", Snapshot: "never"}},
	}
	if !reflect.DeepEqual(cfg.Connectors, want) {
		t.Fatalf("connectors = %+v\nwant %+v", cfg.Connectors, want)
	}

	for _, tt := range []struct{ yaml, want string }{
		{"connectors:\n  - name: a\n    dsn: host=x\n    tables: [t]\n    colour: red\n", `line 5: unknown key "colour" (known keys: type, name, dsn, tables`},
		{"connectors:\n  - name: a\n    tables: [t]\n", `connectors[0] "a"`},
		{"connectors:\n  - name: a\n    dsn: host=x\n", "give tables or a publication"},
		{"connectors:\n  - name: a\n    dsn: host=x\n    tables: [t]\n  - name: a\n    dsn: host=y\n    tables: [t]\n", "connectors[1].name"},
		{"connectors:\n  - name: a\n    type: mysql\n    dsn: host=x\n    tables: [t]\n", "must be postgres"},
		{"connectors:\n  - name: a b\n    dsn: host=x\n    tables: [t]\n", "use letters, digits"},
	} {
		_, _, err := loadConfig(t, tt.yaml, nil)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.yaml, err, tt.want)
		}
	}
}

func connectorsClient(t *testing.T, s *Server) weirpbconnect.ConnectorsClient {
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	transport := &http.Transport{Protocols: &h2}
	t.Cleanup(transport.CloseIdleConnections)
	return weirpbconnect.NewConnectorsClient(&http.Client{Transport: transport}, "http://"+s.Addr("http"), connect.WithGRPC())
}

// streamValues returns the values of a one-partition stream's records.
func streamValues(t *testing.T, b *broker.Broker, stream string) []string {
	t.Helper()
	res, err := b.Fetch(context.Background(), stream, 0, 0, 1<<20, 0)
	if errors.Is(err, broker.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range res.Records {
		out = append(out, string(r.Value))
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A connector of the configuration file and one created through the API
// both run; the API's survives a restart of the node (and catches up with
// what changed while it was down); describe and the metrics show their lag;
// deleting drops the slot.
func TestConnectorsInServer(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, `CREATE TABLE public.a (id int PRIMARY KEY, v text); CREATE TABLE public.b (id int PRIMARY KEY, v text)`)

	cfg := testConfig(t)
	cfg.Connectors = []ConnectorConfig{
		{Config: postgres.Config{Name: "filecdc", DSN: pg.ConnString(), Tables: []string{"a"}, StatusInterval: 200 * time.Millisecond}},
		// A database that is not there: the node starts anyway, and the
		// connector says why it is not running and retries.
		{Config: postgres.Config{Name: "down", DSN: "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", Tables: []string{"a"}}},
	}
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	c := connectorsClient(t, s)
	created, err := c.CreateConnector(ctx, connect.NewRequest(&weirpb.CreateConnectorRequest{Name: "apicdc",
		Source: &weirpb.CreateConnectorRequest_Postgres{Postgres: &weirpb.PostgresConnectorConfig{
			Dsn: pg.ConnString() + " password=secret", Tables: []string{"public.b"}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := created.Msg.GetPostgres(); got.Slot != "weir_apicdc" || got.Prefix != "apicdc" || strings.Contains(got.Dsn, "secret") {
		t.Errorf("created = %+v", got)
	}
	if _, err := c.CreateConnector(ctx, connect.NewRequest(&weirpb.CreateConnectorRequest{Name: "apicdc",
		Source: &weirpb.CreateConnectorRequest_Postgres{Postgres: &weirpb.PostgresConnectorConfig{Dsn: pg.ConnString(), Tables: []string{"b"}}}})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("second create: %v", err)
	}
	if _, err := c.CreateConnector(ctx, connect.NewRequest(&weirpb.CreateConnectorRequest{Name: "bad",
		Source: &weirpb.CreateConnectorRequest_Postgres{Postgres: &weirpb.PostgresConnectorConfig{Dsn: pg.ConnString()}}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("create without tables: %v", err)
	}

	eventually(t, "both streaming", func() bool {
		list, err := c.ListConnectors(ctx, connect.NewRequest(&weirpb.ListConnectorsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ci := range list.Msg.Connectors {
			if ci.State == postgres.StateStreaming {
				n++
			}
		}
		return n == 2
	})
	eventually(t, "the failing connector's error", func() bool {
		d, err := c.DescribeConnector(ctx, connect.NewRequest(&weirpb.DescribeConnectorRequest{Name: "down"}))
		if err != nil {
			t.Fatal(err)
		}
		return d.Msg.Restarts >= 1 && strings.Contains(d.Msg.LastError, "connect to PostgreSQL") && d.Msg.LastErrorTime != nil
	})
	pg.Exec(t, `INSERT INTO public.a VALUES (1, 'x'); INSERT INTO public.b VALUES (1, 'y')`)
	eventually(t, "both events", func() bool {
		return len(streamValues(t, s.Broker(), "filecdc.public.a")) == 1 && len(streamValues(t, s.Broker(), "apicdc.public.b")) == 1
	})
	if _, err := c.DeleteConnector(ctx, connect.NewRequest(&weirpb.DeleteConnectorRequest{Name: "filecdc"})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("delete a connector of the file: %v", err)
	}
	d, err := c.DescribeConnector(ctx, connect.NewRequest(&weirpb.DescribeConnectorRequest{Name: "apicdc"}))
	if err != nil {
		t.Fatal(err)
	}
	if d.Msg.Origin != "api" || d.Msg.Events != 1 || d.Msg.ConfirmedLsn == "" || d.Msg.LastEventTime == nil {
		t.Errorf("describe = %+v", d.Msg)
	}
	_, body, err := get("http://" + s.Addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, series := range []string{`weir_connector_up{connector="apicdc"}`, `weir_connector_events_total{connector="filecdc"}`} {
		if v, ok := metricValue(text, series); !ok || v != 1 {
			t.Errorf("%s = %v (found %v)", series, v, ok)
		}
	}
	if _, ok := metricValue(text, `weir_connector_lag_bytes{connector="apicdc"}`); !ok {
		t.Errorf("no lag metric in\n%s", text)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// Changed while Weir is down: read after the restart.
	pg.Exec(t, `INSERT INTO public.b VALUES (2, 'while down')`)
	cfg.Connectors = nil
	cfg.HTTPAddr = "127.0.0.1:0"
	s2 := newTestServer(t, cfg)
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change made while down", func() bool {
		vals := streamValues(t, s2.Broker(), "apicdc.public.b")
		return len(vals) == 2 && strings.Contains(vals[1], "while down")
	})
	c2 := connectorsClient(t, s2)
	list, err := c2.ListConnectors(ctx, connect.NewRequest(&weirpb.ListConnectorsRequest{}))
	if err != nil || len(list.Msg.Connectors) != 1 || list.Msg.Connectors[0].Name != "apicdc" {
		t.Fatalf("after restart: %v %v", list, err)
	}
	if _, err := c2.DeleteConnector(ctx, connect.NewRequest(&weirpb.DeleteConnectorRequest{Name: "apicdc"})); err != nil {
		t.Fatal(err)
	}
	res := pg.Exec(t, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'weir_apicdc'),
		(SELECT count(*) FROM pg_publication WHERE pubname = 'weir_apicdc'),
		(SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'weir_filecdc')`)
	if row := res[0].Rows[0]; string(row[0]) != "0" || string(row[1]) != "0" || string(row[2]) != "1" {
		t.Errorf("after delete: slot %s, publication %s; the file's slot %s", row[0], row[1], row[2])
	}
	if _, err := c2.DescribeConnector(ctx, connect.NewRequest(&weirpb.DescribeConnectorRequest{Name: "apicdc"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("describe after delete: %v", err)
	}
}
