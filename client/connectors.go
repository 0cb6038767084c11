package weir

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// PostgresConnectorConfig configures a PostgreSQL change data capture
// connector: each change of the captured tables becomes a Debezium-style
// event on the stream "<prefix>.<schema>.<table>".
type PostgresConnectorConfig struct {
	// DSN is a libpq connection string or URL of the database. The server
	// keeps it in its state; descriptions show it without its password.
	DSN string
	// Tables to capture, "schema.table" or "table" (schema public); the
	// connector creates the publication for them. Or name an existing
	// Publication instead.
	Tables      []string
	Publication string // default weir_<name>
	Slot        string // replication slot; default weir_<name>
	Prefix      string // stream prefix; default the connector's name
	Snapshot    string // "initial" (default): read the tables first; "never"
	JSON        string // json/jsonb columns: "string" (default) or "object"
	Partitions  int32  // of the streams the connector creates; default 1
	// DedupWindow of the streams the connector creates: events carry a
	// message-id, and within the window the broker drops the events a
	// restart writes again. Zero: no deduplication by the broker.
	DedupWindow time.Duration
	// Outbox, when set, routes the rows inserted into an outbox table to
	// streams of their own (the CDC side of WriteOutbox). Nil: none.
	Outbox *OutboxRouterConfig
}

// OutboxRouterConfig configures a connector's outbox event router: each
// row inserted into the table becomes a record on the stream Route names,
// with key = the aggregate id column, header message-id = the id column
// (the stream drops repeats), header type, the payload column as the
// value, and the Headers columns as headers; the table's updates and
// deletes are ignored. Empty fields take the defaults, those of Debezium's
// outbox event router (and of OutboxTablePostgres).
type OutboxRouterConfig struct {
	Table         string   // default public.outbox
	Route         string   // default DefaultOutboxRoute, outbox.event.${routedByValue}
	RouteBy       string   // the column replacing ${routedByValue}; default aggregatetype
	IDColumn      string   // default id
	KeyColumn     string   // default aggregateid
	TypeColumn    string   // default type
	PayloadColumn string   // default payload
	Headers       []string // further columns as headers: "column" or "column:header"
	// DeadLetter is the stream for rows that cannot be routed (a required
	// column missing or null); empty: such a row stops the connector with
	// an error (shown by DescribeConnector) until it is given one.
	DeadLetter string
	// DedupWindow of the streams the router creates; zero: the server's
	// default (2 minutes).
	DedupWindow time.Duration
}

func (o *OutboxRouterConfig) toPB() *weirpb.OutboxConfig {
	if o == nil {
		return nil
	}
	return &weirpb.OutboxConfig{Table: o.Table, Route: o.Route, RouteBy: o.RouteBy, IdColumn: o.IDColumn, KeyColumn: o.KeyColumn,
		TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn, Headers: o.Headers, DeadLetter: o.DeadLetter,
		DedupWindow: durationpb.New(o.DedupWindow)}
}

func fromPBOutbox(o *weirpb.OutboxConfig) *OutboxRouterConfig {
	if o == nil {
		return nil
	}
	return &OutboxRouterConfig{Table: o.GetTable(), Route: o.GetRoute(), RouteBy: o.GetRouteBy(), IDColumn: o.GetIdColumn(),
		KeyColumn: o.GetKeyColumn(), TypeColumn: o.GetTypeColumn(), PayloadColumn: o.GetPayloadColumn(), Headers: o.GetHeaders(),
		DeadLetter: o.GetDeadLetter(), DedupWindow: o.GetDedupWindow().AsDuration()}
}

// ConnectorInfo describes a connector and its progress.
type ConnectorInfo struct {
	Name     string
	Type     string // "postgres"
	Origin   string // "config" (the server's configuration file) or "api"
	Postgres PostgresConnectorConfig
	// State is starting, snapshot, streaming, failed (waiting to be
	// restarted) or stopped.
	State         string
	LastError     string
	LastErrorTime time.Time
	Restarts      int
	SnapshotRows  int64
	Events        int64 // change events written since the server started
	Transactions  int64
	ConfirmedLSN  string // position confirmed to PostgreSQL (durable in Weir)
	ServerWALLSN  string // the database's WAL end as last reported
	LagBytes      uint64 // ServerWALLSN - ConfirmedLSN
	// Behind is the time from a transaction's commit in PostgreSQL to its
	// events being durable in Weir, as of the last one (zero when caught up).
	Behind        time.Duration
	LastEventTime time.Time
}

