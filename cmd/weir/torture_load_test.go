package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/torture"
)

// TestTortureLoadShort is the load campaign in small: 500 idle connections
// (125 per protocol) and 20 active clients for 10 s against a real `weir
// serve`. It checks the mechanics — every idle connection opened and
// counted by the server, records produced, acknowledged and consumed over
// every protocol, a memory sample a second — not the flatness verdict,
// which 10 s cannot give (the exit status is 1 when memory was not flat).
func TestTortureLoadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 520 connections to a real server")
	}
	const idle, active = 500, 20
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBinary, "torture", "load", "--weir", weirBinary, "--dir", t.TempDir(),
		"--idle", "500", "--active", "20", "--duration", "10s", "--json", "--quiet")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == exitFailure && bytes.Contains(stderr.Bytes(), []byte("did not stay flat"))) {
		t.Fatalf("weir torture load: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	var report torture.LoadReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("report does not decode (%v):\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if report.Idle != idle || report.Active != active {
		t.Errorf("report for %d idle, %d active; want %d, %d", report.Idle, report.Active, idle, active)
	}
	for _, name := range []string{"kafka", "amqp", "mqtt", "native"} {
		p := report.Protocols[name]
		if p.IdleOpen != idle/4 || p.IdleFailed != 0 {
			t.Errorf("%s: %d idle connections open, %d failed; want %d, none", name, p.IdleOpen, p.IdleFailed, idle/4)
		}
		if p.Producers == 0 || p.Consumers == 0 || p.Acknowledged == 0 || p.Consumed == 0 || p.Acknowledged > p.Produced {
			t.Errorf("%s: %+v; want producers and consumers, records acknowledged and consumed", name, p)
		}
	}
	if report.MinConnections < idle+active {
		t.Errorf("the server counted at least %d connections after the warm-up, want %d or more", report.MinConnections, idle+active)
	}
	activeSamples, withHeap := 0, 0
	for _, s := range report.Samples {
		if s.Active {
			activeSamples++
			if s.RSSBytes <= 0 {
				t.Errorf("sample %+v without the server's RSS", s)
			}
			if s.HeapBytes > 0 {
				withHeap++
			}
		}
	}
	// RSS is read every second; the Go heap when /metrics answered in time.
	if activeSamples < 3 || withHeap == 0 {
		t.Errorf("%d samples in the active phase, %d with the Go heap; want one a second, some with the heap", activeSamples, withHeap)
	}
}
