package weir

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// CQRS projections: a Projection applies the events of a stream, or of the
// event store, to a read model in a SQL database, and stores how far it got
// (its checkpoint) in the same transaction as the read-model change. A
// crash therefore loses either the whole batch (its transaction rolls back,
// and the next run reads the batch again) or nothing: each event changes
// the read model exactly once. Nothing is committed to the broker; the
// database alone knows the projection's position.

// ProjectionTable is the checkpoint table: one row per projection and
// partition (partition -1 for the event store's global order), created by
// Project and RebuildProjection when it is missing (ProjectionDDL).
const ProjectionTable = "weir_projections"

// eventStorePartition is the checkpoint row of a projection of the event
// store, whose position is global.
const eventStorePartition = -1

// ProjectionDDL returns the statement that creates the checkpoint table in
// a database of dialect d if it does not exist yet. Project runs it; run it
// yourself (in a migration) to own the schema.
func ProjectionDDL(d OutboxDialect) string {
	switch d {
	case OutboxMySQL:
		return `CREATE TABLE IF NOT EXISTS ` + ProjectionTable + ` (
    name          VARCHAR(255) NOT NULL,
    partition_id  INT          NOT NULL, -- a stream's partition; -1: the event store's global order
    next_position BIGINT       NOT NULL, -- the offset (or global position) to read next
    source        VARCHAR(512) NOT NULL, -- stream:NAME, category:NAME or all
    PRIMARY KEY (name, partition_id)
)`
	case OutboxSQLite:
		return `CREATE TABLE IF NOT EXISTS ` + ProjectionTable + ` (
    name          TEXT    NOT NULL,
    partition_id  INTEGER NOT NULL, -- a stream's partition; -1: the event store's global order
    next_position INTEGER NOT NULL, -- the offset (or global position) to read next
    source        TEXT    NOT NULL, -- stream:NAME, category:NAME or all
    PRIMARY KEY (name, partition_id)
)`
	default:
		return `CREATE TABLE IF NOT EXISTS ` + ProjectionTable + ` (
    name          text    NOT NULL,
    partition_id  integer NOT NULL, -- a stream's partition; -1: the event store's global order
    next_position bigint  NOT NULL, -- the offset (or global position) to read next
    source        text    NOT NULL, -- stream:NAME, category:NAME or all
    PRIMARY KEY (name, partition_id)
)`
	}
}

// ErrProjectionConflict is wrapped by the error of a batch whose checkpoint
// moved under it: the projection was rebuilt, or another runner of the same
// projection committed first. The batch was rolled back; run Project again
// to go on from the stored checkpoint. It matches ErrAborted too.
var ErrProjectionConflict = fmt.Errorf("%w: projection checkpoint moved", ErrAborted)

// Projection applies the events of one source to a read model in DB. Set
// exactly one of Stream, Category and AllEvents.
type Projection struct {
	// Name identifies the projection's checkpoint rows. Required.
	Name string
	// DB is the read model's database: PostgreSQL (e.g. through pgx's
	// stdlib driver), SQLite (modernc.org/sqlite) or MySQL. Required.
	DB *sql.DB
	// Dialect is DB's SQL dialect.
	Dialect OutboxDialect

	// Stream projects a stream: all its partitions, each in offset order
	// (partitions are applied in parallel order, not one total order).
	Stream string
	// Category projects the event store's events of one category
	// ("order" for aggregates "order-1", "order-2"…), in global order.
	Category string
	// AllEvents projects every event of the event store, in global order.
	AllEvents bool

	// BatchSize is the most events applied in one transaction (default
	// 100).
	BatchSize int
	// FlushInterval is how long a batch waits for more events after its
	// first one before it is committed with fewer than BatchSize (default
	// 100ms): a projection is never further behind than that when the
	// source is quiet.
	FlushInterval time.Duration
	// PartitionCheckInterval is how often a stream projection looks for
	// partitions added to the stream, to project them too (default 30s;
	// negative: never).
	PartitionCheckInterval time.Duration
	// TxOptions are those of the batches' transactions (nil: the driver's
	// defaults).
	TxOptions *sql.TxOptions

	// Apply changes the read model for one event, within tx, the batch's
	// transaction (which also stores the checkpoint). It must not commit or
	// roll tx back. An error rolls the batch back and stops Project.
	// Required by Project.
	Apply func(ctx context.Context, tx *sql.Tx, ev *ProjectionEvent) error
	// Reset clears the read model within tx, for RebuildProjection.
	// Required by RebuildProjection.
	Reset func(ctx context.Context, tx *sql.Tx) error
	// OnCommit, if set, is called after each committed batch with its
	// number of events.
	OnCommit func(n int)
}

