package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/connector"
)

// Options are what a Connector writes through and remembers with.
type Options struct {
	Sink   connector.Sink  // where change records go (the broker)
	Store  connector.Store // where progress is kept (Weir's state)
	Logger *slog.Logger    // nil: discard
	// Transform turns changes into records (nil: DebeziumRecords).
	Transform Transform
}

// Connector captures the changes of PostgreSQL tables into Weir streams:
// an initial snapshot, then logical replication (pgoutput), each change a
// Debezium-style event on "<prefix>.<schema>.<table>". Run does the work;
// Stats reports progress from any goroutine.
type Connector struct {
	cfg       Config
	sink      connector.Sink
	store     connector.Store
	logger    *slog.Logger
	transform Transform // nil: the Debezium envelope

	mu    sync.Mutex
	stats Stats
}

// Connector states (Stats.State).
const (
	StateStarting  = "starting"
	StateSnapshot  = "snapshot"
	StateStreaming = "streaming"
	StateStopped   = "stopped"
)

// Stats is a connector's progress.
type Stats struct {
	State        string
	SnapshotRows int64 // rows read by the initial snapshot
	Events       int64 // change events written since the connector started (tombstones not counted)
	Transactions int64 // transactions acknowledged since the connector started
	ConfirmedLSN LSN   // flush position confirmed to PostgreSQL
	ServerWAL    LSN   // the server's WAL end, as of its last message
	LastEvent    time.Time
	// Behind is how far behind the source the connector was when it last
	// acknowledged a transaction: the time from its commit in PostgreSQL
	// to its events being durable in Weir (as Debezium's
	// MilliSecondsBehindSource; the two hosts' clocks must agree). Zero
	// once the slot advanced while idle: nothing is pending.
	Behind time.Duration
}

// LagBytes is how far the confirmed position is behind the server's WAL.
func (s Stats) LagBytes() uint64 {
	if s.ServerWAL <= s.ConfirmedLSN {
		return 0
	}
	return uint64(s.ServerWAL - s.ConfirmedLSN)
}

// progress is what the connector keeps in Weir's state.
type progress struct {
	Slot               string `json:"slot,omitempty"`
	SnapshotDone       bool   `json:"snapshot_done,omitempty"`
	Publication        string `json:"publication,omitempty"`
	CreatedPublication bool   `json:"created_publication,omitempty"`
}

// New returns a connector for cfg, which is validated.
func New(cfg Config, opts Options) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Sink == nil || opts.Store == nil {
		return nil, errors.New("postgres connector: a sink and a store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if opts.Transform == nil && cfg.Outbox != nil {
		router, err := NewOutboxRouter(*cfg.Outbox)
		if err != nil {
			return nil, err
		}
		opts.Transform = router.Transform
	}
	return &Connector{cfg: cfg, sink: opts.Sink, store: opts.Store, logger: opts.Logger,
		transform: opts.Transform, stats: Stats{State: StateStopped}}, nil
}

// Config returns the connector's configuration with defaults filled in.
func (c *Connector) Config() Config { return c.cfg }

// Stats returns the connector's progress.
func (c *Connector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Connector) update(fn func(*Stats)) {
	c.mu.Lock()
	fn(&c.stats)
	c.mu.Unlock()
}

