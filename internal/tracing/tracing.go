// Package tracing starts the OpenTelemetry spans of Weir's protocol front
// ends: a server span for each publish a client makes, continuing the trace
// of the W3C trace context (traceparent, tracestate) its records carry, as
// the Go SDK (client/tracing.go) and other instrumented clients put it in
// record headers; a span for each delivery a front end pushes to a
// consumer; and a span for other requests worth following (a Kafka fetch).
//
// A nil *Tracer is tracing turned off: its methods do nothing and
// allocate nothing, so front ends call them unconditionally.
// internal/server builds the TracerProvider from the configuration
// (otlp-endpoint, trace-sample-ratio).
package tracing

import (
	"context"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/record"
)

// ScopeName is the instrumentation scope of the server's spans.
const ScopeName = "github.com/weirmq/weir"

// Header names of the W3C trace context in record headers; the same the
// SDK writes (weir.HeaderTraceParent, weir.HeaderTraceState).
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// maxLinks bounds the links a span of a batch gets to the other traces its
// records carry.
const maxLinks = 32

// Attributes of Weir's own, in the pattern messaging.<system>.*.
var (
	// AttrPartition is the partition a request or batch is for.
	AttrPartition = attribute.Key("messaging.destination.partition.id")
	// AttrDeliveryCount is which delivery of a record this is (1: the first).
	AttrDeliveryCount = attribute.Key("messaging.weir.delivery_count")
)

var (
	systemWeir = semconv.MessagingSystemKey.String("weir")
	propagator = propagation.TraceContext{}
	// nopSpan is the span a nil Tracer returns: it records nothing, and
	// ending it does nothing.
	nopSpan = trace.SpanFromContext(context.Background())
)

// Tracer starts the spans of one front end.
type Tracer struct {
	tracer   trace.Tracer
	protocol attribute.KeyValue
}

// New returns the tracer of the front end of protocol ("kafka", "amqp",
// "mqtt", "weir"), or nil, tracing off, when tp is nil.
func New(tp trace.TracerProvider, protocol string) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), protocol: semconv.NetworkProtocolName(protocol)}
}

// Enabled reports whether t starts spans; a front end checks it before
// work done only for a span (decoding a batch to find its trace context).
func (t *Tracer) Enabled() bool { return t != nil }

// Headers adapts record headers to propagation.TextMapCarrier. Get takes
// the first header of the name, compared without regard to case as HTTP
// does.
type Headers []broker.Header

// Get implements propagation.TextMapCarrier.
func (h *Headers) Get(key string) string {
	for _, x := range *h {
		if strings.EqualFold(x.Key, key) {
			return string(x.Value)
		}
	}
	return ""
}

// Set implements propagation.TextMapCarrier.
func (h *Headers) Set(key, value string) {
	for i := range *h {
		if strings.EqualFold((*h)[i].Key, key) {
			(*h)[i].Value = []byte(value)
			return
		}
	}
	*h = append(*h, broker.Header{Key: key, Value: []byte(value)})
}

// Keys implements propagation.TextMapCarrier.
func (h *Headers) Keys() []string {
	keys := make([]string, len(*h))
	for i, x := range *h {
		keys[i] = x.Key
	}
	return keys
}

// Extract returns the span context a carrier's W3C trace context names
// (not valid when it has none or a malformed one).
func Extract(carrier propagation.TextMapCarrier) trace.SpanContext {
	if carrier.Get(HeaderTraceParent) == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), carrier))
}

// parenting collects the trace contexts of a batch's records: the first
// becomes the parent of the batch's span, the others its links.
type parenting struct {
	parent trace.SpanContext
	links  []trace.Link
}

func (p *parenting) add(sc trace.SpanContext) {
	switch {
	case !sc.IsValid():
	case !p.parent.IsValid():
		p.parent = sc
	case sc.Equal(p.parent) || len(p.links) >= maxLinks:
	default:
		for _, l := range p.links {
			if l.SpanContext.Equal(sc) {
				return
			}
		}
		p.links = append(p.links, trace.Link{SpanContext: sc})
	}
}

