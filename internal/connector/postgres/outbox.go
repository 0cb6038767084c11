package postgres

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
)

// RouteVariable is replaced, in an outbox route, by the value of the
// route-by column (as Debezium's route.topic.replacement).
const RouteVariable = "${routedByValue}"

// Defaults of OutboxConfig.
const (
	DefaultOutboxRoute = "outbox.event." + RouteVariable
	DefaultOutboxTable = "public.outbox"
)

// OutboxConfig configures the outbox event router: each row inserted into
// the outbox table becomes one record on the stream its route names, with
// key = the aggregate id column, header message-id = the id column (the
// stream deduplicates by it), header type = the type column, the payload
// column as the value and the header columns as headers. Updates, deletes
// and truncates of the table are ignored, so applications may insert and
// delete an event in one transaction. The defaults are the columns of
// Debezium's outbox event router.
type OutboxConfig struct {
	// Table is the outbox table, "schema.table" or "table" (default
	// public.outbox).
	Table string `yaml:"table,omitempty" json:"table,omitempty"`
	// Route is the stream of an event: RouteVariable is replaced by the
	// route-by column's value, characters a stream name cannot hold by
	// '_' (default outbox.event.${routedByValue}).
	Route string `yaml:"route,omitempty" json:"route,omitempty"`
	// RouteBy is the column the route takes its value from (default
	// aggregatetype).
	RouteBy string `yaml:"route-by,omitempty" json:"route_by,omitempty"`
	// Columns: the event id (default id), the aggregate id, which is the
	// record key (default aggregateid), the event type (default type) and
	// the payload (default payload).
	IDColumn      string `yaml:"id-column,omitempty" json:"id_column,omitempty"`
	KeyColumn     string `yaml:"key-column,omitempty" json:"key_column,omitempty"`
	TypeColumn    string `yaml:"type-column,omitempty" json:"type_column,omitempty"`
	PayloadColumn string `yaml:"payload-column,omitempty" json:"payload_column,omitempty"`
	// Headers are further columns put in headers: "column" (the header has
	// the column's name) or "column:header". A null value adds no header.
	Headers []string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// DeadLetter is where rows that cannot be routed go (a required column
	// missing or null, a route that is not a stream name, a bytea payload
	// that does not decode), with the reason in x-dead-letter-reason.
	// Empty (the default): such a row stops the connector with an error
	// that names it, as Debezium's router fails its task; it is read again
	// at each restart until the connector is given a dead-letter stream.
	DeadLetter string `yaml:"dead-letter,omitempty" json:"dead_letter,omitempty"`
	// DedupWindow of the streams the router creates (default the broker's,
	// 2 minutes): within it a row the connector writes again after a
	// restart is acknowledged by the broker but not stored twice.
	DedupWindow time.Duration `yaml:"dedup-window,omitempty" json:"dedup_window,omitempty"`

	table      tableName      // Table parsed (set by withDefaults)
	partitions int32          // of the streams created: the connector's
	headers    []outboxHeader // Headers parsed
	create     *connector.StreamDefaults
}

type outboxHeader struct{ column, header string }

func (o OutboxConfig) withDefaults(partitions int32) OutboxConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Table, DefaultOutboxTable)
	def(&o.Route, DefaultOutboxRoute)
	def(&o.RouteBy, "aggregatetype")
	def(&o.IDColumn, "id")
	def(&o.KeyColumn, "aggregateid")
	def(&o.TypeColumn, "type")
	def(&o.PayloadColumn, "payload")
	if t, err := parseTableName(o.Table); err == nil {
		o.table, o.Table = t, t.String()
	}
	o.partitions = partitions
	o.headers = o.headers[:0:0]
	for _, h := range o.Headers {
		col, name, found := strings.Cut(h, ":")
		if !found {
			name = col
		}
		o.headers = append(o.headers, outboxHeader{column: col, header: name})
	}
	window := o.DedupWindow // 0: the broker's default
	o.create = &connector.StreamDefaults{Partitions: partitions, DedupWindow: window}
	return o
}

