package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weirmq/weir/internal/connector"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid connector configuration")

// Snapshot modes.
const (
	SnapshotInitial = "initial" // read the tables once, when the slot is created (the default)
	SnapshotNever   = "never"   // stream changes only
)

// JSON column modes.
const (
	JSONAsString = "string" // json and jsonb columns as JSON strings (Debezium's io.debezium.data.Json)
	JSONAsObject = "object" // embedded as JSON values
)

// Config configures a Connector. Field names double as the keys of the
// YAML configuration and the JSON stored for connectors created through the
// API.
type Config struct {
	// Name identifies the connector: source.name in events, the default
	// stream prefix, slot and publication names. Letters, digits, '_' and
	// '-', at most 48 characters.
	Name string `yaml:"name" json:"name"`
	// DSN is a libpq connection string or URL of the database.
	DSN string `yaml:"dsn" json:"dsn"`
	// Tables to capture, "schema.table" or "table" (schema public). With
	// tables, the publication is created (or altered, if the connector
	// created it) to hold exactly them.
	Tables []string `yaml:"tables,omitempty" json:"tables,omitempty"`
	// Publication to read; default "weir_<name>". Without Tables it must
	// exist.
	Publication string `yaml:"publication,omitempty" json:"publication,omitempty"`
	// Slot is the logical replication slot; default "weir_<name>".
	Slot string `yaml:"slot,omitempty" json:"slot,omitempty"`
	// Prefix of the stream names "<prefix>.<schema>.<table>"; default Name.
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	// Snapshot is "initial" (default) or "never".
	Snapshot string `yaml:"snapshot,omitempty" json:"snapshot,omitempty"`
	// JSON is how json/jsonb columns appear: "string" (default) or "object".
	JSON string `yaml:"json,omitempty" json:"json,omitempty"`
	// Partitions of the streams the connector creates (default 1).
	Partitions int32 `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// DedupWindow of the streams the connector creates: events carry a
	// message-id, so with a window the broker drops the events a restart
	// writes again within it. 0 (the default): no broker deduplication
	// (it keeps every id of the window in memory; consumers can drop
	// repeats by message-id or source.lsn).
	DedupWindow time.Duration `yaml:"dedup-window,omitempty" json:"dedup_window,omitempty"`
	// StatusInterval is how often the position is reported to PostgreSQL
	// when nothing else reports it (default 10s).
	StatusInterval time.Duration `yaml:"status-interval,omitempty" json:"status_interval,omitempty"`
	// BatchRecords bounds the records buffered before they are written to
	// Weir (default 1000); a transaction larger than that is written in
	// several batches, and acknowledged after the last.
	BatchRecords int `yaml:"batch-records,omitempty" json:"batch_records,omitempty"`
	// Outbox routes the rows inserted into an outbox table to streams of
	// their own (outbox.go); the table is captured even when Tables does
	// not name it. Nil: no outbox.
	Outbox *OutboxConfig `yaml:"outbox,omitempty" json:"outbox,omitempty"`
}

// StreamDefaults are the settings of the streams the connector creates:
// compacted, with its partitions and dedup window.
func (c Config) StreamDefaults() connector.StreamDefaults {
	d := connector.StreamDefaults{Partitions: c.Partitions, Compacted: true, DedupWindow: c.DedupWindow}
	if d.DedupWindow == 0 {
		d.DedupWindow = -1
	}
	return d
}

// withDefaults returns c with its defaults filled in.
func (c Config) withDefaults() Config {
	ident := strings.ToLower(strings.ReplaceAll(c.Name, "-", "_"))
	if c.Outbox != nil {
		partitions := c.Partitions
		if partitions == 0 {
			partitions = 1
		}
		o := c.Outbox.withDefaults(partitions)
		c.Outbox = &o
		// The outbox table is captured: added to the tables, unless the
		// connector reads a publication of the user's (which must hold it).
		if (len(c.Tables) > 0 || c.Publication == "") && !slices.ContainsFunc(c.Tables, func(t string) bool { n, _ := parseTableName(t); return n == o.table }) {
			c.Tables = append(slices.Clip(c.Tables), o.Table)
		}
	}
	if c.Publication == "" {
		c.Publication = "weir_" + ident
	}
	if c.Slot == "" {
		c.Slot = "weir_" + ident
	}
	if c.Prefix == "" {
		c.Prefix = c.Name
	}
	if c.Snapshot == "" {
		c.Snapshot = SnapshotInitial
	}
	if c.JSON == "" {
		c.JSON = JSONAsString
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = 10 * time.Second
	}
	if c.BatchRecords == 0 {
		c.BatchRecords = 1000
	}
	return c
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate checks c, with defaults applied, and reports the first problem.
func (c Config) Validate() error {
	if c.Name == "" || len(c.Name) > 48 {
		return invalid("name %q: want 1 to 48 characters", c.Name)
	}
	for _, r := range c.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return invalid("name %q: use letters, digits, '_' and '-'", c.Name)
		}
	}
	if c.DSN == "" {
		return invalid("connector %s: dsn is required", c.Name)
	}
	if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		return invalid("connector %s: dsn: %v", c.Name, err)
	}
	if c.Outbox != nil {
		if err := c.Outbox.validate(); err != nil {
			return invalid("connector %s: outbox: %v", c.Name, err)
		}
	}
	d := c.withDefaults()
	if len(c.Tables) == 0 && c.Publication == "" && c.Outbox == nil {
		return invalid("connector %s: give tables or a publication (or an outbox)", c.Name)
	}
	for _, t := range c.Tables {
		if _, err := parseTableName(t); err != nil {
			return invalid("connector %s: table %q: %v", c.Name, t, err)
		}
	}
	if err := checkSlotName(d.Slot); err != nil {
		return invalid("connector %s: slot %q: %v", c.Name, d.Slot, err)
	}
	if d.Publication == "" || len(d.Publication) > 63 {
		return invalid("connector %s: publication %q: want 1 to 63 characters", c.Name, d.Publication)
	}
	if err := checkPrefix(d.Prefix); err != nil {
		return invalid("connector %s: prefix %q: %v", c.Name, d.Prefix, err)
	}
	switch d.Snapshot {
	case SnapshotInitial, SnapshotNever:
	default:
		return invalid("connector %s: snapshot %q: want initial or never", c.Name, c.Snapshot)
	}
	switch d.JSON {
	case JSONAsString, JSONAsObject:
	default:
		return invalid("connector %s: json %q: want string or object", c.Name, c.JSON)
	}
	if d.Partitions < 1 || d.Partitions > 10000 {
		return invalid("connector %s: partitions %d: want 1 to 10000", c.Name, c.Partitions)
	}
	if d.StatusInterval < 0 || d.BatchRecords < 0 || d.DedupWindow < 0 {
		return invalid("connector %s: status-interval, batch-records and dedup-window must not be negative", c.Name)
	}
	return nil
}

// checkSlotName applies PostgreSQL's rule for slot names.
func checkSlotName(s string) error {
	if s == "" || len(s) > 63 {
		return errors.New("want 1 to 63 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return errors.New("use lower-case letters, digits and '_'")
		}
	}
	return nil
}

func checkPrefix(s string) error {
	if s == "" || len(s) > 100 {
		return errors.New("want 1 to 100 characters")
	}
	for _, r := range s {
		if !streamNameChar(r) {
			return errors.New("use letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

func streamNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// tableName is a schema-qualified table name.
type tableName struct{ Schema, Table string }

func (t tableName) String() string { return t.Schema + "." + t.Table }

func (t tableName) quoted() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Table) }

// parseTableName parses "schema.table" or "table" (schema public). Names
// are taken as written (no case folding); a name holding a '.' cannot be
// given here (use a publication).
func parseTableName(s string) (tableName, error) {
	schema, table, found := strings.Cut(s, ".")
	if !found {
		schema, table = "public", s
	}
	if schema == "" || table == "" || strings.Contains(table, ".") {
		return tableName{}, errors.New(`want "schema.table" or "table"`)
	}
	if len(schema) > 63 || len(table) > 63 {
		return tableName{}, errors.New("names are at most 63 bytes")
	}
	if strings.ContainsRune(s, 0) {
		return tableName{}, errors.New("contains a NUL byte")
	}
	return tableName{Schema: schema, Table: table}, nil
}

// streamName is the stream of a table's changes: "<prefix>.<schema>.<table>",
// each character a stream name cannot hold replaced by '_' (as Debezium
// does for topic names).
func streamName(prefix, schema, table string) string {
	return prefix + "." + streamNamePart(schema) + "." + streamNamePart(table)
}
