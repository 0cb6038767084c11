package main

import (
	"strings"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

func TestConnectorOutboxCommands(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, `CREATE TABLE public.outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL,
		type text NOT NULL, payload jsonb, tenant text)`)
	addr := startServer(t)
	server := "--server=" + addr
	run := func(args ...string) (int, string, string) { return weirCmd(t, "", nil, args...) }

	code, out, errOut := run("connector", "create", "postgres", server, "--name", "x", "--dsn", pg.ConnString(),
		"--tables", "t", "--outbox-route", "events.${routedByValue}")
	expect(t, code, out, errOut, 2, nil, []string{"need --outbox-table"})
	code, out, errOut = run("connector", "create", "postgres", server, "--name", "x", "--dsn", pg.ConnString(),
		"--outbox-table", "outbox", "--outbox-headers", "tenant:")
	expect(t, code, out, errOut, 1, nil, []string{"outbox: headers[0]"})

	code, out, errOut = run("connector", "create", "postgres", server, "--name", "shop", "--dsn", pg.ConnString(),
		"--outbox-table", "outbox", "--outbox-headers", "tenant", "--outbox-dead-letter", "outbox.invalid")
	expect(t, code, out, errOut, 0, []string{"created connector shop", "outbox public.outbox routed to outbox.event.${routedByValue}"}, nil)
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errOut = run("connector", "describe", "shop", server)
		if strings.Contains(out, "streaming") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("weir connector describe shop:\n%s", out)
	expect(t, code, out, errOut, 0, []string{"streaming", "Outbox:", "public.outbox routed to outbox.event.${routedByValue} (by aggregatetype; key aggregateid, message-id id, type type, value payload, headers tenant); rows that cannot be routed go to outbox.invalid"}, nil)

	pg.Exec(t, `BEGIN;
		INSERT INTO outbox VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'order', '7', 'OrderPlaced', '{"total": 19.9}', 'acme');
		DELETE FROM outbox;
		COMMIT`)
	deadline = time.Now().Add(time.Minute)
	for {
		code, out, errOut = run("sub", "outbox.event.order", "--from", "earliest", "--count", "1", server)
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(t, code, out, errOut, 0, []string{`{"total": 19.9}`}, nil)
	code, out, errOut = run("connector", "rm", "shop", server)
	expect(t, code, out, errOut, 0, []string{"deleted connector shop"}, nil)
}
