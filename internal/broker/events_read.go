package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
)

// MaxReadEvents bounds the events of one read.
const MaxReadEvents = 10000

// indexedReadBytes is how much an indexed read takes beyond the batch that
// holds the position it wants: the events of one aggregate are scattered
// through the log, so reading (and decoding) far ahead is mostly waste.
const indexedReadBytes = 4 << 10

// ReadAggregate returns an aggregate's events from version from (1: the
// first) on, at most max of them (0: MaxReadEvents), in version order. It
// sees every append that returned before it was called. An aggregate
// without events has none: that is not an error.
func (b *Broker) ReadAggregate(ctx context.Context, aggregate string, from int64, max int) ([]Event, error) {
	es, err := b.eventStore()
	if err != nil {
		return nil, err
	}
	if err := checkEventName("aggregate id", aggregate, MaxAggregateLength); err != nil {
		return nil, err
	}
	if err := authorizeEvents(ctx, aggregate, auth.ActionConsume); err != nil {
		return nil, err
	}
	if from < 1 {
		from = 1
	}
	if max <= 0 || max > MaxReadEvents {
		max = MaxReadEvents
	}
	// Appends that returned are in the log; wait until the index has them.
	if err := es.waitIndexed(ctx, es.log.EndOffset()); err != nil {
		return nil, err
	}
	positions, err := b.state.AggregatePositions(aggregate, from, max)
	if err != nil {
		return nil, err
	}
	return es.readPositions(aggregate, "", positions)
}

// readPositions reads the events at the given positions (ascending), which
// the index says are those versions of aggregate or, when aggregate is
// empty, of aggregates of category: a disagreement with the log is an
// error. The events of one append are one batch, so a read usually serves
// several.
func (es *eventStore) readPositions(aggregate, category string, want []state.VersionPosition) ([]Event, error) {
	what := fmt.Sprintf("%q", aggregate)
	if aggregate == "" {
		what = fmt.Sprintf("category %q", category)
	}
	out := make([]Event, 0, len(want))
	for len(want) > 0 {
		// The batch holding the position (a read returns its first batch
		// whole), and what follows within a small window.
		data, err := es.log.Read(nil, want[0].Position, indexedReadBytes)
		if err != nil {
			return nil, fmt.Errorf("broker: read event at position %d: %w", want[0].Position, err)
		}
		recs, _, err := decodeRecords(nil, data, 0, want[0].Position)
		if err != nil {
			return nil, fmt.Errorf("broker: read event at position %d: %w", want[0].Position, err)
		}
		taken := 0
		for i := range recs {
			if len(want) == 0 || recs[i].Offset > want[0].Position {
				break
			}
			if recs[i].Offset < want[0].Position {
				continue
			}
			ev, err := eventOf(&recs[i])
			if err != nil {
				return nil, err
			}
			if (aggregate != "" && ev.Aggregate != aggregate) || (aggregate == "" && Category(ev.Aggregate) != category) || ev.Version != want[0].Version {
				return nil, fmt.Errorf("broker: the event index says position %d is version %d of %s, the log holds version %d of %q", ev.Position, want[0].Version, what, ev.Version, ev.Aggregate)
			}
			out = append(out, ev)
			want = want[1:]
			taken++
		}
		if taken == 0 {
			return nil, fmt.Errorf("broker: the event index names position %d (version %d of %s), which the event log does not hold", want[0].Position, want[0].Version, what)
		}
	}
	return out, nil
}

// maxCategoryScan bounds the events one category read skips before it
// returns (with no events and Next past them).
const maxCategoryScan = 100_000

// EventRead is what ReadEvents returns.
type EventRead struct {
	Events []Event
	// Next is the position to read from next: after the last event
	// returned, or past the events the category filter skipped.
	Next int64
	// End is the event log's end when the read was answered.
	End int64
}

