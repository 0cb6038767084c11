package weir

import (
	"context"
	"fmt"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// Publish stores records in a stream and returns where each one landed, in
// the same order. A record with a key goes to the partition of its key, one
// without to the next partition in turn. Publish returns once the records
// are committed under the server's fsync policy (by default: on disk). The
// records are stored together or not at all. Publish runs in a producer
// span and writes its trace context into the records' headers, with the
// client's tracer provider and propagator (see WithTracerProvider).
func (c *Client) Publish(ctx context.Context, stream string, records ...Record) ([]PublishResult, error) {
	return c.tracedPublish(ctx, stream, nil, records)
}

// PublishPartition is Publish into one given partition.
func (c *Client) PublishPartition(ctx context.Context, stream string, partition int32, records ...Record) ([]PublishResult, error) {
	return c.tracedPublish(ctx, stream, &partition, records)
}

func (c *Client) publish(ctx context.Context, stream string, partition *int32, records []Record) ([]PublishResult, error) {
	op := "publish to " + quote(stream)
	if len(records) == 0 {
		return nil, fmt.Errorf("%s: %w: no records", op, ErrInvalidArgument)
	}
	resp, err := call(ctx, c, op, c.api.Publish, &weirpb.PublishRequest{
		Stream:    stream,
		Records:   toPBRecords(records),
		Partition: partition,
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(records) {
		return nil, fmt.Errorf("%s: %w: %d results for %d records", op, ErrInternal, len(resp.GetResults()), len(records))
	}
	return fromPBResults(resp.GetResults()), nil
}
