// Command orders is an example system built on Weir: an order service
// writes orders and their events in one PostgreSQL transaction (the
// transactional outbox); Weir's CDC connector reads the outbox from the WAL
// and routes each event to outbox.event.<aggregatetype>; an inventory
// service consumes the order events through a queue (a shared
// subscription) with an idempotent consumer and reserves stock; a read
// model projects order summaries from the events; and the shipping price
// of each order is a scatter-gather over several shippers.
//
//	go run ./examples/orders --postgres 'postgres://postgres@localhost:5432/postgres?sslmode=disable'
//
// The database needs wal_level=logical and a user allowed to replicate
// (see README.md). The command starts an in-process Weir node (data in a
// temporary directory, the API on a loopback port), creates the schema
// orders_example, runs the services as goroutines, places some orders,
// prints the summaries and quotes, and exits, dropping the replication
// slot it created. The schema stays, to be looked at; --reset drops it at
// the next run.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	embedded "github.com/weirmq/weir"
	weir "github.com/weirmq/weir/client"
)

// config is what the system is started with.
type config struct {
	DSN       string // the PostgreSQL database
	Schema    string // the example's tables go into this schema
	Reset     bool   // drop the schema first if it exists
	Dir       string // Weir's data directory
	Connector string // name of the CDC connector (and of its slot: weir_<name>)
	// EventDedupWindow of the event streams: 0, the server's default; the
	// test turns it off (negative) to deliver copies of events as a replay
	// after a long outage would.
	EventDedupWindow time.Duration
	Shippers         []Shipper
	QuoteTimeout     time.Duration
	Logger           *slog.Logger
}

// defaultShippers: three that answer at once, and one that is the
// cheapest but takes ten times the quote deadline to answer.
func defaultShippers(quoteTimeout time.Duration) []Shipper {
	return []Shipper{
		{Name: "parcelpro", BaseCents: 500, PerKgCents: 120},
		{Name: "swiftship", BaseCents: 350, PerKgCents: 180},
		{Name: "bulkfreight", BaseCents: 1200, PerKgCents: 40},
		{Name: "slowpoke", BaseCents: 100, PerKgCents: 10, Delay: 10 * quoteTimeout},
	}
}

// sampleOrders are what the command places. A-1003 asks for more monitors
// than the shop has, and is rejected.
var sampleOrders = []Order{
	{ID: "A-1001", Customer: "alice", Lines: []Line{{SKU: "KB-01", Quantity: 1}, {SKU: "MS-02", Quantity: 2}}},
	{ID: "A-1002", Customer: "bob", Lines: []Line{{SKU: "MN-27", Quantity: 2}, {SKU: "CB-05", Quantity: 3}}},
	{ID: "A-1003", Customer: "carol", Lines: []Line{{SKU: "MN-27", Quantity: 4}}},
	{ID: "A-1004", Customer: "dave", Lines: []Line{{SKU: "CB-05", Quantity: 10}, {SKU: "MS-02", Quantity: 1}}},
	{ID: "A-1005", Customer: "erin", Lines: []Line{{SKU: "KB-01", Quantity: 3}}},
}

