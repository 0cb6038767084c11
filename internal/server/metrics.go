package server

import (
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/weirmq/weir/internal/api"
	"github.com/weirmq/weir/internal/broker"
)

// metrics holds the registry /metrics serves and the metrics the server
// updates; it is the api.Observer of the native API.
//
// The metrics /metrics serves, besides the Go runtime's (go_*) and the
// process's (process_*):
//
//	name                           type       labels                    what
//	weir_build_info                gauge      version, goversion        always 1
//	weir_published_records_total   counter    stream                    records stored by the native API (duplicates excluded)
//	weir_published_bytes_total     counter    stream                    their key, value and header bytes
//	weir_delivered_records_total   counter    stream                    records sent by Fetch and Subscribe
//	weir_delivered_bytes_total     counter    stream                    their key, value and header bytes
//	weir_partition_end_offset      gauge      stream, partition         the offset the next record will get
//	weir_group_lag                 gauge      group, stream, partition  end offset minus the group's committed offset
//	weir_fsync_seconds             histogram                            time of each partition flush (write and fsync)
//	weir_http_connections          gauge                                open connections on the HTTP and HTTPS listeners
//	weir_kafka_connections         gauge                                open connections on the Kafka listener
//	weir_kafka_requests_total      counter    api                       Kafka requests received (api: Produce, Fetch, ...; unknown keys: "unknown")
//	weir_kafka_request_errors_total counter   api                       Kafka requests that closed their connection (malformed, unsupported, unauthenticated)
//	weir_mqtt_connections          gauge                                open MQTT connections with a session (mqtt_metrics.go)
//	weir_mqtt_connections_total    counter                              connections accepted by the MQTT listeners (TCP, WebSocket)
//	weir_mqtt_packets_received_total counter  type                      MQTT control packets received (CONNECT, PUBLISH, PUBACK, ...)
//	weir_mqtt_packets_sent_total   counter    type                      MQTT control packets sent
//	weir_mqtt_messages_received_total counter qos                       PUBLISH packets received, by QoS (0, 1, 2)
//	weir_mqtt_messages_sent_total  counter    qos                       PUBLISH packets sent, by QoS (resends included)
//	weir_mqtt_received_bytes_total counter                              bytes received on MQTT connections
//	weir_mqtt_sent_bytes_total     counter                              bytes sent on MQTT connections
//	weir_mqtt_sessions             gauge                                persistent MQTT sessions stored
//	weir_mqtt_retained_messages    gauge                                retained MQTT messages
//	weir_mqtt_subscriptions        gauge                                subscriptions of the connected MQTT sessions
//	weir_connections               gauge      listener                  open connections of each listener (limits.go)
//	weir_connections_refused_total counter    listener, limit           connections closed at once by max-listener-connections (limit "listener") or max-connections ("total")
//
// The published and delivered counters of a stream are dropped when it is
// deleted through the API. End offsets and lag are read from the broker at
// each scrape.
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
	listeners        *listenerMetrics
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
		listeners: newListenerMetrics(),
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
	m.registry.MustRegister(m.mqtt)
	m.registry.MustRegister(m.listeners.collectors()...)
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

// brokerCollector reads partition end offsets and group lag from the broker
// at each scrape, once the server has opened one.
type brokerCollector struct {
	b         atomic.Pointer[broker.Broker]
	endOffset *prometheus.Desc
	lag       *prometheus.Desc
}

func newBrokerCollector() *brokerCollector {
	return &brokerCollector{
		endOffset: prometheus.NewDesc("weir_partition_end_offset",
			"The offset the next record of the partition will get.", []string{"stream", "partition"}, nil),
		lag: prometheus.NewDesc("weir_group_lag",
			"Records of the partition after the group's committed offset.", []string{"group", "stream", "partition"}, nil),
	}
}

func (c *brokerCollector) set(b *broker.Broker) { c.b.Store(b) }

// Describe implements prometheus.Collector.
func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.endOffset
	ch <- c.lag
}

// Collect implements prometheus.Collector.
func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b.Load()
	if b == nil {
		return
	}
	for _, s := range b.ListStreams() {
		for _, p := range s.Partitions {
			ch <- prometheus.MustNewConstMetric(c.endOffset, prometheus.GaugeValue, float64(p.EndOffset),
				s.Config.Name, strconv.Itoa(int(p.Partition)))
		}
	}
	groups, err := b.ListGroups()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lag, err)
		return
	}
	for _, g := range groups {
		info, err := b.DescribeGroup(g)
		if err != nil {
			continue // gone since it was listed
		}
		for _, o := range info.Offsets {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(o.Lag),
				g, o.Stream, strconv.Itoa(int(o.Partition)))
		}
	}
}