// start starts a span of kind, the child of p's parent when there is one
// (a remote parent: the client's span), else of ctx.
func (t *Tracer) start(ctx context.Context, name string, kind trace.SpanKind, p *parenting, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	if p != nil && p.parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, p.parent)
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(kind),
		trace.WithAttributes(systemWeir, t.protocol),
		trace.WithAttributes(attrs...),
	}
	if p != nil && len(p.links) > 0 {
		opts = append(opts, trace.WithLinks(p.links...))
	}
	return t.tracer.Start(ctx, name, opts...)
}

// StartPublish starts the server span of a publish of recs to destination
// (a stream, queue, exchange or topic): "publish <destination>", the child
// of the trace context of the first record that carries one, linked to
// those of the others. End it with End.
func (t *Tracer) StartPublish(ctx context.Context, destination string, recs []broker.Record, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	for i := range recs {
		p.add(Extract((*Headers)(&recs[i].Headers)))
	}
	return t.startPublish(ctx, destination, len(recs), &p, attrs)
}

// StartPublishContexts is StartPublish for a front end that extracted the
// records' trace contexts itself (Extract): count records, contexts the
// valid ones among them.
func (t *Tracer) StartPublishContexts(ctx context.Context, destination string, count int, contexts []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	for _, sc := range contexts {
		p.add(sc)
	}
	return t.startPublish(ctx, destination, count, &p, attrs)
}

func (t *Tracer) startPublish(ctx context.Context, destination string, count int, p *parenting, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName("publish"),
		semconv.MessagingDestinationName(destination), semconv.MessagingBatchMessageCount(count))
	return t.start(ctx, "publish "+spanDestination(destination), trace.SpanKindServer, p, attrs)
}

// spanDestination is a destination as a span's name shows it: inboxes,
// many and short-lived, share one name (the attribute keeps the real one),
// so that span names stay few.
func spanDestination(destination string) string {
	if broker.IsInbox(destination) {
		return broker.InboxPrefix + "*"
	}
	return destination
}

// StartPublishBatches is StartPublish for Kafka RecordBatch bytes, as a
// Produce request carries them: the records are decoded (only when
// tracing is on) for their trace context. Batches that do not decode are
// left to the append, which refuses them.
func (t *Tracer) StartPublishBatches(ctx context.Context, destination string, partition int32, data []byte) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	attrs := []attribute.KeyValue{AttrPartition.String(strconv.Itoa(int(partition)))}
	var p parenting
	count := scanBatches(data, allOffsets, &p)
	return t.startPublish(ctx, destination, count, &p, attrs)
}

// recordHeaders adapts the headers of a decoded batch record.
type recordHeaders []record.RecordHeader

func (h recordHeaders) Get(key string) string {
	for _, x := range h {
		if strings.EqualFold(x.Key, key) {
			return string(x.Value)
		}
	}
	return ""
}

func (h recordHeaders) Set(string, string) {}

func (h recordHeaders) Keys() []string {
	keys := make([]string, len(h))
	for i, x := range h {
		keys[i] = x.Key
	}
	return keys
}

// StartDeliver starts the span of a delivery the front end pushes to a
// consumer of source: "deliver <source>", a producer span (the broker
// sends), the child of the record's trace context when it carries one.
func (t *Tracer) StartDeliver(ctx context.Context, source string, rec *broker.Record, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	p.add(Extract((*Headers)(&rec.Headers)))
	attrs = append(attrs, semconv.MessagingOperationTypeKey.String("deliver"), semconv.MessagingOperationName("deliver"),
		semconv.MessagingDestinationName(source))
	return t.start(ctx, "deliver "+spanDestination(source), trace.SpanKindProducer, &p, attrs)
}

// StartRequest starts the server span of a request with no records to
// take a trace context from (a Kafka Fetch, a native API call): name is
// the span's name, parent the caller's trace context when the protocol
// carries one (nil otherwise).
func (t *Tracer) StartRequest(ctx context.Context, name string, parent propagation.TextMapCarrier, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	if parent != nil {
		p.add(Extract(parent))
	}
	return t.start(ctx, name, trace.SpanKindServer, &p, attrs)
}

// End ends span, recording err as its status and error.type.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
