package torture

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// LoadReport is the outcome of a load campaign.
type LoadReport struct {
	Idle, Active, Rate int
	Duration           float64 // seconds of the active phase
	FileLimit          uint64
	ServerPID          int
	OpenSeconds        float64 // how long opening the idle connections took
	Protocols          map[string]ProtocolLoad

	// Samples of the server, once a second from the start of the opening
	// of the idle connections; Active marks those of the active phase.
	Samples []MemorySample
	// Over the active phase after the warm-up: the least-squares slope of
	// the resident set size and of the Go heap in use, in bytes per
	// minute, and the growth that slope makes over that window.
	WarmupSeconds         float64
	RSSSlope, HeapSlope   float64
	RSSGrowth, HeapGrowth float64
	RSSMean, HeapMean     float64
	RSSMax, HeapMax       int64
	MinConnections        int64 // least open connections the server counted after the warm-up
	Flat                  bool
	FlatRule              string
	SampleErrors          int
}

// ProtocolLoad are the counts of one protocol.
type ProtocolLoad struct {
	IdleOpen, IdleFailed             int64
	Producers, Consumers             int
	Produced, Acknowledged, Consumed int64
	Errors, Reconnects               int64
	FirstError                       string `json:",omitempty"`
}

// MemorySample is one sample of the server. RSSBytes is read from
// /proc/<pid>/status every second; the others come from /metrics, read
// every five seconds, which a loaded server may answer late: they are 0 in
// a second without a fresh answer.
type MemorySample struct {
	Second      float64
	Active      bool
	RSSBytes    int64 // VmRSS
	HeapBytes   int64 // go_memstats_heap_inuse_bytes
	Goroutines  int64 // go_goroutines
	Connections int64 // the sum of weir_connections over the listeners
}

// flatShare and flatFloor make the flatness rule: memory is flat when the
// growth its slope makes over the measured window is at most flatShare of
// its mean there, or at most flatFloor bytes.
const (
	flatShare = 0.10
	flatFloor = 16 << 20
)

func (l *loadRun) total(f func(*protocolCounters) int64) int64 {
	var n int64
	for _, p := range l.counters {
		n += f(p)
	}
	return n
}

// summarizeCounts copies the counters into the report.
func (l *loadRun) summarizeCounts() {
	l.report.Protocols = map[string]ProtocolLoad{}
	for name, p := range l.counters {
		l.report.Protocols[name] = ProtocolLoad{
			IdleOpen: p.IdleOpen.Load(), IdleFailed: p.IdleFailed.Load(),
			Producers: p.Producers, Consumers: p.Consumers,
			Produced: p.Produced.Load(), Acknowledged: p.Acknowledged.Load(), Consumed: p.Consumed.Load(),
			Errors: p.Errors.Load(), Reconnects: p.Reconnects.Load(), FirstError: p.firstError(),
		}
	}
}

// summarize computes the slopes and the verdict from the samples.
func (r *LoadReport) summarize(warmup time.Duration) {
	r.WarmupSeconds = warmup.Seconds()
	var start float64 = -1
	var ts, rss, heapTs, heap []float64
	r.MinConnections = -1
	for _, s := range r.Samples {
		if !s.Active {
			continue
		}
		if start < 0 {
			start = s.Second
		}
		if s.Second-start < r.WarmupSeconds {
			continue
		}
		if s.Connections > 0 && (r.MinConnections < 0 || s.Connections < r.MinConnections) {
			r.MinConnections = s.Connections
		}
		ts = append(ts, s.Second)
		rss = append(rss, float64(s.RSSBytes))
		r.RSSMax = max(r.RSSMax, s.RSSBytes)
		if s.HeapBytes > 0 {
			heapTs = append(heapTs, s.Second)
			heap = append(heap, float64(s.HeapBytes))
			r.HeapMax = max(r.HeapMax, s.HeapBytes)
		}
	}
	r.FlatRule = fmt.Sprintf("the growth of the least-squares slope over the measured window is at most %.0f%% of the mean or %s, for RSS and Go heap", flatShare*100, mib(flatFloor))
	if len(ts) < 3 || len(heapTs) < 3 {
		r.FlatRule += "; too few samples after the warm-up to judge"
		return
	}
	var rssSlope, heapSlope float64 // per second
	rssSlope, r.RSSMean = slope(ts, rss)
	heapSlope, r.HeapMean = slope(heapTs, heap)
	r.RSSSlope, r.HeapSlope = rssSlope*60, heapSlope*60
	r.RSSGrowth = rssSlope * (ts[len(ts)-1] - ts[0])
	r.HeapGrowth = heapSlope * (heapTs[len(heapTs)-1] - heapTs[0])
	flat := func(growth, mean float64) bool { return growth <= max(flatShare*mean, flatFloor) }
	r.Flat = flat(r.RSSGrowth, r.RSSMean) && flat(r.HeapGrowth, r.HeapMean)
}

