package weir

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// The transactional outbox: an application writes its business change and
// the events that announce it in one database transaction (WriteOutbox);
// something else publishes the events. With PostgreSQL, Weir's CDC
// connector with an outbox (weir connector create postgres --outbox-table)
// reads them from the WAL; with a database that has no logical replication
// (SQLite, MySQL), or without giving Weir replication access, an
// OutboxRelay polls the table. Both publish each row once per dedup window
// as a record on outbox.event.<aggregatetype>: key aggregateid, header
// message-id = id (the stream drops a row published again), header type,
// header content-type application/json when the payload column is JSON
// (json or jsonb; MySQL's JSON), the payload as the value.

// Tables of the outbox for each database. The columns are those of
// Debezium's outbox event router, which Weir's CDC router reads by
// default. Rows are published in id order: WriteOutbox's ids are UUIDv7,
// which sort by time. A relay deletes the rows it published.
const (
	OutboxTablePostgres = `CREATE TABLE outbox (
    id            uuid PRIMARY KEY,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    type          varchar(255) NOT NULL,
    payload       jsonb          -- or text; bytea with Outbox.BinaryPayload
)`
	OutboxTableSQLite = `CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    aggregatetype TEXT NOT NULL,
    aggregateid   TEXT NOT NULL,
    type          TEXT NOT NULL,
    payload       TEXT          -- BLOB with Outbox.BinaryPayload
)`
	OutboxTableMySQL = `CREATE TABLE outbox (
    id            VARCHAR(64)  NOT NULL PRIMARY KEY,
    aggregatetype VARCHAR(255) NOT NULL,
    aggregateid   VARCHAR(255) NOT NULL,
    type          VARCHAR(255) NOT NULL,
    payload       JSON          -- or TEXT; LONGBLOB with Outbox.BinaryPayload
)`
)

// OutboxDialect is the SQL database an Outbox is in: it decides the
// placeholders and how relays share the table.
type OutboxDialect int

const (
	// OutboxPostgres: $1 placeholders; relays lock the rows they publish
	// with FOR UPDATE SKIP LOCKED, so several may run.
	OutboxPostgres OutboxDialect = iota
	// OutboxMySQL (8.0 and later): ? placeholders; FOR UPDATE SKIP LOCKED.
	OutboxMySQL
	// OutboxSQLite: ? placeholders; no row locks, so one relay at a time
	// publishes, holding a lease row (in the table <outbox>_relay_lease,
	// which the relay creates).
	OutboxSQLite
)

func (d OutboxDialect) String() string {
	switch d {
	case OutboxPostgres:
		return "postgres"
	case OutboxMySQL:
		return "mysql"
	case OutboxSQLite:
		return "sqlite"
	}
	return fmt.Sprintf("OutboxDialect(%d)", int(d))
}

// placeholder returns the n-th (from 1) parameter placeholder.
func (d OutboxDialect) placeholder(n int) string {
	if d == OutboxPostgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// OutboxEvent is one event written to the outbox.
type OutboxEvent struct {
	// ID identifies the event: the record's message-id, by which the
	// stream drops it when it is published again. Empty: a new UUIDv7
	// (time-ordered, so relays publish in the order events were written).
	ID string
	// AggregateType routes the event: stream outbox.event.<AggregateType>
	// by default. Required.
	AggregateType string
	// AggregateID is the record's key (events of one aggregate keep their
	// order). Required.
	AggregateID string
	// Type is the event's type: the record's type header. Required.
	Type string
	// Payload is the record's value (JSON for a json/jsonb column). Nil:
	// null.
	Payload []byte
	// Headers are further headers of the record, by name: each is written
	// to the column Outbox.HeaderColumns maps it to (a header without one
	// is refused); a header left out is a null, which adds none.
	Headers map[string]string
}

// ErrInvalidOutboxEvent is wrapped by the error for an event that lacks a
// required field; it also matches ErrInvalidArgument.
var ErrInvalidOutboxEvent = fmt.Errorf("%w: outbox event", ErrInvalidArgument)

// OutboxExecer runs a statement in the caller's transaction: *sql.Tx (and
// *sql.DB, *sql.Conn) satisfy it. For pgx, adapt its transaction with
// OutboxExecFunc.
type OutboxExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// OutboxExecFunc adapts a function to OutboxExecer, e.g. a pgx.Tx:
//
//	exec := weir.OutboxExecFunc(func(ctx context.Context, q string, args ...any) error {
//		_, err := tx.Exec(ctx, q, args...)
//		return err
//	})
//	err := weir.WriteOutbox(ctx, exec, event)
type OutboxExecFunc func(ctx context.Context, query string, args ...any) error

// ExecContext implements OutboxExecer; its result is nil.
func (f OutboxExecFunc) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return nil, f(ctx, query, args...)
}

// Outbox is an outbox table: its name and database. The zero value is the
// table "outbox" in PostgreSQL.
type Outbox struct {
	Table   string // "outbox" by default; "schema.table" works
	Dialect OutboxDialect
	// BinaryPayload passes payloads as bytes, for a bytea, BLOB or
	// LONGBLOB column; otherwise they are passed as text (json, jsonb,
	// JSON, TEXT columns).
	BinaryPayload bool
	// HeaderColumns are further columns of the table that hold headers,
	// as the CDC outbox router's headers option: "column" (the header has
	// the column's name) or "column:header". Write puts OutboxEvent.Headers
	// in them; a relay makes each non-null value a header of the record,
	// after message-id and type. The columns are text (varchar, TEXT) and
	// nullable, e.g. ALTER TABLE outbox ADD COLUMN traceparent varchar(55).
	HeaderColumns []string
}

