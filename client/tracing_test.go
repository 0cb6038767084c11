package weir_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	weir "github.com/weirmq/weir/client"
)

// tracedClient is a client of srv whose spans go to a recorder of its own,
// as a service with its own tracer provider would have.
func tracedClient(t *testing.T, srv *testServer) (*weir.Client, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return srv.dial(t, weir.WithTracerProvider(tp), weir.WithPropagator(propagation.TraceContext{})), rec, tp
}

// spansNamed returns the ended spans of rec with the given name.
func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// checkAttrs fails the test unless span has each of want's attributes.
func checkAttrs(t *testing.T, span sdktrace.ReadOnlySpan, want map[attribute.Key]attribute.Value) {
	t.Helper()
	got := make(map[attribute.Key]attribute.Value)
	for _, kv := range span.Attributes() {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: %s = %v, want %v", span.Name(), k, got[k].Emit(), v.Emit())
		}
	}
}

// TestTracingGroup: a record published within a request's span gets a
// producer span, child of the request, whose context travels in the
// record's traceparent header; the group consumer of another service
// handles it in a consumer span that is the producer span's child.
func TestTracingGroup(t *testing.T) {
	srv := startServer(t)
	pub, pubSpans, pubTP := tracedClient(t, srv)
	sub, subSpans, _ := tracedClient(t, srv)
	ctx := t.Context()
	createStream(t, pub, "orders", 2)

	reqCtx, reqSpan := pubTP.Tracer("test").Start(ctx, "request")
	headers := make([]weir.Header, 1, 4) // room for Publish to write into by mistake
	headers[0] = weir.Header{Key: weir.HeaderMessageID, Value: []byte("order-1")}
	res, err := pub.Publish(reqCtx, "orders", weir.Record{Key: []byte("k"), Value: []byte("paid"), Headers: headers})
	reqSpan.End()
	if err != nil {
		t.Fatal(err)
	}
	if extra := headers[:cap(headers)][1]; extra.Key != "" {
		t.Errorf("Publish wrote header %q into the caller's slice", extra.Key)
	}
	published := spansNamed(pubSpans, "publish orders")
	if len(published) != 1 {
		t.Fatalf("%d publish spans, want 1", len(published))
	}
	ps := published[0]
	if ps.SpanKind() != trace.SpanKindProducer || ps.Parent().SpanID() != reqSpan.SpanContext().SpanID() {
		t.Errorf("publish span: kind %v, parent %v; want producer, child of the request", ps.SpanKind(), ps.Parent().SpanID())
	}
	checkAttrs(t, ps, map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("weir"),
		"messaging.destination.name":         attribute.StringValue("orders"),
		"messaging.operation.type":           attribute.StringValue("send"),
		"messaging.operation.name":           attribute.StringValue("publish"),
		"messaging.message.id":               attribute.StringValue("order-1"),
		"messaging.destination.partition.id": attribute.StringValue(itoa(res[0].Partition)),
		"messaging.weir.offset":              attribute.Int64Value(res[0].Offset),
	})

	// The stored record carries the producer span's context.
	fetched, err := pub.Fetch(ctx, "orders", res[0].Partition, res[0].Offset, 0, 0)
	if err != nil || len(fetched.Records) == 0 {
		t.Fatalf("Fetch: %+v, %v", fetched, err)
	}
	tp, _ := fetched.Records[0].Header(weir.HeaderTraceParent)
	if want := "00-" + ps.SpanContext().TraceID().String() + "-" + ps.SpanContext().SpanID().String() + "-01"; string(tp) != want {
		t.Errorf("traceparent %q, want %q", tp, want)
	}

	var mu sync.Mutex
	var handlerSC trace.SpanContext
	cons, err := sub.Consume(ctx, "orders", func(ctx context.Context, m *weir.Message) error {
		mu.Lock()
		handlerSC = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return nil
	}, weir.Group("billing"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 10*time.Second, "the process span", func() bool { return len(spansNamed(subSpans, "process orders")) == 1 })
	cs := spansNamed(subSpans, "process orders")[0]
	if cs.SpanContext().TraceID() != ps.SpanContext().TraceID() {
		t.Errorf("process span in trace %v, the publish span in %v", cs.SpanContext().TraceID(), ps.SpanContext().TraceID())
	}
	if cs.Parent().SpanID() != ps.SpanContext().SpanID() || !cs.Parent().IsRemote() {
		t.Errorf("process span's parent %v, want the publish span %v, remote", cs.Parent().SpanID(), ps.SpanContext().SpanID())
	}
	if cs.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("process span kind %v", cs.SpanKind())
	}
	mu.Lock()
	if handlerSC.SpanID() != cs.SpanContext().SpanID() {
		t.Errorf("the handler ran in span %v, not the process span %v", handlerSC.SpanID(), cs.SpanContext().SpanID())
	}
	mu.Unlock()
	checkAttrs(t, cs, map[attribute.Key]attribute.Value{
		"messaging.system":                   attribute.StringValue("weir"),
		"messaging.destination.name":         attribute.StringValue("orders"),
		"messaging.operation.type":           attribute.StringValue("process"),
		"messaging.operation.name":           attribute.StringValue("process"),
		"messaging.consumer.group.name":      attribute.StringValue("billing"),
		"messaging.message.id":               attribute.StringValue("order-1"),
		"messaging.destination.partition.id": attribute.StringValue(itoa(res[0].Partition)),
		"messaging.weir.offset":              attribute.Int64Value(res[0].Offset),
	})
}

