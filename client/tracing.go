package weir

// OpenTelemetry tracing: W3C trace context in record headers, a producer
// span per publish and a consumer span per message handled.

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Header names of the W3C trace context, which the SDK writes on publish
// and reads on consume.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// TracerName is the instrumentation scope of the SDK's spans.
const TracerName = "github.com/weirmq/weir/client"

// Attributes of Weir's own, after the messaging conventions' pattern
// messaging.<system>.*.
var (
	// attrOffset is the offset of the record in its partition.
	attrOffset = attribute.Key("messaging.weir.offset")
	// attrDeliveryCount is, in shared mode, which delivery of the record
	// this is: 1 the first time.
	attrDeliveryCount = attribute.Key("messaging.weir.delivery_count")
	// attrDuplicate: the record was a duplicate, either of a message-id the
	// stream's dedup window had seen (publish), or of one an Idempotent
	// handler had processed (process).
	attrDuplicate = attribute.Key("messaging.weir.duplicate")
)

var systemWeir = semconv.MessagingSystemKey.String("weir")

// WithTracerProvider makes the client trace with tp: a span for each
// publish and for each message a consumer hands to its handler. The default
// is the global provider of otel.GetTracerProvider, which records nothing
// unless the application installs one (otel.SetTracerProvider), including
// after Dial; until one is installed the client starts no spans. To keep a
// client out of an application's traces, give it noop.NewTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithPropagator sets how trace context travels in record headers. The
// default is the global propagator of otel.GetTextMapPropagator, which
// propagates nothing unless the application installs one, usually
// propagation.TraceContext{} for the W3C traceparent and tracestate
// headers. propagation.NewCompositeTextMapPropagator() with no argument
// turns propagation off.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.propagator = p }
}

// tracing is a client's tracer and propagator.
type tracing struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	// global: no provider was given, so the tracer is the global
	// provider's, which records once an application installs one.
	global bool
}

// uninstalledGlobal is the dynamic type of the global tracer provider
// before any is installed (otel/internal/global's stand-in, which records
// nothing); nil if one was installed before this package's init.
var uninstalledGlobal = func() reflect.Type {
	tp := reflect.TypeOf(otel.GetTracerProvider())
	if tp.Kind() == reflect.Pointer && tp.Elem().PkgPath() == "go.opentelemetry.io/otel/internal/global" {
		return tp
	}
	return nil
}()

func newTracing(tp trace.TracerProvider, p propagation.TextMapPropagator) *tracing {
	global := tp == nil
	if global {
		tp = otel.GetTracerProvider()
	}
	if p == nil {
		p = otel.GetTextMapPropagator()
	}
	return &tracing{
		tracer:     tp.Tracer(TracerName, trace.WithSchemaURL(semconv.SchemaURL)),
		propagator: p,
		global:     global,
	}
}

// off reports that spans would be neither recorded nor different from the
// context they start in: the client traces with the global provider and
// the application has installed none (otel.SetTracerProvider). Spans are
// then skipped, which saves their cost on every message; the trace
// context of the caller and of the records still propagates.
func (t *tracing) off() bool {
	return t.global && uninstalled(otel.GetTracerProvider())
}

// uninstalled reports whether tp is the global provider's stand-in.
func uninstalled(tp trace.TracerProvider) bool {
	return uninstalledGlobal != nil && reflect.TypeOf(tp) == uninstalledGlobal
}

// headerCarrier lets a propagator read and write record headers. Set works
// on a copy, made on the first change, so that the caller's records stay as
// they were; names match without regard to case, as they may come from
// protocols that capitalize them.
type headerCarrier struct {
	headers []Header
	copied  bool
}

func (c *headerCarrier) Get(key string) string {
	for _, h := range c.headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces the headers named key by one with value.
func (c *headerCarrier) Set(key, value string) {
	if !c.copied {
		c.headers = slices.Clone(c.headers)
		c.copied = true
	}
	c.headers = slices.DeleteFunc(c.headers, func(h Header) bool { return strings.EqualFold(h.Key, key) })
	c.headers = append(c.headers, Header{Key: key, Value: []byte(value)})
}

func (c *headerCarrier) Keys() []string {
	keys := make([]string, len(c.headers))
	for i, h := range c.headers {
		keys[i] = h.Key
	}
	return keys
}

// inject writes ctx's trace context into the headers of records, and
// returns records, or copies of them if the propagator wrote anything.
func (t *tracing) inject(ctx context.Context, records []Record) []Record {
	out, cloned := records, false
	for i := range records {
		if headers, changed := t.injectHeaders(ctx, records[i].Headers); changed {
			if !cloned {
				out, cloned = slices.Clone(records), true
			}
			out[i].Headers = headers
		}
	}
	return out
}

// injectHeaders writes ctx's trace context into a copy of headers, made
// only if the propagator writes anything (changed).
func (t *tracing) injectHeaders(ctx context.Context, headers []Header) (_ []Header, changed bool) {
	carrier := headerCarrier{headers: headers}
	t.propagator.Inject(ctx, &carrier)
	return carrier.headers, carrier.copied
}

// startPublish starts the producer span of a publish of records to
// destination (partition: nil, chosen by key) and injects its context into
// the records. The returned function ends the span with the outcome.
func (t *tracing) startPublish(ctx context.Context, destination string, partition *int32, records []Record) (context.Context, []Record, func([]PublishResult, error)) {
	if t.off() {
		return ctx, t.inject(ctx, records), endNothing
	}
	attrs := []attribute.KeyValue{
		systemWeir,
		semconv.MessagingDestinationName(destination),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
	}
	if len(records) != 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(records)))
	}
	if partition != nil {
		attrs = append(attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(*partition))))
	}
	ctx, span := t.tracer.Start(ctx, "publish "+destination, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	if span.IsRecording() && len(records) == 1 {
		if id, ok := records[0].Header(HeaderMessageID); ok && len(id) > 0 {
			span.SetAttributes(semconv.MessagingMessageID(string(id)))
		}
		span.SetAttributes(semconv.MessagingMessageBodySize(len(records[0].Value)))
	}
	records = t.inject(ctx, records)
	return ctx, records, func(results []PublishResult, err error) {
		if err != nil {
			recordError(span, err)
		} else if len(results) == 1 && span.IsRecording() {
			span.SetAttributes(
				semconv.MessagingDestinationPartitionID(strconv.Itoa(int(results[0].Partition))),
				attrOffset.Int64(results[0].Offset),
			)
			if results[0].Duplicate {
				span.SetAttributes(attrDuplicate.Bool(true))
			}
		}
		span.End()
	}
}

