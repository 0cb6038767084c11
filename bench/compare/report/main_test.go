package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weirmq/weir/internal/bench"
)

// writeResult stores a result as compare.sh files it.
func writeResult(t *testing.T, dir, workload, system string, yaml string, set func(r *bench.Result)) string {
	t.Helper()
	w, err := bench.ParseWorkload([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r := &bench.Result{Workload: w, Driver: "x", Label: system,
		PublishLatency:  &bench.Percentiles{Count: 10, P50: 1, P75: 2, P95: 3, P99: 4, P999: 5, P9999: 6, Max: 7},
		EndToEndLatency: &bench.Percentiles{Count: 10, P50: 2, P75: 3, P95: 4, P99: 5, P999: 6, P9999: 7, Max: 8},
		Series:          []bench.Sample{{Second: 1, PublishRate: 10}, {Second: 2, PublishRate: 20}},
		Server:          &bench.ServerUsage{PID: 1, MaxRSSBytes: 50e6, AvgCPUCores: 0.5, MaxCPUCores: 0.9},
	}
	set(r)
	path := filepath.Join(dir, workload, system, "result.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	return path
}

const firehose = "name: firehose-1k\npartitionsPerTopic: 16\nmessageSize: 1024\nproducersPerTopic: 4\nproducerRate: max\nsubscriptionsPerTopic: 1\nconsumerPerSubscription: 4\nduration: 60s\nwarmup: 10s\n"

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	rate := func(publish, consume float64) func(r *bench.Result) {
		return func(r *bench.Result) {
			r.Publish.RecordsPerSec, r.Consume.RecordsPerSec = publish, consume
		}
	}
	weirFirehose := writeResult(t, results, "firehose-1k", "weir-native", firehose, rate(100000, 90000))
	writeResult(t, results, "firehose-1k", "nats-sync", firehose, rate(5000, 5000))
	writeResult(t, results, "firehose-1k", "nats", firehose, rate(200000, 5000))
	queue := strings.ReplaceAll(strings.ReplaceAll(firehose, "firehose-1k", "queue-acks"), "consumerPerSubscription", "subscriptionType: shared\nconsumerPerSubscription")
	writeResult(t, results, "queue-acks", "weir-amqp", queue, rate(9000, 9000))
	writeResult(t, results, "queue-acks", "rabbitmq", queue, rate(4000, 3000))
	for _, p := range []string{"16", "1000"} {
		y := strings.ReplaceAll(strings.ReplaceAll(firehose, "firehose-1k", "partitions-"+p), "partitionsPerTopic: 16", "partitionsPerTopic: "+p)
		writeResult(t, results, "partitions-"+p, "weir-native", y, rate(map[string]float64{"16": 100000, "1000": 85000}[p], 0))
	}

	e2e := strings.ReplaceAll(strings.ReplaceAll(firehose, "firehose-1k", "e2e-latency"), "producerRate: max", "producerRate: 50000")
	writeResult(t, results, "e2e-latency", "weir-native", e2e, rate(50000, 50000)) // p99 5 ms
	writeResult(t, results, "e2e-latency", "weir-kafka", e2e, func(r *bench.Result) {
		r.Publish.RecordsPerSec, r.Consume.RecordsPerSec = 50000, 50000
		r.EndToEndLatency.P99 = 12.5
	})

	var out strings.Builder
	if err := run([]string{"half-rate", weirFirehose}, &out); err != nil || out.String() != "50000\n" {
		t.Errorf("half-rate: %q, %v", out.String(), err)
	}

	doc := filepath.Join(dir, "docs", "BENCHMARKS.md")
	charts := filepath.Join(dir, "docs", "bench")
	if err := os.MkdirAll(filepath.Dir(doc), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\nearlier text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"write", "-results", results, "-doc", doc, "-charts", charts, "-note", "A test run."}
	if err := run(args, &out); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(doc)
	text := string(first)
	for _, want := range []string{
		"earlier text", beginMarker, endMarker, "A test run.",
		"| nats-sync | 5,000 |", "20.00×", // weir-native ÷ nats-sync, published
		"| nats | 200,000 |", "0.50×",
		"| rabbitmq | 4,000 |", "3.00×", // weir-amqp ÷ rabbitmq, consumed
		"Compared by: consumed records/s",
		"| 1,000 | 85,000 (85%) |",
		"| durable 1 KiB firehose: Weir ≥ 10× NATS `sync_interval: always` | 100,000 vs 5,000 records/s: 20.0× | yes |",
		"faster than NATS with its default lazy fsync | 100,000 vs 200,000 records/s: 0.50× | **no** |",
		"≥ 3× rabbitmq | 9,000 vs 3,000 acked records/s: 3.0× | yes |",
		"| p99 end-to-end latency at half of max rate ≤ 5 ms (weir-native) | 5.00 ms at 50000 records/s | yes |",
		"| p99 end-to-end latency at half of max rate ≤ 5 ms (weir-kafka) | 12.5 ms at 50000 records/s | **no** |",
		"![firehose-1k throughput](bench/firehose-1k-throughput.svg)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the section lacks %q:\n%s", want, text)
		}
	}
	for _, f := range []string{"firehose-1k-throughput.svg", "firehose-1k-latency.svg", "firehose-1k-timeline.svg", "queue-acks-latency.svg", "partitions.svg"} {
		if data, err := os.ReadFile(filepath.Join(charts, f)); err != nil || !strings.HasPrefix(string(data), "<svg") {
			t.Errorf("chart %s: %v", f, err)
		}
	}
	// A second run replaces the section instead of adding one.
	if err := run(args, &out); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(doc)
	if string(second) != string(first) || strings.Count(string(second), beginMarker) != 1 {
		t.Errorf("the second run changed the document or added a second section")
	}
	// Broken markers are refused, not guessed at.
	if err := os.WriteFile(doc, []byte("x\n"+endMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(args, &out); err == nil || !strings.Contains(err.Error(), "markers") {
		t.Errorf("broken markers: %v", err)
	}
}