func (o OutboxConfig) validate() error {
	d := o.withDefaults(1)
	if _, err := parseTableName(d.Table); err != nil {
		return fmt.Errorf("table %q: %v", d.Table, err)
	}
	if err := broker.ValidateStreamName(strings.ReplaceAll(d.Route, RouteVariable, "x")); err != nil {
		return fmt.Errorf("route %q: %v", d.Route, err)
	}
	for _, col := range []string{d.RouteBy, d.IDColumn, d.KeyColumn, d.TypeColumn, d.PayloadColumn} {
		if err := checkColumnName(col); err != nil {
			return err
		}
	}
	for i, h := range d.headers {
		if err := checkColumnName(h.column); err != nil {
			return fmt.Errorf("headers[%d]: %v", i, err)
		}
		if h.header == "" || strings.ContainsAny(h.header, "\x00\r\n") {
			return fmt.Errorf("headers[%d] %q: want column or column:header", i, d.Headers[i])
		}
		if h.header == broker.HeaderMessageID {
			return fmt.Errorf("headers[%d] %q: the message-id header is the id column's", i, d.Headers[i])
		}
	}
	if d.DeadLetter != "" {
		if err := broker.ValidateStreamName(d.DeadLetter); err != nil {
			return fmt.Errorf("dead-letter: %v", err)
		}
	}
	if d.DedupWindow < 0 {
		return errors.New("dedup-window must not be negative (the router relies on deduplication)")
	}
	return nil
}

func checkColumnName(s string) error {
	if s == "" || len(s) > 63 || strings.ContainsRune(s, 0) {
		return fmt.Errorf("column name %q: want 1 to 63 bytes", s)
	}
	return nil
}

// OutboxRouter is the Transform of a connector with an outbox: the outbox
// table's inserts (and snapshot reads) become routed events, its other
// changes nothing; every other table's changes are DebeziumRecords.
type OutboxRouter struct {
	cfg OutboxConfig
}

// NewOutboxRouter returns the router for cfg (validated).
func NewOutboxRouter(cfg OutboxConfig) (*OutboxRouter, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: outbox: %v", ErrInvalidConfig, err)
	}
	if cfg.create == nil { // defaults not applied yet
		cfg = cfg.withDefaults(1)
	}
	return &OutboxRouter{cfg: cfg}, nil
}

// ErrInvalidOutboxRow is wrapped by the error of a row the router cannot
// route (without a dead-letter stream it stops the connector).
var ErrInvalidOutboxRow = errors.New("outbox row cannot be routed")

// Transform implements Transform.
func (r *OutboxRouter) Transform(ev Event) ([]connector.Record, error) {
	if ev.Schema != r.cfg.table.Schema || ev.Table != r.cfg.table.Table {
		return DebeziumRecords(ev), nil
	}
	if ev.Op != opCreate && ev.Op != opRead {
		return nil, nil // updates, deletes and truncates of the outbox are not events
	}
	rec, err := r.route(ev)
	if err == nil {
		return []connector.Record{rec}, nil
	}
	err = fmt.Errorf("%w: table %s.%s at LSN %s: %v", ErrInvalidOutboxRow, ev.Schema, ev.Table, ev.LSN, err)
	if r.cfg.DeadLetter == "" {
		return nil, fmt.Errorf("%w (give the connector an outbox dead-letter stream to set such rows aside)", err)
	}
	return []connector.Record{r.deadLetter(ev, err)}, nil
}

