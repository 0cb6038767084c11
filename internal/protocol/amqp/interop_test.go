package amqp_test

import (
	"context"
	"maps"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	weirsdk "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/server"
)

// withAllListeners turns the Kafka and HTTP listeners on as well.
func withAllListeners(c *server.Config) {
	c.KafkaAddr, c.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
}

func kafkaClient(t *testing.T, w *weir, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(w.srv.Addr("kafka"))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func nativeClient(t *testing.T, w *weir) *weirsdk.Client {
	t.Helper()
	c, err := weirsdk.Dial(t.Context(), w.srv.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func headerMap[H any](hs []H, kv func(H) (string, string)) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		k, v := kv(h)
		out[k] = v
	}
	return out
}

// A message published over AMQP reads the same over Kafka and the native
// API: body, routing key as the record key, properties and headers as
// record headers, timestamp.
func TestInteropAMQPToKafkaAndNative(t *testing.T) {
	w := startWeir(t, withAllListeners)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("interop", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("interop", "order.eu", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	publishConfirmed(t, ch, "amq.direct", "order.eu", false, amqp091.Publishing{
		Body: []byte(`{"id":1}`), ContentType: "application/json", MessageId: "m-1", CorrelationId: "c-1", ReplyTo: "answers",
		Type: "order.created", AppId: "shop", Timestamp: ts, DeliveryMode: amqp091.Persistent,
		Headers: amqp091.Table{"tenant": "acme", "attempt": int32(3), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	})
	want := map[string]string{
		"content-type": "application/json", "message-id": "m-1", "correlation-id": "c-1", "reply-to": "answers", "type": "order.created",
		"app-id": "shop", "delivery-mode": "2", "tenant": "acme", "attempt": "3",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x-amqp-types": `{"attempt":"I"}`,
	}

	// Kafka: a consumer of the topic "interop" from the start.
	kc := kafkaClient(t, w, kgo.ConsumeTopics("interop"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) == 0 && ctx.Err() == nil {
		fs := kc.PollFetches(ctx)
		for _, e := range fs.Errors() {
			if ctx.Err() == nil {
				t.Fatalf("kafka fetch: %v", e.Err)
			}
		}
		recs = append(recs, fs.Records()...)
	}
	if len(recs) != 1 {
		t.Fatalf("kafka read %d records, want 1", len(recs))
	}
	kr := recs[0]
	if string(kr.Value) != `{"id":1}` || string(kr.Key) != "order.eu" || !kr.Timestamp.Equal(ts) {
		t.Errorf("kafka record key %q value %q timestamp %v", kr.Key, kr.Value, kr.Timestamp)
	}
	if got := headerMap(kr.Headers, func(h kgo.RecordHeader) (string, string) { return h.Key, string(h.Value) }); !maps.Equal(got, want) {
		t.Errorf("kafka headers\n got %v\nwant %v", got, want)
	}

	// The native API.
	nc := nativeClient(t, w)
	res, err := nc.Fetch(t.Context(), "interop", 0, 0, 0, time.Second)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("native fetch: %v, %d records", err, len(res.Records))
	}
	nr := res.Records[0]
	if string(nr.Value) != `{"id":1}` || string(nr.Key) != "order.eu" || !nr.Timestamp.Equal(ts) {
		t.Errorf("native record key %q value %q timestamp %v", nr.Key, nr.Value, nr.Timestamp)
	}
	if got := headerMap(nr.Headers, func(h weirsdk.Header) (string, string) { return h.Key, string(h.Value) }); !maps.Equal(got, want) {
		t.Errorf("native headers\n got %v\nwant %v", got, want)
	}
}

// Records produced over Kafka and published natively are delivered over
// AMQP with their headers as properties (typed where x-amqp-types says).
func TestInteropKafkaAndNativeToAMQP(t *testing.T) {
	w := startWeir(t, withAllListeners)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if _, err := ch.QueueDeclare("inbound", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 22, 21, 30, 0, 0, time.UTC)
	kc := kafkaClient(t, w)
	if err := kc.ProduceSync(t.Context(), &kgo.Record{Topic: "inbound", Key: []byte("k1"), Value: []byte("from kafka"), Timestamp: ts,
		Headers: []kgo.RecordHeader{
			{Key: "content-type", Value: []byte("text/plain")}, {Key: "message-id", Value: []byte("k-1")},
			{Key: "correlation-id", Value: []byte("c-k")}, {Key: "reply-to", Value: []byte("answers")},
			{Key: "type", Value: []byte("greeting")}, {Key: "tenant", Value: []byte("acme")},
			{Key: "attempt", Value: []byte("4")}, {Key: "x-amqp-types", Value: []byte(`{"attempt":"I"}`)},
		}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	nc := nativeClient(t, w)
	if _, err := nc.Publish(t.Context(), "inbound", weirsdk.Record{Key: []byte("k2"), Value: []byte("from the SDK"), Timestamp: ts,
		Headers: []weirsdk.Header{{Key: "content-type", Value: []byte("text/plain")}, {Key: "message-id", Value: []byte("n-1")},
			{Key: "correlation-id", Value: []byte("c-n")}, {Key: "tenant", Value: []byte("globex")}}}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume("inbound", "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := receive(t, msgs, 5*time.Second)
	if string(d.Body) != "from kafka" || d.ContentType != "text/plain" || d.MessageId != "k-1" || d.CorrelationId != "c-k" ||
		d.ReplyTo != "answers" || d.Type != "greeting" || !d.Timestamp.Equal(ts) || d.RoutingKey != "k1" {
		t.Errorf("from kafka: %+v", d)
	}
	if len(d.Headers) != 2 || d.Headers["tenant"] != "acme" || d.Headers["attempt"] != int32(4) {
		t.Errorf("from kafka: headers %#v", d.Headers)
	}
	d.Ack(false)
	d = receive(t, msgs, 5*time.Second)
	if string(d.Body) != "from the SDK" || d.ContentType != "text/plain" || d.MessageId != "n-1" || d.CorrelationId != "c-n" ||
		!d.Timestamp.Equal(ts) || d.RoutingKey != "k2" || len(d.Headers) != 1 || d.Headers["tenant"] != "globex" {
		t.Errorf("from the SDK: %+v", d)
	}
	d.Ack(false)
}
