package server

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	weir "github.com/weirmq/weir/client"
)

// sample is one line of the exposition text: its labels as written and its
// value.
type sample struct {
	labels string
	value  float64
}

// parseExposition reads the samples of the Prometheus text format by
// metric name (histograms under their _bucket, _sum and _count names).
func parseExposition(t *testing.T, text string) map[string][]sample {
	t.Helper()
	out := make(map[string][]sample)
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("cannot parse sample %q", line)
		}
		series := line[:i]
		name, labels := series, ""
		if j := strings.IndexByte(series, '{'); j >= 0 {
			name, labels = series[:j], series[j:]
		}
		out[name] = append(out[name], sample{labels: labels, value: v})
	}
	return out
}

// value returns the value of the sample of name whose labels contain each
// of want (as `key="value"`), and whether there is one.
func value(samples map[string][]sample, name string, want ...string) (float64, bool) {
	for _, s := range samples[name] {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s.labels, w)
		}
		if ok {
			return s.value, true
		}
	}
	return 0, false
}

// metricsTraffic drives real clients of every protocol against s: the Go
// SDK (a queue with acks, a nack and a reject, a stream), franz-go (produce,
// a group that commits, then more records: lag 2), amqp091-go (a queue,
// publishes, a consumer that acks, a channel error) and paho (an MQTT
// publish at QoS 1). It returns once all of it was acknowledged; the SDK's
// consumer is left open (weir_api_streams).
func metricsTraffic(t *testing.T, s *Server) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)

	// SDK: a queue "jobs": 4 records; "retry" is nacked once, "poison" is
	// rejected (dead-lettered), the others acked.
	c, err := weir.Dial(ctx, s.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	settled := make(map[string]bool)
	done := make(chan struct{})
	cons, err := c.Consume(ctx, "jobs", func(ctx context.Context, m *weir.Message) error {
		key := string(m.Key)
		var err error
		switch {
		case key == "retry" && m.DeliveryCount == 1:
			return m.Nack(ctx, errors.New("try again"), time.Millisecond)
		case key == "poison":
			err = m.Reject(ctx, "cannot be processed")
		default:
			err = m.Ack(ctx)
		}
		mu.Lock()
		defer mu.Unlock()
		settled[key] = true
		if len(settled) == 4 {
			close(done)
		}
		return err
	}, weir.Shared("jobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close(context.Background()) })
	for _, key := range []string{"a", "b", "retry", "poison"} {
		if _, err := c.Publish(ctx, "jobs", weir.Record{Key: []byte(key), Value: []byte("job " + key)}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the SDK consumer did not settle the 4 jobs")
	}

	// Kafka: 5 records, a group that reads and commits them, 2 more.
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.DefaultProduceTopic("clicks"), kgo.AllowAutoTopicCreation(),
		kgo.ConsumerGroup("dashboard"), kgo.ConsumeTopics("clicks"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	produce := func(n int) {
		for i := range n {
			if err := kc.ProduceSync(ctx, &kgo.Record{Value: []byte("click " + strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(5)
	for got := 0; got < 5; {
		fs := kc.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("Kafka consumer: ", err)
		}
		got += fs.NumRecords()
	}
	if err := kc.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	produce(2)
	// An unknown API key closes its connection: a request error.
	raw, err := net.Dial("tcp", s.Addr("kafka"))
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0} // key 999
	raw.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw.Read(make([]byte, 1))
	raw.Close()

	// AMQP: a queue, 2 publishes with confirms, a consumer that acks both,
	// then a passive declare of a missing queue (channel error 404).
	conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "orders", false, false, amqp091.Publishing{Body: []byte("order " + strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := conf.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("publish %d not confirmed: %v", i, err)
		}
	}
	deliveries, err := ch.Consume("orders", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case d := <-deliveries:
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("AMQP delivery did not come")
		}
	}
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.QueueDeclarePassive("missing", true, false, false, false, nil); err == nil {
		t.Fatal("a passive declare of a missing queue succeeded")
	}

	// MQTT: one publish at QoS 1.
	if err := pahoPublish(pahoOptions("tcp://"+s.Addr("mqtt"), "metrics-test")); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsAfterTraffic scrapes /metrics after real traffic of every
// protocol and checks that every metric docs/METRICS.md lists is there with
// a plausible value (the connector metrics, present only with connectors,
// and the refused-connections counter, present once a limit refused one,
// excepted), and the values the traffic determines exactly.
func TestMetricsAfterTraffic(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	metricsTraffic(t, s)

	// Values the traffic determines: at least (counters other clients'
	// bookkeeping may add to), or exactly.
	type check struct {
		name   string
		labels []string
		min    float64
		exact  bool
	}
	sub := func(stream string) []string {
		return []string{`stream="` + stream + `"`, `subscription="` + stream + `"`}
	}
	checks := []check{
		{"weir_stream_appended_records_total", []string{`stream="jobs"`}, 4, true},
		{"weir_stream_appended_records_total", []string{`stream="clicks"`}, 7, true},
		{"weir_stream_appended_records_total", []string{`stream="orders"`}, 2, true},
		{"weir_stream_appended_bytes_total", []string{`stream="clicks"`}, 7 * 10, false},
		{"weir_partition_end_offset", []string{`stream="clicks"`, `partition="0"`}, 7, true},
		{"weir_partition_bytes", []string{`stream="clicks"`, `partition="0"`}, 7 * 10, false},
		{"weir_partition_segments", []string{`stream="clicks"`, `partition="0"`}, 1, false},
		{"weir_stream_partitions", []string{`stream="jobs"`}, 1, true},
		{"weir_group_lag", []string{`group="dashboard"`, `stream="clicks"`, `partition="0"`}, 2, true},
		{"weir_group_members", []string{`group="dashboard"`}, 1, true},
		{"weir_subscription_acked_total", sub("jobs"), 3, true},
		{"weir_subscription_nacked_total", sub("jobs"), 1, true},
		{"weir_subscription_rejected_total", sub("jobs"), 1, true},
		{"weir_subscription_redelivered_total", sub("jobs"), 1, true},
		{"weir_subscription_delivered_total", sub("jobs"), 5, true},
		{"weir_subscription_dead_lettered_total", sub("jobs"), 1, true},
		{"weir_subscription_depth", sub("jobs"), 0, true},
		{"weir_subscription_consumers", sub("jobs"), 1, true},
		{"weir_subscription_acked_total", sub("orders"), 2, true},
		{"weir_api_streams", []string{`procedure="weir.v1.Weir/Subscribe"`}, 1, false},
		{"weir_api_requests_total", []string{`procedure="weir.v1.Weir/Publish"`, `code="ok"`}, 4, true},
		{"weir_published_records_total", []string{`stream="jobs"`}, 4, true},
		{"weir_kafka_requests_total", []string{`api="Produce"`}, 7, true},
		{"weir_kafka_request_errors_total", []string{`api="unknown"`}, 1, true},
		{"weir_amqp_methods_received_total", []string{`method="basic.publish"`}, 2, true},
		{"weir_amqp_methods_received_total", []string{`method="basic.ack"`}, 2, true},
		{"weir_amqp_frames_received_total", []string{`type="body"`}, 2, true},
		{"weir_amqp_messages_delivered_total", nil, 2, true},
		{"weir_amqp_errors_total", []string{`scope="channel"`, `code="404"`}, 1, true},
		{"weir_amqp_connections", nil, 1, true},
		{"weir_mqtt_messages_received_total", []string{`qos="1"`}, 1, true},
		{"weir_received_bytes_total", []string{`listener="kafka"`}, 100, false},
		{"weir_sent_bytes_total", []string{`listener="amqp"`}, 100, false},
		{"weir_received_bytes_total", []string{`listener="mqtt"`}, 10, false},
		{"weir_fsync_seconds_count", nil, 1, false},
		{"weir_disk_free_bytes", nil, 1, false},
		{"weir_disk_full", nil, 0, true},
	}
	conditional := map[string]bool{"weir_connections_refused_total": true,
		"weir_auth_refusals_total": true} // only with a users file: TestAuthRefusalsMetric
	doc := readMetricsDoc(t)
	var samples map[string][]sample
	var failures []string
	// The broker settles acks and stores commits asynchronously: poll until
	// the scrape shows all of it (or the deadline reports what is missing).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body, err := get("http://" + s.Addr("http") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		samples = parseExposition(t, string(body))
		failures = failures[:0]
		for name, d := range doc {
			if strings.HasSuffix(name, "*") || conditional[name] || strings.HasPrefix(name, "weir_connector_") {
				continue
			}
			series := name
			if d.kind == "histogram" {
				series += "_count"
			}
			if len(samples[series]) == 0 {
				failures = append(failures, name+" is missing")
			}
			for _, smp := range samples[series] {
				if smp.value < 0 || math.IsNaN(smp.value) || math.IsInf(smp.value, 0) {
					failures = append(failures, name+smp.labels+" is "+strconv.FormatFloat(smp.value, 'g', -1, 64))
				}
			}
		}
		for _, c := range checks {
			v, ok := value(samples, c.name, c.labels...)
			switch {
			case !ok:
				failures = append(failures, c.name+strings.Join(c.labels, ",")+" is missing")
			case c.exact && v != c.min, !c.exact && v < c.min:
				failures = append(failures, c.name+strings.Join(c.labels, ",")+" is "+strconv.FormatFloat(v, 'g', -1, 64)+", want "+strconv.FormatFloat(c.min, 'g', -1, 64))
			}
		}
		if len(failures) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the traffic, /metrics:\n  %s", strings.Join(failures, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
