package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServer runs a weir server for the client commands and returns its
// address; it is stopped with SIGTERM at the end of the test.
func startServer(t *testing.T) string {
	t.Helper()
	p := startWeir(t, cleanEnv(), "serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0",
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=", "--log-level", "warn")
	addr := p.waitForLine(t, "http listening on ")
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exit(t); code != 0 {
			t.Errorf("server exit code %d; stderr:\n%s", code, &p.stderr)
		}
	})
	return addr
}

// weirCmd runs the binary with stdin and extra environment variables.
func weirCmd(t *testing.T, stdin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBinary, args...)
	cmd.Env = cleanEnv(env...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("weir %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// expect checks a command's exit code and that stdout and stderr contain
// the given strings.
func expect(t *testing.T, code int, stdout, stderr string, wantCode int, wantOut, wantErr []string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code %d, want %d; stdout:\n%s\nstderr:\n%s", code, wantCode, stdout, stderr)
	}
	for _, w := range wantOut {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout does not contain %q:\n%s", w, stdout)
		}
	}
	for _, w := range wantErr {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, stderr)
		}
	}
}

func TestStreamCommands(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	run := func(args ...string) (int, string, string) { return weirCmd(t, "", nil, args...) }

	code, out, errOut := run("stream", "create", "orders", "--partitions", "3", server, "--retention-age", "24h",
		"--retention-bytes", "1GiB", "--dedup-window", "5m")
	expect(t, code, out, errOut, 0, []string{"created stream orders with 3 partitions"}, nil)
	code, out, errOut = run("stream", "create", server, "--compacted", "--dedup-window=off", "users")
	expect(t, code, out, errOut, 0, []string{"created stream users with 1 partitions"}, nil)

	code, out, errOut = run("stream", "ls", server)
	expect(t, code, out, errOut, 0, []string{"NAME", "orders", "users", "24h0m0s or 1.0 GiB per partition", "forever, compacted"}, nil)

	code, out, errOut = weirCmd(t, "", []string{"WEIR_SERVER=" + addr}, "stream", "describe", "orders")
	expect(t, code, out, errOut, 0, []string{"Stream:", "orders", "Partitions:    3", "Dedup window:  5m0s", "PARTITION", "START", "END", "BYTES", "SEGMENTS"}, nil)
	if rows := strings.Count(out, "\n          "); rows != 3 {
		t.Errorf("describe printed %d partition rows, want 3:\n%s", rows, out)
	}

	code, out, errOut = run("stream", "create", "orders", server)
	expect(t, code, out, errOut, 1, nil, []string{"weir stream create:", "already exists", "orders"})
	code, out, errOut = run("stream", "create", "bad/name", server)
	expect(t, code, out, errOut, 1, nil, []string{"invalid", "bad/name"})

	code, out, errOut = run("stream", "rm", "orders", server)
	expect(t, code, out, errOut, 0, []string{"deleted stream orders"}, nil)
	code, out, errOut = run("stream", "describe", "orders", server)
	expect(t, code, out, errOut, 1, nil, []string{"not found", "orders"})
	code, out, errOut = run("stream", "rm", "orders", server)
	expect(t, code, out, errOut, 1, nil, []string{"not found"})
}

