package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/record"
)

const (
	traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanA  = "00f067aa0ba902b7"
	traceB = "0af7651916cd43dd8448eb211c80319c"
	spanB  = "b7ad6b7169203331"
)

func traceparent(traceID, spanID string) []byte {
	return []byte("00-" + traceID + "-" + spanID + "-01")
}

func newRecorder() (*Tracer, *tracetest.SpanRecorder) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	return New(tp, "amqp"), rec
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

// TestNilTracer checks that tracing off starts nothing, returns ctx as it
// is and allocates nothing on the publish path.
func TestNilTracer(t *testing.T) {
	var tr *Tracer
	if tr.Enabled() {
		t.Fatal("a nil Tracer is enabled")
	}
	ctx := context.Background()
	recs := []broker.Record{{Value: []byte("v"), Headers: []broker.Header{{Key: HeaderTraceParent, Value: traceparent(traceA, spanA)}}}}
	allocs := testing.AllocsPerRun(100, func() {
		got, span := tr.StartPublish(ctx, "orders", recs)
		End(span, nil)
		if got != ctx || span.IsRecording() {
			t.Fatal("a nil Tracer started a span")
		}
		_, span = tr.StartPublishBatches(ctx, "orders", 0, nil)
		span.End()
		_, span = tr.StartDeliver(ctx, "orders", &recs[0])
		span.End()
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %v times per publish", allocs)
	}
}

// TestStartPublish checks a batch's span: the first record's context is
// its parent, other distinct contexts are links, and its attributes.
func TestStartPublish(t *testing.T) {
	tr, rec := newRecorder()
	recs := []broker.Record{
		{Value: []byte("no context")},
		{Headers: []broker.Header{{Key: "TraceParent", Value: traceparent(traceA, spanA)}}},
		{Headers: []broker.Header{{Key: HeaderTraceParent, Value: traceparent(traceA, spanA)}}},
		{Headers: []broker.Header{{Key: HeaderTraceParent, Value: traceparent(traceB, spanB)}}},
		{Headers: []broker.Header{{Key: HeaderTraceParent, Value: []byte("garbage")}}},
	}
	_, span := tr.StartPublish(context.Background(), "orders", recs)
	End(span, nil)
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "publish orders" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %v", s.Name(), s.SpanKind())
	}
	if s.Parent().TraceID().String() != traceA || s.Parent().SpanID().String() != spanA || !s.Parent().IsRemote() {
		t.Errorf("parent %v, want the remote %s/%s", s.Parent(), traceA, spanA)
	}
	if s.SpanContext().TraceID().String() != traceA {
		t.Errorf("trace %s, want %s", s.SpanContext().TraceID(), traceA)
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.TraceID().String() != traceB {
		t.Errorf("links %v, want one to %s", s.Links(), traceB)
	}
	for key, want := range map[string]string{
		"messaging.system": "weir", "network.protocol.name": "amqp",
		"messaging.destination.name": "orders", "messaging.operation.type": "send",
	} {
		if got := attr(s, key).AsString(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := attr(s, "messaging.batch.message_count").AsInt64(); got != 5 {
		t.Errorf("message count %d, want 5", got)
	}
}

// TestStartPublishBatches checks that the trace context is found in the
// records of Kafka batches, and the partition and count attributes.
func TestStartPublishBatches(t *testing.T) {
	tr, rec := newRecorder()
	var data []byte
	var err error
	data, err = record.AppendBatch(data, record.DefaultBatchOptions(), []record.Record{{Offset: 0, Value: []byte("a")}, {Offset: 1, Value: []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	data, err = record.AppendBatch(data, record.DefaultBatchOptions(), []record.Record{
		{Value: []byte("c"), Headers: []record.RecordHeader{{Key: HeaderTraceParent, Value: traceparent(traceB, spanB)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartPublishBatches(context.Background(), "clicks", 3, data)
	span.End()
	s := rec.Ended()[0]
	if s.Parent().TraceID().String() != traceB || s.Parent().SpanID().String() != spanB {
		t.Errorf("parent %v, want %s/%s", s.Parent(), traceB, spanB)
	}
	if got := attr(s, "messaging.destination.partition.id").AsString(); got != "3" {
		t.Errorf("partition %q, want 3", got)
	}
	if got := attr(s, "messaging.batch.message_count").AsInt64(); got != 3 {
		t.Errorf("message count %d, want 3", got)
	}
	// Bytes that are no batch give a span without parent: the append
	// refuses them.
	_, span = tr.StartPublishBatches(context.Background(), "clicks", 0, []byte("not a batch"))
	span.End()
	if s := rec.Ended()[1]; s.Parent().IsValid() {
		t.Errorf("garbage gave a parent %v", s.Parent())
	}
}

// TestEndRecordsError checks the status of a failed span.
func TestEndRecordsError(t *testing.T) {
	tr, rec := newRecorder()
	_, span := tr.StartDeliver(context.Background(), "jobs", &broker.Record{})
	End(span, broker.ErrStreamNotFound)
	s := rec.Ended()[0]
	if s.Status().Description != broker.ErrStreamNotFound.Error() || len(s.Events()) != 1 {
		t.Errorf("status %v, events %v", s.Status(), s.Events())
	}
	if s.SpanKind() != trace.SpanKindProducer || s.Name() != "deliver jobs" {
		t.Errorf("span %q of kind %v", s.Name(), s.SpanKind())
	}
}

// TestHeadersCarrier checks the carrier over record headers.
func TestHeadersCarrier(t *testing.T) {
	h := Headers{{Key: "TraceParent", Value: []byte("x")}}
	if got := h.Get(HeaderTraceParent); got != "x" {
		t.Errorf("Get = %q", got)
	}
	h.Set(HeaderTraceParent, "y")
	h.Set(HeaderTraceState, "k=v")
	if len(h) != 2 || h.Get(HeaderTraceParent) != "y" || h.Get(HeaderTraceState) != "k=v" {
		t.Errorf("after Set: %v", h)
	}
	if keys := h.Keys(); len(keys) != 2 {
		t.Errorf("Keys = %v", keys)
	}
}

// TestInboxSpanName checks that inboxes share one span name and keep their
// own name in the destination attribute.
func TestInboxSpanName(t *testing.T) {
	tr, rec := newRecorder()
	inbox := broker.InboxPrefix + "0123456789abcdef0123456789abcdef"
	_, span := tr.StartPublish(context.Background(), inbox, []broker.Record{{}})
	span.End()
	s := rec.Ended()[0]
	if s.Name() != "publish "+broker.InboxPrefix+"*" {
		t.Errorf("span name %q", s.Name())
	}
	if got := attr(s, "messaging.destination.name").AsString(); got != inbox {
		t.Errorf("destination %q, want %q", got, inbox)
	}
}
