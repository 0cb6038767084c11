package server

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	weir "github.com/weirmq/weir/client"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes each export
// request (protobuf) and keeps the spans.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]string
	paths    []string
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	for _, rs := range export.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if r.resource == nil {
				r.resource = make(map[string]string)
			}
			r.resource[a.Key] = a.GetValue().GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// find returns the spans named name.
func (r *otlpReceiver) find(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) names() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, s := range r.spans {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// spanAttr returns a span's attribute as text ("" when it has none).
func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key != key {
			continue
		}
		if v, ok := a.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
			return strconv.FormatInt(v.IntValue, 10)
		}
		return a.GetValue().GetStringValue()
	}
	return ""
}

// The trace contexts the test's clients send.
const (
	kafkaTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	kafkaSpanID  = "00f067aa0ba902b7"
	amqpTraceID  = "0af7651916cd43dd8448eb211c80319c"
	amqpSpanID   = "b7ad6b7169203331"
	mqttTraceID  = "5b8efff798038103d269b633813fc60c"
	mqttSpanID   = "eee19b7ec3c1b174"
)

// TestTracingSpans runs a server that exports to an in-process OTLP/HTTP
// receiver and checks the spans of each protocol edge: their names and
// attributes, and that each continues the trace its records carried (the
// SDK's own publish span; a traceparent header set by a Kafka and an AMQP
// client), through to the AMQP delivery.
func TestTracingSpans(t *testing.T) {
	receiver := &otlpReceiver{}
	collector := httptest.NewServer(receiver)
	defer collector.Close()
	cfg := testConfig(t)
	cfg.OTLPEndpoint = collector.URL // no path: /v1/traces is added
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// The SDK with a tracer of its own: its publish span's context goes in
	// the record's traceparent header.
	clientTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer clientTP.Shutdown(context.Background())
	c, err := weir.Dial(ctx, s.Addr("http"), weir.WithTracerProvider(clientTP), weir.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateStream(ctx, weir.StreamConfig{Name: "traced"}); err != nil {
		t.Fatal(err)
	}
	rootCtx, root := clientTP.Tracer("test").Start(ctx, "checkout")
	if _, err := c.Publish(rootCtx, "traced", weir.Record{Value: []byte("paid")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	sdkTraceID := root.SpanContext().TraceID()
	// A subscription reads it back: a span for the call, one for the
	// batch it delivers, in the record's trace.
	got := make(chan struct{}, 1)
	cons, err := c.Consume(ctx, "traced", func(context.Context, *weir.Message) error {
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	}, weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the SDK consumer got nothing")
	}
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Kafka: a record with a traceparent header, then a fetch.
	kc, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("clicks"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	rec := &kgo.Record{Topic: "clicks", Value: []byte("click"), Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-" + kafkaTraceID + "-" + kafkaSpanID + "-01")},
	}}
	if err := kc.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if fs := kc.PollFetches(ctx); fs.NumRecords() == 0 {
		t.Fatalf("fetch: %v", fs.Errors())
	}

	// AMQP: a message with a traceparent header, consumed.
	conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", "orders", false, false, amqp091.Publishing{
		Headers: amqp091.Table{"traceparent": "00-" + amqpTraceID + "-" + amqpSpanID + "-01"},
		Body:    []byte("order"),
	}); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("orders", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-deliveries:
	case <-ctx.Done():
		t.Fatal("no AMQP delivery")
	}

	// MQTT: a 3.1.1 publish without trace context (a root span), and an
	// MQTT 5 one with a traceparent user property.
	if err := pahoPublish(pahoOptions("tcp://"+s.Addr("mqtt"), "tracing-test")); err != nil {
		t.Fatal(err)
	}
	// It subscribes to what it publishes: the PUBLISH it gets back has a
	// deliver span in the publisher's trace.
	nc, err := net.Dial("tcp", s.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan struct{}, 1)
	m5 := paho5.NewClient(paho5.ClientConfig{ClientID: "tracing-5", Conn: nc,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(paho5.PublishReceived) (bool, error) {
				select {
				case received <- struct{}{}:
				default:
				}
				return true, nil
			},
		}})
	if _, err := m5.Connect(ctx, &paho5.Connect{ClientID: "tracing-5", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := m5.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "meters/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := m5.Publish(ctx, &paho5.Publish{Topic: "meters/7", QoS: 1, Payload: []byte("42"), Properties: &paho5.PublishProperties{
		User: paho5.UserProperties{{Key: "traceparent", Value: "00-" + mqttTraceID + "-" + mqttSpanID + "-01"}},
	}}); err != nil || (r.ReasonCode != 0 && r.ReasonCode != 0x10) { // 0x10: no matching subscribers
		t.Fatalf("MQTT 5 publish: %+v %v", r, err)
	}
	select {
	case <-received:
	case <-ctx.Done():
		t.Fatal("the MQTT 5 subscriber got nothing")
	}
	m5.Disconnect(&paho5.Disconnect{})

	// Shutting down flushes the spans still batched.
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	one := func(name string) *tracepb.Span {
		t.Helper()
		spans := receiver.find(name)
		if len(spans) == 0 {
			t.Fatalf("no span %q among: %s", name, receiver.names())
		}
		return spans[0]
	}
	check := func(span *tracepb.Span, kind tracepb.Span_SpanKind, attrs map[string]string) {
		t.Helper()
		if span.Kind != kind {
			t.Errorf("span %q is of kind %v, want %v", span.Name, span.Kind, kind)
		}
		for k, want := range attrs {
			if got := spanAttr(span, k); got != want {
				t.Errorf("span %q: %s = %q, want %q", span.Name, k, got, want)
			}
		}
	}
	sdkSpan := one("publish traced")
	check(sdkSpan, tracepb.Span_SPAN_KIND_SERVER, map[string]string{
		"messaging.system": "weir", "network.protocol.name": "weir", "messaging.destination.name": "traced",
		"messaging.batch.message_count": "1", "rpc.method": "Publish",
	})
	if got := hex.EncodeToString(sdkSpan.TraceId); got != sdkTraceID.String() {
		t.Errorf("the server span of the SDK publish has trace id %s, want the client's %s", got, sdkTraceID)
	}
	if len(sdkSpan.ParentSpanId) == 0 || hex.EncodeToString(sdkSpan.ParentSpanId) == root.SpanContext().SpanID().String() {
		t.Errorf("the server span's parent is %x: want the SDK's publish span, a child of the root", sdkSpan.ParentSpanId)
	}

	kafkaSpan := one("publish clicks")
	check(kafkaSpan, tracepb.Span_SPAN_KIND_SERVER, map[string]string{
		"messaging.system": "weir", "network.protocol.name": "kafka", "messaging.destination.name": "clicks",
		"messaging.destination.partition.id": "0", "messaging.batch.message_count": "1",
	})
	if hex.EncodeToString(kafkaSpan.TraceId) != kafkaTraceID || hex.EncodeToString(kafkaSpan.ParentSpanId) != kafkaSpanID {
		t.Errorf("Kafka produce span: trace %x parent %x, want the record's %s %s", kafkaSpan.TraceId, kafkaSpan.ParentSpanId, kafkaTraceID, kafkaSpanID)
	}
	fetchSpan := one("fetch")
	check(fetchSpan, tracepb.Span_SPAN_KIND_SERVER, map[string]string{"network.protocol.name": "kafka"})
	// The fetched batch's span continues the record's trace.
	var kafkaReceive *tracepb.Span
	for _, sp := range receiver.find("receive clicks") {
		if hex.EncodeToString(sp.TraceId) == kafkaTraceID {
			kafkaReceive = sp
		}
	}
	if kafkaReceive == nil {
		t.Fatalf("no span \"receive clicks\" in the trace of the record fetched, among: %s", receiver.names())
	}
	check(kafkaReceive, tracepb.Span_SPAN_KIND_PRODUCER, map[string]string{
		"network.protocol.name": "kafka", "messaging.operation.type": "receive", "messaging.destination.name": "clicks",
		"messaging.destination.partition.id": "0", "messaging.batch.message_count": "1",
	})
	if hex.EncodeToString(kafkaReceive.ParentSpanId) != kafkaSpanID {
		t.Errorf("Kafka receive span: parent %x, want the record's %s", kafkaReceive.ParentSpanId, kafkaSpanID)
	}

	// The SDK's subscription: a span for the call's life, one for the
	// batch, the child of the record's context (the SDK's publish span).
	check(one("weir.v1.Weir/Subscribe"), tracepb.Span_SPAN_KIND_SERVER, map[string]string{"network.protocol.name": "weir", "rpc.method": "Subscribe"})
	sdkDeliver := one("deliver traced")
	check(sdkDeliver, tracepb.Span_SPAN_KIND_PRODUCER, map[string]string{
		"network.protocol.name": "weir", "messaging.operation.type": "deliver", "messaging.destination.name": "traced",
		"messaging.batch.message_count": "1",
	})
	if got := hex.EncodeToString(sdkDeliver.TraceId); got != sdkTraceID.String() {
		t.Errorf("the deliver span of the SDK subscription has trace id %s, want the record's %s", got, sdkTraceID)
	}

	amqpSpan := one("publish orders")
	check(amqpSpan, tracepb.Span_SPAN_KIND_SERVER, map[string]string{"network.protocol.name": "amqp", "messaging.destination.name": "orders"})
	if hex.EncodeToString(amqpSpan.TraceId) != amqpTraceID || hex.EncodeToString(amqpSpan.ParentSpanId) != amqpSpanID {
		t.Errorf("AMQP publish span: trace %x parent %x, want %s %s", amqpSpan.TraceId, amqpSpan.ParentSpanId, amqpTraceID, amqpSpanID)
	}
	deliver := one("deliver orders")
	check(deliver, tracepb.Span_SPAN_KIND_PRODUCER, map[string]string{"network.protocol.name": "amqp", "messaging.operation.type": "deliver"})
	if hex.EncodeToString(deliver.TraceId) != amqpTraceID {
		t.Errorf("AMQP deliver span: trace %x, want the published record's %s", deliver.TraceId, amqpTraceID)
	}

	mqttSpan := one("publish sensors/1")
	check(mqttSpan, tracepb.Span_SPAN_KIND_SERVER, map[string]string{"network.protocol.name": "mqtt", "messaging.destination.name": "sensors/1"})
	if len(mqttSpan.ParentSpanId) != 0 {
		t.Errorf("the MQTT publish carried no trace context, yet its span has parent %x", mqttSpan.ParentSpanId)
	}
	mqtt5Span := one("publish meters/7")
	if hex.EncodeToString(mqtt5Span.TraceId) != mqttTraceID || hex.EncodeToString(mqtt5Span.ParentSpanId) != mqttSpanID {
		t.Errorf("MQTT 5 publish span: trace %x parent %x, want the user property's %s %s", mqtt5Span.TraceId, mqtt5Span.ParentSpanId, mqttTraceID, mqttSpanID)
	}
	mqttDeliver := one("deliver meters/7")
	check(mqttDeliver, tracepb.Span_SPAN_KIND_PRODUCER, map[string]string{"network.protocol.name": "mqtt", "messaging.operation.type": "deliver"})
	if hex.EncodeToString(mqttDeliver.TraceId) != mqttTraceID {
		t.Errorf("MQTT deliver span: trace %x, want the published message's %s", mqttDeliver.TraceId, mqttTraceID)
	}

	receiver.mu.Lock()
	defer receiver.mu.Unlock()
	if receiver.resource["service.name"] != "weir" || receiver.resource["service.version"] != cfg.Version {
		t.Errorf("resource %v, want service.name weir and service.version %s", receiver.resource, cfg.Version)
	}
	for _, p := range receiver.paths {
		if p != "/v1/traces" {
			t.Errorf("export posted to %s, want /v1/traces", p)
		}
	}
}