// TestTracingSharedAndProducer: records sent by a Producer each get a
// producer span that ends with their result; a shared consumer's process
// spans continue their traces, and a failed handler call marks its span.
// A record without trace context starts a trace of its own.
func TestTracingSharedAndProducer(t *testing.T) {
	srv := startServer(t)
	pub, pubSpans, _ := tracedClient(t, srv)
	sub, subSpans, subTP := tracedClient(t, srv)
	ctx := t.Context()
	createQueue(t, pub, weir.QueueConfig{Name: "jobs", Subscription: weir.SubscriptionConfig{
		Backoff: weir.Backoff{Initial: 10 * time.Millisecond, Multiplier: 1}}})

	p := pub.NewProducer("jobs")
	futures := []*weir.Future{
		p.SendFuture(ctx, weir.Record{Value: []byte("ok")}),
		p.SendFuture(ctx, weir.Record{Value: []byte("fails once")}),
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A record published by a client that does not trace.
	plain := srv.dial(t, weir.WithTracerProvider(noop.NewTracerProvider()), weir.WithPropagator(propagation.NewCompositeTextMapPropagator()))
	if _, err := plain.Publish(ctx, "jobs", weir.Record{Value: []byte("untraced")}); err != nil {
		t.Fatal(err)
	}
	sent := spansNamed(pubSpans, "publish jobs")
	if len(sent) != 2 {
		t.Fatalf("%d publish spans, want one per record sent", len(sent))
	}
	traceOf := make(map[trace.TraceID]bool)
	for _, s := range sent {
		traceOf[s.SpanContext().TraceID()] = true
		if s.Parent().IsValid() {
			t.Errorf("publish span without a caller's span has parent %v", s.Parent())
		}
		checkAttrs(t, s, map[attribute.Key]attribute.Value{"messaging.destination.partition.id": attribute.StringValue("0")})
	}
	if len(traceOf) != 2 {
		t.Errorf("the two records' spans share a trace")
	}

	// Consume within a span of the consumer's own: a record without trace
	// context must not become its child.
	consumeCtx, startup := subTP.Tracer("test").Start(ctx, "startup")
	defer startup.End()
	var mu sync.Mutex
	failed := false
	cons, err := sub.Consume(consumeCtx, "jobs", func(_ context.Context, m *weir.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Value) == "fails once" && !failed {
			failed = true
			return errors.New("worker busy")
		}
		return nil
	}, weir.Shared(""))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	waitDepth(t, sub, "jobs", "jobs", 0)
	eventually(t, 5*time.Second, "four process spans", func() bool { return len(spansNamed(subSpans, "process jobs")) == 4 })
	var errored, redelivered, roots int
	for _, s := range spansNamed(subSpans, "process jobs") {
		if !s.Parent().IsValid() {
			roots++
			if s.SpanContext().TraceID() == startup.SpanContext().TraceID() {
				t.Error("the untraced record's span joined the consumer's startup trace")
			}
			continue
		}
		if !traceOf[s.SpanContext().TraceID()] {
			t.Errorf("process span in trace %v, of no publish span", s.SpanContext().TraceID())
		}
		checkAttrs(t, s, map[attribute.Key]attribute.Value{"messaging.destination.subscription.name": attribute.StringValue("jobs")})
		for _, kv := range s.Attributes() {
			if kv.Key == "messaging.weir.delivery_count" && kv.Value.AsInt64() == 2 {
				redelivered++
			}
		}
		if s.Status().Code == codes.Error {
			errored++
			if !strings.Contains(s.Status().Description, "worker busy") {
				t.Errorf("error status %q", s.Status().Description)
			}
		}
	}
	if errored != 1 || redelivered != 1 || roots != 1 {
		t.Errorf("%d failed, %d redelivered, %d root process spans; want 1, 1, 1", errored, redelivered, roots)
	}
}

