package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	benchkit "github.com/weirmq/weir/internal/bench"
)

// TestBenchWorkload runs a workload file through the native driver with a
// progress bar and the output directory, then checks a bad workload is
// refused with the field named.
func TestBenchWorkload(t *testing.T) {
	addr := startServer(t)
	dir := t.TempDir()
	workload := filepath.Join(dir, "w.yaml")
	if err := os.WriteFile(workload, []byte(`
name: cli
partitionsPerTopic: 2
messageSize: 100
producersPerTopic: 1
producerRate: 200
subscriptionsPerTopic: 1
consumerPerSubscription: 1
warmup: 200ms
duration: 10s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	// --duration overrides the file's duration, as --set duration= would.
	code, stdout, stderr := weirCmd(t, "", nil, "bench", "--server", addr, "--workload", workload, "--duration", "1s",
		"--set", "producerRate=300", "--out", out, "--progress", "always", "--label", "mine")
	expect(t, code, stdout, stderr, 0, []string{"cli on mine", "publish:", "end-to-end latency:", "p99.99", "wrote"}, []string{"\rrun"})
	res, err := benchkit.ReadResult(filepath.Join(out, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Workload.ProducerRate != 300 || time.Duration(res.Workload.Duration) != time.Second || res.Driver != "weir" || res.URL != addr {
		t.Errorf("result %+v of workload %+v", res, res.Workload)
	}
	if res.Publish.Records == 0 || res.Unconsumed != 0 || res.EndToEndLatency == nil {
		t.Errorf("publish %+v, unconsumed %d, end to end %+v", res.Publish, res.Unconsumed, res.EndToEndLatency)
	}
	for _, chart := range []string{"throughput.svg", "latency.svg"} {
		data, err := os.ReadFile(filepath.Join(out, chart))
		if err != nil || !strings.HasPrefix(string(data), "<svg") {
			t.Errorf("%s: %v %.40q", chart, err, data)
		}
	}

	// --json prints the result.
	code, stdout, stderr = weirCmd(t, "", nil, "bench", "--server", addr, "--workload", workload, "--set", "duration=300ms", "--set", "warmup=0", "--json")
	expect(t, code, stdout, stderr, 0, nil, nil)
	var parsed benchkit.Result
	if err := json.Unmarshal([]byte(stdout), &parsed); err != nil || parsed.Workload == nil || parsed.Workload.Name != "cli" {
		t.Errorf("--json printed %q: %v", stdout, err)
	}

	// A bad field is named; a bad driver too.
	code, stdout, stderr = weirCmd(t, "", nil, "bench", "--server", addr, "--workload", workload, "--set", "messageSize=3")
	expect(t, code, stdout, stderr, 2, nil, []string{"messageSize", "w.yaml"})
	code, stdout, stderr = weirCmd(t, "", nil, "bench", "--workload", workload, "--driver", "zeromq")
	expect(t, code, stdout, stderr, 1, nil, []string{`unknown driver "zeromq"`, "nats"})
	code, stdout, stderr = weirCmd(t, "", nil, "bench", "--workload", workload, "--driver", "kafka", "--driver-opt", "speed=11")
	expect(t, code, stdout, stderr, 1, nil, []string{`unknown option "speed"`})
}
