package server

import (
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// TestMQTTMetrics checks the MQTT listener's series on /metrics after real
// clients' traffic: connections, packets by type, messages by QoS, bytes,
// sessions, retained messages, subscriptions; and that $SYS reaches
// mosquitto_sub.
func TestMQTTMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr = "", ""
	cfg.MQTTSysInterval = 100 * time.Millisecond
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, p := hostPort(t, s.Addr("mqtt"))
	conn := []string{"-h", h, "-p", p}
	got := make(chan string, 10)
	opts := paho.NewClientOptions().AddBroker("tcp://" + s.Addr("mqtt")).SetClientID("metered").SetCleanSession(false).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("m/#", 2, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	mosquittoPub(t, append(conn, "-q", "1", "-t", "m/1", "-m", "one")...)
	mosquittoPub(t, append(conn, "-q", "2", "-r", "-t", "m/2", "-m", "two")...)
	mosquittoPub(t, append(conn, "-q", "0", "-t", "m/3", "-m", "three")...)
	for range 3 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("a message did not arrive")
		}
	}
	if out := mosquittoSub(t, append(conn, "-t", "$SYS/broker/version", "-C", "1")...)(); out != "weir test-1.2.3\n" {
		t.Errorf("mosquitto_sub $SYS/broker/version: %q", out)
	}

	want := []string{
		"weir_mqtt_connections 1",
		`weir_mqtt_messages_received_total{qos="0"} 1`,
		`weir_mqtt_messages_received_total{qos="1"} 1`,
		`weir_mqtt_messages_received_total{qos="2"} 1`,
		`weir_mqtt_messages_sent_total{qos="1"} 1`,
		`weir_mqtt_messages_sent_total{qos="2"} 1`,
		`weir_mqtt_packets_received_total{type="PUBREC"} 1`,
		`weir_mqtt_packets_sent_total{type="PUBREL"} 1`,
		`weir_mqtt_packets_received_total{type="PUBCOMP"} 1`,
		`weir_mqtt_packets_received_total{type="SUBSCRIBE"} 2`,
		`weir_mqtt_packets_sent_total{type="SUBACK"} 2`,
		"weir_mqtt_sessions 1",
		"weir_mqtt_retained_messages 1",
		"weir_mqtt_subscriptions 1",
	}
	waitMetrics(t, s, want, func(body string) bool {
		return !strings.Contains(body, "weir_mqtt_received_bytes_total 0\n") && !strings.Contains(body, "weir_mqtt_sent_bytes_total 0\n") &&
			strings.Contains(body, "weir_mqtt_sent_bytes_total ")
	})

	// The session's queue is summed with the others, not a series of its
	// own: a message for the disconnected session waits in it.
	c.Disconnect(100)
	mosquittoPub(t, append(conn, "-q", "1", "-t", "m/4", "-m", "four")...)
	body := waitMetrics(t, s, []string{
		"weir_mqtt_session_queues 1",
		"weir_mqtt_session_queue_depth 1",
		"weir_mqtt_session_queue_in_flight 0",
	}, func(body string) bool { return !strings.Contains(body, "weir_mqtt_session_queue_bytes 0\n") })
	if strings.Contains(body, `stream="mqtt.session.`) {
		t.Errorf("a session queue has series of its own:\n%s", grepLines(body, "mqtt.session."))
	}
}

// waitMetrics waits until /metrics has every line of want and ok accepts
// it, and returns it.
func waitMetrics(t *testing.T, s *Server, want []string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, raw, err := get("http://" + s.Addr("http") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body := string(raw)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing = w
			}
		}
		good := ok(body)
		if missing == "" && good {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %q (other checks ok: %v):\n%s", missing, good, grepLines(body, "weir_mqtt"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
