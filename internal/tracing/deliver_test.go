package tracing

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/weirmq/weir/internal/record"
)

// TestNilTracerDeliver checks that tracing off allocates nothing on the
// paths of records leaving the broker.
func TestNilTracerDeliver(t *testing.T) {
	var tr *Tracer
	ctx := context.Background()
	data, err := record.AppendBatch(nil, record.DefaultBatchOptions(), []record.Record{{Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, span := tr.StartReceiveBatches(ctx, "clicks", 0, data, 0)
		span.End()
		_, span = tr.StartDeliverBatch(ctx, OperationDeliver, "orders", 1, nil)
		End(span, nil)
		if span.IsRecording() {
			t.Fatal("a nil Tracer started a span")
		}
	})
	if allocs != 0 {
		t.Errorf("tracing off allocates %v times per delivery", allocs)
	}
}

// TestStartReceiveBatches checks a fetched partition's span: the records
// before the offset fetched and the transaction markers are left out, the
// first trace context among the others is the parent, the next a link.
func TestStartReceiveBatches(t *testing.T) {
	tr, rec := newRecorder()
	opts := record.DefaultBatchOptions()
	opts.BaseOffset = 10
	// Offsets 10 and 11; 10 (before the fetch offset) carries trace A,
	// which must not be used.
	data, err := record.AppendBatch(nil, opts, []record.Record{
		{Offset: 10, Headers: []record.RecordHeader{{Key: HeaderTraceParent, Value: traceparent(traceA, spanA)}}},
		{Offset: 11, Value: []byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.BaseOffset = 12
	data, err = record.AppendBatch(data, opts, []record.Record{
		{Offset: 12, Headers: []record.RecordHeader{{Key: HeaderTraceParent, Value: traceparent(traceB, spanB)}}},
		{Offset: 13, Headers: []record.RecordHeader{{Key: HeaderTraceParent, Value: traceparent(traceA, spanA)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	control := opts
	control.BaseOffset = 14
	control.Control, control.Transactional = true, true
	data, err = record.AppendBatch(data, control, []record.Record{{Offset: 14, Key: []byte{0, 0, 0, 0}, Value: []byte{0, 0, 0, 0, 0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartReceiveBatches(context.Background(), "clicks", 2, data, 11)
	span.End()
	s := rec.Ended()[0]
	if s.Name() != "receive clicks" || s.SpanKind() != trace.SpanKindProducer {
		t.Errorf("span %q of kind %v, want receive clicks, producer", s.Name(), s.SpanKind())
	}
	if s.Parent().TraceID().String() != traceB || s.Parent().SpanID().String() != spanB {
		t.Errorf("parent %v, want %s/%s", s.Parent(), traceB, spanB)
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.TraceID().String() != traceA {
		t.Errorf("links %v, want one to %s", s.Links(), traceA)
	}
	if got := attr(s, "messaging.batch.message_count").AsInt64(); got != 3 {
		t.Errorf("message count %d, want 3 (offsets 11 to 13)", got)
	}
	for key, want := range map[string]string{"messaging.operation.type": "receive", "messaging.destination.partition.id": "2", "messaging.destination.name": "clicks"} {
		if got := attr(s, key).AsString(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestStartDeliverBatch checks a pushed batch without any trace context:
// the child of the request's span.
func TestStartDeliverBatch(t *testing.T) {
	tr, rec := newRecorder()
	ctx, parent := tr.StartRequest(context.Background(), "weir.v1.Weir/Subscribe", nil)
	_, span := tr.StartDeliverBatch(ctx, OperationDeliver, "orders", 4, nil)
	span.End()
	parent.End()
	s := rec.Ended()[0]
	if s.Name() != "deliver orders" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q with parent %v, want deliver orders under the call's span", s.Name(), s.Parent())
	}
	if got := attr(s, "messaging.batch.message_count").AsInt64(); got != 4 {
		t.Errorf("message count %d, want 4", got)
	}
}