// Run captures changes until ctx is done or an error stops it; it returns
// the error (nil when ctx ended it). Run again after an error resumes from
// what PostgreSQL confirmed: nothing acknowledged to PostgreSQL was not
// durable in Weir first, so nothing is lost; the events after the last
// acknowledgement may be written again (with the same source.lsn and
// message-id).
func (c *Connector) Run(ctx context.Context) error {
	c.update(func(s *Stats) { s.State = StateStarting })
	defer c.update(func(s *Stats) { s.State = StateStopped })
	err := c.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *Connector) run(ctx context.Context) error {
	sqlc, err := connectSQL(ctx, c.cfg.DSN)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer sqlc.Close(context.WithoutCancel(ctx))
	db, err := sqlc.currentDatabase(ctx)
	if err != nil {
		return err
	}
	var prog progress
	if _, err := connector.LoadJSON(ctx, c.store, c.cfg.Name, &prog); err != nil {
		return err
	}
	tables := make([]tableName, len(c.cfg.Tables))
	for i, t := range c.cfg.Tables {
		tables[i], _ = parseTableName(t) // validated
	}
	ours := prog.CreatedPublication && prog.Publication == c.cfg.Publication
	created, err := sqlc.ensurePublication(ctx, c.cfg.Publication, tables, ours)
	if err != nil {
		return err
	}
	if created {
		c.logger.Info("created publication", "publication", c.cfg.Publication, "tables", c.cfg.Tables)
		prog.Publication, prog.CreatedPublication = c.cfg.Publication, true
		if err := connector.SaveJSON(ctx, c.store, c.cfg.Name, prog); err != nil {
			return err
		}
	}

	if err := c.createStreams(ctx, sqlc); err != nil {
		return err
	}
	slot, err := sqlc.slot(ctx, c.cfg.Slot)
	if err != nil {
		return err
	}
	if slot.Exists {
		if slot.Plugin != "pgoutput" || slot.Database != db {
			return fmt.Errorf("replication slot %s exists for plugin %q in database %q, not pgoutput in %q", c.cfg.Slot, slot.Plugin, slot.Database, db)
		}
		if slot.Active {
			return fmt.Errorf("replication slot %s is in use by another connection (a previous run not yet timed out, or another consumer)", c.cfg.Slot)
		}
	}
	if prog.Slot != "" && prog.Slot != c.cfg.Slot {
		c.logger.Warn("the connector's slot was renamed: the previous one is left in the database and holds WAL until dropped",
			"previous_slot", prog.Slot, "slot", c.cfg.Slot)
	}
	create := !slot.Exists
	switch {
	case create:
	case prog.Slot == c.cfg.Slot && prog.SnapshotDone:
	case c.cfg.Snapshot == SnapshotNever:
		prog.Slot, prog.SnapshotDone = c.cfg.Slot, true
		if err := connector.SaveJSON(ctx, c.store, c.cfg.Name, prog); err != nil {
			return err
		}
	case prog.Slot == c.cfg.Slot:
		c.logger.Warn("the initial snapshot was interrupted: dropping the slot and starting it again (its rows are written again)", "slot", c.cfg.Slot)
		create = true
	default:
		return fmt.Errorf("replication slot %s exists but this connector did not create it: drop it (SELECT pg_drop_replication_slot('%s')), "+
			"name another slot, or set snapshot: never to stream from it", c.cfg.Slot, c.cfg.Slot)
	}

	rc, err := Connect(ctx, c.cfg.DSN)
	if err != nil {
		return fmt.Errorf("open replication connection: %w", err)
	}
	defer rc.Close(context.WithoutCancel(ctx))
	start := slot.ConfirmedFlush
	if create {
		if start, err = c.createSlot(ctx, rc, sqlc, &prog, slot.Exists, db); err != nil {
			return err
		}
	}
	return c.stream(ctx, rc, sqlc, start, db)
}

// createStreams creates the streams of the published tables, when the sink
// can, so that they can be subscribed to before the first change.
func (c *Connector) createStreams(ctx context.Context, sqlc *sqlConn) error {
	creator, ok := c.sink.(connector.StreamCreator)
	if !ok {
		return nil
	}
	refs, err := sqlc.publishedTables(ctx, c.cfg.Publication)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(refs))
	for _, ref := range refs {
		if c.cfg.Outbox != nil && c.cfg.Outbox.table == ref.Name {
			continue // routed: nothing is written to its own stream
		}
		names = append(names, streamName(c.cfg.Prefix, ref.Name.Schema, ref.Name.Table))
	}
	return creator.EnsureStreams(ctx, names)
}

