package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/api"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
	"github.com/weirmq/weir/internal/connector/postgres"
)

// ConnectorConfig is one entry of the configuration file's connectors list:
//
//	connectors:
//	  - name: shop
//	    type: postgres            # the only type so far, and the default
//	    dsn: postgres://weir@db/shop
//	    tables: [public.orders, public.customers]
//	    prefix: shop              # streams shop.public.orders, ...
type ConnectorConfig struct {
	Type            string `yaml:"type" json:"type"`
	postgres.Config `yaml:",inline"`
}

// Connector origins.
const (
	originConfig = "config" // the configuration file
	originAPI    = "api"    // created through the API, kept in the state store
)

// StateFailed is a connector waiting to be restarted after an error.
const stateFailed = "failed"

// validateConnectors checks the connectors of the configuration file.
func (c *Config) validateConnectors() error {
	seen := make(map[string]bool)
	for i, cc := range c.Connectors {
		if cc.Type != "" && cc.Type != "postgres" {
			return invalidValue(fmt.Sprintf("connectors[%d].type", i), cc.Type, "must be postgres")
		}
		if err := cc.Config.Validate(); err != nil {
			return invalidValue(fmt.Sprintf("connectors[%d]", i), cc.Name, err.Error())
		}
		if seen[cc.Name] {
			return invalidValue(fmt.Sprintf("connectors[%d].name", i), cc.Name, "is used by another connector")
		}
		seen[cc.Name] = true
	}
	return nil
}

// connectorManager runs the node's connectors: those of the configuration
// file and those created through the API (kept in the broker's state), each
// under a supervisor that restarts it with backoff. It implements
// api.ConnectorManager.
type connectorManager struct {
	broker *broker.Broker
	logger *slog.Logger
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[string]*managedConnector
}

// managedConnector is one running connector.
type managedConnector struct {
	origin string
	conn   *postgres.Connector
	cancel context.CancelFunc
	done   chan struct{}

	mu            sync.Mutex
	failed        bool
	lastError     string
	lastErrorTime time.Time
	restarts      int
}

var _ api.ConnectorManager = (*connectorManager)(nil)

// startConnectors starts the connectors, mounts the Connectors service and
// registers the manager, which stops them on shutdown, and their metrics.
func (s *Server) startConnectors() error {
	b := s.Broker()
	ctx, cancel := context.WithCancel(context.Background())
	m := &connectorManager{broker: b, logger: s.logger, ctx: ctx, cancel: cancel, running: make(map[string]*managedConnector)}
	s.Register(ComponentFunc("connectors", m.close))
	for _, cc := range s.cfg.Connectors {
		if err := m.start(cc.Config, originConfig); err != nil {
			return fmt.Errorf("connector %s: %w", cc.Name, err)
		}
	}
	stored, err := b.ListConnectors()
	if err != nil {
		return fmt.Errorf("read the connectors: %w", err)
	}
	for _, e := range stored {
		var cc ConnectorConfig
		if err := json.Unmarshal(e.Value, &cc); err != nil {
			return fmt.Errorf("connector %s: stored configuration is not valid: %w", e.Name, err)
		}
		if m.exists(cc.Name) {
			s.logger.Error("connector created through the API has the name of one in the configuration file; the file's runs", "connector", cc.Name)
			continue
		}
		if err := m.start(cc.Config, originAPI); err != nil {
			// A stored configuration this build refuses must not stop
			// the node: it stays stored, to be fixed or removed.
			s.logger.Error("connector not started", "connector", cc.Name, "err", err)
		}
	}
	s.Handle(api.NewConnectors(m, s.logger, connect.WithInterceptors(s.newAPIInterceptor())))
	if err := s.metrics.registry.Register(&connectorCollector{m: m}); err != nil {
		return err
	}
	return nil
}

func (m *connectorManager) exists(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.running[name]
	return ok
}