func main() {
	dsn := flag.String("postgres", os.Getenv("DATABASE_URL"), "PostgreSQL connection string or URL (wal_level=logical); default $DATABASE_URL")
	schema := flag.String("schema", "orders_example", "schema the example's tables are created in")
	reset := flag.Bool("reset", false, "drop the schema first if an earlier run left it")
	timeout := flag.Duration("quote-timeout", time.Second, "how long to wait for shipping quotes")
	verbose := flag.Bool("v", false, "log what Weir and the services do")
	flag.Parse()
	if *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "orders: --quote-timeout must be positive")
		os.Exit(2)
	}
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "orders: give --postgres 'postgres://user@host:5432/db' (a database with wal_level=logical)")
		os.Exit(2)
	}
	logLevel := slog.LevelWarn
	if *verbose {
		logLevel = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *dsn, *schema, *reset, *timeout, logger, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// run starts the system, places the sample orders, waits for the inventory
// and the read model to catch up, prints the summaries, and stops.
func run(ctx context.Context, dsn, schema string, reset bool, quoteTimeout time.Duration, logger *slog.Logger, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "weir-orders-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sys, err := start(ctx, config{DSN: dsn, Schema: schema, Reset: reset, Dir: dir, Connector: "orders-example",
		Shippers: defaultShippers(quoteTimeout), QuoteTimeout: quoteTimeout, Logger: logger})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, sys.Close(context.WithoutCancel(ctx))) }()
	if err := sys.StartServices(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "weir: node on %s, data in %s; connector %s streaming %s.outbox\n", sys.node.Addr(), dir, sys.cfg.Connector, schema)

	var placed []string
	for _, o := range sampleOrders {
		ev, quote, err := sys.Orders.Place(ctx, o)
		if err != nil {
			return err
		}
		placed = append(placed, ev.OrderID)
		fmt.Fprintf(out, "placed %s for %s: %s, %d g; shipping %s %s (quotes:", ev.OrderID, ev.Customer,
			money(ev.TotalCents), ev.WeightGrams, ev.Shipper, money(ev.ShippingCents))
		for _, q := range quote.Quotes {
			fmt.Fprintf(out, " %s %s", q.Shipper, money(q.PriceCents))
		}
		fmt.Fprintf(out, "; %d of %d shippers in time)\n", len(quote.Quotes), len(sys.cfg.Shippers))
	}

	summaries, err := sys.WaitForSummaries(ctx, placed, time.Minute)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%-7s %-8s %5s %10s %-12s %9s  %s\n", "ORDER", "CUSTOMER", "ITEMS", "TOTAL", "SHIPPER", "SHIPPING", "STATUS")
	for _, s := range summaries {
		status := s.Status
		if s.Reason != "" {
			status += " (" + s.Reason + ")"
		}
		fmt.Fprintf(out, "%-7s %-8s %5d %10s %-12s %9s  %s\n", s.OrderID, s.Customer, s.Items, money(s.TotalCents), s.Shipper, money(s.ShippingCents), status)
	}
	st := sys.Inventory.Stats()
	fmt.Fprintf(out, "\ninventory: %d reserved, %d rejected, %d duplicate deliveries skipped\n", st.Reserved, st.Rejected, st.SkippedInMemory+st.SkippedInDatabase)
	return nil
}

func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

// system is the running example: a Weir node with the CDC connector, the
// database, and the services.
type system struct {
	cfg       config
	node      *embedded.Node
	client    *weir.Client
	db        *sql.DB
	Orders    *OrderService
	Inventory *Inventory
	ReadModel *ReadModel
	consumers []*weir.Consumer
	stopRM    context.CancelFunc
	rmDone    chan error
}

// start opens the database and creates the schema, starts a Weir node on
// cfg.Dir with its API on a loopback port, creates the event streams and
// the CDC connector with the outbox router, and waits until the connector
// streams. The services are started by StartServices.
func start(ctx context.Context, cfg config) (_ *system, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &system{cfg: cfg}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close(context.WithoutCancel(ctx)))
		}
	}()
	if s.db, err = sql.Open("pgx", cfg.DSN); err != nil {
		return nil, err
	}
	if err := s.db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := createSchema(ctx, s.db, cfg.Schema, cfg.Reset); err != nil {
		return nil, err
	}
	if s.node, err = embedded.Open(ctx, embedded.Options{Dir: cfg.Dir, HTTPAddr: "127.0.0.1:0", Logger: cfg.Logger}); err != nil {
		return nil, fmt.Errorf("weir: %w", err)
	}
	if s.client, err = s.node.Client(ctx, weir.WithLogger(cfg.Logger)); err != nil {
		return nil, fmt.Errorf("weir: %w", err)
	}
	// The router creates its streams on first use; creating them now lets
	// the subscriptions be made before the first order.
	for _, name := range []string{orderEventsStream, inventoryEventsStream} {
		_, err := s.client.CreateStream(ctx, weir.StreamConfig{Name: name, DedupWindow: cfg.EventDedupWindow})
		if err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
			return nil, err
		}
	}
	if _, err := s.client.CreatePostgresConnector(ctx, cfg.Connector, weir.PostgresConnectorConfig{
		DSN:    cfg.DSN,
		Outbox: &weir.OutboxRouterConfig{Table: cfg.Schema + ".outbox"},
	}); err != nil {
		return nil, fmt.Errorf("cdc connector: %w", err)
	}
	if err := s.waitStreaming(ctx, time.Minute); err != nil {
		return nil, err
	}
	desk := &ShippingDesk{Client: s.client, Exchange: "shipping.quotes", Shippers: len(cfg.Shippers), Timeout: cfg.QuoteTimeout, Logger: cfg.Logger}
	s.Orders = &OrderService{DB: s.db, Schema: cfg.Schema, Shipping: desk}
	s.Inventory = NewInventory(s.db, s.client, cfg.Schema)
	s.ReadModel = &ReadModel{DSN: cfg.DSN, Client: s.client, Schema: cfg.Schema, Logger: cfg.Logger}
	if err := s.ReadModel.Open(); err != nil {
		return nil, err
	}
	return s, nil
}

