package server

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaMetrics checks the Kafka listener's series on /metrics:
// connections, requests by API and requests that closed their connection.
func TestKafkaMetrics(t *testing.T) {
	cfg := testConfig(t)
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.DefaultProduceTopic("metered"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// An unknown API key closes its connection and counts as an error.
	c, err := net.Dial("tcp", s.Addr("kafka"))
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0} // key 999
	c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a request of an unknown API key was answered")
	}
	c.Close()

	want := []string{
		`weir_kafka_requests_total{api="Produce"} 3`,
		`weir_kafka_request_errors_total{api="unknown"} 1`,
		`weir_kafka_requests_total{api="unknown"} 1`,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, raw, err := get("http://" + s.Addr("http") + "/metrics")
		body := string(raw)
		if err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		// The franz-go client's connections are open (the raw one closed).
		conns := strings.Contains(body, "weir_kafka_connections ") && !strings.Contains(body, "weir_kafka_connections 0")
		if missing == "" && conns && strings.Contains(body, `weir_kafka_requests_total{api="Metadata"}`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q (connections series ok: %v):\n%s", missing, conns, grepLines(body, "weir_kafka"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
