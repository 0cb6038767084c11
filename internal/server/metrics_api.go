package server

import (
	"context"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/tracing"
)

// httpMetrics are the native API's metrics, counted by apiInterceptor:
//
//	weir_api_requests_total  counter  procedure, code  calls finished (streams when they end), by procedure ("weir.v1.Weir/Publish") and Connect code ("ok", "not_found", ...)
//	weir_api_streams         gauge    procedure        streaming calls open (Subscribe, ...)
type httpMetrics struct {
	requests *prometheus.CounterVec
	streams  *prometheus.GaugeVec
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_api_requests_total",
			Help: "Native API calls finished (streaming calls when they end), by procedure and Connect code (ok, not_found, ...).",
		}, []string{"procedure", "code"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_api_streams",
			Help: "Native API streaming calls open, by procedure.",
		}, []string{"procedure"}),
	}
}

func (m *httpMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.streams}
}

// codeLabel is a call's outcome as a label: "ok" or the Connect code.
func codeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// procedureLabel drops the leading slash: "weir.v1.Weir/Publish".
func procedureLabel(spec connect.Spec) string { return strings.TrimPrefix(spec.Procedure, "/") }

// apiInterceptor counts the native API's calls and, with tracing on,
// starts a server span for each unary call: "publish <destination>" for the
// publishing calls, the child of the trace context of their records (as the
// SDK writes it), and one named after the procedure for the others, the
// child of the caller's traceparent HTTP header when it sends one.
// Streaming calls get a span for their life and one per batch of records
// they send (tracing_stream.go).
type apiInterceptor struct {
	metrics *httpMetrics
	tracer  *tracing.Tracer
}

var _ connect.Interceptor = (*apiInterceptor)(nil)

// newAPIInterceptor returns the interceptor of the native API's services
// (weir.v1.Weir, weir.v1.Events and weir.v1.Connectors): one set of
// metrics, one tracer.
func (s *Server) newAPIInterceptor() *apiInterceptor {
	return &apiInterceptor{metrics: s.metrics.http, tracer: tracing.New(s.tracing(), "weir")}
}

// WrapUnary implements connect.Interceptor.
func (i *apiInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	var ok atomic.Pointer[prometheus.Counter]
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		procedure := procedureLabel(req.Spec())
		ctx, span := i.startSpan(ctx, procedure, req)
		resp, err := next(ctx, req)
		tracing.End(span, err)
		if err != nil {
			i.metrics.requests.WithLabelValues(procedure, codeLabel(err)).Inc()
			return resp, err
		}
		// The handler wrapped serves one procedure: its "ok" counter is
		// looked up once, not on every call.
		counter := ok.Load()
		if counter == nil {
			c := i.metrics.requests.WithLabelValues(procedure, "ok")
			counter = &c
			ok.Store(counter)
		}
		(*counter).Inc()
		return resp, err
	}
}

// WrapStreamingClient implements connect.Interceptor; the server makes no
// calls.
func (i *apiInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (i *apiInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		procedure := procedureLabel(conn.Spec())
		open := i.metrics.streams.WithLabelValues(procedure)
		open.Inc()
		ctx, conn, span := i.startStreamSpan(ctx, procedure, conn)
		err := next(ctx, conn)
		tracing.End(span, err)
		open.Dec()
		i.metrics.requests.WithLabelValues(procedure, codeLabel(err)).Inc()
		return err
	}
}

// publishing is a request that carries records.
type publishing interface {
	GetRecords() []*weirpb.Record
}

func (i *apiInterceptor) startSpan(ctx context.Context, procedure string, req connect.AnyRequest) (context.Context, trace.Span) {
	if !i.tracer.Enabled() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	method := semconv.RPCMethod(procedure[strings.LastIndexByte(procedure, '/')+1:])
	if pub, ok := req.Any().(publishing); ok {
		recs := pub.GetRecords()
		var contexts []trace.SpanContext
		for _, r := range recs {
			if sc := tracing.Extract(pbHeaders(r.GetHeaders())); sc.IsValid() {
				contexts = append(contexts, sc)
			}
		}
		return i.tracer.StartPublishContexts(ctx, publishDestination(req.Any()), len(recs), contexts, method)
	}
	return i.tracer.StartRequest(ctx, procedure, propagation.HeaderCarrier(req.Header()), method)
}

// publishDestination names where a publishing request goes: its stream,
// its exchange, or its destinations joined with commas.
func publishDestination(msg any) string {
	switch m := msg.(type) {
	case *weirpb.PublishRequest:
		return m.GetStream()
	case *weirpb.PublishExchangeRequest:
		return m.GetExchange()
	case *weirpb.PublishToRequest:
		names := make([]string, 0, len(m.GetDestinations()))
		for _, d := range m.GetDestinations() {
			name := d.GetStream()
			if name == "" {
				name = d.GetExchange()
			}
			names = append(names, name)
		}
		return strings.Join(names, ",")
	}
	return ""
}

// pbHeaders adapts a native API record's headers to
// propagation.TextMapCarrier (for reading).
type pbHeaders []*weirpb.Header

func (h pbHeaders) Get(key string) string {
	for _, x := range h {
		if strings.EqualFold(x.GetKey(), key) {
			return string(x.GetValue())
		}
	}
	return ""
}

func (h pbHeaders) Set(string, string) {}

func (h pbHeaders) Keys() []string {
	keys := make([]string, len(h))
	for i, x := range h {
		keys[i] = x.GetKey()
	}
	return keys
}
