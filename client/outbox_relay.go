package weir

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// OutboxRouteVariable is replaced, in OutboxRelay.Route, by the row's
// aggregatetype (the name Debezium's router gives it).
const OutboxRouteVariable = "${routedByValue}"

// DefaultOutboxRoute is the stream of an outbox event, as the CDC router's.
const DefaultOutboxRoute = "outbox.event." + OutboxRouteVariable

// OutboxRelay publishes the events of an outbox table by polling it, for
// databases without logical replication (SQLite, MySQL) or without Weir's
// CDC connector. It reads unpublished rows in id order, publishes each as
// a record with message-id = id (and the non-null values of
// Outbox.HeaderColumns as further headers), and deletes the rows once the
// broker has confirmed them, in the transaction that read them. A relay that dies
// between the publish and the delete publishes the rows again when it (or
// another) runs: delivery is at least once, and the stream's dedup window
// (2 minutes by default; the relay creates missing streams with it) drops
// the repeats, so consumers see each event once unless the relay was down
// longer than the window (an Idempotent consumer covers that case too).
//
// Several relays may run on one PostgreSQL or MySQL table: each locks the
// rows it publishes (FOR UPDATE SKIP LOCKED), so they share the work; the
// order of one aggregate's events then holds within a batch, not across
// relays. On SQLite one relay at a time publishes, holding a lease row;
// the others wait for it to expire.
type OutboxRelay struct {
	DB     *sql.DB
	Client *Client
	Outbox Outbox
	// Route names an event's stream: OutboxRouteVariable is replaced by
	// its aggregatetype, characters a stream name cannot hold by '_'
	// (default DefaultOutboxRoute).
	Route string
	// Partitions of the streams the relay creates (default 1).
	Partitions int32
	// BatchSize bounds the rows of one poll (default 100).
	BatchSize int
	// PollInterval is the wait after a poll that found fewer rows than
	// BatchSize (default 500ms).
	PollInterval time.Duration
	// LeaseDuration (SQLite) is how long a relay's lease lasts unless
	// renewed; a relay renews it at each poll (default 30s).
	LeaseDuration time.Duration
	// OnPublished, if set, is called after the broker confirmed a batch of
	// n events, before their rows are deleted.
	OnPublished func(n int)
	// Logger reports the errors Run retries (default slog.Default()).
	Logger *slog.Logger

	owner string // lease owner (SQLite)
}

// Run relays until ctx is done, then returns nil. Errors of the database or
// the broker are logged and the poll retried with backoff; an invalid
// configuration, or a row the broker refuses as invalid (ErrInvalidArgument,
// e.g. an aggregatetype that makes too long a stream name), is returned:
// the row stays in the table, never skipped, until it is fixed or removed.
func (r *OutboxRelay) Run(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	defer r.releaseLease(context.WithoutCancel(ctx))
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	failures := 0
	for ctx.Err() == nil {
		n, err := r.RelayOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrInvalidArgument):
			return err
		case err != nil:
			table, _ := r.Outbox.table()
			logger.Warn("outbox relay: poll failed; retrying", "table", table, "err", err, "attempt", failures+1)
			if !defaultBackoff.wait(ctx, nil, failures) {
				return nil
			}
			failures++
			continue
		}
		failures = 0
		if n >= r.batchSize() {
			continue
		}
		t := time.NewTimer(r.pollInterval())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func (r *OutboxRelay) check() error {
	if r.DB == nil || r.Client == nil {
		return fmt.Errorf("%w: outbox relay: DB and Client are required", ErrInvalidArgument)
	}
	if _, err := r.Outbox.table(); err != nil {
		return err
	}
	if _, err := r.Outbox.headerColumns(); err != nil {
		return err
	}
	if r.route() == "" {
		return fmt.Errorf("%w: outbox relay: empty route", ErrInvalidArgument)
	}
	if r.BatchSize < 0 || r.PollInterval < 0 || r.LeaseDuration < 0 || r.Partitions < 0 {
		return fmt.Errorf("%w: outbox relay: negative BatchSize, PollInterval, LeaseDuration or Partitions", ErrInvalidArgument)
	}
	return nil
}