// TestTracingDefaults: a client without tracing options uses the global
// provider and propagator, which do nothing unless set: records are
// published as given, and a traceparent they carry is kept.
func TestTracingDefaults(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "plain", 1)
	const forwarded = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	_, err := c.Publish(ctx, "plain", weir.Record{Value: []byte("a")},
		weir.Record{Value: []byte("b"), Headers: []weir.Header{{Key: weir.HeaderTraceParent, Value: []byte(forwarded)}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Fetch(ctx, "plain", 0, 0, 0, 0)
	if err != nil || len(res.Records) != 2 {
		t.Fatalf("Fetch: %+v, %v", res, err)
	}
	if len(res.Records[0].Headers) != 0 {
		t.Errorf("headers %v added without tracing configured", res.Records[0].Headers)
	}
	if got := res.Records[1].Headers; len(got) != 1 || string(got[0].Value) != forwarded {
		t.Errorf("forwarded traceparent became %v", got)
	}
}

// TestTracingReplacesTraceparent: a record that carries the traceparent of
// an earlier hop, with another capitalization, is published with the
// producer span's context only.
func TestTracingReplacesTraceparent(t *testing.T) {
	srv := startServer(t)
	c, spans, _ := tracedClient(t, srv)
	ctx := t.Context()
	createStream(t, c, "hops", 1)
	_, err := c.Publish(ctx, "hops", weir.Record{Value: []byte("x"), Headers: []weir.Header{
		{Key: "Traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		{Key: "other", Value: []byte("kept")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Fetch(ctx, "hops", 0, 0, 0, 0)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("Fetch: %+v, %v", res, err)
	}
	var names []string
	for _, h := range res.Records[0].Headers {
		names = append(names, h.Key)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "other,traceparent" {
		t.Errorf("headers %v, want other and one traceparent", names)
	}
	tp, _ := res.Records[0].Header(weir.HeaderTraceParent)
	span := spansNamed(spans, "publish hops")[0]
	if !strings.Contains(string(tp), span.SpanContext().SpanID().String()) {
		t.Errorf("traceparent %q is not the publish span's", tp)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestTracingGlobalProvider: a client given no provider uses the global
// one. While none is installed it makes no spans, yet the caller's trace
// context still reaches the records (Publish and Producer) and a record's
// context reaches the handler; once the application installs a provider,
// after Dial, the client's spans are recorded by it.
func TestTracingGlobalProvider(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t, weir.WithPropagator(propagation.TraceContext{}))
	ctx := t.Context()
	createStream(t, c, "global", 1)
	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19}, SpanID: trace.SpanID{0xb7, 0xad}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	callerCtx := trace.ContextWithRemoteSpanContext(ctx, caller)
	if _, err := c.Publish(callerCtx, "global", weir.Record{Value: []byte("published")}); err != nil {
		t.Fatal(err)
	}
	prod := c.NewProducer("global")
	sent := make(chan error, 1)
	prod.Send(callerCtx, weir.Record{Value: []byte("sent")}, func(_ weir.PublishResult, err error) { sent <- err })
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err := prod.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fetched, err := c.Fetch(ctx, "global", 0, 0, 0, 0)
	if err != nil || len(fetched.Records) != 2 {
		t.Fatalf("Fetch: %+v, %v", fetched, err)
	}
	for _, r := range fetched.Records {
		if tp, _ := r.Header(weir.HeaderTraceParent); !strings.Contains(string(tp), caller.TraceID().String()) {
			t.Errorf("record %q: traceparent %q, want one of the caller's trace %v", r.Value, tp, caller.TraceID())
		}
	}

	handled := make(chan trace.SpanContext, 16)
	cons, err := c.Consume(ctx, "global", func(ctx context.Context, m *weir.Message) error {
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}, weir.Group("global-readers"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for range 2 {
		select {
		case sc := <-handled:
			if sc.TraceID() != caller.TraceID() {
				t.Errorf("the handler ran in trace %v, want the record's %v", sc.TraceID(), caller.TraceID())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the records were not handled")
		}
	}

	// An application installs its provider after Dial.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	if _, err := c.Publish(callerCtx, "global", weir.Record{Value: []byte("traced")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the record published after the provider was installed was not handled")
	}
	eventually(t, 10*time.Second, "publish and process spans", func() bool {
		return len(spansNamed(rec, "publish global")) == 1 && len(spansNamed(rec, "process global")) == 1
	})
	if ps := spansNamed(rec, "publish global")[0]; ps.Parent().SpanID() != caller.SpanID() {
		t.Errorf("publish span's parent %v, want the caller's %v", ps.Parent().SpanID(), caller.SpanID())
	}
}
