package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The example's tables, all in one schema of its own. Each service owns its
// tables: the order service orders, order_lines and (with the inventory
// service) the outbox; the inventory service stock and reservations; the
// read model order_summaries. In a real system they would often be separate
// databases: nothing here joins across services, they only exchange events.
const schemaSQL = `
CREATE SCHEMA %[1]s;

-- The catalogue the order service prices orders from.
CREATE TABLE %[1]s.products (
    sku          text PRIMARY KEY,
    name         text NOT NULL,
    price_cents  bigint NOT NULL CHECK (price_cents >= 0),
    weight_grams bigint NOT NULL CHECK (weight_grams > 0)
);

CREATE TABLE %[1]s.orders (
    id             text PRIMARY KEY,
    customer       text NOT NULL,
    total_cents    bigint NOT NULL,
    shipper        text NOT NULL,
    shipping_cents bigint NOT NULL,
    placed_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE %[1]s.order_lines (
    order_id    text NOT NULL REFERENCES %[1]s.orders (id),
    sku         text NOT NULL REFERENCES %[1]s.products (sku),
    quantity    int NOT NULL CHECK (quantity > 0),
    price_cents bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- The transactional outbox (client.OutboxTablePostgres): Weir's CDC
-- connector routes each inserted row to the stream
-- outbox.event.<aggregatetype>.
CREATE TABLE %[1]s.outbox (
    id            uuid PRIMARY KEY,
    aggregatetype varchar(255) NOT NULL,
    aggregateid   varchar(255) NOT NULL,
    type          varchar(255) NOT NULL,
    payload       jsonb
);

-- Inventory: what is on the shelf, and one reservation per order. The
-- reservation's primary key is what makes reserving idempotent across
-- restarts and replicas.
CREATE TABLE %[1]s.stock (
    sku       text PRIMARY KEY,
    available bigint NOT NULL CHECK (available >= 0)
);

CREATE TABLE %[1]s.reservations (
    order_id    text PRIMARY KEY,
    status      text NOT NULL CHECK (status IN ('reserved', 'rejected')),
    reason      text NOT NULL DEFAULT '',
    message_id  text NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now()
);

-- The read model: one row per order, built from the events only.
CREATE TABLE %[1]s.order_summaries (
    order_id       text PRIMARY KEY,
    customer       text NOT NULL DEFAULT '',
    items          int NOT NULL DEFAULT 0,
    total_cents    bigint NOT NULL DEFAULT 0,
    shipper        text NOT NULL DEFAULT '',
    shipping_cents bigint NOT NULL DEFAULT 0,
    status         text NOT NULL DEFAULT 'placed',
    reason         text NOT NULL DEFAULT '',
    events         int NOT NULL DEFAULT 0
);

-- The events the read model applied, by message-id: a copy of one (a
-- replay after the stream's dedup window) changes nothing.
CREATE TABLE %[1]s.summary_events (
    message_id text PRIMARY KEY
);
`

// product is a catalogue entry with its opening stock.
type product struct {
	SKU         string
	Name        string
	PriceCents  int64
	WeightGrams int64
	Stock       int64
}

// catalogue is what the shop sells; the example's orders buy from it.
var catalogue = []product{
	{SKU: "KB-01", Name: "keyboard", PriceCents: 4900, WeightGrams: 900, Stock: 10},
	{SKU: "MS-02", Name: "mouse", PriceCents: 1900, WeightGrams: 150, Stock: 25},
	{SKU: "MN-27", Name: "27-inch monitor", PriceCents: 22900, WeightGrams: 6200, Stock: 3},
	{SKU: "CB-05", Name: "USB-C cable", PriceCents: 900, WeightGrams: 60, Stock: 100},
}

// errSchemaExists is returned by createSchema when the schema is there
// already, from an earlier run: the example never drops data it was not
// told to.
var errSchemaExists = errors.New("schema exists")

// createSchema creates the example's schema and tables in db and stocks
// the shelves. With reset, a schema of that name left by an earlier run is
// dropped first; without, its presence is an error.
func createSchema(ctx context.Context, db *sql.DB, schema string, reset bool) error {
	if !validIdentifier(schema) {
		return fmt.Errorf("schema %q: use lower-case letters, digits and _ (at most 40)", schema)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return err
	}
	if exists && !reset {
		return fmt.Errorf("%w: %q is in the database, from an earlier run? Pass --reset to drop it first", errSchemaExists, schema)
	}
	if exists {
		if _, err := tx.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(schemaSQL, schema)); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	for _, p := range catalogue {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+schema+".products (sku, name, price_cents, weight_grams) VALUES ($1, $2, $3, $4)",
			p.SKU, p.Name, p.PriceCents, p.WeightGrams); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+schema+".stock (sku, available) VALUES ($1, $2)", p.SKU, p.Stock); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// validIdentifier reports whether s can be written into SQL unquoted.
func validIdentifier(s string) bool {
	if s == "" || len(s) > 40 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return false
	}
	return s[0] < '0' || s[0] > '9'
}