// ProjectionEvent is an event given to Projection.Apply: a record of a
// stream, or an event of the event store (Event set, and the record fields
// filled from it).
type ProjectionEvent struct {
	Stream    string // the stream ("" for the event store)
	Partition int32  // the stream's partition (-1 for the event store)
	Offset    int64  // the record's offset in its partition (-1 for the event store)
	Position  int64  // the event's global position (-1 for a stream)
	// Key is the record's key; for the event store, the event's
	// aggregate id.
	Key []byte
	// Value is the record's value; for the event store, the event's data.
	Value []byte
	// Headers are the record's headers; for the event store, the event's
	// id (message-id), type, content-type and correlation-id, those that
	// are set.
	Headers   []Header
	Timestamp time.Time
	// Event is the stored event when the source is the event store; nil
	// for a stream.
	Event *Event
}

// Header returns the value of the first header named key and whether there
// is one.
func (ev *ProjectionEvent) Header(key string) ([]byte, bool) {
	for _, h := range ev.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// String says where the event is, for errors and logs.
func (ev *ProjectionEvent) String() string {
	if ev.Event != nil {
		return fmt.Sprintf("event at position %d (%s version %d, id %s)", ev.Position, ev.Event.Aggregate, ev.Event.Version, ev.Event.ID)
	}
	return fmt.Sprintf("record %s/%d@%d", ev.Stream, ev.Partition, ev.Offset)
}

func projectionEventFromRecord(r *Record) ProjectionEvent {
	return ProjectionEvent{
		Stream: r.Stream, Partition: r.Partition, Offset: r.Offset, Position: -1,
		Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp,
	}
}

func projectionEventFromEvent(e Event) ProjectionEvent {
	ev := ProjectionEvent{
		Partition: eventStorePartition, Offset: -1, Position: e.Position,
		Key: []byte(e.Aggregate), Value: e.Data, Timestamp: e.Time, Event: &e,
	}
	for _, h := range []Header{
		{HeaderMessageID, []byte(e.ID)}, {HeaderType, []byte(e.Type)},
		{HeaderContentType, []byte(e.ContentType)}, {HeaderCorrelationID, []byte(e.CorrelationID)},
	} {
		if len(h.Value) > 0 {
			ev.Headers = append(ev.Headers, h)
		}
	}
	return ev
}

// source names what the projection reads, as stored in the checkpoint
// rows (a projection cannot silently switch sources).
func (p *Projection) source() string {
	switch {
	case p.Stream != "":
		return "stream:" + p.Stream
	case p.Category != "":
		return "category:" + p.Category
	}
	return "all"
}

// check validates the projection; forRun: Project's needs, otherwise
// RebuildProjection's.
func (p *Projection) check(forRun bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: projection %q: %s", ErrInvalidArgument, p.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case p.Name == "":
		return bad("a Name is required")
	case len(p.Name) > 255:
		return bad("the Name is longer than 255 bytes")
	case p.DB == nil:
		return bad("a DB is required")
	case p.Dialect != OutboxPostgres && p.Dialect != OutboxSQLite && p.Dialect != OutboxMySQL:
		return bad("unknown dialect %v", p.Dialect)
	case p.BatchSize < 0 || p.FlushInterval < 0:
		return bad("negative BatchSize or FlushInterval")
	}
	sources := 0
	for _, set := range []bool{p.Stream != "", p.Category != "", p.AllEvents} {
		if set {
			sources++
		}
	}
	if forRun {
		if sources != 1 {
			return bad("set exactly one of Stream, Category and AllEvents (%d set)", sources)
		}
		if p.Apply == nil {
			return bad("an Apply function is required")
		}
	} else {
		if sources > 1 {
			return bad("set at most one of Stream, Category and AllEvents (%d set)", sources)
		}
		if p.Reset == nil {
			return bad("a Reset function is required to rebuild")
		}
	}
	return nil
}

