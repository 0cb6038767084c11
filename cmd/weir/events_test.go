package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestEventsCommands(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	run := func(stdin string, args ...string) (int, string, string) {
		return weirCmd(t, stdin, nil, append(args, server)...)
	}

	code, out, errOut := run("", "events", "append", "order-1", "OrderPlaced", `{"total":10}`, "--expect", "no-stream", "--id", "ev-1",
		"--correlation-id", "req-1", "--content-type", "application/json")
	expect(t, code, out, errOut, 0, []string{"appended 1 to order-1: version 1, position 0"}, nil)
	// Each line of stdin is an event; all are appended at once.
	code, out, errOut = run("a\nb\n", "events", "append", "order-1", "ItemAdded", "--expect", "1")
	expect(t, code, out, errOut, 0, []string{"appended 2 to order-1: version 2-3, position 1-2"}, nil)
	code, out, errOut = run("", "events", "append", "customer-1", "Registered", "x")
	expect(t, code, out, errOut, 0, []string{"version 1, position 3"}, nil)
	// A stale expectation fails with the current version.
	code, out, errOut = run("", "events", "append", "order-1", "OrderPaid", "p", "--expect", "1")
	expect(t, code, out, errOut, 1, nil, []string{"weir events append:", "aborted", `"order-1" is at version 3`})
	// A retry of the same id stores nothing.
	code, out, errOut = run("", "events", "append", "order-1", "OrderPlaced", `{"total":10}`, "--expect", "no-stream", "--id", "ev-1")
	expect(t, code, out, errOut, 0, []string{"already stored (same ids) in order-1 as version 1, position 0"}, nil)
	code, out, errOut = run("", "events", "append", "order-1", "X", "--expect", "sometimes")
	expect(t, code, out, errOut, 2, nil, []string{`--expect "sometimes"`})
	code, out, errOut = run("", "events", "append", "order-1", "X", "a")
	expect(t, code, out, errOut, 0, nil, nil)

	code, out, errOut = run("", "events", "read", "order-1")
	expect(t, code, out, errOut, 0, []string{"0 order-1@1 OrderPlaced {\"total\":10}", "1 order-1@2 ItemAdded a", "2 order-1@3 ItemAdded b", "4 order-1@4 X a"}, nil)
	if strings.Contains(out, "customer") {
		t.Errorf("read order-1 printed another aggregate:\n%s", out)
	}
	code, out, errOut = run("", "events", "read", "order-1", "--from-version", "4", "--format", "json")
	expect(t, code, out, errOut, 0, nil, nil)
	var ev struct {
		Position  int64
		Aggregate string
		Version   int64
		Type      string
		Data      string
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil || ev.Version != 4 || ev.Position != 4 || ev.Data != "a" || ev.Type != "X" {
		t.Fatalf("read --format json printed %q (%v)", out, err)
	}

	// tail: everything from the start, one category, until caught up.
	code, out, errOut = run("", "events", "tail", "--from", "start", "--no-follow")
	expect(t, code, out, errOut, 0, []string{"0 order-1@1", "3 customer-1@1 Registered x", "4 order-1@4"}, nil)
	if n := strings.Count(out, "\n"); n != 5 {
		t.Errorf("tail printed %d events, want 5:\n%s", n, out)
	}
	code, out, errOut = run("", "events", "tail", "--from", "1", "--category", "order", "--count", "2")
	expect(t, code, out, errOut, 0, []string{"1 order-1@2 ItemAdded a\n2 order-1@3 ItemAdded b\n"}, nil)
	code, out, errOut = run("", "events", "tail", "--category", "customer", "--no-follow")
	expect(t, code, out, errOut, 0, nil, nil)
	if out != "" {
		t.Errorf("tail from the end printed %q", out)
	}
	code, out, errOut = run("", "events", "tail", "--from", "later")
	expect(t, code, out, errOut, 2, nil, []string{`--from "later"`})
	code, out, errOut = run("", "events", "frobnicate")
	expect(t, code, out, errOut, 2, nil, []string{`unknown subcommand "frobnicate"`})
}