// createSlot creates the slot (dropping an interrupted one first), runs the
// initial snapshot in the slot's exported snapshot and records it done. It
// returns the slot's consistent point, where streaming starts: the
// snapshot holds exactly the transactions committed before it.
func (c *Connector) createSlot(ctx context.Context, rc *ReplConn, sqlc *sqlConn, prog *progress, exists bool, db string) (LSN, error) {
	if exists {
		if err := rc.DropReplicationSlot(ctx, c.cfg.Slot); err != nil {
			return 0, fmt.Errorf("drop replication slot %s: %w", c.cfg.Slot, err)
		}
	}
	prog.Slot, prog.SnapshotDone = c.cfg.Slot, false
	if err := connector.SaveJSON(ctx, c.store, c.cfg.Name, *prog); err != nil {
		return 0, err
	}
	mode := SnapshotExport
	if c.cfg.Snapshot == SnapshotNever {
		mode = SnapshotNothing
	}
	slot, err := rc.CreateReplicationSlot(ctx, c.cfg.Slot, SlotOptions{Snapshot: mode})
	if err != nil {
		return 0, fmt.Errorf("create replication slot %s: %w", c.cfg.Slot, err)
	}
	c.logger.Info("created replication slot", "slot", c.cfg.Slot, "consistent_point", slot.ConsistentPoint)
	if mode == SnapshotExport {
		c.update(func(s *Stats) { s.State = StateSnapshot })
		if err := c.snapshot(ctx, sqlc, slot.SnapshotName, slot.ConsistentPoint, db); err != nil {
			return 0, fmt.Errorf("initial snapshot: %w", err)
		}
	}
	prog.SnapshotDone = true
	if err := connector.SaveJSON(ctx, c.store, c.cfg.Name, *prog); err != nil {
		return 0, err
	}
	return slot.ConsistentPoint, nil
}

// write stores events (and a delete's tombstone) through the sink.
func (c *Connector) write(ctx context.Context, events []event, db string) error {
	if len(events) == 0 {
		return nil
	}
	now := time.Now()
	recs := make([]connector.Record, 0, len(events)+len(events)/4)
	for i := range events {
		if c.transform != nil {
			out, err := c.transform(events[i].view(c.cfg.Name, db))
			if err != nil {
				return err
			}
			recs = append(recs, out...)
		} else {
			recs = append(recs, events[i].records(c.cfg.Name, db, now)...)
		}
	}
	if err := c.sink.Write(ctx, recs); err != nil {
		return err
	}
	c.update(func(s *Stats) {
		s.Events += int64(len(events))
		s.LastEvent = now
	})
	return nil
}

// snapshot reads every table of the publication in the exported snapshot
// and writes a read event (op r) per row; the last is marked "last".
func (c *Connector) snapshot(ctx context.Context, sqlc *sqlConn, snapName string, lsn LSN, db string) (err error) {
	if err := sqlc.exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT "+quoteLiteral(snapName)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			sqlc.exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	refs, err := sqlc.publishedTables(ctx, c.cfg.Publication)
	if err != nil {
		return err
	}
	now := time.Now()
	var pending []event // the last one is held back, to be marked "last"
	for _, ref := range refs {
		pk, err := sqlc.primaryKey(ctx, ref.OID)
		if err != nil {
			return err
		}
		rr := sqlc.conn.ExecParams(ctx, "SELECT * FROM "+ref.Name.quoted(), nil, nil, nil, nil)
		fds := rr.FieldDescriptions()
		t := &table{ID: ref.OID, Schema: ref.Name.Schema, Name: ref.Name.Table,
			Stream: streamName(c.cfg.Prefix, ref.Name.Schema, ref.Name.Table)}
		for _, fd := range fds {
			t.Cols = append(t.Cols, column{Name: fd.Name, OID: fd.DataTypeOID})
		}
		t.Key = keyIndexes(t.Cols, pk, nil)
		var rows int64
		for rr.NextRow() {
			raw := rr.Values()
			vals := make([]value, len(raw))
			for i, v := range raw {
				vals[i] = value{Text: v, Null: v == nil}
			}
			ev := event{Table: t, Op: opRead, Snapshot: snapshotTrue, LSN: lsn, Time: now, Row: vals}
			if ev.After, err = encodeRow(t, vals, c.cfg.JSON == JSONAsObject); err != nil {
				rr.Close()
				return err
			}
			if ev.Key, err = encodeKey(t, vals); err != nil {
				rr.Close()
				return err
			}
			pending = append(pending, ev)
			rows++
			if len(pending) > c.cfg.BatchRecords {
				if err := c.write(ctx, pending[:len(pending)-1], db); err != nil {
					rr.Close()
					return err
				}
				pending = append(pending[:0], pending[len(pending)-1])
			}
		}
		if _, err := rr.Close(); err != nil {
			return fmt.Errorf("read table %s: %w", ref.Name, err)
		}
		c.update(func(s *Stats) { s.SnapshotRows += rows })
		c.logger.Info("snapshot read a table", "table", ref.Name.String(), "rows", rows)
	}
	if len(pending) > 0 {
		pending[len(pending)-1].Snapshot = snapshotLast
	}
	if err := c.write(ctx, pending, db); err != nil {
		return err
	}
	return sqlc.exec(ctx, "COMMIT")
}

