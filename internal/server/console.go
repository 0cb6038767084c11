package server

import (
	"context"

	dto "github.com/prometheus/client_model/go"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/console"
)

// mountConsole mounts the web console (internal/console) on the HTTP mux,
// over the broker b, and registers it as a component so that its live
// feeds end before the HTTP server's graceful shutdown waits for them.
func (s *Server) mountConsole(b *broker.Broker) error {
	c, err := console.New(console.Options{Records: b, Groups: b, Stats: consoleStats{s: s, b: b}, Logger: s.logger})
	if err != nil {
		return err
	}
	s.Register(ComponentFunc("console", func(context.Context) error { c.Close(); return nil }))
	s.console = c
	for pattern, h := range c.Routes() {
		s.Handle(pattern, h)
	}
	return nil
}

// consoleStats is the console's view of the server: traffic from the
// broker's partitions and the metrics registry, connections per listener,
// disk and fsync times from the metrics.
type consoleStats struct {
	s *Server
	b *broker.Broker
}

// Sample implements console.Stats. Records and bytes in are read from the
// partitions (end offsets and log sizes), so every protocol counts. Records
// out are the native API's, AMQP's, MQTT's and Kafka's (Fetch and
// ShareFetch) delivery counters; bytes out the native API's record bytes,
// MQTT's bytes sent and Kafka's record batch bytes sent.
func (c consoleStats) Sample() console.Sample {
	smp := console.Sample{Connections: map[string]int{}, DiskFree: -1}
	if free, err := broker.DirFreeSpace(c.s.cfg.DataDir).FreeBytes(); err == nil {
		smp.DiskFree = int64(free)
	}
	for _, st := range c.b.ListStreams() {
		for _, p := range st.Partitions {
			smp.RecordsIn += float64(p.EndOffset)
			smp.BytesIn += float64(p.Bytes)
			smp.DiskUsed += p.Bytes
		}
	}
	families, err := c.s.metrics.registry.Gather()
	if err != nil {
		c.s.logger.Debug("console: gathering metrics", "err", err) // Gather returns what it could
	}
	for _, f := range families {
		switch f.GetName() {
		case "weir_delivered_records_total", "weir_amqp_messages_delivered_total", "weir_mqtt_messages_sent_total", "weir_kafka_delivered_records_total":
			smp.RecordsOut += sumCounters(f)
		case "weir_delivered_bytes_total", "weir_mqtt_sent_bytes_total", "weir_kafka_delivered_bytes_total":
			smp.BytesOut += sumCounters(f)
		case "weir_connections":
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "listener" {
						smp.Connections[l.GetValue()] += int(m.GetGauge().GetValue())
					}
				}
			}
		case "weir_fsync_seconds":
			for _, m := range f.GetMetric() {
				smp.FSyncCount += float64(m.GetHistogram().GetSampleCount())
				smp.FSyncSecs += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return smp
}

func sumCounters(f *dto.MetricFamily) float64 {
	var sum float64
	for _, m := range f.GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}
