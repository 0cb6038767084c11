package server

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/protocol/amqp"
)

// amqpCollector is the AMQP listener's metrics: it reads the front end's
// counters (amqp.Server.Stats) at each scrape, once startAMQP has set the
// server.
type amqpCollector struct {
	s           atomic.Pointer[amqp.Server]
	connections *prometheus.Desc
	connsTotal  *prometheus.Desc
	frames      *prometheus.Desc
	methods     *prometheus.Desc
	delivered   *prometheus.Desc
	errors      *prometheus.Desc
}

func newAMQPCollector() *amqpCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &amqpCollector{
		connections: d("weir_amqp_connections", "Open AMQP connections past the handshake."),
		connsTotal:  d("weir_amqp_connections_total", "Connections accepted by the AMQP listeners."),
		frames:      d("weir_amqp_frames_received_total", "AMQP frames received after the handshake, by type (method, header, body, heartbeat).", "type"),
		methods:     d("weir_amqp_methods_received_total", "AMQP methods received after the handshake, by name (basic.publish, basic.ack, ...).", "method"),
		delivered:   d("weir_amqp_messages_delivered_total", "Messages sent to AMQP clients (basic.deliver and basic.get-ok)."),
		errors:      d("weir_amqp_errors_total", "Exceptions the server raised: scope connection or channel, by AMQP reply code.", "scope", "code"),
	}
}

func (c *amqpCollector) set(s *amqp.Server) { c.s.Store(s) }

// Describe implements prometheus.Collector.
func (c *amqpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.connsTotal, c.frames, c.methods, c.delivered, c.errors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *amqpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Load()
	if s == nil {
		return
	}
	st := s.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.connections, prometheus.GaugeValue, float64(st.Connections))
	counter(c.connsTotal, st.ConnectionsTotal)
	for t, n := range st.FramesReceived {
		counter(c.frames, n, t)
	}
	for m, n := range st.MethodsReceived {
		counter(c.methods, n, m)
	}
	counter(c.delivered, st.MessagesDelivered)
	for code, n := range st.ConnectionErrors {
		counter(c.errors, n, "connection", strconv.Itoa(int(code)))
	}
	for code, n := range st.ChannelErrors {
		counter(c.errors, n, "channel", strconv.Itoa(int(code)))
	}
}