// start runs a connector under a supervisor.
func (m *connectorManager) start(cfg postgres.Config, origin string) error {
	logger := m.logger.With("connector", cfg.Name)
	conn, err := postgres.New(cfg, postgres.Options{
		Sink:   connector.NewBrokerSink(m.broker, cfg.StreamDefaults()),
		Store:  m.broker,
		Logger: logger,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(m.ctx)
	mc := &managedConnector{origin: origin, conn: conn, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	if _, ok := m.running[cfg.Name]; ok {
		m.mu.Unlock()
		cancel()
		return fmt.Errorf("%w: %q", broker.ErrConnectorExists, cfg.Name)
	}
	m.running[cfg.Name] = mc
	m.mu.Unlock()
	logger.Info("connector starting", "type", "postgres", "origin", origin, "tables", cfg.Tables, "publication", conn.Config().Publication, "slot", conn.Config().Slot)
	go func() {
		defer close(mc.done)
		run := func(ctx context.Context) error {
			err := conn.Run(ctx)
			mc.mu.Lock()
			mc.failed = err != nil
			mc.mu.Unlock()
			return err
		}
		connector.Supervise(ctx, logger, connector.DefaultBackoff, run, func(err error, _ time.Duration) {
			mc.mu.Lock()
			mc.failed, mc.lastError, mc.lastErrorTime = true, err.Error(), time.Now()
			mc.restarts++
			mc.mu.Unlock()
		})
		logger.Info("connector stopped")
	}()
	return nil
}

// stop stops a connector and waits for it.
func (mc *managedConnector) stop(ctx context.Context) error {
	mc.cancel()
	select {
	case <-mc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *connectorManager) close(ctx context.Context) error {
	m.cancel()
	m.mu.Lock()
	all := make([]*managedConnector, 0, len(m.running))
	for _, mc := range m.running {
		all = append(all, mc)
	}
	m.mu.Unlock()
	var errs []error
	for _, mc := range all {
		if err := mc.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("connector %s: %w", mc.conn.Config().Name, err))
		}
	}
	return errors.Join(errs...)
}

// Create implements api.ConnectorManager: the configuration is stored, then
// the connector started.
func (m *connectorManager) Create(ctx context.Context, req api.PostgresConnectorConfig) (api.ConnectorStatus, error) {
	cfg := postgres.Config{
		Name: req.Name, DSN: req.DSN, Tables: req.Tables, Publication: req.Publication, Slot: req.Slot,
		Prefix: req.Prefix, Snapshot: req.Snapshot, JSON: req.JSONMode, Partitions: req.Partitions,
		DedupWindow: req.DedupWindow,
	}
	if o := req.Outbox; o != nil {
		cfg.Outbox = &postgres.OutboxConfig{Table: o.Table, Route: o.Route, RouteBy: o.RouteBy, IDColumn: o.IDColumn,
			KeyColumn: o.KeyColumn, TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn, Headers: o.Headers,
			DeadLetter: o.DeadLetter, DedupWindow: o.DedupWindow}
	}
	if err := cfg.Validate(); err != nil {
		return api.ConnectorStatus{}, api.InvalidConnector(err)
	}
	if m.exists(cfg.Name) {
		return api.ConnectorStatus{}, fmt.Errorf("%w: %q", broker.ErrConnectorExists, cfg.Name)
	}
	value, err := json.Marshal(ConnectorConfig{Type: "postgres", Config: cfg})
	if err != nil {
		return api.ConnectorStatus{}, err
	}
	if err := m.broker.PutConnector(ctx, cfg.Name, value, true); err != nil {
		return api.ConnectorStatus{}, err
	}
	if err := m.start(cfg, originAPI); err != nil {
		if errors.Is(err, postgres.ErrInvalidConfig) {
			err = api.InvalidConnector(err)
		}
		return api.ConnectorStatus{}, errors.Join(err, m.broker.DeleteConnector(ctx, cfg.Name))
	}
	return m.Describe(ctx, cfg.Name)
}

// List implements api.ConnectorManager.
func (m *connectorManager) List(ctx context.Context) ([]api.ConnectorStatus, error) {
	m.mu.Lock()
	names := slices.Sorted(maps.Keys(m.running))
	m.mu.Unlock()
	out := make([]api.ConnectorStatus, 0, len(names))
	for _, name := range names {
		if st, err := m.Describe(ctx, name); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// Describe implements api.ConnectorManager.
func (m *connectorManager) Describe(_ context.Context, name string) (api.ConnectorStatus, error) {
	m.mu.Lock()
	mc, ok := m.running[name]
	m.mu.Unlock()
	if !ok {
		return api.ConnectorStatus{}, fmt.Errorf("%w: %q", broker.ErrConnectorNotFound, name)
	}
	return mc.status(), nil
}

func (mc *managedConnector) status() api.ConnectorStatus {
	stats := mc.conn.Stats()
	cfg := mc.conn.Config()
	mc.mu.Lock()
	defer mc.mu.Unlock()
	st := api.ConnectorStatus{
		Name: cfg.Name, Type: "postgres", Origin: mc.origin,
		Postgres: api.PostgresConnectorConfig{
			Name: cfg.Name, DSN: cfg.DSN, Tables: cfg.Tables, Publication: cfg.Publication, Slot: cfg.Slot,
			Prefix: cfg.Prefix, Snapshot: cfg.Snapshot, JSONMode: cfg.JSON, Partitions: cfg.Partitions,
			DedupWindow: cfg.DedupWindow,
		},
		State: stats.State, LastError: mc.lastError, LastErrorTime: mc.lastErrorTime, Restarts: mc.restarts,
		SnapshotRows: stats.SnapshotRows, Events: stats.Events, Transactions: stats.Transactions,
		LagBytes: stats.LagBytes(), Behind: stats.Behind, LastEvent: stats.LastEvent,
	}
	if o := cfg.Outbox; o != nil {
		st.Postgres.Outbox = &api.OutboxConfig{Table: o.Table, Route: o.Route, RouteBy: o.RouteBy, IDColumn: o.IDColumn,
			KeyColumn: o.KeyColumn, TypeColumn: o.TypeColumn, PayloadColumn: o.PayloadColumn, Headers: o.Headers,
			DeadLetter: o.DeadLetter, DedupWindow: o.DedupWindow}
	}
	if stats.ConfirmedLSN != 0 {
		st.ConfirmedLSN = stats.ConfirmedLSN.String()
	}
	if stats.ServerWAL != 0 {
		st.ServerWALLSN = stats.ServerWAL.String()
	}
	if mc.failed && stats.State == postgres.StateStopped {
		st.State = stateFailed
	}
	return st
}

// Delete implements api.ConnectorManager: the connector is stopped, its
// slot and publication dropped (unless keepSlot), then it is forgotten.
func (m *connectorManager) Delete(ctx context.Context, name string, keepSlot bool) error {
	m.mu.Lock()
	mc, ok := m.running[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", broker.ErrConnectorNotFound, name)
	}
	if mc.origin == originConfig {
		return fmt.Errorf("%w: %s", api.ErrConnectorInFile, name)
	}
	if err := mc.stop(ctx); err != nil {
		return err
	}
	if !keepSlot {
		if err := postgres.Drop(ctx, mc.conn.Config(), m.broker); err != nil {
			// Keep it running: nothing was removed.
			m.mu.Lock()
			delete(m.running, name)
			m.mu.Unlock()
			restartErr := m.start(mc.conn.Config(), mc.origin)
			return errors.Join(fmt.Errorf("%w (the connector keeps running; delete with keep_slot to remove it and leave the slot)", err), restartErr)
		}
	}
	if err := m.broker.DeleteConnector(ctx, name); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.running, name)
	m.mu.Unlock()
	m.logger.Info("connector deleted", "connector", name, "slot_dropped", !keepSlot)
	return nil
}

// connectorCollector reports each connector's progress at each scrape:
//
//	weir_connector_up                       1 while snapshotting or streaming
//	weir_connector_lag_bytes                the server's WAL end minus the confirmed flush position
//	weir_connector_behind_seconds           commit in PostgreSQL to durable in Weir, last transaction
//	weir_connector_seconds_since_last_event time since the last change event was written
//	weir_connector_events_total             change events written since the server started
//	weir_connector_restarts_total           failures since the server started
type connectorCollector struct{ m *connectorManager }

var (
	connectorUpDesc = prometheus.NewDesc("weir_connector_up",
		"1 while the connector snapshots or streams, 0 while it starts, fails or is stopped.", []string{"connector"}, nil)
	connectorLagDesc = prometheus.NewDesc("weir_connector_lag_bytes",
		"Bytes of WAL between the source's WAL end and the position the connector confirmed (all durable in Weir).", []string{"connector"}, nil)
	connectorBehindDesc = prometheus.NewDesc("weir_connector_behind_seconds",
		"Time from the commit in PostgreSQL of the last transaction acknowledged to its events being durable in Weir (0 when caught up).", []string{"connector"}, nil)
	connectorIdleDesc = prometheus.NewDesc("weir_connector_seconds_since_last_event",
		"Seconds since the connector last wrote a change event (absent before the first).", []string{"connector"}, nil)
	connectorEventsDesc = prometheus.NewDesc("weir_connector_events_total",
		"Change events the connector wrote since the server started.", []string{"connector"}, nil)
	connectorRestartsDesc = prometheus.NewDesc("weir_connector_restarts_total",
		"Times the connector failed and was restarted since the server started.", []string{"connector"}, nil)
)

// Describe implements prometheus.Collector.
func (c *connectorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectorUpDesc, connectorLagDesc, connectorBehindDesc, connectorIdleDesc, connectorEventsDesc, connectorRestartsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *connectorCollector) Collect(ch chan<- prometheus.Metric) {
	list, _ := c.m.List(context.Background())
	for _, st := range list {
		up := 0.0
		if st.State == postgres.StateSnapshot || st.State == postgres.StateStreaming {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(connectorUpDesc, prometheus.GaugeValue, up, st.Name)
		ch <- prometheus.MustNewConstMetric(connectorLagDesc, prometheus.GaugeValue, float64(st.LagBytes), st.Name)
		ch <- prometheus.MustNewConstMetric(connectorBehindDesc, prometheus.GaugeValue, st.Behind.Seconds(), st.Name)
		if !st.LastEvent.IsZero() {
			ch <- prometheus.MustNewConstMetric(connectorIdleDesc, prometheus.GaugeValue, time.Since(st.LastEvent).Seconds(), st.Name)
		}
		ch <- prometheus.MustNewConstMetric(connectorEventsDesc, prometheus.CounterValue, float64(st.Events), st.Name)
		ch <- prometheus.MustNewConstMetric(connectorRestartsDesc, prometheus.CounterValue, float64(st.Restarts), st.Name)
	}
}

// connectorKeys lists the keys of a connectors entry of the configuration
// file, for the error about an unknown one.
func connectorKeys() []string {
	keys := []string{"type"}
	t := reflect.TypeFor[postgres.Config]()
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}
