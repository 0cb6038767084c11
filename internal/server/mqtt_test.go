package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/broker"
)

// mosquittoSub starts mosquitto_sub (Debian mosquitto-clients; .ci/run
// installs it) and returns a function that waits for it and returns its
// output. A missing binary fails the test.
func mosquittoSub(t *testing.T, args ...string) func() string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	cmd := exec.CommandContext(ctx, "mosquitto_sub", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("mosquitto_sub (install mosquitto-clients): %v", err)
	}
	return func() string {
		t.Helper()
		defer cancel()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_sub %v: %v\n%s%s", args, err, &out, &errOut)
		}
		return out.String()
	}
}

func mosquittoPub(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v (install mosquitto-clients): %v\n%s", args, err, out)
	}
}

// waitRoute waits until a routing key of amq.topic reaches a stream named
// with prefix (an MQTT subscription is bound).
func waitRoute(t *testing.T, b *broker.Broker, key, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		streams, err := b.Route("amq.topic", key, nil)
		if err == nil && slices.ContainsFunc(streams, func(s string) bool { return strings.HasPrefix(s, prefix) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no binding of amq.topic routes %q to %s*: %v %v", key, prefix, streams, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// TestMQTTListener: mosquitto clients against a real node; MQTT and AMQP
// and Kafka clients read each other's messages through amq.topic; a
// persistent session's QoS 1 messages survive a restart; Shutdown closes
// MQTT connections.
func TestMQTTListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := s.Broker()
	h, p := hostPort(t, s.Addr("mqtt"))
	conn := []string{"-h", h, "-p", p}

	// mosquitto_pub → mosquitto_sub, wildcard filter.
	wait := mosquittoSub(t, append(conn, "-i", "sub-1", "-q", "1", "-t", "sensors/+/temp", "-C", "1", "-v")...)
	waitRoute(t, b, "sensors.x.temp", "mqtt.session.")
	mosquittoPub(t, append(conn, "-q", "1", "-t", "sensors/room1/temp", "-m", "21.5")...)
	if got := wait(); got != "sensors/room1/temp 21.5\n" {
		t.Errorf("mosquitto_sub got %q", got)
	}

	// MQTT 3.1 (MQIsdp).
	wait = mosquittoSub(t, append(conn, "-V", "mqttv31", "-q", "1", "-t", "legacy/#", "-C", "1", "-v")...)
	waitRoute(t, b, "legacy.x", "mqtt.session.")
	mosquittoPub(t, append(conn, "-V", "mqttv31", "-q", "1", "-t", "legacy/x", "-m", "3.1")...)
	if got := wait(); got != "legacy/x 3.1\n" {
		t.Errorf("mosquitto_sub 3.1 got %q", got)
	}

	// MQTT → AMQP: a queue bound to amq.topic receives MQTT publishes.
	ac, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("readings", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("readings", "sensors.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	// MQTT → Kafka: a stream bound to amq.topic.
	if _, err := b.CreateStream(t.Context(), broker.StreamConfig{Name: "sensor-log"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind(t.Context(), "amq.topic", broker.Binding{Destination: "sensor-log", Key: "sensors.#"}); err != nil {
		t.Fatal(err)
	}
	mosquittoPub(t, append(conn, "-q", "1", "-t", "sensors/room2/humidity", "-m", "40", "-V", "mqttv5",
		"-D", "publish", "content-type", "text/plain", "-D", "publish", "user-property", "unit", "percent")...)
	deliveries, err := ch.Consume("readings", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-deliveries:
		if string(d.Body) != "40" || d.RoutingKey != "sensors.room2.humidity" || d.ContentType != "text/plain" || d.Headers["unit"] != "percent" {
			t.Errorf("AMQP delivery: body %q key %q content-type %q headers %v", d.Body, d.RoutingKey, d.ContentType, d.Headers)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the AMQP consumer got nothing")
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.ConsumeTopics("sensor-log"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	fctx, fcancel := context.WithTimeout(t.Context(), 10*time.Second)
	fetches := kc.PollRecords(fctx, 1)
	fcancel()
	if errs := fetches.Errors(); len(errs) > 0 {
		t.Fatalf("kafka fetch: %v", errs)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "40" || string(recs[0].Key) != "sensors.room2.humidity" {
		t.Errorf("kafka records: %+v", recs)
	}

	// AMQP → MQTT 5: properties become MQTT properties.
	wait = mosquittoSub(t, append(conn, "-V", "mqttv5", "-i", "sub-2", "-t", "alerts/#", "-C", "1", "-F", "%t|%p|%C|%D|%R|%P")...)
	waitRoute(t, b, "alerts.fire", "mqtt.session.")
	err = ch.PublishWithContext(t.Context(), "amq.topic", "alerts.fire", false, false, amqp091.Publishing{
		Body: []byte("evacuate"), ContentType: "text/plain", CorrelationId: "c-7", ReplyTo: "replies.fire",
		Headers: amqp091.Table{"zone": "b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := wait(), "alerts/fire|evacuate|text/plain|c-7|replies/fire|zone:b\n"; got != want {
		t.Errorf("mosquitto_sub of an AMQP publish: %q, want %q", got, want)
	}

	// Retained.
	mosquittoPub(t, append(conn, "-q", "1", "-r", "-t", "config/site", "-m", "v1")...)
	if got := mosquittoSub(t, append(conn, "-t", "config/#", "-C", "1", "-F", "%t %p %r")...)(); got != "config/site v1 1\n" {
		t.Errorf("retained: %q", got)
	}

	// A persistent session across a restart: subscribed, offline, three
	// QoS 1 messages, restart, resumed.
	mosquittoSub(t, append(conn, "-i", "keeper", "-c", "-q", "1", "-t", "jobs/#", "-E")...)()
	for i := range 3 {
		mosquittoPub(t, append(conn, "-q", "1", "-t", fmt.Sprint("jobs/", i), "-m", fmt.Sprint("job", i))...)
	}
	ac.Close()
	kc.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", net.JoinHostPort(h, p)
	s2 := newTestServer(t, cfg)
	if err := s2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := mosquittoSub(t, append(conn, "-i", "keeper", "-c", "-q", "1", "-t", "jobs/#", "-C", "3", "-v")...)(); got != "jobs/0 job0\njobs/1 job1\njobs/2 job2\n" {
		t.Errorf("persistent session after restart: %q", got)
	}

	// Shutdown closes MQTT connections.
	c, err := net.Dial("tcp", s2.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 0})
	var ack [4]byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(ack[:]); err != nil || ack[0] != 0x20 {
		t.Fatalf("CONNACK % x: %v", ack, err)
	}
	if err := s2.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ack[:]); err == nil || isTimeout(err) {
		t.Errorf("MQTT connection still open after Shutdown: %v", err)
	}
}

// TestMQTTWebSocket: MQTT over WebSocket at /mqtt of the HTTP port meets
// MQTT over TCP.
func TestMQTTWebSocket(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr = "", ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	opts := paho.NewClientOptions().AddBroker("ws://" + s.Addr("http") + "/mqtt").SetClientID("ws-1").
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect over WebSocket: %v", tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("ws/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	h, p := hostPort(t, s.Addr("mqtt"))
	conn := []string{"-h", h, "-p", p}
	wait := mosquittoSub(t, append(conn, "-t", "tcp/#", "-C", "1", "-v")...)
	waitRoute(t, s.Broker(), "tcp.x", "mqtt.session.")
	mosquittoPub(t, append(conn, "-q", "1", "-t", "ws/in", "-m", strings.Repeat("x", 100<<10))...)
	select {
	case m := <-got:
		if m != "ws/in "+strings.Repeat("x", 100<<10) {
			t.Errorf("WebSocket subscriber got %d bytes", len(m))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing over WebSocket")
	}
	if tok := c.Publish("tcp/out", 1, false, "from ws"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over WebSocket: %v", tok.Error())
	}
	if out := wait(); out != "tcp/out from ws\n" {
		t.Errorf("TCP subscriber got %q", out)
	}
	// Without the upgrade: 426.
	resp, _, err := get("http://" + s.Addr("http") + "/mqtt")
	if err != nil || resp.StatusCode != 426 {
		t.Errorf("plain GET /mqtt: %v %v", resp, err)
	}
}

// TestMQTTQoS2: mosquitto_sub at QoS 2 receives QoS 2 publishes of
// mosquitto_pub at QoS 2, through the whole PUBREC/PUBREL/PUBCOMP
// handshake, each once.
func TestMQTTQoS2(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.HTTPAddr = "", "", ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, p := hostPort(t, s.Addr("mqtt"))
	conn := []string{"-h", h, "-p", p}
	for _, version := range []string{"mqttv311", "mqttv5"} {
		wait := mosquittoSub(t, append(conn, "-V", version, "-i", "exact-"+version, "-c", "-q", "2", "-t", "exact/#", "-C", "3", "-d")...)
		waitRoute(t, s.Broker(), "exact.x", "mqtt.session.c.exact-"+version)
		for i := range 3 {
			mosquittoPub(t, append(conn, "-V", version, "-q", "2", "-t", fmt.Sprint("exact/", i), "-m", fmt.Sprint("m", i))...)
		}
		out := wait()
		for _, want := range []string{"q2, r0", "received PUBREL", "sending PUBCOMP"} {
			if got := strings.Count(out, want); got != 3 {
				t.Errorf("%s: %d times %q, want 3:\n%s", version, got, want, out)
			}
		}
		for i := range 3 {
			if !strings.Contains(out, fmt.Sprint("\nm", i, "\n")) {
				t.Errorf("%s: message m%d missing:\n%s", version, i, out)
			}
		}
		// Published while the persistent session is away: delivered at
		// QoS 2 when it is back.
		for i := range 2 {
			mosquittoPub(t, append(conn, "-V", version, "-q", "2", "-t", "exact/later", "-m", fmt.Sprint("later", i))...)
		}
		out = mosquittoSub(t, append(conn, "-V", version, "-i", "exact-"+version, "-c", "-q", "2", "-t", "exact/#", "-C", "2", "-d")...)()
		if strings.Count(out, "q2, r0") != 2 || strings.Count(out, "sending PUBCOMP") != 2 || !strings.Contains(out, "\nlater0\n") || !strings.Contains(out, "\nlater1\n") {
			t.Errorf("%s: after the session was away:\n%s", version, out)
		}
	}
}