func (p *Projection) batchSize() int {
	return cmp.Or(p.BatchSize, 100)
}

func (p *Projection) flushInterval() time.Duration {
	return cmp.Or(p.FlushInterval, 100*time.Millisecond)
}

func (p *Projection) partitionCheckInterval() time.Duration {
	if p.PartitionCheckInterval == 0 {
		return 30 * time.Second
	}
	return p.PartitionCheckInterval
}

// createTable creates the checkpoint table if it is missing. Two
// PostgreSQL sessions running CREATE TABLE IF NOT EXISTS at once may fail
// one of them (a unique violation in the catalog): an error is therefore
// only one if the table is still not there.
func (p *Projection) createTable(ctx context.Context) error {
	_, err := p.DB.ExecContext(ctx, ProjectionDDL(p.Dialect))
	if err == nil {
		return nil
	}
	rows, probeErr := p.DB.QueryContext(ctx, "SELECT name FROM "+ProjectionTable+" WHERE 1 = 0")
	if probeErr == nil {
		rows.Close()
		return nil
	}
	return fmt.Errorf("weir: projection %q: create %s: %w", p.Name, ProjectionTable, err)
}

// loadCheckpoint reads the projection's positions: partition -> the offset
// (or global position) to read next.
func (p *Projection) loadCheckpoint(ctx context.Context) (map[int32]int64, error) {
	rows, err := p.DB.QueryContext(ctx, "SELECT partition_id, next_position, source FROM "+ProjectionTable+
		" WHERE name = "+p.Dialect.placeholder(1), p.Name)
	if err != nil {
		return nil, fmt.Errorf("weir: projection %q: read checkpoint: %w", p.Name, err)
	}
	defer rows.Close()
	out := make(map[int32]int64)
	for rows.Next() {
		var part int32
		var next int64
		var source string
		if err := rows.Scan(&part, &next, &source); err != nil {
			return nil, fmt.Errorf("weir: projection %q: read checkpoint: %w", p.Name, err)
		}
		if source != p.source() {
			return nil, fmt.Errorf("%w: projection %q was built from %s, not %s: rebuild it (RebuildProjection) or give it another Name",
				ErrInvalidArgument, p.Name, source, p.source())
		}
		out[part] = next
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("weir: projection %q: read checkpoint: %w", p.Name, err)
	}
	return out, nil
}

// Project runs the projection until ctx is done (it then returns nil) or
// an error stops it. It reads the checkpoint from DB (creating the
// checkpoint table if missing) and goes on from there: a stream from each
// partition's stored offset (the partitions without one from their oldest
// record), the event store from the stored global position (from the
// beginning without one). Events are applied in batches of at most
// BatchSize, each batch in one transaction that also stores the new
// checkpoint; a batch is committed once full, or FlushInterval after its
// first event. When ctx is done, the batch under way is dropped (rolled
// back): the next run applies it.
//
// Errors that stop Project: Apply's (wrapped with the event's place; the
// batch is rolled back and the checkpoint stays where it was), the
// database's, the server's refusal of the source (ErrNotFound when the
// stream does not exist), ErrProjectionConflict, and ErrInvalidArgument for
// an invalid Projection. A lost connection to the server is not an error:
// the consumer reconnects by itself.
func (c *Client) Project(ctx context.Context, p Projection) error {
	if err := p.check(true); err != nil {
		return err
	}
	if c.isClosed() {
		return fmt.Errorf("weir: projection %q: %w", p.Name, ErrClosed)
	}
	if err := p.createTable(ctx); err != nil {
		return err
	}
	checkpoint, err := p.loadCheckpoint(ctx)
	if err != nil {
		return err
	}
	r := &projector{c: c, p: &p, checkpoint: checkpoint}
	for {
		restart, err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || !restart {
			return err
		}
	}
}

