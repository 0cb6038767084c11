package amqp_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runClient runs a client program against a fresh node and decodes its
// JSON report. A missing interpreter or package fails the test: .ci/run
// installs them.
func runClient(t *testing.T, dir string, argv ...string) map[string]any {
	t.Helper()
	w := startWeir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], w.url)...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", argv[0], err, out, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("report %q: %v\n%s", out, err, stderr.String())
	}
	t.Logf("report: %s", out)
	return res
}

// TestAmqplib runs amqplib (npm; testdata/amqplib/run.js): confirms,
// prefetch with manual acks, reject to a dead-letter queue, a mandatory
// return, topic routing, a server-named exclusive queue.
func TestAmqplib(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (.ci/run installs it): %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "amqplib"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "amqplib")); err != nil {
		t.Fatalf("amqplib is not installed: run npm ci in %s (.ci/run does): %v", dir, err)
	}
	res := runClient(t, dir, node, "run.js")
	if res["confirmed"] != 20.0 || res["received"] != 20.0 || res["headersOK"] != true {
		t.Errorf("publish/consume: %v", res)
	}
	if m, _ := res["maxOutstanding"].(float64); m < 1 || m > 5 {
		t.Errorf("prefetch 5: %v unacked at once", res["maxOutstanding"])
	}
	if res["deadLettered"] != 4.0 {
		t.Errorf("dead-lettered %v, want 4", res["deadLettered"])
	}
	if res["returned"] != "bounce" {
		t.Errorf("returned %v", res["returned"])
	}
	if routed, _ := res["routed"].([]any); len(routed) != 1 || routed[0] != "yes" || res["serverNamed"] != true {
		t.Errorf("topic routing %v, server-named %v", res["routed"], res["serverNamed"])
	}
	if left, _ := res["ttlLeft"].([]any); len(left) != 1 || left[0] != "long" {
		t.Errorf("per-message TTL: left %v, want only the long-lived message", res["ttlLeft"])
	}
	if exp, _ := res["expired"].(map[string]any); exp["body"] != "stale" || exp["reason"] != "expired" {
		t.Errorf("x-message-ttl with a dead-letter queue: %v, want stale with reason expired", res["expired"])
	}
	if rpc, _ := res["rpc"].([]any); !slices.Equal(rpc, []any{"rpc-1", "pong:ping"}) {
		t.Errorf("direct reply-to: reply %v", res["rpc"])
	}
}

// TestPika runs pika (Debian python3-pika with /usr/bin/python3;
// testdata/pika/run.py): confirms, mandatory return, prefetch, nack with
// requeue, reject to a dead-letter exchange with x-death, an exclusive
// server-named queue.
func TestPika(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import pika").Run(); err != nil {
		t.Fatalf("pika is not installed for %s (.ci/run installs python3-pika): %v", python, err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "pika"))
	res := runClient(t, dir, python, "run.py")
	if res["confirmed"] != 10.0 || res["returned"] != true || res["props_ok"] != true {
		t.Errorf("publish: %v", res)
	}
	if m, _ := res["max"].(float64); m < 1 || m > 3 {
		t.Errorf("prefetch 3: %v unacked at once", res["max"])
	}
	// 0 is requeued once then rejected; 3, 6, 9 rejected; the rest acked.
	if res["requeued"] != 1.0 || res["redelivered"] != 1.0 || res["rejected"] != 4.0 || res["acked"] != 6.0 {
		t.Errorf("settlements: %v", res)
	}
	dead, _ := res["dead"].([]any)
	var bodies []string
	for _, d := range dead {
		m, _ := d.(map[string]any)
		if m["reason"] != "rejected" {
			t.Errorf("dead-lettered %v without x-death reason rejected", m)
		}
		b, _ := m["body"].(string)
		bodies = append(bodies, b)
	}
	slices.Sort(bodies)
	if !slices.Equal(bodies, []string{"m0", "m3", "m6", "m9"}) {
		t.Errorf("dead-lettered %v", bodies)
	}
	if res["server_named"] != true {
		t.Errorf("server-named queue: %v", res["server_named"])
	}
	if left, _ := res["ttl_left"].([]any); len(left) != 1 || left[0] != "long" {
		t.Errorf("per-message TTL: left %v, want only the long-lived message", res["ttl_left"])
	}
	if exp, _ := res["expired"].(map[string]any); exp["body"] != "stale" || exp["reason"] != "expired" {
		t.Errorf("x-message-ttl with a dead-letter exchange: %v, want stale with reason expired", res["expired"])
	}
	if res["typed_ok"] != true {
		t.Errorf("header types did not round-trip")
	}
	if rpc, _ := res["rpc"].([]any); len(rpc) != 1 || !slices.Equal(rpc[0].([]any), []any{"rpc-1", "pong:ping"}) || res["rpc_reply_to_rewritten"] != true {
		t.Errorf("direct reply-to: replies %v, reply-to rewritten %v", res["rpc"], res["rpc_reply_to_rewritten"])
	}
	want := map[string]any{"before": 0.0, "after": 1.0, "body": "committed", "redelivered": true, "left": false}
	if tx, _ := res["tx"].(map[string]any); !maps.Equal(tx, want) {
		t.Errorf("transactions: %v, want %v", res["tx"], want)
	}
}