func TestClientUsageErrors(t *testing.T) {
	tests := [][]string{
		{"stream"},
		{"stream", "frobnicate"},
		{"stream", "create"},
		{"stream", "create", "a", "b"},
		{"stream", "create", "a", "--partitions", "zero"},
		{"stream", "create", "a", "--partitions", "0"},
		{"stream", "create", "a", "--retention-bytes", "lots"},
		{"stream", "create", "a", "--dedup-window", "soon"},
		{"stream", "ls", "extra"},
		{"pub"},
		{"pub", "s", "--header", "novalue"},
		{"sub", "s", "--format", "xml"},
		{"sub", "s", "--from", "yesterday"},
		{"sub"},
		{"group"},
		{"group", "reset", "g"},
		{"group", "reset", "g", "--stream", "s", "--to", "never"},
		{"bench", "--batch", "0"},
		{"bench", "extra"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runWeir(t, args...)
			if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, "weir ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, nothing, a message", code, stdout, stderr, exitUsage)
			}
		})
	}
	for _, args := range [][]string{{"stream", "-h"}, {"help", "pub"}, {"sub", "--help"}, {"group", "help"}, {"bench", "-h"}, {"stream", "create", "-h"}} {
		code, stdout, stderr := runWeir(t, args...)
		if code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "--server") || stderr != "" {
			t.Errorf("weir %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestServerUnreachable(t *testing.T) {
	code, stdout, stderr := weirCmd(t, "", []string{"WEIR_SERVER=127.0.0.1:1"}, "stream", "ls")
	expect(t, code, stdout, stderr, 1, nil, []string{"weir stream ls:", "unavailable", "127.0.0.1:1"})
}

func TestPubSub(t *testing.T) {
	addr := startServer(t)
	server := "--server=" + addr
	code, out, errOut := weirCmd(t, "", nil, "stream", "create", "events", "--partitions", "2", server)
	expect(t, code, out, errOut, 0, nil, nil)

	code, out, errOut = weirCmd(t, "first\nsecond\nthird\n", nil, "pub", "events", "--key", "user-1", "--header", "type=signup", "--header", "source=test", server)
	expect(t, code, out, errOut, 0, []string{"published 3 records to events"}, nil)
	code, out, errOut = weirCmd(t, "fourth\n", nil, "pub", "events", "-", server)
	expect(t, code, out, errOut, 0, []string{"published 1 records to events"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "pub", server, "events", "fifth", "--key", "user-1")
	expect(t, code, out, errOut, 0, []string{"published to events partition", "offset"}, nil)
	code, out, errOut = weirCmd(t, "x\n", nil, "pub", "missing", server)
	expect(t, code, out, errOut, 1, []string{"published 0 records"}, []string{"not found", "missing"})

	code, out, errOut = weirCmd(t, "", nil, "sub", "events", "--from", "earliest", "--count", "5", "--format", "json", server)
	expect(t, code, out, errOut, 0, nil, nil)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("sub --count 5 printed %d lines:\n%s", len(lines), out)
	}
	var userOne []string
	for _, line := range lines {
		var r struct {
			Stream    string
			Partition int32
			Offset    int64
			Timestamp time.Time
			Key       *string
			Value     string
			Headers   []struct{ Key, Value string }
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("sub printed %q: %v", line, err)
		}
		if r.Stream != "events" || time.Since(r.Timestamp) > time.Minute {
			t.Errorf("record %+v", r)
		}
		if r.Key != nil && *r.Key == "user-1" {
			userOne = append(userOne, r.Value)
			if r.Value != "fifth" && (len(r.Headers) != 2 || r.Headers[0].Key != "type" || r.Headers[0].Value != "signup") {
				t.Errorf("record %q has headers %+v", r.Value, r.Headers)
			}
		} else if r.Value != "fourth" || r.Key != nil {
			t.Errorf("record without key: %+v", r)
		}
	}
	if strings.Join(userOne, ",") != "first,second,third,fifth" {
		t.Errorf("records of user-1 in order %q", userOne)
	}

	// A group reads 2, then the next 3.
	code, out, errOut = weirCmd(t, "", nil, "sub", "events", "--group", "readers", "--from", "earliest", "--count", "2", server)
	expect(t, code, out, errOut, 0, nil, nil)
	first := strings.Fields(out)
	code, out, errOut = weirCmd(t, "", nil, "sub", "events", "--group", "readers", "--count", "3", server)
	expect(t, code, out, errOut, 0, nil, nil)
	all := append(first, strings.Fields(out)...)
	if len(all) != 5 || len(uniq(all)) != 5 {
		t.Errorf("the group read %q, then %q: want the 5 records once", first, strings.Fields(out))
	}

	code, out, errOut = weirCmd(t, "", nil, "group", "ls", server)
	expect(t, code, out, errOut, 0, []string{"readers"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "group", "describe", "readers", server)
	expect(t, code, out, errOut, 0, []string{"Group:", "readers", "Lag:      0", "PARTITION", "OFFSET"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "group", "reset", "readers", "--stream", "events", "--to", "earliest", server)
	expect(t, code, out, errOut, 0, []string{"reset group readers on events to earliest"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "group", "describe", "readers", server)
	expect(t, code, out, errOut, 0, []string{"Lag:      5"}, nil)
	code, out, errOut = weirCmd(t, "", nil, "group", "describe", "nobody", server)
	expect(t, code, out, errOut, 1, nil, []string{"not found"})

	// Live records only: the subscriber started before the publish gets
	// just the new record.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, weirBinary, "sub", "events", "--count", "1", server)
	sub.Env = cleanEnv()
	var subOut bytes.Buffer
	sub.Stdout = &subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sub.Wait() }()
	var err error
publish:
	for {
		weirCmd(t, "", nil, "pub", "events", "live", server)
		select {
		case err = <-exited:
			break publish
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil || subOut.String() != "live\n" {
		t.Errorf("live subscriber: %v, printed %q, want \"live\"", err, subOut.String())
	}

	code, out, errOut = weirCmd(t, "", nil, "sub", "missing", server)
	expect(t, code, out, errOut, 1, nil, []string{"not found", "missing"})
}

func uniq(s []string) map[string]bool {
	m := make(map[string]bool)
	for _, x := range s {
		m[x] = true
	}
	return m
}

func TestBench(t *testing.T) {
	addr := startServer(t)
	code, out, errOut := weirCmd(t, "", nil, "bench", "--server", addr, "--records", "2000", "--batch", "50",
		"--producers", "2", "--consumers", "2", "--partitions", "4", "--size", "100", "--json")
	expect(t, code, out, errOut, 0, nil, nil)
	var res benchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if res.Publish.Records != 2000 || res.Publish.Bytes != 200000 || res.Publish.RecordsPerSec <= 0 || res.Publish.MBPerSec <= 0 {
		t.Errorf("publish results %+v", res.Publish)
	}
	if l := res.Latency; l == nil || l.Calls != 40 || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Errorf("latency %+v", res.Latency)
	}
	if c := res.Consume; c == nil || c.Records != 2000 || c.RecordsPerSec <= 0 {
		t.Errorf("consume results %+v", res.Consume)
	}
	if strings.Contains(errOut, "\r") {
		t.Errorf("a progress bar was drawn on a stderr that is not a terminal: %q", errOut)
	}
	code, out, errOut = weirCmd(t, "", nil, "stream", "ls", "--server", addr)
	expect(t, code, out, errOut, 0, nil, nil)
	if strings.Contains(out, "weir-bench") {
		t.Errorf("the bench's stream was not deleted:\n%s", out)
	}

	// Text output with a progress bar, publishing for a time.
	code, out, errOut = weirCmd(t, "", nil, "bench", "--server", addr, "--duration", "300ms", "--consumers", "1",
		"--progress", "always", "--stream", "kept", "--keep")
	expect(t, code, out, errOut, 0, []string{"publish:", "records/s", "MB/s", "p50", "p99.9", "max", "consume:"}, []string{"\rpublish", "\rconsume", "100%"})
	code, out, errOut = weirCmd(t, "", nil, "stream", "ls", "--server", addr)
	expect(t, code, out, errOut, 0, []string{"kept"}, nil)
}
