package server

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLogsJSONConnections runs a server with log-format json and log-level
// debug, as NewLogger builds it from the configuration, connects a Kafka,
// an AMQP and an MQTT client, and checks that every line is one JSON
// object and that each protocol's connection events carry structured
// attributes: the listener, the remote address and, where the protocol
// names one, the user.
func TestLogsJSONConnections(t *testing.T) {
	cfg := testConfig(t)
	cfg.LogFormat, cfg.LogLevel = "json", "debug"
	var out lockedBuffer
	logger, err := NewLogger(&out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")))
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	kc.Close()
	conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := pahoPublish(pahoOptions("tcp://"+s.Addr("mqtt"), "logs-test").SetUsername("sensor")); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// want: a message and the attributes its record must have (value ""
	// for any non-empty value).
	want := []struct {
		msg   string
		attrs map[string]string
	}{
		{"connection open", map[string]string{"listener": "kafka", "remote": ""}},
		{"connection closed", map[string]string{"listener": "kafka", "remote": ""}},
		{"connection open", map[string]string{"listener": "amqp", "remote": "", "user": "guest"}},
		{"connected", map[string]string{"listener": "mqtt", "remote": "", "client": "logs-test", "user": "sensor"}},
		{"weir started", map[string]string{"version": cfg.Version}},
	}
	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %q: %q", k, line)
			}
		}
		records = append(records, rec)
	}
	for _, w := range want {
		found := false
		for _, rec := range records {
			if rec["msg"] != w.msg {
				continue
			}
			match := true
			for k, v := range w.attrs {
				got, _ := rec[k].(string)
				match = match && got != "" && (v == "" || got == v)
			}
			found = found || match
		}
		if !found {
			t.Errorf("no %q log record with %v in:\n%s", w.msg, w.attrs, out.String())
		}
	}
}
