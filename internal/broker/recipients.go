package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weirmq/weir/internal/auth"
)

// MaxDestinations bounds the recipient list of one PublishTo.
const MaxDestinations = 1000

// Destination is one recipient of PublishTo: a stream (a queue is a
// stream), or an exchange with a routing key.
type Destination struct {
	Stream     string
	Exchange   string
	RoutingKey string
}

func (d Destination) String() string {
	if d.Exchange != "" {
		return fmt.Sprintf("exchange %q (routing key %q)", d.Exchange, d.RoutingKey)
	}
	return fmt.Sprintf("stream %q", d.Stream)
}

// DestinationResult is what PublishTo did for one destination.
type DestinationResult struct {
	Destination Destination
	// Results: a stream destination's per-record results.
	Results []PublishResult
	// Streams: the streams an exchange destination reached; none means
	// the records were unroutable there (and counted by the exchange).
	Streams []string
}

// PublishTo publishes the same records to every destination (the recipient
// list pattern) and returns once each holds them under the fsync policy.
// Every destination must exist when the call starts; a failure at one does
// not undo the others (which the error and the results say), and a retry
// with the same message-ids stores nothing twice.
func (b *Broker) PublishTo(ctx context.Context, dests []Destination, recs []Record) ([]DestinationResult, error) {
	for _, d := range dests {
		res, name := auth.ResourceStream, d.Stream
		if d.Exchange != "" {
			res, name = auth.ResourceExchange, d.Exchange
		}
		if err := Authorize(ctx, res, name, auth.ActionPublish); err != nil {
			return nil, err
		}
	}
	if err := b.checkDestinations(dests); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: nothing to publish", ErrInvalidArgument)
	}
	results := make([]DestinationResult, len(dests))
	errs := make([]error, len(dests))
	var wg sync.WaitGroup
	for i, d := range dests {
		results[i].Destination = d
		wg.Go(func() {
			var err error
			if d.Exchange != "" {
				results[i].Streams, err = b.PublishExchange(ctx, d.Exchange, d.RoutingKey, recs)
			} else {
				results[i].Results, err = b.Publish(ctx, d.Stream, recs)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", d, err)
			}
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// checkDestinations validates a recipient list and that its streams and
// exchanges exist.
func (b *Broker) checkDestinations(dests []Destination) error {
	if len(dests) == 0 || len(dests) > MaxDestinations {
		return fmt.Errorf("%w: a recipient list has 1 to %d destinations, got %d", ErrInvalidArgument, MaxDestinations, len(dests))
	}
	seen := make(map[Destination]bool, len(dests))
	for i, d := range dests {
		switch {
		case (d.Stream == "") == (d.Exchange == ""):
			return fmt.Errorf("%w: destination %d must name a stream or an exchange, not both or neither", ErrInvalidArgument, i)
		case d.Stream != "" && d.RoutingKey != "":
			return fmt.Errorf("%w: destination %d: a routing key needs an exchange, not stream %q", ErrInvalidArgument, i, d.Stream)
		case seen[d]:
			return fmt.Errorf("%w: destination %d repeats %s", ErrInvalidArgument, i, d)
		}
		seen[d] = true
		if d.Stream != "" {
			if _, err := b.stream(d.Stream); err != nil {
				return err
			}
			continue
		}
		b.ex.mu.RLock()
		_, ok := b.ex.byName[d.Exchange]
		b.ex.mu.RUnlock()
		if !ok {
			return fmt.Errorf("%w: %q", ErrExchangeNotFound, d.Exchange)
		}
	}
	return nil
}
