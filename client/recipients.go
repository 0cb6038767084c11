package weir

import (
	"context"
	"fmt"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// Destination is where PublishTo, Request and ScatterGather send records: a
// stream (a queue is a stream), or an exchange with a routing key.
type Destination struct {
	Stream     string
	Exchange   string
	RoutingKey string
}

// ToStream is the destination of a stream or queue.
func ToStream(name string) Destination { return Destination{Stream: name} }

// ToExchange is the destination of an exchange, routing on routingKey.
func ToExchange(name, routingKey string) Destination {
	return Destination{Exchange: name, RoutingKey: routingKey}
}

// name is the stream's or the exchange's name.
func (d Destination) name() string {
	if d.Exchange != "" {
		return d.Exchange
	}
	return d.Stream
}

func (d Destination) String() string {
	if d.Exchange != "" {
		return fmt.Sprintf("exchange %q (routing key %q)", d.Exchange, d.RoutingKey)
	}
	return fmt.Sprintf("%q", d.Stream)
}

// DestinationResult is what PublishTo did at one destination.
type DestinationResult struct {
	Destination Destination
	// Results: at a stream, where each record landed.
	Results []PublishResult
	// Streams: the streams an exchange routed the records to.
	Streams []string
	// Unroutable: the exchange routed the records nowhere (nothing was
	// stored there; the exchange counts them).
	Unroutable bool
}

// PublishTo publishes the same records to every destination in one call
// (the recipient list pattern) and returns once each holds them under the
// server's fsync policy, with one result per destination, in order. Every
// destination must exist. When some fail after others stored the records,
// the error names the failed ones; records with a message-id can then be
// published again to the same list without being stored twice.
func (c *Client) PublishTo(ctx context.Context, dests []Destination, records ...Record) ([]DestinationResult, error) {
	op := fmt.Sprintf("publish to %d destinations", len(dests))
	if len(records) == 0 {
		return nil, fmt.Errorf("%s: %w: no records", op, ErrInvalidArgument)
	}
	if len(dests) == 0 {
		return nil, fmt.Errorf("%s: %w: no destinations", op, ErrInvalidArgument)
	}
	// One span for the call, named after the first destination.
	ctx, records, end := c.tracing.startPublish(ctx, dests[0].name(), nil, records)
	req := &weirpb.PublishToRequest{Records: toPBRecords(records), Destinations: make([]*weirpb.Destination, len(dests))}
	for i, d := range dests {
		req.Destinations[i] = &weirpb.Destination{Stream: d.Stream, Exchange: d.Exchange, RoutingKey: d.RoutingKey}
	}
	resp, err := call(ctx, c, op, c.api.PublishTo, req)
	end(nil, err)
	if err != nil {
		return nil, err
	}
	out := make([]DestinationResult, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		out[i] = DestinationResult{Destination: dests[i], Streams: r.GetStreams(), Unroutable: r.GetUnroutable()}
		if dests[i].Stream != "" {
			out[i].Results = fromPBResults(r.GetResults())
		}
	}
	return out, nil
}