// route builds the record of an outbox row.
func (r *OutboxRouter) route(ev Event) (connector.Record, error) {
	c := &r.cfg
	text := func(col string) (string, error) {
		v, ok := ev.Column(col)
		if !ok {
			return "", fmt.Errorf("no column %q (columns: %s)", col, strings.Join(ev.Columns(), ", "))
		}
		if v.Null {
			return "", fmt.Errorf("column %q is null", col)
		}
		return string(v.Text), nil
	}
	id, err := text(c.IDColumn)
	if err != nil {
		return connector.Record{}, err
	}
	if id == "" {
		return connector.Record{}, fmt.Errorf("column %q is empty", c.IDColumn)
	}
	stream := c.Route
	if strings.Contains(stream, RouteVariable) {
		by, err := text(c.RouteBy)
		if err != nil {
			return connector.Record{}, fmt.Errorf("event %s: %v", id, err)
		}
		if by == "" {
			return connector.Record{}, fmt.Errorf("event %s: column %q is empty", id, c.RouteBy)
		}
		stream = strings.ReplaceAll(stream, RouteVariable, streamNamePart(by))
	}
	if err := broker.ValidateStreamName(stream); err != nil {
		return connector.Record{}, fmt.Errorf("event %s: route: %v", id, err)
	}
	key, err := text(c.KeyColumn)
	if err != nil {
		return connector.Record{}, fmt.Errorf("event %s: %v", id, err)
	}
	typ, err := text(c.TypeColumn)
	if err != nil {
		return connector.Record{}, fmt.Errorf("event %s: %v", id, err)
	}
	payload, ok := ev.Column(c.PayloadColumn)
	if !ok {
		return connector.Record{}, fmt.Errorf("event %s: no column %q (columns: %s)", id, c.PayloadColumn, strings.Join(ev.Columns(), ", "))
	}
	headers := make([]broker.Header, 0, 3+len(c.headers))
	headers = append(headers,
		broker.Header{Key: broker.HeaderMessageID, Value: []byte(id)},
		broker.Header{Key: broker.HeaderType, Value: []byte(typ)})
	var value []byte
	if !payload.Null {
		switch payload.TypeOID {
		case oidBytea:
			if value, err = decodeBytea(payload.Text); err != nil {
				return connector.Record{}, fmt.Errorf("event %s: payload: %v", id, err)
			}
		case oidJSON, oidJSONB:
			value = payload.Text
			headers = append(headers, broker.Header{Key: broker.HeaderContentType, Value: []byte("application/json")})
		default:
			value = payload.Text
		}
		if value == nil {
			value = []byte{} // an empty payload is not a tombstone
		}
	}
	for _, h := range c.headers {
		v, ok := ev.Column(h.column)
		if !ok {
			return connector.Record{}, fmt.Errorf("event %s: no header column %q (columns: %s)", id, h.column, strings.Join(ev.Columns(), ", "))
		}
		if !v.Null {
			headers = append(headers, broker.Header{Key: h.header, Value: v.Text})
		}
	}
	return connector.Record{Stream: stream, Key: []byte(key), Value: value, Headers: headers, Create: c.create}, nil
}

// deadLetter is the record of a row that could not be routed: the row
// image as JSON, the reason, and the change's message-id (so that a
// replay is dropped by the stream's dedup window).
func (r *OutboxRouter) deadLetter(ev Event, reason error) connector.Record {
	headers := []broker.Header{
		{Key: broker.HeaderDeadLetterReason, Value: []byte(reason.Error())},
		{Key: broker.HeaderContentType, Value: []byte("application/json")},
		{Key: broker.HeaderSource, Value: []byte(ev.Schema + "." + ev.Table)},
	}
	if ev.MessageID != "" {
		headers = append(headers, broker.Header{Key: broker.HeaderMessageID, Value: []byte(ev.MessageID)})
	}
	return connector.Record{Stream: r.cfg.DeadLetter, Key: ev.Key, Value: ev.After, Headers: headers, Create: r.cfg.create}
}

// streamNamePart replaces each character a stream name cannot hold by '_'.
func streamNamePart(s string) string {
	var b strings.Builder
	for _, r := range s {
		if streamNameChar(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
