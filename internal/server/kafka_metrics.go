package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/protocol/kafka"
)

// kafkaMetrics are the Kafka listener's metrics; it is the kafka.Observer
// of the Kafka front end.
type kafkaMetrics struct {
	connections prometheus.Gauge
	requests    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	// Records and record batch bytes sent by Fetch and ShareFetch, the
	// two series of each looked up once.
	deliveredRecords, deliveredBytes *prometheus.CounterVec
	fetchRecords, fetchBytes         prometheus.Counter
	shareRecords, shareBytes         prometheus.Counter
}

var _ kafka.Observer = (*kafkaMetrics)(nil)

func newKafkaMetrics() *kafkaMetrics {
	k := &kafkaMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weir_kafka_connections",
			Help: "Open connections on the Kafka listener.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_requests_total",
			Help: "Kafka requests received, by API.",
		}, []string{"api"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_request_errors_total",
			Help: "Kafka requests that closed their connection (malformed, unknown API or version, unauthenticated, failed authentication), by API.",
		}, []string{"api"}),
		deliveredRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_delivered_records_total",
			Help: "Records sent to Kafka consumers by Fetch and ShareFetch (transaction markers excluded), by API.",
		}, []string{"api"}),
		deliveredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_kafka_delivered_bytes_total",
			Help: "Record batch bytes sent to Kafka consumers by Fetch and ShareFetch, by API.",
		}, []string{"api"}),
	}
	fetch, share := kafkaAPILabel(kmsg.Fetch.Int16()), kafkaAPILabel(kmsg.ShareFetch.Int16())
	k.fetchRecords, k.fetchBytes = k.deliveredRecords.WithLabelValues(fetch), k.deliveredBytes.WithLabelValues(fetch)
	k.shareRecords, k.shareBytes = k.deliveredRecords.WithLabelValues(share), k.deliveredBytes.WithLabelValues(share)
	return k
}

func (k *kafkaMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{k.connections, k.requests, k.errors, k.deliveredRecords, k.deliveredBytes}
}

// kafkaAPILabel names an API key; keys Kafka does not define share one
// label, so a client cannot create series at will.
func kafkaAPILabel(key int16) string {
	if key < 0 || kmsg.RequestForKey(key) == nil {
		return "unknown"
	}
	return kmsg.NameForKey(key)
}

// Connected implements kafka.Observer.
func (k *kafkaMetrics) Connected() { k.connections.Inc() }

// Disconnected implements kafka.Observer.
func (k *kafkaMetrics) Disconnected() { k.connections.Dec() }

// Handled implements kafka.Observer.
func (k *kafkaMetrics) Handled(key int16, failed bool) {
	api := kafkaAPILabel(key)
	k.requests.WithLabelValues(api).Inc()
	if failed {
		k.errors.WithLabelValues(api).Inc()
	}
}

// Delivered implements kafka.Observer.
func (k *kafkaMetrics) Delivered(key int16, records, bytes int) {
	if key == kmsg.ShareFetch.Int16() {
		k.shareRecords.Add(float64(records))
		k.shareBytes.Add(float64(bytes))
		return
	}
	k.fetchRecords.Add(float64(records))
	k.fetchBytes.Add(float64(bytes))
}