// endNothing ends the span startPublish did not start.
func endNothing([]PublishResult, error) {}

// startSend is startPublish for one record of a Producer: the span lasts
// until the record's callback, which the returned one wraps.
func (t *tracing) startSend(ctx context.Context, stream string, rec Record, cb func(PublishResult, error)) (context.Context, Record, func(PublishResult, error)) {
	if t.off() {
		rec.Headers, _ = t.injectHeaders(ctx, rec.Headers)
		return ctx, rec, cb
	}
	ctx, recs, end := t.startPublish(ctx, stream, nil, []Record{rec})
	return ctx, recs[0], func(res PublishResult, err error) {
		if err != nil {
			end(nil, err)
		} else {
			end([]PublishResult{res}, nil)
		}
		cb(res, err)
	}
}

// tracedPublish is publish within a producer span.
func (c *Client) tracedPublish(ctx context.Context, stream string, partition *int32, records []Record) ([]PublishResult, error) {
	if len(records) == 0 {
		return c.publish(ctx, stream, partition, records) // the error, without a span
	}
	ctx, records, end := c.tracing.startPublish(ctx, stream, partition, records)
	results, err := c.publish(ctx, stream, partition, records)
	end(results, err)
	return results, err
}

// processHandler wraps a consumer's handler so that each message is
// handled within a consumer span, the child of the span that published it
// when its headers carry one, a new trace's root otherwise.
func (t *tracing) processHandler(stream string, cfg *consumeConfig, handler Handler) Handler {
	attrs := []attribute.KeyValue{
		systemWeir,
		semconv.MessagingDestinationName(stream),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
	}
	switch cfg.mode {
	case modeGroup:
		attrs = append(attrs, semconv.MessagingConsumerGroupName(cfg.group))
	case modeShared:
		sub := cfg.subscription
		if sub == "" {
			sub = stream // a queue's own subscription
		}
		attrs = append(attrs, semconv.MessagingDestinationSubscriptionName(sub))
	}
	name := "process " + stream
	childOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	rootOpts := append(slices.Clip(childOpts), trace.WithNewRoot())
	process := &processSpans{t: t, name: name, childOpts: childOpts, rootOpts: rootOpts}
	return func(ctx context.Context, m *Message) error {
		parent := t.propagator.Extract(ctx, &headerCarrier{headers: m.Headers})
		if t.off() {
			return handler(parent, m)
		}
		return process.handle(ctx, parent, m, handler)
	}
}

// processSpans starts the consumer spans of one consumer's handler. It is
// apart from the handler's wrapper so that the wrapper's frame stays small:
// a handler runs on a new goroutine, whose stack grows (and is copied) when
// the first frames need more than it starts with.
type processSpans struct {
	t                   *tracing
	name                string
	childOpts, rootOpts []trace.SpanStartOption
}

// handle runs handler for m within a consumer span; parent is the context
// extracted from m's headers.
func (p *processSpans) handle(ctx, parent context.Context, m *Message, handler Handler) error {
	opts := p.childOpts
	if sc := trace.SpanContextFromContext(parent); !sc.IsValid() || sc.Equal(trace.SpanContextFromContext(ctx)) {
		// Without a producer's context the message starts a trace of
		// its own, not one under whatever span Consume was called in.
		opts = p.rootOpts
	}
	ctx, span := p.t.tracer.Start(parent, p.name, opts...)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(m.Partition))),
			attrOffset.Int64(m.Offset),
			semconv.MessagingMessageBodySize(len(m.Value)),
		)
		if id, ok := m.Header(HeaderMessageID); ok && len(id) > 0 {
			span.SetAttributes(semconv.MessagingMessageID(string(id)))
		}
		if m.DeliveryCount > 0 {
			span.SetAttributes(attrDeliveryCount.Int(int(m.DeliveryCount)))
		}
	}
	err := handler(ctx, m)
	if err != nil {
		recordError(span, err)
	}
	return err
}

// recordError marks a span failed by err.
func recordError(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
}

// errorType is a low-cardinality name of err for the error.type attribute:
// the server's code, or the context's end.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code.String()
	}
	if code := connect.CodeOf(err); code != connect.CodeUnknown {
		return code.String()
	}
	return "_OTHER"
}
