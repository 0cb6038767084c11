package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to one hour, with three
// significant digits.
const (
	lowestMicros  = 1
	highestMicros = int64(time.Hour / time.Microsecond)
	sigFigs       = 3
)

// Percentiles are the latency percentiles of a result, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P75   float64 `json:"p75"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	P9999 float64 `json:"p99_99"`
	Max   float64 `json:"max"`
}

// PercentileNames label the fields of Percentiles in order, for tables and
// charts.
var PercentileNames = []string{"p50", "p75", "p95", "p99", "p99.9", "p99.99", "max"}

// Values returns p50 … max in the order of PercentileNames.
func (p *Percentiles) Values() []float64 {
	return []float64{p.P50, p.P75, p.P95, p.P99, p.P999, p.P9999, p.Max}
}

// recorder is a latency histogram safe for concurrent use, with a second
// histogram for the current interval (the per-second series).
type recorder struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
}

func newRecorder() *recorder {
	return &recorder{
		total:    hdrhistogram.New(lowestMicros, highestMicros, sigFigs),
		interval: hdrhistogram.New(lowestMicros, highestMicros, sigFigs),
	}
}

// record adds one latency; measured is false during the warm-up, when only
// the interval histogram counts it.
func (r *recorder) record(d time.Duration, measured bool) {
	us := min(max(d.Microseconds(), lowestMicros), highestMicros)
	r.mu.Lock()
	if measured {
		r.total.RecordValue(us) //nolint:errcheck // us is within the range
	}
	r.interval.RecordValue(us) //nolint:errcheck
	r.mu.Unlock()
}

// takeInterval returns the interval's percentiles and starts a new one.
func (r *recorder) takeInterval() *Percentiles {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := percentilesOf(r.interval)
	r.interval.Reset()
	return p
}

func (r *recorder) percentiles() *Percentiles {
	r.mu.Lock()
	defer r.mu.Unlock()
	return percentilesOf(r.total)
}

// percentilesOf reads h; nil when it is empty.
func percentilesOf(h *hdrhistogram.Histogram) *Percentiles {
	if h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &Percentiles{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P75:   ms(h.ValueAtQuantile(75)),
		P95:   ms(h.ValueAtQuantile(95)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		P9999: ms(h.ValueAtQuantile(99.99)),
		Max:   ms(h.Max()),
	}
}