// ReadEvents reads the global order of events from position from on: at
// most max events (0: MaxReadEvents), only those of the category when it is
// not empty. When nothing is there yet it waits up to wait for an append.
// A category read may return no events and a Next past the events of other
// categories it skipped (at most maxCategoryScan of them per call).
// Positions become readable in order (the event log publishes its end only
// after everything below it is written), so a reader that goes on from Next
// never skips an event committed late.
//
// A category is read from the category index below the index's checkpoint
// (every event there is indexed) and by filtering the log from there on:
// the index may lag the log, never run ahead of it, so the tail it has not
// reached yet is read as it was before there was an index.
func (b *Broker) ReadEvents(ctx context.Context, from int64, max int, category string, wait time.Duration) (EventRead, error) {
	es, err := b.eventStore()
	if err != nil {
		return EventRead{}, err
	}
	if from < 0 {
		return EventRead{}, fmt.Errorf("%w: position %d is negative", ErrInvalidArgument, from)
	}
	if category != "" {
		if err := checkEventName("category", category, MaxAggregateLength); err != nil {
			return EventRead{}, err
		}
	}
	scope := "*"
	if category != "" {
		scope = category + "-*"
	}
	if err := authorizeEvents(ctx, scope, auth.ActionConsume); err != nil {
		return EventRead{}, err
	}
	if max <= 0 || max > MaxReadEvents {
		max = MaxReadEvents
	}
	end := es.log.EndOffset()
	if from > end {
		return EventRead{}, fmt.Errorf("%w: the event log holds positions 0 to %d, not %d", ErrOffsetOutOfRange, end, from)
	}
	var indexed []Event
	if category != "" && !es.filterCategories.Load() {
		indexed, from, err = es.readCategoryIndexed(category, from, max)
		if err != nil {
			return EventRead{}, err
		}
		if len(indexed) == max {
			return EventRead{Events: indexed, Next: from, End: es.log.EndOffset()}, nil
		}
		if len(indexed) > 0 {
			wait = 0 // the tail is read only for what is there now
		}
	}
	deadline := time.Now().Add(wait)
	for scanned := 0; ; {
		res, err := fetchLog(ctx, nil, es.log, 0, from, readChunk, time.Until(deadline))
		if err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, storage.ErrClosed) {
				return EventRead{}, ErrClosed
			}
			return EventRead{}, err
		}
		out := EventRead{Events: indexed, Next: res.NextOffset, End: res.HighWater}
		for i := range res.Records {
			r := &res.Records[i]
			if len(out.Events) == max {
				out.Next = r.Offset
				break
			}
			if category != "" && Category(string(r.Key)) != category {
				continue
			}
			ev, err := eventOf(r)
			if err != nil {
				return EventRead{}, err
			}
			out.Events = append(out.Events, ev)
		}
		// A category read that skipped everything goes on while there is
		// more or time to wait, up to maxCategoryScan records: then the
		// caller hears where it got to.
		scanned += len(res.Records)
		if len(out.Events) > 0 || out.Next == from || scanned >= maxCategoryScan || (out.Next >= out.End && !time.Now().Before(deadline)) {
			return out, nil
		}
		from = out.Next
	}
}

// readCategoryIndexed reads a category's events from position from on
// through the category index, up to the index's checkpoint (below it every
// event is indexed), at most max of them. It returns them and the position
// after what it covered: after the last event when there are max of them,
// else the checkpoint, from where the caller filters the log.
func (es *eventStore) readCategoryIndexed(category string, from int64, max int) ([]Event, int64, error) {
	es.mu.Lock()
	indexed := es.checkpoint
	es.mu.Unlock()
	if from >= indexed {
		return nil, from, nil
	}
	positions, err := es.b.state.CategoryPositions(category, from, indexed, max)
	if err != nil || len(positions) == 0 {
		return nil, indexed, err
	}
	events, err := es.readPositions("", category, positions)
	if err != nil {
		return nil, 0, err
	}
	if len(events) == max {
		return events, events[len(events)-1].Position + 1, nil
	}
	return events, indexed, nil
}

// EventLogEnd is the position the next event will have: a reader starting
// there sees only events appended from now on.
func (b *Broker) EventLogEnd() (int64, error) {
	es, err := b.eventStore()
	if err != nil {
		return 0, err
	}
	return es.log.EndOffset(), nil
}
