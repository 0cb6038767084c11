package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/broker"
)

// PostgresConnectorConfig is a PostgreSQL connector's configuration as the
// API carries it (internal/connector/postgres.Config, which this package
// does not import: connectors and the API are both front ends over the
// broker, wired together by the server).
type PostgresConnectorConfig struct {
	Name, DSN                                     string
	Tables                                        []string
	Publication, Slot, Prefix, Snapshot, JSONMode string
	Partitions                                    int32
	DedupWindow                                   time.Duration
	Outbox                                        *OutboxConfig // nil: none
}

// OutboxConfig is a connector's outbox event router as the API carries it
// (internal/connector/postgres.OutboxConfig).
type OutboxConfig struct {
	Table, Route, RouteBy, IDColumn, KeyColumn, TypeColumn, PayloadColumn string
	Headers                                                               []string
	DeadLetter                                                            string
	DedupWindow                                                           time.Duration
}

func outboxFromPB(o *weirpb.OutboxConfig) *OutboxConfig {
	if o == nil {
		return nil
	}
	return &OutboxConfig{Table: o.Table, Route: o.Route, RouteBy: o.RouteBy, IDColumn: o.IdColumn, KeyColumn: o.KeyColumn,
		TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn, Headers: o.Headers, DeadLetter: o.DeadLetter,
		DedupWindow: o.DedupWindow.AsDuration()}
}

func outboxToPB(o *OutboxConfig) *weirpb.OutboxConfig {
	if o == nil {
		return nil
	}
	return &weirpb.OutboxConfig{Table: o.Table, Route: o.Route, RouteBy: o.RouteBy, IdColumn: o.IDColumn, KeyColumn: o.KeyColumn,
		TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn, Headers: o.Headers, DeadLetter: o.DeadLetter,
		DedupWindow: durationpb.New(o.DedupWindow)}
}

// ConnectorStatus is a connector as the Connectors service describes it.
type ConnectorStatus struct {
	Name          string
	Type          string // "postgres"
	Origin        string // "config" or "api"
	Postgres      PostgresConnectorConfig
	State         string
	LastError     string
	LastErrorTime time.Time
	Restarts      int
	SnapshotRows  int64
	Events        int64
	Transactions  int64
	ConfirmedLSN  string // "" before the first
	ServerWALLSN  string
	LagBytes      uint64
	Behind        time.Duration
	LastEvent     time.Time
}

// ConnectorManager runs the server's connectors (internal/server). Its
// errors are mapped by ErrConnectorNotFound, ErrConnectorExists,
// ErrInvalidConnector and ErrConnectorInFile (errors.Is).
type ConnectorManager interface {
	Create(ctx context.Context, cfg PostgresConnectorConfig) (ConnectorStatus, error)
	List(ctx context.Context) ([]ConnectorStatus, error)
	Describe(ctx context.Context, name string) (ConnectorStatus, error)
	Delete(ctx context.Context, name string, keepSlot bool) error
}

// Errors of connector management.
var (
	// ErrConnectorInFile is returned for a change to a connector of the
	// configuration file, which only the file can change.
	ErrConnectorInFile = errors.New("the connector is defined in the configuration file; change it there")
	// ErrInvalidConnector marks a configuration the connector refuses
	// (InvalidConnector wraps such an error).
	ErrInvalidConnector = errors.New("invalid connector configuration")
)

// InvalidConnector returns err, which says what is wrong with a connector's
// configuration, marked so that errors.Is(err, ErrInvalidConnector).
func InvalidConnector(err error) error { return invalidConnector{err} }

type invalidConnector struct{ err error }

func (e invalidConnector) Error() string        { return e.err.Error() }
func (e invalidConnector) Unwrap() error        { return e.err }
func (e invalidConnector) Is(target error) bool { return target == ErrInvalidConnector }

// connectorErrors maps the errors of connector management to codes.
var connectorErrors = []struct {
	err  error
	code connect.Code
}{
	{broker.ErrConnectorNotFound, connect.CodeNotFound},
	{broker.ErrConnectorExists, connect.CodeAlreadyExists},
	{ErrInvalidConnector, connect.CodeInvalidArgument},
	{ErrConnectorInFile, connect.CodeFailedPrecondition},
}

// Connectors implements the weir.v1.Connectors service.
type Connectors struct {
	weirpbconnect.UnimplementedConnectorsHandler
	manager ConnectorManager
	logger  *slog.Logger
}

// NewConnectors returns the Connectors service's path and handler; opts
// are given to the handler (internal/server passes the interceptor that
// counts and traces the Weir service's calls).
func NewConnectors(m ConnectorManager, logger *slog.Logger, opts ...connect.HandlerOption) (string, http.Handler) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return weirpbconnect.NewConnectorsHandler(&Connectors{manager: m, logger: logger}, opts...)
}

func (s *Connectors) error(ctx context.Context, method string, err error) error {
	for _, e := range connectorErrors {
		if errors.Is(err, e.err) {
			return connect.NewError(e.code, err)
		}
	}
	return toConnectError(ctx, s.logger, method, err)
}