// RebuildProjection clears the projection: Reset and the removal of its
// checkpoint, in one transaction. The next Project applies every event
// again from the beginning. A Project still running meanwhile stops with
// ErrProjectionConflict at its next batch (rolled back); stop it first.
func (c *Client) RebuildProjection(ctx context.Context, p Projection) error {
	if err := p.check(false); err != nil {
		return err
	}
	if err := p.createTable(ctx); err != nil {
		return err
	}
	tx, err := p.DB.BeginTx(ctx, p.TxOptions)
	if err != nil {
		return fmt.Errorf("weir: rebuild projection %q: %w", p.Name, err)
	}
	defer tx.Rollback()
	if err := p.Reset(ctx, tx); err != nil {
		return fmt.Errorf("weir: rebuild projection %q: reset: %w", p.Name, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+ProjectionTable+" WHERE name = "+p.Dialect.placeholder(1), p.Name); err != nil {
		return fmt.Errorf("weir: rebuild projection %q: clear checkpoint: %w", p.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("weir: rebuild projection %q: commit: %w", p.Name, err)
	}
	return nil
}

// projector is a running projection.
type projector struct {
	c          *Client
	p          *Projection
	checkpoint map[int32]int64 // committed positions, as stored in DB
}

// projectionItem is an event read from the source, with the position to
// store once it is applied.
type projectionItem struct {
	ev        ProjectionEvent
	partition int32
	next      int64
}

// projectionSource is a source of events while it runs.
type projectionSource struct {
	failed     chan error // the source stopped by itself (buffered)
	stop       func()     // stops the source and waits until it has
	partitions int        // a stream's partitions when it started
}

// runOnce reads the source from the checkpoint and applies its events until
// ctx is done or an error; restart: partitions were added to the stream,
// and the source must be opened again to read them too.
func (r *projector) runOnce(ctx context.Context) (restart bool, err error) {
	p := r.p
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan projectionItem, p.batchSize())
	var src *projectionSource
	if p.Stream != "" {
		src, err = r.openStream(runCtx, items)
	} else {
		src, err = r.openEvents(runCtx, items)
	}
	if err != nil {
		return false, err
	}
	defer func() { cancel(); src.stop() }()

	var check <-chan time.Time
	if p.Stream != "" && p.partitionCheckInterval() > 0 {
		ticker := time.NewTicker(p.partitionCheckInterval())
		defer ticker.Stop()
		check = ticker.C
	}
	flushTimer := time.NewTimer(time.Hour)
	flushTimer.Stop()
	defer flushTimer.Stop()
	batch := make([]projectionItem, 0, p.batchSize())
	flush := func() error {
		flushTimer.Stop()
		if len(batch) == 0 {
			return nil
		}
		err := r.commit(ctx, batch)
		clear(batch)
		batch = batch[:0]
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case it := <-items:
			batch = append(batch, it)
			if len(batch) == 1 {
				flushTimer.Reset(p.flushInterval())
			}
			if len(batch) >= p.batchSize() {
				if err := flush(); err != nil {
					return false, err
				}
			}
		case <-flushTimer.C:
			if err := flush(); err != nil {
				return false, err
			}
		case err := <-src.failed:
			// The events read before the failure are good: keep them.
			if ferr := flush(); ferr != nil {
				return false, ferr
			}
			return false, fmt.Errorf("weir: projection %q: %w", p.Name, err)
		case <-check:
			info, err := r.c.DescribeStream(ctx, p.Stream)
			if err != nil || len(info.Partitions) <= src.partitions {
				continue // a deleted stream stops the consumer, which reports it
			}
			return true, flush()
		}
	}
}

