package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
)

// The event store: aggregates' events appended with optimistic concurrency
// to one private single-partition log (the global order), indexed in the
// state store. docs/STATE-PROPAGATION.md, "Event store", has the design;
// events_index.go the index and its recovery, events_read.go the reads.

// Event store errors.
var (
	// ErrVersionConflict: the aggregate is not at the expected version.
	// The error is a *VersionConflictError, which holds the current one.
	ErrVersionConflict = errors.New("wrong expected version")
	// ErrEventIDExists: an event id of the batch is already stored, and
	// the batch is not a retry of the append that stored it.
	ErrEventIDExists = errors.New("event id already stored")
)

// ExpectedVersion is what an append expects of its aggregate: a version
// (0 or more: the aggregate has exactly that many events) or one of
// AnyVersion, NoStream, StreamExists.
type ExpectedVersion int64

const (
	// AnyVersion appends whatever the aggregate's version.
	AnyVersion ExpectedVersion = -1
	// NoStream appends only to an aggregate without events (as 0).
	NoStream ExpectedVersion = -2
	// StreamExists appends only to an aggregate with at least one event.
	StreamExists ExpectedVersion = -3
)

// String says what the expectation is, for error messages.
func (e ExpectedVersion) String() string {
	switch e {
	case AnyVersion:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	}
	return strconv.FormatInt(int64(e), 10)
}

// VersionConflictError says that an append's expected version did not hold.
type VersionConflictError struct {
	Aggregate string
	Expected  ExpectedVersion
	Current   int64 // the aggregate's version: its number of events
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("%s: aggregate %q is at version %d, the append expected %s", ErrVersionConflict, e.Aggregate, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// Limits of the event store's names.
const (
	MaxAggregateLength = 255
	MaxEventIDLength   = 255
	MaxEventTypeLength = 255
	// MaxAppendEvents bounds the events of one append.
	MaxAppendEvents = 10000
)

// NewEvent is an event to append.
type NewEvent struct {
	// ID identifies the event (required, unique in the store): a retry of
	// an append with the same ids returns the first append's result.
	ID   string
	Type string // required, e.g. "OrderPlaced"
	Data []byte
	// Metadata is opaque to Weir.
	Metadata      []byte
	ContentType   string
	CorrelationID string
	CausationID   string
}

// Event is a stored event.
type Event struct {
	ID        string
	Type      string
	Aggregate string
	// Version is the event's number in its aggregate, from 1.
	Version int64
	// Position is its place in the global order, from 0.
	Position      int64
	Data          []byte
	Metadata      []byte
	ContentType   string
	CorrelationID string
	CausationID   string
	Time          time.Time
}

// EventsAppended says where an append's events are.
type EventsAppended struct {
	// FirstVersion and LastVersion are the versions of the first and
	// last event; LastVersion is the aggregate's version after the append.
	FirstVersion, LastVersion int64
	// FirstPosition and LastPosition are their global positions.
	FirstPosition, LastPosition int64
	// Duplicate: the events were stored by an earlier append with the
	// same ids (a retry); nothing was stored now.
	Duplicate bool
}

// Headers of an event's record.
const (
	headerCausationID   = "causation-id"
	headerEventVersion  = "event-version"
	headerEventMetadata = "event-metadata"
)

// Category returns the category of an aggregate id: the part before its
// first '-' ("order-123" is in "order"), or the whole id when it has none —
// the convention of EventStoreDB's $ce- streams.
func Category(aggregate string) string {
	if i := strings.IndexByte(aggregate, '-'); i >= 0 {
		return aggregate[:i]
	}
	return aggregate
}

// EventsAuthPrefix starts the names by which authorization rules of
// resource stream cover the event store (a stream name can hold neither '$'
// nor ':', so no stream is meant): appending to aggregate A needs publish on
// "$events:A", reading it consume on "$events:A", following a category C
// consume on "$events:C-*", following every event consume on "$events:*".
// A rule {resource: stream, name: "$events:order-*", actions: [publish,
// consume]} is the order category's.
const EventsAuthPrefix = "$events:"

// authorizeEvents checks act on the event store's name (after the prefix).
func authorizeEvents(ctx context.Context, name string, act auth.Action) error {
	return Authorize(ctx, auth.ResourceStream, EventsAuthPrefix+name, act)
}

// checkEventName refuses an empty or too long name, or one that is not
// UTF-8 text without control characters.
func checkEventName(what, s string, limit int) error {
	if s == "" || len(s) > limit {
		return fmt.Errorf("%w: %s must be 1 to %d bytes, got %d", ErrInvalidArgument, what, limit, len(s))
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalidArgument, what, s)
	}
	for i, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: %s %q has a control character at byte %d", ErrInvalidArgument, what, s, i)
		}
	}
	return nil
}

