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
}

var _ kafka.Observer = (*kafkaMetrics)(nil)

func newKafkaMetrics() *kafkaMetrics {
	return &kafkaMetrics{
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
	}
}

func (k *kafkaMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{k.connections, k.requests, k.errors}
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