// CreatePostgresConnector creates a PostgreSQL connector named name and
// starts it; the server keeps it and starts it again when it restarts.
func (c *Client) CreatePostgresConnector(ctx context.Context, name string, cfg PostgresConnectorConfig) (*ConnectorInfo, error) {
	resp, err := call(ctx, c, "create connector "+quote(name), c.connectors.CreateConnector, &weirpb.CreateConnectorRequest{
		Name: name,
		Source: &weirpb.CreateConnectorRequest_Postgres{Postgres: &weirpb.PostgresConnectorConfig{
			Dsn: cfg.DSN, Tables: cfg.Tables, Publication: cfg.Publication, Slot: cfg.Slot, Prefix: cfg.Prefix,
			Snapshot: cfg.Snapshot, Json: cfg.JSON, Partitions: cfg.Partitions, DedupWindow: durationpb.New(cfg.DedupWindow),
			Outbox: cfg.Outbox.toPB(),
		}},
	})
	if err != nil {
		return nil, err
	}
	return fromPBConnectorInfo(resp), nil
}

// ListConnectors describes every connector, by name.
func (c *Client) ListConnectors(ctx context.Context) ([]ConnectorInfo, error) {
	resp, err := call(ctx, c, "list connectors", c.connectors.ListConnectors, &weirpb.ListConnectorsRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]ConnectorInfo, 0, len(resp.GetConnectors()))
	for _, ci := range resp.GetConnectors() {
		out = append(out, *fromPBConnectorInfo(ci))
	}
	return out, nil
}

// DescribeConnector describes one connector; ErrNotFound when there is none
// of that name.
func (c *Client) DescribeConnector(ctx context.Context, name string) (*ConnectorInfo, error) {
	resp, err := call(ctx, c, "describe connector "+quote(name), c.connectors.DescribeConnector,
		&weirpb.DescribeConnectorRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return fromPBConnectorInfo(resp), nil
}

// DeleteConnector stops a connector created through the API and forgets
// it. Its replication slot, and its publication if it created it, are
// dropped unless keepSlot (a slot left behind keeps WAL on the database
// until it is dropped).
func (c *Client) DeleteConnector(ctx context.Context, name string, keepSlot bool) error {
	_, err := call(ctx, c, "delete connector "+quote(name), c.connectors.DeleteConnector,
		&weirpb.DeleteConnectorRequest{Name: name, KeepSlot: keepSlot})
	return err
}

func fromPBConnectorInfo(ci *weirpb.ConnectorInfo) *ConnectorInfo {
	pg := ci.GetPostgres()
	info := &ConnectorInfo{
		Name: ci.GetName(), Type: ci.GetType(), Origin: ci.GetOrigin(), State: ci.GetState(),
		Postgres: PostgresConnectorConfig{
			DSN: pg.GetDsn(), Tables: pg.GetTables(), Publication: pg.GetPublication(), Slot: pg.GetSlot(),
			Prefix: pg.GetPrefix(), Snapshot: pg.GetSnapshot(), JSON: pg.GetJson(), Partitions: pg.GetPartitions(),
			DedupWindow: pg.GetDedupWindow().AsDuration(), Outbox: fromPBOutbox(pg.GetOutbox()),
		},
		LastError: ci.GetLastError(), Restarts: int(ci.GetRestarts()),
		SnapshotRows: ci.GetSnapshotRows(), Events: ci.GetEvents(), Transactions: ci.GetTransactions(),
		ConfirmedLSN: ci.GetConfirmedLsn(), ServerWALLSN: ci.GetServerWalLsn(), LagBytes: ci.GetLagBytes(),
		Behind: ci.GetBehind().AsDuration(),
	}
	if ci.GetLastErrorTime() != nil {
		info.LastErrorTime = ci.GetLastErrorTime().AsTime()
	}
	if ci.GetLastEventTime() != nil {
		info.LastEventTime = ci.GetLastEventTime().AsTime()
	}
	return info
}
