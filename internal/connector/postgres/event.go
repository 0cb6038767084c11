package postgres

import (
	"fmt"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
)

// Version is source.version in the events.
const Version = "weir-1"

// column is one column of a captured table.
type column struct {
	Name string
	OID  uint32
}

// table is what the connector knows of a captured table: its columns (as of
// the last Relation message, or the snapshot's result) and which of them
// form the record key.
type table struct {
	ID     uint32 // relation OID
	Schema string
	Name   string
	Stream string
	Cols   []column
	Key    []int // indexes into Cols of the key columns, in key order; empty: no key
}

// value is one column value of a row image: its text form, or null. Absent
// marks a value PostgreSQL did not send (an unchanged TOASTed value with no
// before-image to take it from): the column is left out of the row.
type value struct {
	Text   []byte
	Null   bool
	Absent bool
}

// Operations (Debezium's op field).
const (
	opCreate   = 'c'
	opUpdate   = 'u'
	opDelete   = 'd'
	opRead     = 'r' // snapshot
	opTruncate = 't'
)

// Snapshot markers (Debezium's source.snapshot).
const (
	snapshotFalse = "false"
	snapshotTrue  = "true"
	snapshotLast  = "last"
)

// event is one change, not yet encoded.
type event struct {
	Table     *table
	Op        byte
	Before    []byte // encoded row, or nil
	After     []byte
	Key       []byte  // encoded key, or nil
	Tombstone bool    // a tombstone follows the event (deletes)
	Row       []value // the after-image's values as received (inserts and snapshot reads), for Event.Column

	Snapshot  string
	CommitLSN LSN // the transaction's commit LSN (0 in the snapshot)
	LSN       LSN // the change's WAL position (the consistent point in the snapshot)
	TxID      uint32
	HasTxID   bool
	Time      time.Time // commit time (snapshot: when it was read)
	Seq       int       // position in the transaction, for message-ids
}

// encodeRow encodes a row image as a JSON object in column order, leaving
// absent values out.
func encodeRow(t *table, vals []value, jsonObject bool) ([]byte, error) {
	if len(vals) != len(t.Cols) {
		return nil, fmt.Errorf("table %s.%s: row of %d columns, relation has %d", t.Schema, t.Name, len(vals), len(t.Cols))
	}
	dst := append(make([]byte, 0, 64+16*len(vals)), '{')
	first := true
	for i, v := range vals {
		if v.Absent {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, t.Cols[i].Name)
		dst = append(dst, ':')
		if v.Null {
			dst = append(dst, "null"...)
			continue
		}
		var err error
		if dst, err = appendValue(dst, t.Cols[i].OID, v.Text, jsonObject); err != nil {
			return nil, fmt.Errorf("table %s.%s column %s: %w", t.Schema, t.Name, t.Cols[i].Name, err)
		}
	}
	return append(dst, '}'), nil
}

// encodeKey encodes the key columns of a row as a JSON object, or returns
// nil when the table has no key or a key value is missing.
func encodeKey(t *table, vals []value) ([]byte, error) {
	if len(t.Key) == 0 {
		return nil, nil
	}
	dst := []byte{'{'}
	for n, i := range t.Key {
		if i >= len(vals) || vals[i].Absent {
			return nil, nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, t.Cols[i].Name)
		dst = append(dst, ':')
		if vals[i].Null {
			dst = append(dst, "null"...)
			continue
		}
		var err error
		if dst, err = appendValue(dst, t.Cols[i].OID, vals[i].Text, false); err != nil {
			return nil, fmt.Errorf("table %s.%s key column %s: %w", t.Schema, t.Name, t.Cols[i].Name, err)
		}
	}
	return append(dst, '}'), nil
}

// envelope encodes the event's value in Debezium's envelope (without the
// Kafka Connect schema, as its JSON converter with schemas.enable=false):
//
//	{"before":…,"after":…,"source":{…},"op":"c","ts_ms":…,"transaction":null}
func (e *event) envelope(connectorName, db string, now time.Time) []byte {
	dst := make([]byte, 0, 256+len(e.Before)+len(e.After))
	dst = append(dst, `{"before":`...)
	dst = appendRaw(dst, e.Before)
	dst = append(dst, `,"after":`...)
	dst = appendRaw(dst, e.After)
	dst = append(dst, `,"source":{"version":`...)
	dst = appendString(dst, Version)
	dst = append(dst, `,"connector":"postgresql","name":`...)
	dst = appendString(dst, connectorName)
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, e.Time.UnixMilli(), 10)
	dst = append(dst, `,"snapshot":`...)
	dst = appendString(dst, e.Snapshot)
	dst = append(dst, `,"db":`...)
	dst = appendString(dst, db)
	// sequence: [last commit LSN, this change's LSN] as strings, as
	// Debezium: the pair orders events across interleaved transactions.
	dst = append(dst, `,"sequence":`...)
	dst = appendString(dst, `["`+strconv.FormatUint(uint64(e.CommitLSN), 10)+`","`+strconv.FormatUint(uint64(e.LSN), 10)+`"]`)
	dst = append(dst, `,"schema":`...)
	dst = appendString(dst, e.Table.Schema)
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, e.Table.Name)
	dst = append(dst, `,"txId":`...)
	if e.HasTxID {
		dst = strconv.AppendUint(dst, uint64(e.TxID), 10)
	} else {
		dst = append(dst, "null"...)
	}
	dst = append(dst, `,"lsn":`...)
	dst = strconv.AppendUint(dst, uint64(e.LSN), 10)
	dst = append(dst, `,"xmin":null},"op":"`...)
	dst = append(dst, e.Op)
	dst = append(dst, `","ts_ms":`...)
	dst = strconv.AppendInt(dst, now.UnixMilli(), 10)
	dst = append(dst, `,"transaction":null}`...)
	return dst
}