// outboxHeaderColumn is one of Outbox.HeaderColumns, parsed.
type outboxHeaderColumn struct{ column, header string }

// headerColumns parses and checks HeaderColumns: plain identifiers (they
// are written into SQL), header names that are not message-id (the id
// column's), no column or header twice.
func (o Outbox) headerColumns() ([]outboxHeaderColumn, error) {
	out := make([]outboxHeaderColumn, 0, len(o.HeaderColumns))
	columns, headers := make(map[string]bool), make(map[string]bool)
	for i, spec := range o.HeaderColumns {
		col, name, found := strings.Cut(spec, ":")
		if !found {
			name = col
		}
		if err := checkOutboxIdentifier("header column", col); err != nil {
			return nil, fmt.Errorf("%w (HeaderColumns[%d] %q: want column or column:header)", err, i, spec)
		}
		if name == "" || strings.ContainsAny(name, "\x00\r\n") {
			return nil, fmt.Errorf("%w: HeaderColumns[%d] %q: want column or column:header, a header name without NUL, CR or LF", ErrInvalidArgument, i, spec)
		}
		if name == HeaderMessageID {
			return nil, fmt.Errorf("%w: HeaderColumns[%d] %q: the message-id header is the id column's", ErrInvalidArgument, i, spec)
		}
		if columns[strings.ToLower(col)] || headers[name] {
			return nil, fmt.Errorf("%w: HeaderColumns[%d] %q: column or header named twice", ErrInvalidArgument, i, spec)
		}
		switch strings.ToLower(col) {
		case "id", "aggregatetype", "aggregateid", "type", "payload":
			return nil, fmt.Errorf("%w: HeaderColumns[%d] %q: %s is a column of the outbox itself", ErrInvalidArgument, i, spec, col)
		}
		columns[strings.ToLower(col)], headers[name] = true, true
		out = append(out, outboxHeaderColumn{column: col, header: name})
	}
	return out, nil
}

// WriteOutbox writes events into the table "outbox" of a PostgreSQL
// database within the caller's transaction tx, so that they are published
// if and only if the transaction commits. Outbox.Write takes another
// table or database.
func WriteOutbox(ctx context.Context, tx OutboxExecer, events ...OutboxEvent) error {
	return Outbox{}.Write(ctx, tx, events...)
}

// Write inserts events into the outbox within the caller's transaction tx.
func (o Outbox) Write(ctx context.Context, tx OutboxExecer, events ...OutboxEvent) error {
	table, err := o.table()
	if err != nil {
		return err
	}
	hcols, err := o.headerColumns()
	if err != nil {
		return err
	}
	d := o.Dialect
	var q strings.Builder
	q.WriteString("INSERT INTO " + table + " (id, aggregatetype, aggregateid, type, payload")
	for _, h := range hcols {
		q.WriteString(", " + h.column)
	}
	q.WriteString(") VALUES (")
	for n := 1; n <= 5+len(hcols); n++ {
		if n > 1 {
			q.WriteString(", ")
		}
		q.WriteString(d.placeholder(n))
	}
	q.WriteString(")")
	for i := range events { // nothing written when one is invalid
		if err := events[i].validate(hcols); err != nil {
			return err
		}
	}
	for i := range events {
		ev := &events[i]
		id := ev.ID
		if id == "" {
			u, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("weir: outbox event id: %w", err)
			}
			id = u.String()
		}
		var payload any
		switch {
		case ev.Payload == nil:
			payload = nil
		case o.BinaryPayload:
			payload = ev.Payload
		default:
			payload = string(ev.Payload)
		}
		args := []any{id, ev.AggregateType, ev.AggregateID, ev.Type, payload}
		for _, h := range hcols {
			if v, ok := ev.Headers[h.header]; ok {
				args = append(args, v)
			} else {
				args = append(args, nil)
			}
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("weir: write outbox event %s: %w", id, err)
		}
	}
	return nil
}

func (ev *OutboxEvent) validate(hcols []outboxHeaderColumn) error {
	for name := range ev.Headers {
		if !slices.ContainsFunc(hcols, func(h outboxHeaderColumn) bool { return h.header == name }) {
			return fmt.Errorf("%w %q: header %q has no column in Outbox.HeaderColumns", ErrInvalidOutboxEvent, ev.ID, name)
		}
	}
	var missing []string
	if ev.AggregateType == "" {
		missing = append(missing, "AggregateType")
	}
	if ev.AggregateID == "" {
		missing = append(missing, "AggregateID")
	}
	if ev.Type == "" {
		missing = append(missing, "Type")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w %q: %s required", ErrInvalidOutboxEvent, ev.ID, strings.Join(missing, ", "))
	}
	return nil
}

// table returns the table's name, checked to be plain identifiers (it is
// written into SQL).
func (o Outbox) table() (string, error) {
	name := o.Table
	if name == "" {
		name = "outbox"
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("%w: outbox table %q: want table or schema.table", ErrInvalidArgument, name)
	}
	for _, p := range parts {
		if err := checkOutboxIdentifier("outbox table", p); err != nil {
			return "", fmt.Errorf("%w (table %q)", err, name)
		}
	}
	return name, nil
}

// checkOutboxIdentifier refuses a name that is not a plain SQL identifier
// of 1 to 63 letters, digits and '_', not starting with a digit.
func checkOutboxIdentifier(what, name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: %s %q: names are 1 to 63 characters", ErrInvalidArgument, what, name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("%w: %s %q: use letters, digits and '_'", ErrInvalidArgument, what, name)
		}
	}
	return nil
}
