package main

import (
	"strings"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/connector/postgres/pgtest"
)

func TestConnectorCommands(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, `CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)`)
	addr := startServer(t)
	server := "--server=" + addr
	run := func(args ...string) (int, string, string) { return weirCmd(t, "", nil, args...) }

	code, out, errOut := run("connector", "create", "postgres", server, "--name", "shop",
		"--dsn", pg.ConnString()+" password=hunter2", "--tables", "public.orders")
	expect(t, code, out, errOut, 0, []string{"created connector shop: publication weir_shop, slot weir_shop, streams shop.<schema>.<table>"}, nil)
	code, out, errOut = run("connector", "create", "postgres", server, "--name", "shop", "--dsn", pg.ConnString(), "--tables", "orders")
	expect(t, code, out, errOut, 1, nil, []string{"already exists"})
	code, out, errOut = run("connector", "create", "mysql", server, "--name", "x", "--dsn", "d", "--tables", "t")
	expect(t, code, out, errOut, 2, nil, []string{"the only type is postgres"})
	code, out, errOut = run("connector", "create", "postgres", server, "--name", "x", "--dsn", pg.ConnString(), "--tables", "a.b.c")
	expect(t, code, out, errOut, 1, nil, []string{`table "a.b.c"`})

	deadline := time.Now().Add(time.Minute)
	for {
		code, out, errOut = run("connector", "ls", server)
		if strings.Contains(out, "streaming") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	expect(t, code, out, errOut, 0, []string{"NAME", "shop", "postgres", "api", "streaming"}, nil)
	t.Logf("weir connector ls:\n%s", out)

	pg.Exec(t, `INSERT INTO public.orders VALUES (1, 19.90)`)
	code, out, errOut = run("sub", "shop.public.orders", "--from", "earliest", "--count", "1", server)
	expect(t, code, out, errOut, 0, []string{`"after":{"id":1,"total":"19.90"}`, `"op":"c"`}, nil)

	code, out, errOut = run("connector", "describe", "shop", server)
	t.Logf("weir connector describe shop:\n%s", out)
	expect(t, code, out, errOut, 0, []string{"Connector:", "shop", "streaming", "weir_shop", "password=xxxxx", "Confirmed LSN:", "Lag:", "Events:"}, nil)
	if strings.Contains(out, "hunter2") {
		t.Errorf("describe shows the password:\n%s", out)
	}
	code, out, errOut = run("connector", "rm", "shop", server)
	expect(t, code, out, errOut, 0, []string{"deleted connector shop and its replication slot"}, nil)
	code, out, errOut = run("connector", "describe", "shop", server)
	expect(t, code, out, errOut, 1, nil, []string{"not found"})
	if res := pg.Exec(t, `SELECT count(*) FROM pg_replication_slots`); string(res[0].Rows[0][0]) != "0" {
		t.Errorf("%s slots left after rm", res[0].Rows[0][0])
	}
}