// CreateConnector implements weirpbconnect.ConnectorsHandler.
func (s *Connectors) CreateConnector(ctx context.Context, req *connect.Request[weirpb.CreateConnectorRequest]) (*connect.Response[weirpb.ConnectorInfo], error) {
	pg := req.Msg.GetPostgres()
	if pg == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("a connector needs a source: postgres"))
	}
	cfg := PostgresConnectorConfig{
		Name: req.Msg.Name, DSN: pg.Dsn, Tables: pg.Tables, Publication: pg.Publication, Slot: pg.Slot,
		Prefix: pg.Prefix, Snapshot: pg.Snapshot, JSONMode: pg.Json, Partitions: pg.Partitions,
		DedupWindow: pg.DedupWindow.AsDuration(), Outbox: outboxFromPB(pg.Outbox),
	}
	st, err := s.manager.Create(ctx, cfg)
	if err != nil {
		return nil, s.error(ctx, "CreateConnector", err)
	}
	return connect.NewResponse(connectorInfo(st)), nil
}

// ListConnectors implements weirpbconnect.ConnectorsHandler.
func (s *Connectors) ListConnectors(ctx context.Context, _ *connect.Request[weirpb.ListConnectorsRequest]) (*connect.Response[weirpb.ListConnectorsResponse], error) {
	resp := &weirpb.ListConnectorsResponse{}
	if !broker.VisibleAdmin(ctx) {
		return connect.NewResponse(resp), nil // an administrator's only
	}
	list, err := s.manager.List(ctx)
	if err != nil {
		return nil, s.error(ctx, "ListConnectors", err)
	}
	for _, st := range list {
		resp.Connectors = append(resp.Connectors, connectorInfo(st))
	}
	return connect.NewResponse(resp), nil
}

// DescribeConnector implements weirpbconnect.ConnectorsHandler.
func (s *Connectors) DescribeConnector(ctx context.Context, req *connect.Request[weirpb.DescribeConnectorRequest]) (*connect.Response[weirpb.ConnectorInfo], error) {
	if err := broker.AuthorizeAdmin(ctx, "connector "+req.Msg.Name); err != nil {
		return nil, s.error(ctx, "DescribeConnector", err)
	}
	st, err := s.manager.Describe(ctx, req.Msg.Name)
	if err != nil {
		return nil, s.error(ctx, "DescribeConnector", err)
	}
	return connect.NewResponse(connectorInfo(st)), nil
}

// DeleteConnector implements weirpbconnect.ConnectorsHandler.
func (s *Connectors) DeleteConnector(ctx context.Context, req *connect.Request[weirpb.DeleteConnectorRequest]) (*connect.Response[weirpb.DeleteConnectorResponse], error) {
	if err := s.manager.Delete(ctx, req.Msg.Name, req.Msg.KeepSlot); err != nil {
		return nil, s.error(ctx, "DeleteConnector", err)
	}
	return connect.NewResponse(&weirpb.DeleteConnectorResponse{}), nil
}

func connectorInfo(st ConnectorStatus) *weirpb.ConnectorInfo {
	pg := st.Postgres
	info := &weirpb.ConnectorInfo{
		Name: st.Name, Type: st.Type, Origin: st.Origin, State: st.State,
		Source: &weirpb.ConnectorInfo_Postgres{Postgres: &weirpb.PostgresConnectorConfig{
			Dsn: RedactDSN(pg.DSN), Tables: pg.Tables, Publication: pg.Publication, Slot: pg.Slot,
			Prefix: pg.Prefix, Snapshot: pg.Snapshot, Json: pg.JSONMode, Partitions: pg.Partitions,
			DedupWindow: durationpb.New(pg.DedupWindow), Outbox: outboxToPB(pg.Outbox),
		}},
		LastError:    st.LastError,
		Restarts:     int32(st.Restarts),
		SnapshotRows: st.SnapshotRows,
		Events:       st.Events,
		Transactions: st.Transactions,
		LagBytes:     st.LagBytes,
		ConfirmedLsn: st.ConfirmedLSN,
		ServerWalLsn: st.ServerWALLSN,
		Behind:       durationpb.New(st.Behind),
	}
	if !st.LastErrorTime.IsZero() {
		info.LastErrorTime = timestamppb.New(st.LastErrorTime)
	}
	if !st.LastEvent.IsZero() {
		info.LastEventTime = timestamppb.New(st.LastEvent)
	}
	return info
}

// RedactDSN hides the password of a connection string (URL or key=value
// form) so that it is not shown back.
func RedactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "(unparsable connection string)"
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if !strings.Contains(dsn, "password") {
		return dsn
	}
	// key=value with a password (which may be quoted and hold spaces):
	// show what identifies the database, not the string.
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable connection string)"
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s password=xxxxx", cfg.Host, cfg.Port, cfg.User, cfg.Database)
}
