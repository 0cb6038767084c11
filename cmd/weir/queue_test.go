package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

func TestQueueCommands(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	run := func(stdin string, args ...string) (int, string, string) {
		return weirCmd(t, stdin, nil, append(args, server)...)
	}

	code, out, errOut := run("", "queue", "create", "orders", "--partitions", "2", "--max-deliveries", "2", "--ack-timeout", "10s",
		"--key-ordered", "--ttl", "1h", "--dead-letter", "orders-failed")
	expect(t, code, out, errOut, 0, []string{"created queue orders with 2 partitions; dead letters go to orders-failed"}, nil)
	code, out, errOut = run("", "queue", "create", "picky", "--filter", "headers['type'] = 'x'")
	expect(t, code, out, errOut, 1, nil, []string{"weir queue create:", "invalid filter", "Syntax error"})
	code, out, errOut = run("", "queue", "create", "orders")
	expect(t, code, out, errOut, 1, nil, []string{"already exists"})

	code, out, errOut = run("a\nb\nc\n", "pub", "orders")
	expect(t, code, out, errOut, 0, []string{"published 3 records to orders"}, nil)
	code, out, errOut = run("", "queue", "ls")
	expect(t, code, out, errOut, 0, []string{"NAME", "DEPTH", "IN FLIGHT", "DELAYED", "DEAD-LETTERED", "CONSUMERS", "orders "}, nil)
	if !strings.Contains(out, "orders         3 ") && !strings.Contains(out, "orders  ") {
		t.Errorf("queue ls:\n%s", out)
	}
	code, out, errOut = run("", "queue", "describe", "orders")
	expect(t, code, out, errOut, 0, []string{"Queue:", "orders", "Partitions:", "Depth:", "3", "Max deliveries:", "2",
		"Ack timeout:", "10s", "Key-ordered:", "true", "Message TTL:", "1h0m0s, then dropped", "Dead-letter stream:", "orders-failed"}, nil)

	// Two competing readers take the records once each, acknowledging them.
	code, out, errOut = run("", "sub", "orders", "--shared", "--count", "2")
	expect(t, code, out, errOut, 0, nil, nil)
	first := strings.Fields(out)
	code, out, errOut = run("", "sub", "orders", "--shared=orders", "--count", "1", "--format", "json")
	// Records the first reader got but did not print come back with a
	// delivery counted.
	expect(t, code, out, errOut, 0, []string{`"delivery_count":`}, nil)
	var rec struct{ Value string }
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("sub --format json printed %q: %v", out, err)
	}
	if got := strings.Join(append(first, rec.Value), ","); len(uniq(append(first, rec.Value))) != 3 || len(first) != 2 {
		t.Errorf("the shared readers printed %s, want a, b and c once each", got)
	}
	code, out, errOut = run("", "queue", "describe", "orders")
	expect(t, code, out, errOut, 0, []string{"Depth:               0"}, nil)

	// A delayed record waits.
	code, out, errOut = run("", "pub", "orders", "--delay", "1500ms", "later")
	expect(t, code, out, errOut, 0, []string{"published to orders"}, nil)
	published := time.Now()
	code, out, errOut = run("", "queue", "describe", "orders")
	expect(t, code, out, errOut, 0, []string{"Delayed:             1"}, nil)
	code, out, errOut = run("", "sub", "orders", "--shared", "--count", "1")
	expect(t, code, out, errOut, 0, []string{"later"}, nil)
	if waited := time.Since(published); waited < 1400*time.Millisecond {
		t.Errorf("the delayed record came after %v, want 1.5s", waited)
	}

	// Purge asks for --yes when it cannot ask.
	run("x\ny\n", "pub", "orders")
	code, out, errOut = run("", "queue", "purge", "orders")
	expect(t, code, out, errOut, 2, nil, []string{"weir queue purge:", "--yes"})
	code, out, errOut = run("", "queue", "purge", "orders", "--yes")
	expect(t, code, out, errOut, 0, []string{"purged 2 records of queue orders"}, nil)

	// A rejected record is redriven back.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run("", "pub", "orders", "bad")
	rejected := make(chan error, 1)
	cons, err := c.Consume(ctx, "orders", func(ctx context.Context, m *weir.Message) error {
		rejected <- m.Reject(ctx, "malformed")
		return nil
	}, weir.Shared(""), weir.Prefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-rejected; err != nil {
		t.Fatal(err)
	}
	cons.Close(ctx)
	code, out, errOut = run("", "queue", "ls")
	expect(t, code, out, errOut, 0, []string{"orders-failed"}, nil)
	code, out, errOut = run("", "queue", "redrive", "orders", "--max", "5")
	expect(t, code, out, errOut, 0, []string{"moved 1 records from orders-failed back to queue orders"}, nil)
	code, out, errOut = run("", "sub", "orders", "--shared", "--count", "1")
	expect(t, code, out, errOut, 0, []string{"bad"}, nil)

	// Shared subscriptions of a stream, and filters.
	run("", "stream", "create", "events")
	if _, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "events", Name: "audit", Start: weir.Earliest()}); err != nil {
		t.Fatal(err)
	}
	run("one\n", "pub", "events", "--header", "type=a")
	run("two\n", "pub", "events", "--header", "type=b")
	code, out, errOut = run("", "sub", "events", "--shared", "audit", "--count", "2")
	expect(t, code, out, errOut, 0, []string{"one", "two"}, nil)
	code, out, errOut = run("", "sub", "events", "--from", "earliest", "--filter", "headers['type'] == 'b'", "--count", "1")
	expect(t, code, out, errOut, 0, nil, nil)
	if out != "two\n" {
		t.Errorf("sub --filter printed %q, want two", out)
	}
	code, out, errOut = run("", "sub", "events", "--filter", "headers[", "--count", "1")
	expect(t, code, out, errOut, 1, nil, []string{"weir sub:", "invalid filter"})
	code, out, errOut = run("", "sub", "events", "--shared", "--count", "1")
	expect(t, code, out, errOut, 1, nil, []string{"not found"})

	code, out, errOut = run("", "queue", "rm", "events")
	expect(t, code, out, errOut, 1, nil, []string{"not a queue"})
	code, out, errOut = run("", "queue", "rm", "orders")
	expect(t, code, out, errOut, 0, []string{"deleted queue orders"}, nil)
	code, out, errOut = run("", "queue", "describe", "orders")
	expect(t, code, out, errOut, 1, nil, []string{"not found"})
	code, out, errOut = run("", "stream", "ls")
	expect(t, code, out, errOut, 0, []string{"events", "orders-failed"}, nil)
}

func TestQueueUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"queue"},
		{"queue", "frobnicate"},
		{"queue", "create"},
		{"queue", "create", "a", "--partitions", "0"},
		{"queue", "create", "a", "--max-deliveries", "-1"},
		{"queue", "create", "a", "--ack-timeout", "soon"},
		{"queue", "ls", "extra"},
		{"queue", "purge", "q"},
		{"queue", "redrive", "q", "--max", "-1"},
		{"queue", "rm"},
		{"sub", "s", "--shared", "--group", "g"},
		{"sub", "s", "--shared", "--from", "earliest"},
		{"sub", "s", "--shared", "--filter", "true"},
		{"sub", "s", "--shared=x", "y"},
		{"sub", "s", "extra"},
		{"sub", "s", "--prefetch", "5"},
		{"pub", "s", "--delay", "-1s", "x"},
		{"bench", "--shared", "--prefetch", "0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runWeir(t, args...)
			if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "weir ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, a message", code, stdout, stderr, exitUsage)
			}
		})
	}
	for _, args := range [][]string{{"queue", "-h"}, {"help", "queue"}, {"queue", "create", "-h"}} {
		code, stdout, stderr := runWeir(t, args...)
		if code != 0 || !strings.Contains(stdout, "weir queue purge NAME [--yes]") || !strings.Contains(stdout, "--max-deliveries") || stderr != "" {
			t.Errorf("weir %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestBenchShared(t *testing.T) {
	addr := startServer(t)
	code, out, errOut := weirCmd(t, "", nil, "bench", "--server", addr, "--shared", "--records", "2000", "--batch", "100",
		"--consumers", "3", "--prefetch", "50", "--partitions", "2", "--size", "100", "--json")
	expect(t, code, out, errOut, 0, nil, nil)
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if !res.Shared || res.Prefetch != 50 || res.Publish.Records != 2000 {
		t.Errorf("bench results %+v", res)
	}
	if c := res.Consume; c == nil || c.Records != 2000 || c.RecordsPerSec <= 0 {
		t.Errorf("consume results %+v", res.Consume)
	}
	code, out, errOut = weirCmd(t, "", nil, "queue", "ls", "--server", addr)
	expect(t, code, out, errOut, 0, nil, nil)
	if strings.Contains(out, "weir-bench ") {
		t.Errorf("the bench's queue was not deleted:\n%s", out)
	}
	code, out, errOut = weirCmd(t, "", nil, "bench", "--server", addr, "--shared", "--records", "500", "--consumers", "2")
	expect(t, code, out, errOut, 0, []string{"consume (shared, prefetch 100, acks stored): 500 records"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "bench", "--server", addr, "--shared", "--records", "500", "--consumers", "2", "--ack-wait")
	expect(t, code, out, errOut, 0, []string{"consume (shared, prefetch 100, acks stored): 500 records"}, nil)
}

func TestQueueMaxLength(t *testing.T) {
	addr := startServer(t)
	run := func(args ...string) (int, string, string) {
		return weirCmd(t, "", nil, append(args, "--server="+addr)...)
	}

	code, out, errOut := run("queue", "create", "small", "--max-length-bytes", "1KiB", "--overflow", "reject-publish")
	expect(t, code, out, errOut, 0, []string{"created queue small"}, nil)
	msg := strings.Repeat("m", 400)
	for range 3 { // the third crosses 1 KiB and is taken; the fourth is not
		code, out, errOut = run("pub", "small", msg)
		expect(t, code, out, errOut, 0, []string{"published to small"}, nil)
	}
	code, out, errOut = run("pub", "small", msg)
	expect(t, code, out, errOut, 1, nil, []string{"queue is full", "1024 bytes"})
	code, out, errOut = run("queue", "describe", "small")
	expect(t, code, out, errOut, 0, []string{"Depth in bytes:", "1200", "Max length:", "1KiB, then reject-publish"}, nil)

	code, out, errOut = run("queue", "create", "recent", "--max-length", "2", "--max-length-bytes", "1000")
	expect(t, code, out, errOut, 0, []string{"created queue recent"}, nil)
	for _, m := range []string{"a", "b", "c"} {
		code, out, errOut = run("pub", "recent", m)
		expect(t, code, out, errOut, 0, nil, nil)
	}
	code, out, errOut = run("queue", "describe", "recent")
	expect(t, code, out, errOut, 0, []string{"Max length:", "2 records or 1000, then drop-oldest"}, nil)
	code, out, errOut = run("sub", "recent", "--shared", "--count", "2")
	expect(t, code, out, errOut, 0, []string{"b", "c"}, nil)
	if strings.Contains(out, "a") {
		t.Errorf("the oldest record was kept:\n%s", out)
	}

	code, out, errOut = run("queue", "create", "paced", "--max-length", "100", "--overflow", "block")
	expect(t, code, out, errOut, 0, []string{"created queue paced"}, nil)
	code, out, errOut = run("queue", "describe", "paced")
	expect(t, code, out, errOut, 0, []string{"Max length:", "100 records, then block"}, nil)

	for _, args := range [][]string{
		{"queue", "create", "a", "--max-length-bytes", "10XB"},
		{"queue", "create", "a", "--max-length-bytes", "-1"},
		{"queue", "create", "a", "--max-length", "-1"},
		{"queue", "create", "a", "--max-length", "5", "--overflow", "explode"},
		{"queue", "create", "a", "--overflow", "dead-letter"},
	} {
		code, stdout, stderr := runWeir(t, args...)
		if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "weir ") {
			t.Errorf("weir %q: exit %d, stdout %q, stderr %q; want a usage error", args, code, stdout, stderr)
		}
	}
}
