package tracing

import (
	"context"
	"math"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/weirmq/weir/internal/record"
)

// Operations of the spans of records leaving the broker, as
// messaging.operation.name and the first word of the span's name: a
// consumer that pulls (a Kafka Fetch or ShareFetch) receives; records the
// broker pushes (AMQP, MQTT, a native API subscription) are delivered.
const (
	OperationReceive = "receive"
	OperationDeliver = "deliver"
)

// StartDeliverBatch starts the span of a batch of count records of source
// handed to a consumer: "<operation> <source>" (operation OperationReceive
// or OperationDeliver), a producer span (the broker sends), the child of
// the first of contexts (the records' trace contexts, as Extract returns
// them) and linked to the others, as OpenTelemetry's messaging conventions
// have a batch's span link the records' creation contexts; without any it
// is the child of ctx (the request's span). End it with End.
func (t *Tracer) StartDeliverBatch(ctx context.Context, operation, source string, count int, contexts []trace.SpanContext, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	for _, sc := range contexts {
		p.add(sc)
	}
	return t.startDeliverBatch(ctx, operation, source, count, &p, attrs)
}

func (t *Tracer) startDeliverBatch(ctx context.Context, operation, source string, count int, p *parenting, attrs []attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, semconv.MessagingOperationTypeKey.String(operation), semconv.MessagingOperationName(operation),
		semconv.MessagingDestinationName(source), semconv.MessagingBatchMessageCount(count))
	return t.start(ctx, operation+" "+spanDestination(source), trace.SpanKindProducer, p, attrs)
}

// StartReceiveBatches is StartDeliverBatch for the Kafka RecordBatch bytes
// a Fetch returns for one partition of topic: the records at or past from
// (a batch may begin before the offset fetched) are decoded, only when
// tracing is on, for their trace context and counted; transaction markers
// are not records. Batches that do not decode are skipped (the consumer
// checks their CRC).
func (t *Tracer) StartReceiveBatches(ctx context.Context, topic string, partition int32, data []byte, from int64) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nopSpan
	}
	var p parenting
	count := scanBatches(data, from, &p)
	return t.startDeliverBatch(ctx, OperationReceive, topic, count, &p, []attribute.KeyValue{AttrPartition.String(strconv.Itoa(int(partition)))})
}

// scanBatches decodes the records of the Kafka RecordBatch bytes in data
// whose offset is at least from, adding their trace contexts to p, and
// returns how many there are (control batches left out).
func scanBatches(data []byte, from int64, p *parenting) int {
	count := 0
	var it record.Iterator
	var rec record.Record
	for pos := 0; pos < len(data); {
		size, err := record.BatchSize(data[pos:])
		if err != nil || pos+size > len(data) {
			break
		}
		batch := data[pos : pos+size]
		pos += size
		if h, err := record.ParseHeader(batch); err != nil || h.IsControl() || h.LastOffset() < from {
			continue
		}
		if it.Reset(batch) != nil {
			continue
		}
		for it.Next(&rec) {
			if rec.Offset < from {
				continue
			}
			count++
			for _, h := range rec.Headers {
				if h.Key == HeaderTraceParent {
					p.add(Extract(recordHeaders(rec.Headers)))
					break
				}
			}
		}
	}
	return count
}

// allOffsets is the from of scanBatches that takes every record.
const allOffsets = math.MinInt64
