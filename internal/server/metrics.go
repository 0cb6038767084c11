package server

import (
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/weirmq/weir/internal/api"
	"github.com/weirmq/weir/internal/broker"
)

// metrics holds the registry /metrics serves and the metrics the server
// updates; it is the api.Observer of the native API.
//
// docs/METRICS.md lists every series /metrics serves besides the Go
// runtime's (go_*) and the process's (process_*), with its type, labels and
// meaning; TestMetricsDocumented fails when the two disagree. The
// collectors are in metrics_*.go (broker state, AMQP, traffic, native API),
// kafka_metrics.go, mqtt_metrics.go, limits.go and connectors.go.
//
// The published and delivered counters of a stream are dropped when it is
// deleted through the API.
type metrics struct {
	registry *prometheus.Registry

	publishedRecords *prometheus.CounterVec
	publishedBytes   *prometheus.CounterVec
	deliveredRecords *prometheus.CounterVec
	deliveredBytes   *prometheus.CounterVec
	fsyncSeconds     prometheus.Histogram
	httpConnections  prometheus.Gauge
	broker           *brokerCollector
	kafka            *kafkaMetrics
	mqtt             *mqttCollector
	amqp             *amqpCollector
	http             *httpMetrics
	listeners        *listenerMetrics
	refusals         *refusalsCollector // authusers.go
}

var _ api.Observer = (*metrics)(nil)

func newMetrics(version string) *metrics {
	perStream := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"stream"})
	}
	m := &metrics{
		registry:         prometheus.NewRegistry(),
		publishedRecords: perStream("weir_published_records_total", "Records stored by the native API, duplicates excluded."),
		publishedBytes:   perStream("weir_published_bytes_total", "Key, value and header bytes of the records stored by the native API."),
		deliveredRecords: perStream("weir_delivered_records_total", "Records sent to clients by Fetch and Subscribe."),
		deliveredBytes:   perStream("weir_delivered_bytes_total", "Key, value and header bytes of the records sent by Fetch and Subscribe."),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weir_fsync_seconds",
			Help:    "Time each partition flush took: the write and, unless fsync is never, the fsync.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100µs to 3.3s
		}),
		httpConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_http_connections",
			Help: "Open connections on the HTTP and HTTPS listeners.",
		}),
		broker:    newBrokerCollector(),
		kafka:     newKafkaMetrics(),
		mqtt:      newMQTTCollector(),
		amqp:      newAMQPCollector(),
		http:      newHTTPMetrics(),
		listeners: newListenerMetrics(),
		refusals:  newRefusalsCollector(),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "weir_build_info",
		Help:        "Always 1; its labels are the Weir version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.publishedRecords, m.publishedBytes, m.deliveredRecords, m.deliveredBytes,
		m.fsyncSeconds, m.httpConnections, m.broker,
	)
	m.registry.MustRegister(m.kafka.collectors()...)
	m.registry.MustRegister(m.mqtt, m.amqp)
	m.registry.MustRegister(m.http.collectors()...)
	m.registry.MustRegister(m.listeners.collectors()...)
	m.registry.MustRegister(m.refusals)
	return m
}

// streamLabel is a stream's metrics label. Inboxes are many and short-lived:
// they share one label, so that each does not leave a series behind.
func streamLabel(stream string) string {
	if broker.IsInbox(stream) {
		return broker.InboxPrefix + "*"
	}
	return stream
}

// Published implements api.Observer.
func (m *metrics) Published(stream string, records, bytes int) {
	stream = streamLabel(stream)
	m.publishedRecords.WithLabelValues(stream).Add(float64(records))
	m.publishedBytes.WithLabelValues(stream).Add(float64(bytes))
}

// Delivered implements api.Observer.
func (m *metrics) Delivered(stream string, records, bytes int) {
	stream = streamLabel(stream)
	m.deliveredRecords.WithLabelValues(stream).Add(float64(records))
	m.deliveredBytes.WithLabelValues(stream).Add(float64(bytes))
}

// StreamDeleted implements api.Observer.
func (m *metrics) StreamDeleted(stream string) {
	if broker.IsInbox(stream) {
		return // the shared label stays
	}
	for _, v := range []*prometheus.CounterVec{m.publishedRecords, m.publishedBytes, m.deliveredRecords, m.deliveredBytes} {
		v.DeleteLabelValues(stream)
	}
}

// observeSync is the broker's OnSync hook.
func (m *metrics) observeSync(d time.Duration) { m.fsyncSeconds.Observe(d.Seconds()) }

// connState is the HTTP server's ConnState hook.
func (m *metrics) connState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		m.httpConnections.Inc()
	case http.StateHijacked, http.StateClosed:
		m.httpConnections.Dec()
	}
}