// waitStreaming waits until the connector took its snapshot and streams;
// a connector that keeps failing is reported with its error.
func (s *system) waitStreaming(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		info, err := s.client.DescribeConnector(ctx, s.cfg.Connector)
		if err != nil {
			return fmt.Errorf("cdc connector: %w", err)
		}
		if info.State == "streaming" {
			return nil
		}
		if info.State == "failed" && info.Restarts >= 3 {
			return fmt.Errorf("cdc connector %s keeps failing: %s", s.cfg.Connector, info.LastError)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cdc connector %s not streaming (state %s, last error %q): %w", s.cfg.Connector, info.State, info.LastError, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StartServices starts the shippers, one inventory replica and the read
// model.
func (s *system) StartServices(ctx context.Context) error {
	if err := s.StartShippers(ctx, s.Orders.Shipping.Exchange, s.cfg.Shippers); err != nil {
		return err
	}
	inv, err := s.Inventory.Start(ctx, s.Inventory.Handler())
	if err != nil {
		return err
	}
	s.consumers = append(s.consumers, inv)
	return s.StartReadModel(ctx)
}

// StartShippers serves each shipper's queue, bound to exchange.
func (s *system) StartShippers(ctx context.Context, exchange string, shippers []Shipper) error {
	for _, sh := range shippers {
		cons, err := ServeShipper(ctx, s.client, exchange, sh)
		if err != nil {
			return fmt.Errorf("shipper %s: %w", sh.Name, err)
		}
		s.consumers = append(s.consumers, cons)
	}
	return nil
}

// StartReadModel runs the read model until Close.
func (s *system) StartReadModel(ctx context.Context) error {
	if err := s.ReadModel.Prepare(ctx); err != nil {
		return err
	}
	rmCtx, cancel := context.WithCancel(ctx)
	s.stopRM, s.rmDone = cancel, make(chan error, 1)
	go func() { s.rmDone <- s.ReadModel.Run(rmCtx) }()
	return nil
}

// WaitForSummaries waits until the read model shows the inventory's
// outcome for each of the orders, and returns their summaries.
func (s *system) WaitForSummaries(ctx context.Context, orderIDs []string, limit time.Duration) ([]Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		summaries, err := s.ReadModel.Summaries(ctx, orderIDs)
		if err != nil && ctx.Err() == nil {
			return nil, err
		}
		done := len(summaries) == len(orderIDs)
		for _, sum := range summaries {
			done = done && sum.Status != statusPlaced
		}
		if done {
			return summaries, nil
		}
		select {
		case err := <-s.rmDone:
			s.rmDone <- err
			return nil, fmt.Errorf("read model stopped: %w", err)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the summaries of %d orders (%d complete): %w", len(orderIDs), len(summaries), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops the services, deletes the connector (dropping its slot and
// publication), and closes the node and the database.
func (s *system) Close(ctx context.Context) error {
	var errs []error
	for _, c := range s.consumers {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.stopRM != nil {
		s.stopRM()
		if err := <-s.rmDone; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("read model: %w", err))
		}
	}
	if s.client != nil {
		if err := s.client.DeleteConnector(ctx, s.cfg.Connector, false); err != nil && !errors.Is(err, weir.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete connector: %w", err))
		}
		errs = append(errs, s.client.Close())
	}
	if s.node != nil {
		errs = append(errs, s.node.Close(ctx))
	}
	if s.ReadModel != nil {
		errs = append(errs, s.ReadModel.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
