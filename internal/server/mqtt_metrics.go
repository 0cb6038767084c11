package server

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/protocol/mqtt"
)

// mqttCollector is the MQTT listener's metrics: it reads the front end's
// counters (mqtt.Server.Stats, the same the $SYS topics publish) at each
// scrape, once startMQTT has set the server.
type mqttCollector struct {
	s             atomic.Pointer[mqtt.Server]
	connections   *prometheus.Desc
	connsTotal    *prometheus.Desc
	packetsIn     *prometheus.Desc
	packetsOut    *prometheus.Desc
	messagesIn    *prometheus.Desc
	messagesOut   *prometheus.Desc
	bytesIn       *prometheus.Desc
	bytesOut      *prometheus.Desc
	sessions      *prometheus.Desc
	retained      *prometheus.Desc
	subscriptions *prometheus.Desc
}

func newMQTTCollector() *mqttCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &mqttCollector{
		connections:   d("weir_mqtt_connections", "Open MQTT connections with a session (CONNACK sent)."),
		connsTotal:    d("weir_mqtt_connections_total", "Connections accepted by the MQTT listeners (TCP and WebSocket)."),
		packetsIn:     d("weir_mqtt_packets_received_total", "MQTT control packets received, by type.", "type"),
		packetsOut:    d("weir_mqtt_packets_sent_total", "MQTT control packets sent, by type.", "type"),
		messagesIn:    d("weir_mqtt_messages_received_total", "PUBLISH packets received, by QoS.", "qos"),
		messagesOut:   d("weir_mqtt_messages_sent_total", "PUBLISH packets sent (resends included), by QoS.", "qos"),
		bytesIn:       d("weir_mqtt_received_bytes_total", "Bytes received on MQTT connections."),
		bytesOut:      d("weir_mqtt_sent_bytes_total", "Bytes sent on MQTT connections."),
		sessions:      d("weir_mqtt_sessions", "Persistent MQTT sessions stored, connected or not."),
		retained:      d("weir_mqtt_retained_messages", "Retained MQTT messages."),
		subscriptions: d("weir_mqtt_subscriptions", "Subscriptions of the connected MQTT sessions."),
	}
}

func (c *mqttCollector) set(s *mqtt.Server) { c.s.Store(s) }

// Describe implements prometheus.Collector.
func (c *mqttCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connections, c.connsTotal, c.packetsIn, c.packetsOut,
		c.messagesIn, c.messagesOut, c.bytesIn, c.bytesOut, c.sessions, c.retained, c.subscriptions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *mqttCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Load()
	if s == nil {
		return
	}
	st := s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connections, float64(st.Connections))
	counter(c.connsTotal, st.ConnectionsTotal)
	for t := range st.PacketsReceived {
		if name := mqtt.PacketTypeName(t); name != "" {
			counter(c.packetsIn, st.PacketsReceived[t], name)
			counter(c.packetsOut, st.PacketsSent[t], name)
		}
	}
	for qos := range st.PublishReceived {
		counter(c.messagesIn, st.PublishReceived[qos], strconv.Itoa(qos))
		counter(c.messagesOut, st.PublishSent[qos], strconv.Itoa(qos))
	}
	counter(c.bytesIn, st.BytesReceived)
	counter(c.bytesOut, st.BytesSent)
	gauge(c.sessions, float64(st.Sessions))
	gauge(c.retained, float64(st.Retained))
	gauge(c.subscriptions, float64(st.Subscriptions))
}
