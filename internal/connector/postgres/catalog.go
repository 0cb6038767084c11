package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// sqlConn is the connector's ordinary (non-replication) connection: catalog
// queries, publication setup and the snapshot.
type sqlConn struct {
	conn *pgconn.PgConn
}

// connectSQL opens an ordinary connection with the connector's session
// settings.
func connectSQL(ctx context.Context, dsn string) (*sqlConn, error) {
	conn, err := connect(ctx, dsn, false)
	if err != nil {
		return nil, err
	}
	return &sqlConn{conn: conn}, nil
}

func (c *sqlConn) Close(ctx context.Context) error { return c.conn.Close(ctx) }

// query runs one statement with text parameters and returns its rows.
func (c *sqlConn) query(ctx context.Context, sql string, args ...string) ([][][]byte, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := c.conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Rows, nil
}

// exec runs statements without parameters (simple protocol).
func (c *sqlConn) exec(ctx context.Context, sql string) error {
	_, err := c.conn.Exec(ctx, sql).ReadAll()
	return err
}

// publishedTables lists the tables of a publication with their OIDs.
func (c *sqlConn) publishedTables(ctx context.Context, publication string) ([]tableRef, error) {
	rows, err := c.query(ctx, `SELECT c.oid, n.nspname, c.relname
		FROM pg_publication_tables pt
		JOIN pg_namespace n ON n.nspname = pt.schemaname
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1 ORDER BY 2, 3`, publication)
	if err != nil {
		return nil, fmt.Errorf("list the tables of publication %s: %w", publication, err)
	}
	out := make([]tableRef, len(rows))
	for i, r := range rows {
		oid, err := strconv.ParseUint(string(r[0]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("table oid %q: %w", r[0], err)
		}
		out[i] = tableRef{OID: uint32(oid), Name: tableName{Schema: string(r[1]), Table: string(r[2])}}
	}
	return out, nil
}

// tableRef is a table and its OID.
type tableRef struct {
	OID  uint32
	Name tableName
}

// primaryKey returns the names of the table's primary key columns in key
// order (none when it has no primary key).
func (c *sqlConn) primaryKey(ctx context.Context, oid uint32) ([]string, error) {
	rows, err := c.query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1::oid AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, strconv.FormatUint(uint64(oid), 10))
	if err != nil {
		return nil, fmt.Errorf("primary key of table %d: %w", oid, err)
	}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = string(r[0])
	}
	return names, nil
}

// ensurePublication makes the publication hold exactly the configured
// tables, creating it if missing (ours reports whether the connector
// created it, from its progress). Without configured tables the
// publication must exist.
func (c *sqlConn) ensurePublication(ctx context.Context, name string, tables []tableName, ours bool) (created bool, err error) {
	rows, err := c.query(ctx, `SELECT 1 FROM pg_publication WHERE pubname = $1`, name)
	if err != nil {
		return false, fmt.Errorf("look up publication %s: %w", name, err)
	}
	exists := len(rows) > 0
	if len(tables) == 0 {
		if !exists {
			return false, fmt.Errorf("publication %s does not exist (create it, or configure tables)", name)
		}
		return false, nil
	}
	list := make([]string, len(tables))
	for i, t := range tables {
		list[i] = t.quoted()
	}
	if !exists {
		if err := c.exec(ctx, "CREATE PUBLICATION "+quoteIdent(name)+" FOR TABLE "+strings.Join(list, ", ")); err != nil {
			return false, fmt.Errorf("create publication %s: %w", name, err)
		}
		return true, nil
	}
	current, err := c.publishedTables(ctx, name)
	if err != nil {
		return false, err
	}
	have := make([]string, len(current))
	for i, t := range current {
		have[i] = t.Name.String()
	}
	want := make([]string, len(tables))
	for i, t := range tables {
		want[i] = t.String()
	}
	slices.Sort(have)
	slices.Sort(want)
	want = slices.Compact(want)
	if slices.Equal(have, want) {
		return false, nil
	}
	if !ours {
		return false, fmt.Errorf("publication %s exists with tables [%s], not the configured [%s]; it was not created by this connector, so it is left alone",
			name, strings.Join(have, ", "), strings.Join(want, ", "))
	}
	if err := c.exec(ctx, "ALTER PUBLICATION "+quoteIdent(name)+" SET TABLE "+strings.Join(list, ", ")); err != nil {
		return false, fmt.Errorf("alter publication %s: %w", name, err)
	}
	return false, nil
}

// slotInfo is a replication slot as pg_replication_slots shows it.
type slotInfo struct {
	Exists         bool
	Plugin         string
	Database       string
	Active         bool
	ConfirmedFlush LSN
}

func (c *sqlConn) slot(ctx context.Context, name string) (slotInfo, error) {
	rows, err := c.query(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), active, coalesce(confirmed_flush_lsn::text, '0/0')
		FROM pg_replication_slots WHERE slot_name = $1`, name)
	if err != nil {
		return slotInfo{}, fmt.Errorf("look up replication slot %s: %w", name, err)
	}
	if len(rows) == 0 {
		return slotInfo{}, nil
	}
	r := rows[0]
	lsn, err := ParseLSN(string(r[3]))
	if err != nil {
		return slotInfo{}, err
	}
	return slotInfo{Exists: true, Plugin: string(r[0]), Database: string(r[1]), Active: string(r[2]) == "t", ConfirmedFlush: lsn}, nil
}

// currentDatabase returns the connection's database name.
func (c *sqlConn) currentDatabase(ctx context.Context) (string, error) {
	rows, err := c.query(ctx, `SELECT current_database()`)
	if err != nil {
		return "", err
	}
	return string(rows[0][0]), nil
}

// currentWAL returns pg_current_wal_lsn().
func (c *sqlConn) currentWAL(ctx context.Context) (LSN, error) {
	rows, err := c.query(ctx, `SELECT pg_current_wal_lsn()::text`)
	if err != nil {
		return 0, err
	}
	return ParseLSN(string(rows[0][0]))
}
