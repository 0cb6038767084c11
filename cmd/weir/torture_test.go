package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/torture"
)

// TestTortureShort is the crash campaign in small: five SIGKILLs of a real
// `weir serve` under load from franz-go, amqp091-go and the SDK, each
// followed by a restart and a check, then the final drain. It runs the
// built binary as both the campaign and the server.
func TestTortureShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server six times")
	}
	const cycles = 5
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBinary, "torture", "--weir", weirBinary, "--dir", t.TempDir(),
		"--cycles", "5", "--kill-min", "300ms", "--kill-max", "800ms", "--rate", "1000", "--json")
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var report torture.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &report); jerr != nil {
		t.Fatalf("weir torture: %v; report does not decode (%v):\n%s\nstderr:\n%s", err, jerr, &stdout, &stderr)
	}
	if err != nil {
		t.Fatalf("weir torture: %v\nreport:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if report.Cycles != cycles || report.Kills != cycles+report.StartupKills || report.Checks != cycles+1 {
		t.Errorf("cycles %d, kills %d (%d during startup), checks %d; want %d cycles, one kill each besides those during startup, %d checks",
			report.Cycles, report.Kills, report.StartupKills, report.Checks, cycles, cycles+1)
	}
	if !report.OK() {
		t.Errorf("violations %v: %+v", report.Violations, report.Examples)
	}
	for _, client := range torture.Clients {
		c := report.Client(client)
		if c.Acknowledged == 0 || c.AckedVerifications < c.Acknowledged {
			t.Errorf("%s: %d records acknowledged, %d verifications; want some, each checked at least once", client, c.Acknowledged, c.AckedVerifications)
		}
		if c.Sent != c.Acknowledged+c.InDoubt {
			t.Errorf("%s: sent %d != acknowledged %d + in doubt %d", client, c.Sent, c.Acknowledged, c.InDoubt)
		}
	}
	q := report.Queue
	if q.Deliveries == 0 || q.AcksConfirmed == 0 {
		t.Errorf("queue: %d deliveries, %d acks confirmed; want some", q.Deliveries, q.AcksConfirmed)
	}
	// The last cycle runs without consumers, so the drain has work.
	if q.DrainExpected == 0 || q.Drained != q.DrainExpected || q.PublishOnlyCycles == 0 {
		t.Errorf("final drain delivered %d of %d (%d cycles without consumers); want all of some", q.Drained, q.DrainExpected, q.PublishOnlyCycles)
	}
	t.Logf("report: %s", &stdout)
}

func TestTortureBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"torture", "--fsync", "sometimes"},
		{"torture", "--cycles", "0"},
		{"torture", "--kill-min", "2s", "--kill-max", "1s"},
		{"torture", "extra"},
	} {
		code, _, stderr := runWeir(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "weir torture") {
			t.Errorf("weir %q: exit %d, stderr %q; want %d and a message", args, code, stderr, exitUsage)
		}
	}
}