// keyIndexes returns the indexes of the named key columns, or, without a
// primary key, of the replica identity columns (identity: one flag per
// column; nil when unknown). None when a name is not among the columns.
func keyIndexes(cols []column, pk []string, identity []bool) []int {
	var key []int
	if len(pk) > 0 {
		for _, name := range pk {
			found := false
			for i, col := range cols {
				if col.Name == name {
					key = append(key, i)
					found = true
					break
				}
			}
			if !found {
				return nil
			}
		}
		return key
	}
	if len(identity) == len(cols) && !allTrue(identity) { // REPLICA IDENTITY FULL marks every column: no key
		for i, k := range identity {
			if k {
				key = append(key, i)
			}
		}
	}
	return key
}

func allTrue(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}

// tupleValues converts a pgoutput tuple: unchanged TOASTed values are
// absent, and so are the non-identity columns of a key-only old image
// (keyOnly), which pgoutput sends as nulls that are not the row's values.
func tupleValues(t *table, identity []bool, tup Tuple, keyOnly bool) ([]value, error) {
	vals := make([]value, len(tup))
	for i, col := range tup {
		switch col.Kind {
		case ColumnNull:
			vals[i] = value{Null: true}
		case ColumnUnchanged:
			vals[i] = value{Absent: true}
		case ColumnText:
			vals[i] = value{Text: col.Data}
		default:
			return nil, fmt.Errorf("table %s.%s: column %d in binary format, which the connector does not request", t.Schema, t.Name, i)
		}
		if keyOnly && i < len(identity) && !identity[i] {
			vals[i] = value{Absent: true}
		}
	}
	return vals, nil
}

// sameKey reports whether two encoded keys are equal (both present).
func sameKey(a, b []byte) bool { return a == nil || b == nil || bytes.Equal(a, b) }

// Drop removes what a connector made in PostgreSQL: its replication slot
// (which would otherwise hold WAL for ever) and its publication if the
// connector created it. The connector must be stopped; a slot still held
// by its closing connection is retried for a few seconds.
func Drop(ctx context.Context, cfg Config, store connector.Store) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	var prog progress
	if _, err := connector.LoadJSON(ctx, store, cfg.Name, &prog); err != nil {
		return err
	}
	sqlc, err := connectSQL(ctx, cfg.DSN)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer sqlc.Close(context.WithoutCancel(ctx))
	if prog.Slot != "" {
		for attempt := 0; ; attempt++ {
			slot, err := sqlc.slot(ctx, prog.Slot)
			if err != nil {
				return err
			}
			if !slot.Exists {
				break
			}
			if !slot.Active {
				if _, err := sqlc.query(ctx, `SELECT pg_drop_replication_slot($1)`, prog.Slot); err != nil {
					return fmt.Errorf("drop replication slot %s: %w", prog.Slot, err)
				}
				break
			}
			if attempt >= 50 {
				return fmt.Errorf("drop replication slot %s: still in use", prog.Slot)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if prog.CreatedPublication && prog.Publication != "" {
		if err := sqlc.exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(prog.Publication)); err != nil {
			return fmt.Errorf("drop publication %s: %w", prog.Publication, err)
		}
	}
	return nil
}
