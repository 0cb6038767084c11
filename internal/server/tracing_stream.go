package server

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/tracing"
)

// Spans of the native API's streaming calls (Subscribe, OpenInbox,
// PublishStream, the Events service's subscriptions), when tracing is on.
// As OpenTelemetry's RPC conventions have it, a streaming call is one
// server span for its whole life, named after the procedure, the child of
// the caller's traceparent header when it sends one. Each batch of records
// a subscription or inbox sends gets a span of its own, "deliver
// <stream>" (tracing.StartDeliverBatch): the child of the trace context
// of the first record that carries one, linked to the others', or of the
// call's span when none does, so that a record's trace goes on to its
// consumer as it does through AMQP. With tracing off the call's
// connection is not wrapped.

// startStreamSpan starts the span of a streaming call and wraps conn so
// that the batches it sends get theirs; end the span with tracing.End.
func (i *apiInterceptor) startStreamSpan(ctx context.Context, procedure string, conn connect.StreamingHandlerConn) (context.Context, connect.StreamingHandlerConn, trace.Span) {
	if !i.tracer.Enabled() {
		return ctx, conn, trace.SpanFromContext(context.Background())
	}
	method := semconv.RPCMethod(procedure[strings.LastIndexByte(procedure, '/')+1:])
	ctx, span := i.tracer.StartRequest(ctx, procedure, propagation.HeaderCarrier(conn.RequestHeader()), method)
	return ctx, &tracedStream{StreamingHandlerConn: conn, ctx: ctx, tracer: i.tracer}, span
}

// tracedStream is a streaming call's connection whose record batches sent
// get a deliver span.
type tracedStream struct {
	connect.StreamingHandlerConn
	ctx    context.Context // the call's span's
	tracer *tracing.Tracer
}

// recordsMessage is a message of a streaming response that may carry
// records (SubscribeResponse, InboxResponse).
type recordsMessage interface {
	GetRecords() *weirpb.Records
}

// Send implements connect.StreamingHandlerConn.
func (s *tracedStream) Send(msg any) error {
	m, ok := msg.(recordsMessage)
	if !ok || len(m.GetRecords().GetRecords()) == 0 {
		return s.StreamingHandlerConn.Send(msg)
	}
	recs := m.GetRecords().GetRecords()
	var contexts []trace.SpanContext
	for _, r := range recs {
		if sc := tracing.Extract(pbHeaders(r.GetHeaders())); sc.IsValid() {
			contexts = append(contexts, sc)
		}
	}
	// Named after the stream of the first record (a group member's batch
	// may mix the streams it subscribed to).
	_, span := s.tracer.StartDeliverBatch(s.ctx, tracing.OperationDeliver, recs[0].GetStream(), len(recs), contexts)
	err := s.StreamingHandlerConn.Send(msg)
	tracing.End(span, err)
	return err
}
