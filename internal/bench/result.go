package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Result is what one run of a workload measured; `weir bench --workload`
// writes it as JSON.
type Result struct {
	Workload *Workload `json:"workload"`
	Driver   string    `json:"driver"`
	URL      string    `json:"url"`
	// Label names the system under test in comparisons ("weir-native",
	// "nats-sync"); empty: the driver's name.
	Label   string    `json:"label,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
	Started time.Time `json:"started"`
	// MeasuredSeconds is the time the throughputs are counted over: the
	// workload's duration, or the drain of a backlog.
	MeasuredSeconds float64    `json:"measured_seconds"`
	Publish         Throughput `json:"publish"`
	Consume         Throughput `json:"consume"`
	// PublishLatency runs from a record's intended send time to its
	// acknowledgement; EndToEndLatency from the same time to its delivery
	// to a consumer. Milliseconds.
	PublishLatency  *Percentiles `json:"publish_latency_ms,omitempty"`
	EndToEndLatency *Percentiles `json:"end_to_end_latency_ms,omitempty"`
	// Backlog is set for a backlog drain.
	Backlog *BacklogResult `json:"backlog,omitempty"`
	// Unconsumed counts the records (per subscription, summed) published
	// and not consumed when the run ended.
	Unconsumed int64 `json:"unconsumed"`
	// Server is the resource use of the server process, when its PID was
	// given.
	Server *ServerUsage `json:"server,omitempty"`
	// Series has one sample per second of the run, warm-up included.
	Series []Sample `json:"series"`
}

// Name is the label, or the driver.
func (r *Result) Name() string {
	if r.Label != "" {
		return r.Label
	}
	return r.Driver
}

// Throughput counts what was acknowledged (publish) or delivered (consume)
// during the measured time.
type Throughput struct {
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	Bytes         int64   `json:"bytes"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	Errors        int64   `json:"errors,omitempty"`
}

// NewThroughput is records and bytes over d.
func NewThroughput(records, bytes int64, d time.Duration) Throughput {
	t := Throughput{Records: records, Bytes: bytes, Seconds: d.Seconds()}
	if s := d.Seconds(); s > 0 {
		t.RecordsPerSec = float64(records) / s
		t.MBPerSec = float64(bytes) / 1e6 / s
	}
	return t
}

// BacklogResult is a backlog drain: first filled with no consumer, then
// drained.
type BacklogResult struct {
	Records         int64   `json:"records"`
	FillSeconds     float64 `json:"fill_seconds"`
	FillRate        float64 `json:"fill_records_per_sec"`
	DrainSeconds    float64 `json:"drain_seconds"`
	DrainRate       float64 `json:"drain_records_per_sec"`
	DrainedComplete bool    `json:"drained_complete"`
}

// ServerUsage is a server process's resident memory and CPU during the run.
type ServerUsage struct {
	PID         int     `json:"pid"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	AvgCPUCores float64 `json:"avg_cpu_cores"`
	MaxCPUCores float64 `json:"max_cpu_cores"`
}

// Sample is one second of a run.
type Sample struct {
	Second      float64 `json:"t"`
	Warmup      bool    `json:"warmup,omitempty"`
	PublishRate float64 `json:"publish_per_sec"`
	ConsumeRate float64 `json:"consume_per_sec"`
	Backlog     int64   `json:"backlog"`
	// Latency percentiles of the second, milliseconds (0: none recorded).
	PublishP50 float64 `json:"publish_p50_ms,omitempty"`
	PublishP99 float64 `json:"publish_p99_ms,omitempty"`
	E2EP50     float64 `json:"e2e_p50_ms,omitempty"`
	E2EP99     float64 `json:"e2e_p99_ms,omitempty"`
	// Server process, when its PID was given.
	RSSBytes int64   `json:"rss_bytes,omitempty"`
	CPUCores float64 `json:"cpu_cores,omitempty"`
}

// WriteJSON writes the result, indented.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResult reads a result file.
func ReadResult(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Summary is the result in a few lines for people.
func (r *Result) Summary() string {
	var b strings.Builder
	w := r.Workload
	fmt.Fprintf(&b, "%s on %s (%s): %d topics × %d partitions, %d B records, %d producers at %s records/s, %d subscriptions × %d consumers (%s)\n",
		w.Name, r.Name(), r.URL, w.Topics, w.PartitionsPerTopic, w.MessageSize, w.ProducerCount(), w.ProducerRate,
		w.SubscriptionsPerTopic, w.ConsumerPerSubscription, w.SubscriptionType)
	p, c := r.Publish, r.Consume
	fmt.Fprintf(&b, "publish: %d records in %.1fs: %.0f records/s, %.1f MB/s", p.Records, p.Seconds, p.RecordsPerSec, p.MBPerSec)
	if p.Errors > 0 {
		fmt.Fprintf(&b, ", %d errors", p.Errors)
	}
	fmt.Fprintf(&b, "\nconsume: %d records in %.1fs: %.0f records/s, %.1f MB/s; unconsumed at the end: %d\n", c.Records, c.Seconds, c.RecordsPerSec, c.MBPerSec, r.Unconsumed)
	if bl := r.Backlog; bl != nil {
		fmt.Fprintf(&b, "backlog of %d records: filled in %.1fs (%.0f records/s), drained in %.1fs (%.0f records/s)\n",
			bl.Records, bl.FillSeconds, bl.FillRate, bl.DrainSeconds, bl.DrainRate)
	}
	line := func(name string, l *Percentiles) {
		if l == nil {
			return
		}
		fmt.Fprintf(&b, "%-19s p50 %.2f  p75 %.2f  p95 %.2f  p99 %.2f  p99.9 %.2f  p99.99 %.2f  max %.2f ms\n",
			name+":", l.P50, l.P75, l.P95, l.P99, l.P999, l.P9999, l.Max)
	}
	line("publish latency", r.PublishLatency)
	line("end-to-end latency", r.EndToEndLatency)
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "server (pid %d): max RSS %.1f MB, CPU %.2f cores on average, %.2f at most\n",
			s.PID, float64(s.MaxRSSBytes)/1e6, s.AvgCPUCores, s.MaxCPUCores)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