// commit applies a batch and stores the checkpoint after it, in one
// transaction.
func (r *projector) commit(ctx context.Context, batch []projectionItem) error {
	p := r.p
	tx, err := p.DB.BeginTx(ctx, p.TxOptions)
	if err != nil {
		return fmt.Errorf("weir: projection %q: begin: %w", p.Name, err)
	}
	defer tx.Rollback()
	next := make(map[int32]int64)
	for i := range batch {
		it := &batch[i]
		if err := p.Apply(ctx, tx, &it.ev); err != nil {
			return fmt.Errorf("weir: projection %q: apply %v: %w", p.Name, &it.ev, err)
		}
		next[it.partition] = it.next
	}
	parts := slices.Sorted(maps.Keys(next)) // one lock order for every runner
	d := p.Dialect
	for _, part := range parts {
		old, stored := r.checkpoint[part]
		if !stored {
			q := "INSERT INTO " + ProjectionTable + " (name, partition_id, next_position, source) VALUES (" +
				d.placeholder(1) + ", " + d.placeholder(2) + ", " + d.placeholder(3) + ", " + d.placeholder(4) + ")"
			if _, err := tx.ExecContext(ctx, q, p.Name, part, next[part], p.source()); err != nil {
				return fmt.Errorf("weir: projection %q: store checkpoint of partition %d (another runner?): %w", p.Name, part, err)
			}
			continue
		}
		// Only from the position this runner read: a rebuild or another
		// runner that moved it makes the batch fail rather than apply
		// events twice.
		q := "UPDATE " + ProjectionTable + " SET next_position = " + d.placeholder(1) +
			" WHERE name = " + d.placeholder(2) + " AND partition_id = " + d.placeholder(3) + " AND next_position = " + d.placeholder(4)
		res, err := tx.ExecContext(ctx, q, next[part], p.Name, part, old)
		if err != nil {
			return fmt.Errorf("weir: projection %q: store checkpoint of partition %d: %w", p.Name, part, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("weir: projection %q: store checkpoint of partition %d: %w", p.Name, part, err)
		} else if n != 1 {
			return fmt.Errorf("weir: projection %q, partition %d: %w (expected it at %d)", p.Name, part, ErrProjectionConflict, old)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("weir: projection %q: commit: %w", p.Name, err)
	}
	for part, pos := range next {
		r.checkpoint[part] = pos
	}
	if p.OnCommit != nil {
		p.OnCommit(len(batch))
	}
	return nil
}

// openStream reads every partition of the stream from its checkpoint with
// a positional consumer (which commits nothing to the broker).
func (r *projector) openStream(ctx context.Context, items chan<- projectionItem) (*projectionSource, error) {
	p := r.p
	info, err := r.c.DescribeStream(ctx, p.Stream)
	if err != nil {
		return nil, fmt.Errorf("weir: projection %q: %w", p.Name, err)
	}
	positions := make(map[int32]int64, len(info.Partitions))
	for _, part := range info.Partitions {
		next, ok := r.checkpoint[part.Partition]
		if !ok {
			next = part.StartOffset
		}
		positions[part.Partition] = next
	}
	handler := func(hctx context.Context, m *Message) error {
		it := projectionItem{ev: projectionEventFromRecord(&m.Record), partition: m.Partition, next: m.Offset + 1}
		select {
		case items <- it:
			return nil
		case <-hctx.Done():
			return hctx.Err() // stopping: the record is read again from the checkpoint
		}
	}
	cons, err := r.c.Consume(ctx, p.Stream, handler, FromPositions(positions), Credits(max(p.batchSize(), 100)))
	if err != nil {
		return nil, fmt.Errorf("weir: projection %q: %w", p.Name, err)
	}
	src := &projectionSource{failed: make(chan error, 1), partitions: len(info.Partitions)}
	go func() {
		<-cons.Done()
		if err := cons.Wait(); err != nil && ctx.Err() == nil {
			src.failed <- err
		} else if ctx.Err() == nil {
			src.failed <- errors.New("the consumer stopped")
		}
	}()
	src.stop = func() { cons.Close(context.Background()) }
	return src, nil
}

// openEvents follows the event store (one category, or all of it) from the
// checkpoint's global position.
func (r *projector) openEvents(ctx context.Context, items chan<- projectionItem) (*projectionSource, error) {
	p := r.p
	from := r.checkpoint[eventStorePartition] // 0 (the beginning) when none
	var sub *EventSubscription
	var err error
	if p.AllEvents {
		sub, err = r.c.SubscribeAll(ctx, from)
	} else {
		sub, err = r.c.SubscribeCategory(ctx, p.Category, from)
	}
	if err != nil {
		return nil, fmt.Errorf("weir: projection %q: %w", p.Name, err)
	}
	src := &projectionSource{failed: make(chan error, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := sub.Next()
			if err != nil {
				if ctx.Err() == nil {
					src.failed <- err
				}
				return
			}
			it := projectionItem{ev: projectionEventFromEvent(e), partition: eventStorePartition, next: sub.Position()}
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	}()
	src.stop = func() { sub.Close(); <-done }
	return src, nil
}