// TestTracingConfig checks the tracing options' validation.
func TestTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		endpoint, ratio, wantErr string
	}{
		{"", "1", ""},
		{"http://localhost:4318", "0.25", ""},
		{"https://otel.example.com/custom/path", "0", ""},
		{"localhost:4318", "1", "otlp-endpoint"},
		{"grpc://localhost:4317", "1", "otlp-endpoint"},
		{"http://", "1", "otlp-endpoint"},
		{"http://localhost:4318", "1.5", "trace-sample-ratio"},
		{"http://localhost:4318", "-0.1", "trace-sample-ratio"},
		{"http://localhost:4318", "half", "trace-sample-ratio"},
	} {
		cfg := DefaultConfig()
		cfg.OTLPEndpoint, cfg.TraceSampleRatio = tc.endpoint, tc.ratio
		err := cfg.Validate()
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("endpoint %q ratio %q: %v", tc.endpoint, tc.ratio, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidConfig)):
			t.Errorf("endpoint %q ratio %q: error %v, want one about %s", tc.endpoint, tc.ratio, err, tc.wantErr)
		}
	}
	if got, _ := parseOTLPEndpoint("https://otel.example.com/custom/path"); got != "https://otel.example.com/custom/path" {
		t.Errorf("a path given is kept: got %s", got)
	}
	if got, _ := parseOTLPEndpoint("http://localhost:4318/"); got != "http://localhost:4318/v1/traces" {
		t.Errorf("no path gets /v1/traces: got %s", got)
	}
}