func (r *OutboxRelay) route() string {
	if r.Route == "" {
		return DefaultOutboxRoute
	}
	return r.Route
}

func (r *OutboxRelay) batchSize() int {
	return cmp.Or(r.BatchSize, 100)
}

func (r *OutboxRelay) pollInterval() time.Duration {
	return cmp.Or(r.PollInterval, 500*time.Millisecond)
}

// outboxRow is a row read from the outbox.
type outboxRow struct {
	id, aggregateType, aggregateID, typ string
	payload                             []byte
	null                                bool
	headers                             []Header // of the header columns that are not null
}

// RelayOnce publishes one batch: the unpublished rows (at most BatchSize)
// in id order, then deletes them. It returns how many it published; 0
// also when another relay holds the SQLite lease.
func (r *OutboxRelay) RelayOnce(ctx context.Context) (int, error) {
	if err := r.check(); err != nil {
		return 0, err
	}
	table, _ := r.Outbox.table()
	hcols, _ := r.Outbox.headerColumns()
	d := r.Outbox.Dialect
	if d == OutboxSQLite {
		held, err := r.lease(ctx, table)
		if err != nil || !held {
			return 0, err
		}
	}
	var opts *sql.TxOptions
	if d == OutboxMySQL {
		// Under InnoDB's default REPEATABLE READ the locking read and the
		// delete take gap locks, and relays sharing the table deadlock on
		// them; READ COMMITTED locks the rows only.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	tx, err := r.DB.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("outbox relay: begin: %w", err)
	}
	defer tx.Rollback() // after Commit: a no-op
	q := "SELECT id, aggregatetype, aggregateid, type, payload"
	for _, h := range hcols {
		q += ", " + h.column
	}
	q += " FROM " + table + " ORDER BY id LIMIT " + fmt.Sprint(r.batchSize())
	if d != OutboxSQLite {
		q += " FOR UPDATE SKIP LOCKED"
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("outbox relay: read %s: %w", table, err)
	}
	// A JSON payload column (json or jsonb; MySQL's JSON) gives the
	// records the content-type application/json, as the CDC outbox
	// router does.
	var contentType []Header
	if cts, err := rows.ColumnTypes(); err == nil && len(cts) > 4 {
		switch strings.ToUpper(cts[4].DatabaseTypeName()) {
		case "JSON", "JSONB":
			contentType = []Header{{Key: HeaderContentType, Value: []byte("application/json")}}
		}
	}
	var batch []outboxRow
	for rows.Next() {
		var row outboxRow
		var payload sql.RawBytes
		values := make([]sql.RawBytes, len(hcols))
		dest := []any{&row.id, &row.aggregateType, &row.aggregateID, &row.typ, &payload}
		for i := range values {
			dest = append(dest, &values[i])
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox relay: read %s: %w", table, err)
		}
		row.null = payload == nil
		row.payload = append([]byte{}, payload...)
		if !row.null {
			row.headers = contentType
		}
		for i, v := range values {
			if v != nil {
				row.headers = append(slices.Clip(row.headers), Header{Key: hcols[i].header, Value: append([]byte{}, v...)})
			}
		}
		batch = append(batch, row)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("outbox relay: read %s: %w", table, err)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("outbox relay: read %s: %w", table, err)
	}
	if len(batch) == 0 {
		return 0, tx.Commit()
	}
	if err := r.publish(ctx, batch); err != nil {
		return 0, err
	}
	if r.OnPublished != nil {
		r.OnPublished(len(batch))
	}
	if err := deleteRows(ctx, tx, d, table, batch); err != nil {
		return 0, fmt.Errorf("outbox relay: delete the published rows: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox relay: delete the published rows: %w", err)
	}
	return len(batch), nil
}

