package kafka_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKafkaJS runs kafkajs (testdata/kafkajs/run.js): admin create and
// delete topics, a producer, and a consumer group of two. Node and the
// kafkajs package (npm ci in testdata/kafkajs) are installed by .ci/run; a
// machine without them fails the test rather than skipping it.
func TestKafkaJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (.ci/run installs it): %v", err)
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "kafkajs"))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed: run npm ci in %s (.ci/run does): %v", dir, err)
	}
	w := startWeir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.js", w.addr)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kafkajs: %v\n%s%s", err, out, stderr.String())
	}
	var res struct {
		Created, KeysMatch, Deleted bool
		Consumed, BadHeaders        int
		Committed                   int
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kafkajs output %q: %v", out, err)
	}
	if !res.Created || res.Consumed != 50 || res.BadHeaders != 0 || !res.KeysMatch || res.Committed != 50 || !res.Deleted {
		t.Errorf("kafkajs: %+v\n%s", res, stderr.String())
	}
}