// slope is the least-squares slope of y over x, and the mean of y.
func slope(x, y []float64) (float64, float64) {
	n := float64(len(x))
	var sx, sy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (y[i] - my)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0, my
	}
	return num / den, my
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// WriteText prints the report for people.
func (r *LoadReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "load campaign: %d idle connections, %d active clients (%d records/s per producer) for %.0f s; server pid %d, open-file limit %d\n",
		r.Idle, r.Active, r.Rate, r.Duration, r.ServerPID, r.FileLimit)
	fmt.Fprintf(w, "idle connections opened in %.1f s\n", r.OpenSeconds)
	fmt.Fprintf(w, "%-7s %9s %7s %9s %9s %11s %13s %11s %7s %10s\n", "", "idle open", "failed", "producers", "consumers", "produced", "acknowledged", "consumed", "errors", "reconnects")
	for _, name := range loadProtocols {
		p := r.Protocols[name]
		fmt.Fprintf(w, "%-7s %9d %7d %9d %9d %11d %13d %11d %7d %10d\n", name, p.IdleOpen, p.IdleFailed, p.Producers, p.Consumers,
			p.Produced, p.Acknowledged, p.Consumed, p.Errors, p.Reconnects)
		if p.FirstError != "" {
			fmt.Fprintf(w, "        first error: %s\n", p.FirstError)
		}
	}
	fmt.Fprintf(w, "server connections after the warm-up: at least %d\n", r.MinConnections)
	fmt.Fprintf(w, "memory after a %.0f s warm-up: RSS mean %s, max %s, slope %s/min (%s over the window); Go heap mean %s, max %s, slope %s/min (%s)\n",
		r.WarmupSeconds, mib(int64(r.RSSMean)), mib(r.RSSMax), mib(int64(r.RSSSlope)), mib(int64(r.RSSGrowth)),
		mib(int64(r.HeapMean)), mib(r.HeapMax), mib(int64(r.HeapSlope)), mib(int64(r.HeapGrowth)))
	verdict := "NOT flat"
	if r.Flat {
		verdict = "flat"
	}
	fmt.Fprintf(w, "memory: %s (%s)\n", verdict, r.FlatRule)
	if r.SampleErrors > 0 {
		fmt.Fprintf(w, "%d samples of /metrics failed\n", r.SampleErrors)
	}
}

// metricsEvery is how often the sampler reads /metrics.
const metricsEvery = 5 * time.Second

// memorySampler samples the server once a second: its RSS from
// /proc/<pid>/status, the rest from /metrics every metricsEvery (a scrape
// of a node with thousands of queues is tens of thousands of series: once
// a second it would be a load of its own), fetched one request at a time
// so that a slow answer delays no RSS sample.
type memorySampler struct {
	url    string
	pid    int
	report *LoadReport
	client http.Client
	begin  time.Time
	done   chan struct{}
	wg     sync.WaitGroup

	scrapes atomic.Int64 // /metrics requests started

	mu       sync.Mutex
	active   bool
	fetching bool
	metrics  MemorySample // the last /metrics answer
	fetched  time.Time    // when it came
}

func newMemorySampler(httpAddr string, pid int, r *LoadReport) *memorySampler {
	return &memorySampler{url: "http://" + httpAddr + "/metrics", pid: pid, report: r,
		client: http.Client{Timeout: time.Minute}, begin: time.Now(), done: make(chan struct{})}
}

func (m *memorySampler) start() {
	m.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.done:
				return
			case now := <-tick.C:
				if now.Sub(m.begin) >= time.Duration(m.scrapes.Load())*metricsEvery {
					m.scrapes.Add(1)
					m.fetchMetrics()
				}
				rss, err := readRSS(m.pid)
				m.mu.Lock()
				if err != nil {
					m.report.SampleErrors++
				} else {
					s := MemorySample{Second: now.Sub(m.begin).Seconds(), Active: m.active, RSSBytes: rss}
					if now.Sub(m.fetched) < time.Second {
						s.HeapBytes, s.Goroutines, s.Connections = m.metrics.HeapBytes, m.metrics.Goroutines, m.metrics.Connections
					}
					m.report.Samples = append(m.report.Samples, s)
				}
				m.mu.Unlock()
			}
		}
	})
}

// fetchMetrics starts a /metrics request unless one is running.
func (m *memorySampler) fetchMetrics() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fetching {
		return
	}
	m.fetching = true
	m.wg.Go(func() {
		s, err := m.sample()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.fetching = false
		if err != nil {
			m.report.SampleErrors++
			return
		}
		m.metrics, m.fetched = s, time.Now()
	})
}

// readRSS is the resident set size of a process.
func readRSS(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	return int64(st.VmRSS), nil
}

func (m *memorySampler) markActive() {
	m.mu.Lock()
	m.active = true
	m.mu.Unlock()
}

func (m *memorySampler) stop() {
	select {
	case <-m.done:
	default:
		close(m.done)
	}
	m.wg.Wait()
}

// last is the last sample, with the figures of the last /metrics answer.
func (m *memorySampler) last() MemorySample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s MemorySample
	if n := len(m.report.Samples); n > 0 {
		s = m.report.Samples[n-1]
	}
	s.HeapBytes, s.Goroutines, s.Connections = m.metrics.HeapBytes, m.metrics.Goroutines, m.metrics.Connections
	return s
}

// sample reads the server's metrics.
func (m *memorySampler) sample() (MemorySample, error) {
	resp, err := m.client.Get(m.url)
	if err != nil {
		return MemorySample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return MemorySample{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return MemorySample{}, fmt.Errorf("GET /metrics: %w", err)
	}
	value := func(name string) int64 {
		f := families[name]
		if f == nil {
			return 0
		}
		var sum float64
		for _, mt := range f.GetMetric() {
			switch {
			case mt.GetGauge() != nil:
				sum += mt.GetGauge().GetValue()
			case mt.GetCounter() != nil:
				sum += mt.GetCounter().GetValue()
			case mt.GetUntyped() != nil:
				sum += mt.GetUntyped().GetValue()
			}
		}
		return int64(sum)
	}
	s := MemorySample{
		HeapBytes:   value("go_memstats_heap_inuse_bytes"),
		Goroutines:  value("go_goroutines"),
		Connections: value("weir_connections"),
	}
	if s.HeapBytes == 0 {
		return s, errors.New("GET /metrics: no go_memstats_heap_inuse_bytes")
	}
	return s, nil
}