func appendRaw(dst, raw []byte) []byte {
	if raw == nil {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

// Event is a change as a Transform sees it, before it is encoded: the row
// images and key are JSON objects (nil: none), with the values mapped as in
// the Debezium envelope.
type Event struct {
	Connector string // the connector's name
	DB        string
	Schema    string
	Table     string
	Stream    string // the table's stream, <prefix>.<schema>.<table>
	Op        byte   // 'c', 'u', 'd', 'r' (snapshot) or 't'
	Key       []byte
	Before    []byte
	After     []byte
	Snapshot  bool
	CommitLSN LSN // 0 in the snapshot
	LSN       LSN
	TxID      uint32 // 0 in the snapshot
	Time      time.Time
	// MessageID identifies the change across replays ("" in the
	// snapshot): pg:<connector>:<commit LSN>:<position in the transaction>.
	MessageID string

	source *event
}

// Transform turns a change into the records to write: Options.Transform.
// An outbox router is one (rows inserted into an outbox table become
// records on their own streams); DebeziumRecords is the default. The
// records of a transaction are acknowledged to PostgreSQL once written, as
// for the default.
// An error stops the connector (Run returns it; nothing of the
// transaction is acknowledged, so it is read again after the restart).
type Transform func(Event) ([]connector.Record, error)

// ColumnValue is a column of an inserted or snapshot-read row as PostgreSQL
// sent it: its text form (the session settings of values.go apply: bytea
// in hex, timestamps ISO), or null.
type ColumnValue struct {
	Text    []byte
	Null    bool
	TypeOID uint32
}

// Column returns the named column of the row an insert or a snapshot read
// carries (ok false: no such column, or the event is another kind).
func (ev Event) Column(name string) (ColumnValue, bool) {
	if ev.source == nil || ev.source.Row == nil {
		return ColumnValue{}, false
	}
	for i, col := range ev.source.Table.Cols {
		if col.Name == name && i < len(ev.source.Row) {
			v := ev.source.Row[i]
			if v.Absent {
				return ColumnValue{}, false
			}
			return ColumnValue{Text: v.Text, Null: v.Null, TypeOID: col.OID}, true
		}
	}
	return ColumnValue{}, false
}

// Columns lists the names of the columns of the event's table, in order.
func (ev Event) Columns() []string {
	if ev.source == nil {
		return nil
	}
	names := make([]string, len(ev.source.Table.Cols))
	for i, col := range ev.source.Table.Cols {
		names[i] = col.Name
	}
	return names
}

// DebeziumRecords is the default Transform: the Debezium envelope on the
// table's stream, and for a delete the tombstone that follows it. ev must
// be one the connector passed to the Transform.
func DebeziumRecords(ev Event) []connector.Record {
	if ev.source == nil {
		return nil
	}
	return ev.source.records(ev.Connector, ev.DB, time.Now())
}

// view returns the event as a Transform sees it.
func (e *event) view(connectorName, db string) Event {
	return Event{
		Connector: connectorName, DB: db, Schema: e.Table.Schema, Table: e.Table.Name, Stream: e.Table.Stream,
		Op: e.Op, Key: e.Key, Before: e.Before, After: e.After, Snapshot: e.Snapshot != snapshotFalse,
		CommitLSN: e.CommitLSN, LSN: e.LSN, TxID: e.TxID, Time: e.Time, MessageID: e.messageID(connectorName),
		source: e,
	}
}

// messageID identifies a streamed change across replays.
func (e *event) messageID(connectorName string) string {
	if e.CommitLSN == 0 {
		return ""
	}
	return "pg:" + connectorName + ":" + e.CommitLSN.String() + ":" + strconv.Itoa(e.Seq)
}

// records turns the event into its record and, for a delete, the tombstone
// that follows it. Streamed events carry a message-id derived from their
// commit LSN and position, so that a replay can be recognised (and, with a
// dedup window, is not stored twice).
func (e *event) records(connectorName, db string, now time.Time) []connector.Record {
	headers := []broker.Header{{Key: broker.HeaderContentType, Value: []byte("application/json")}}
	id := e.messageID(connectorName)
	if id != "" {
		headers = append(headers, broker.Header{Key: broker.HeaderMessageID, Value: []byte(id)})
	}
	recs := []connector.Record{{Stream: e.Table.Stream, Key: e.Key, Value: e.envelope(connectorName, db, now), Headers: headers}}
	if e.Tombstone && e.Key != nil {
		var th []broker.Header
		if id != "" {
			th = []broker.Header{{Key: broker.HeaderMessageID, Value: []byte(id + ":tombstone")}}
		}
		recs = append(recs, connector.Record{Stream: e.Table.Stream, Key: e.Key, Headers: th})
	}
	return recs
}
