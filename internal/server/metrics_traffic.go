package server

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// trafficCollector counts the bytes received and sent on the connections of
// each listener (limits.go wraps every accepted connection). The counts are
// atomics a connection adds to on each read and write, read at scrape time:
//
//	weir_received_bytes_total  counter  listener  bytes read from the listener's connections (TLS records included on TLS listeners)
//	weir_sent_bytes_total      counter  listener  bytes written to them
type trafficCollector struct {
	mu        sync.Mutex
	listeners map[string]*listenerTraffic
	received  *prometheus.Desc
	sent      *prometheus.Desc
}

// listenerTraffic is one listener's byte counts.
type listenerTraffic struct {
	received, sent atomic.Uint64
}

func newTrafficCollector() *trafficCollector {
	return &trafficCollector{
		listeners: make(map[string]*listenerTraffic),
		received: prometheus.NewDesc("weir_received_bytes_total",
			"Bytes read from the connections of the listener (on TLS listeners, TLS records).", []string{"listener"}, nil),
		sent: prometheus.NewDesc("weir_sent_bytes_total",
			"Bytes written to the connections of the listener (on TLS listeners, TLS records).", []string{"listener"}, nil),
	}
}

// listener returns the counts of the named listener, creating them; a
// listener bound again (a restarted server) keeps counting on the same.
func (c *trafficCollector) listener(name string) *listenerTraffic {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.listeners[name]
	if t == nil {
		t = new(listenerTraffic)
		c.listeners[name] = t
	}
	return t
}

// Describe implements prometheus.Collector.
func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.sent
}

// Collect implements prometheus.Collector.
func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, t := range c.listeners {
		ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(t.received.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(t.sent.Load()), name)
	}
}