// deleteRows deletes the published rows. MySQL deletes them one by one:
// InnoDB may run "id IN (…)" as a scan that waits for the rows another
// relay locked (a deadlock when that relay then deletes its own); a
// primary-key lookup locks only its row.
func deleteRows(ctx context.Context, tx *sql.Tx, d OutboxDialect, table string, batch []outboxRow) error {
	if d == OutboxMySQL {
		stmt, err := tx.PrepareContext(ctx, "DELETE FROM "+table+" WHERE id = ?")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, row := range batch {
			if _, err := stmt.ExecContext(ctx, row.id); err != nil {
				return err
			}
		}
		return nil
	}
	var del strings.Builder
	del.WriteString("DELETE FROM " + table + " WHERE id IN (")
	args := make([]any, len(batch))
	for i, row := range batch {
		if i > 0 {
			del.WriteString(", ")
		}
		del.WriteString(d.placeholder(i + 1))
		args[i] = row.id
	}
	del.WriteString(")")
	_, err := tx.ExecContext(ctx, del.String(), args...)
	return err
}

// publish publishes the rows, one call per stream in id order, creating
// missing streams.
func (r *OutboxRelay) publish(ctx context.Context, batch []outboxRow) error {
	var order []string
	byStream := make(map[string][]Record)
	for _, row := range batch {
		stream := strings.ReplaceAll(r.route(), OutboxRouteVariable, streamNamePart(row.aggregateType))
		if _, ok := byStream[stream]; !ok {
			order = append(order, stream)
		}
		rec := Record{Key: []byte(row.aggregateID), Headers: append([]Header{
			{Key: HeaderMessageID, Value: []byte(row.id)},
			{Key: HeaderType, Value: []byte(row.typ)},
		}, row.headers...)}
		if !row.null {
			rec.Value = row.payload
		}
		byStream[stream] = append(byStream[stream], rec)
	}
	for _, stream := range order {
		_, err := r.Client.Publish(ctx, stream, byStream[stream]...)
		if errors.Is(err, ErrNotFound) {
			_, err = r.Client.CreateStream(ctx, StreamConfig{Name: stream, Partitions: r.Partitions})
			if err != nil && !errors.Is(err, ErrAlreadyExists) {
				return fmt.Errorf("outbox relay: create stream %q: %w", stream, err)
			}
			_, err = r.Client.Publish(ctx, stream, byStream[stream]...)
		}
		if err != nil {
			return fmt.Errorf("outbox relay: publish to %q: %w", stream, err)
		}
	}
	return nil
}

// streamNamePart replaces each character a stream name cannot hold by '_',
// as the server's CDC router does.
func streamNamePart(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// lease takes or renews the SQLite relay lease; false: another relay holds
// it.
func (r *OutboxRelay) lease(ctx context.Context, table string) (bool, error) {
	if r.owner == "" {
		var b [8]byte
		rand.Read(b[:])
		r.owner = hex.EncodeToString(b[:])
	}
	lt := leaseTable(table)
	if _, err := r.DB.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+lt+
		" (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)"); err != nil {
		return false, fmt.Errorf("outbox relay: create lease table: %w", err)
	}
	d := r.LeaseDuration
	if d == 0 {
		d = 30 * time.Second
	}
	now := time.Now()
	res, err := r.DB.ExecContext(ctx, "INSERT INTO "+lt+" (name, owner, expires_at) VALUES ('relay', ?, ?) "+
		"ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "+
		"WHERE "+lt+".owner = excluded.owner OR "+lt+".expires_at < ?", r.owner, now.Add(d).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("outbox relay: take the lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox relay: take the lease: %w", err)
	}
	return n == 1, nil
}

// releaseLease gives the SQLite lease up, so that another relay need not
// wait for it to expire.
func (r *OutboxRelay) releaseLease(ctx context.Context) {
	if r.Outbox.Dialect != OutboxSQLite || r.owner == "" {
		return
	}
	table, err := r.Outbox.table()
	if err != nil {
		return
	}
	r.DB.ExecContext(ctx, "DELETE FROM "+leaseTable(table)+" WHERE name = 'relay' AND owner = ?", r.owner)
}

func leaseTable(table string) string { return table + "_relay_lease" }