func checkExpected(e ExpectedVersion) error {
	if e < StreamExists {
		return fmt.Errorf("%w: expected version %d is neither a version (0 or more) nor any (-1), no stream (-2) or stream exists (-3)", ErrInvalidArgument, int64(e))
	}
	return nil
}

func (b *Broker) checkNewEvents(aggregate string, expected ExpectedVersion, events []NewEvent) error {
	if err := checkEventName("aggregate id", aggregate, MaxAggregateLength); err != nil {
		return err
	}
	if err := checkExpected(expected); err != nil {
		return err
	}
	if len(events) == 0 || len(events) > MaxAppendEvents {
		return fmt.Errorf("%w: an append has 1 to %d events, got %d", ErrInvalidArgument, MaxAppendEvents, len(events))
	}
	seen := make(map[string]bool, len(events))
	for i := range events {
		e := &events[i]
		if err := checkEventName(fmt.Sprintf("event %d: id", i), e.ID, MaxEventIDLength); err != nil {
			return err
		}
		if seen[e.ID] {
			return fmt.Errorf("%w: event id %q appears twice in the append", ErrInvalidArgument, e.ID)
		}
		seen[e.ID] = true
		if err := checkEventName(fmt.Sprintf("event %d: type", i), e.Type, MaxEventTypeLength); err != nil {
			return err
		}
		for _, f := range []struct{ name, v string }{{"content type", e.ContentType}, {"correlation id", e.CorrelationID}, {"causation id", e.CausationID}} {
			if f.v != "" {
				if err := checkEventName(fmt.Sprintf("event %d: %s", i, f.name), f.v, MaxEventIDLength); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// eventRecord is the record that stores an event: key the aggregate, value
// the data, the rest in headers.
func eventRecord(aggregate string, version int64, e *NewEvent) Record {
	r := Record{Key: []byte(aggregate), Value: e.Data}
	if r.Value == nil {
		r.Value = []byte{}
	}
	r.Headers = append(r.Headers,
		Header{Key: HeaderType, Value: []byte(e.Type)},
		Header{Key: HeaderMessageID, Value: []byte(e.ID)},
		Header{Key: headerEventVersion, Value: strconv.AppendInt(nil, version, 10)},
	)
	for _, h := range []struct{ k, v string }{{HeaderContentType, e.ContentType}, {HeaderCorrelationID, e.CorrelationID}, {headerCausationID, e.CausationID}} {
		if h.v != "" {
			r.Headers = append(r.Headers, Header{Key: h.k, Value: []byte(h.v)})
		}
	}
	if e.Metadata != nil {
		r.Headers = append(r.Headers, Header{Key: headerEventMetadata, Value: e.Metadata})
	}
	return r
}

// eventOf decodes a record of the event log.
func eventOf(r *Record) (Event, error) {
	e := Event{Aggregate: string(r.Key), Position: r.Offset, Data: r.Value, Time: r.Timestamp}
	version := ""
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderType:
			e.Type = string(h.Value)
		case HeaderMessageID:
			e.ID = string(h.Value)
		case headerEventVersion:
			version = string(h.Value)
		case HeaderContentType:
			e.ContentType = string(h.Value)
		case HeaderCorrelationID:
			e.CorrelationID = string(h.Value)
		case headerCausationID:
			e.CausationID = string(h.Value)
		case headerEventMetadata:
			e.Metadata = h.Value
		}
	}
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v < 1 || e.Aggregate == "" || e.ID == "" {
		return Event{}, fmt.Errorf("broker: the record at position %d of the event log is not an event (aggregate %q, id %q, version %q)", r.Offset, e.Aggregate, e.ID, version)
	}
	e.Version = v
	return e, nil
}

// AppendEvents appends events to an aggregate, atomically (all or none, at
// consecutive versions and global positions), if the aggregate is at the
// expected version; otherwise it returns a *VersionConflictError. A retry
// of an append whose events are stored (ids stored as consecutive events of
// the same aggregate, in that order) returns where they are, marked
// Duplicate, whatever the expected version; an id stored otherwise is
// ErrEventIDExists. The
// call returns once the events are durable in the event log.
func (b *Broker) AppendEvents(ctx context.Context, aggregate string, expected ExpectedVersion, events []NewEvent) (EventsAppended, error) {
	es, err := b.eventStore()
	if err != nil {
		return EventsAppended{}, err
	}
	if err := b.checkNewEvents(aggregate, expected, events); err != nil {
		return EventsAppended{}, err
	}
	if err := authorizeEvents(ctx, aggregate, auth.ActionPublish); err != nil {
		return EventsAppended{}, err
	}
	unlock, err := es.lockAggregate(ctx, aggregate)
	if err != nil {
		return EventsAppended{}, err
	}
	defer unlock()
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	if err := es.claimIDs(ids); err != nil {
		return EventsAppended{}, err
	}
	defer es.releaseIDs(ids)
	if res, dup, err := es.retried(aggregate, ids); err != nil || dup {
		return res, err
	}
	current, err := es.version(aggregate)
	if err != nil {
		return EventsAppended{}, err
	}
	if !expectationHolds(expected, current) {
		return EventsAppended{}, &VersionConflictError{Aggregate: aggregate, Expected: expected, Current: current}
	}
	// The disk watermark refuses new events (a retry above stores nothing).
	if err := b.admitPublish(ctx); err != nil {
		return EventsAppended{}, err
	}
	if err := es.waitRoom(ctx); err != nil {
		return EventsAppended{}, err
	}
	recs := make([]Record, len(events))
	idx := make([]int, len(events))
	size := 0
	for i := range events {
		recs[i] = eventRecord(aggregate, current+1+int64(i), &events[i])
		if n := recordSize(&recs[i]); n > b.cfg.MaxRecordBytes {
			return EventsAppended{}, fmt.Errorf("%w: event %d is %d bytes, the limit is %d", ErrRecordTooLarge, i, n, b.cfg.MaxRecordBytes)
		}
		size += recordSize(&recs[i]) + 64
		idx[i] = i
	}
	if limit := min(int64(maxBatchBytes), es.log.SegmentBytes()/2); int64(size) > limit {
		return EventsAppended{}, fmt.Errorf("%w: an append is stored as one batch of at most %d bytes; this one has about %d", ErrRecordTooLarge, limit, size)
	}
	batch, err := encodeBatch(nil, recs, idx, b.now().UnixMilli())
	if err != nil {
		return EventsAppended{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	// Not cancelled by the caller: an append given up while queued may
	// still be written, and then its versions must be known before the
	// aggregate is unlocked.
	res, err := es.log.Append(context.WithoutCancel(ctx), batch)
	if err != nil {
		if errors.Is(err, storage.ErrClosed) {
			return EventsAppended{}, ErrClosed
		}
		b.disk.noteWriteError(err)
		return EventsAppended{}, fmt.Errorf("broker: append to the event log: %w", err)
	}
	refs := make([]state.EventRef, len(events))
	for i := range refs {
		refs[i] = state.EventRef{Aggregate: aggregate, Version: current + 1 + int64(i), Position: res.BaseOffset + int64(i)}
	}
	es.indexLater(ids, refs)
	return EventsAppended{
		FirstVersion: current + 1, LastVersion: current + int64(len(events)),
		FirstPosition: res.BaseOffset, LastPosition: res.LastOffset,
	}, nil
}

func expectationHolds(expected ExpectedVersion, current int64) bool {
	switch expected {
	case AnyVersion:
		return true
	case NoStream:
		return current == 0
	case StreamExists:
		return current > 0
	}
	return int64(expected) == current
}
