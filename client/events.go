package weir

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// The event store: events appended to aggregates with optimistic
// concurrency, read per aggregate, and followed in one global order.

// ExpectedVersion is what Append expects of the aggregate: a version (0 or
// more: the aggregate has exactly that many events), AnyVersion, NoStream or
// StreamExists.
type ExpectedVersion int64

const (
	// AnyVersion appends whatever the aggregate's version.
	AnyVersion ExpectedVersion = -1
	// NoStream appends only to an aggregate without events.
	NoStream ExpectedVersion = -2
	// StreamExists appends only to an aggregate with events.
	StreamExists ExpectedVersion = -3
)

// FromEnd, as a subscription's start position, follows only events
// appended after the subscription starts.
const FromEnd int64 = -1

// ErrVersionConflict matches (errors.Is) an Append whose aggregate was not
// at the expected version; the error is a *VersionConflictError.
var ErrVersionConflict = errors.New("wrong expected version")

// VersionConflictError is an Append refused because the aggregate was not
// at the expected version: another writer appended first. Read the
// aggregate again, decide again, and append at Current.
type VersionConflictError struct {
	Aggregate string
	Expected  ExpectedVersion
	Current   int64
	err       error // the *Error the server answered (code Aborted)
}

func (e *VersionConflictError) Error() string { return e.err.Error() }

// Unwrap returns the server's *Error (errors.Is(err, ErrAborted) holds).
func (e *VersionConflictError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// EventData is an event to append.
type EventData struct {
	// ID identifies the event in the store; Append fills an empty one with
	// a random UUID. A retried Append with the same ids stores nothing
	// twice and answers the first one's result.
	ID            string
	Type          string // required, e.g. "OrderPlaced"
	Data          []byte
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
	Version   int64 // in its aggregate, from 1
	Position  int64 // in the global order, from 0
	Data      []byte
	Metadata  []byte

	ContentType   string
	CorrelationID string
	CausationID   string
	Time          time.Time
}

// AppendResult says where appended events are.
type AppendResult struct {
	FirstVersion, LastVersion   int64 // LastVersion: the aggregate's version now
	FirstPosition, LastPosition int64
	// Duplicate: a retry; the events were stored by an earlier Append.
	Duplicate bool
}

// Category returns an aggregate id's category: the part before its first
// '-' ("order-123" is in "order"), or the whole id.
func Category(aggregate string) string {
	for i := 0; i < len(aggregate); i++ {
		if aggregate[i] == '-' {
			return aggregate[:i]
		}
	}
	return aggregate
}

// newEventID is a random (version 4) UUID.
func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// maxAppendAttempts bounds the attempts of an Append that cannot reach the
// server; repeating it is safe, since the ids make it idempotent.
const maxAppendAttempts = 5

// Append appends events to an aggregate, all or none, if it is at the
// expected version; otherwise it returns a *VersionConflictError (matching
// ErrVersionConflict) with the aggregate's current version. Events without
// an ID get one, so a retry after an unknown outcome (which Append does
// itself while the server is unavailable) stores nothing twice.
func (c *Client) Append(ctx context.Context, aggregate string, expected ExpectedVersion, events ...EventData) (*AppendResult, error) {
	req := &weirpb.AppendEventsRequest{Aggregate: aggregate}
	switch {
	case expected == AnyVersion:
		req.Expected = &weirpb.AppendEventsRequest_Any{Any: true}
	case expected == NoStream:
		req.Expected = &weirpb.AppendEventsRequest_NoStream{NoStream: true}
	case expected == StreamExists:
		req.Expected = &weirpb.AppendEventsRequest_StreamExists{StreamExists: true}
	case expected >= 0:
		req.Expected = &weirpb.AppendEventsRequest_ExpectedVersion{ExpectedVersion: int64(expected)}
	default:
		return nil, fmt.Errorf("%w: expected version %d", ErrInvalidArgument, int64(expected))
	}
	for _, e := range events {
		if e.ID == "" {
			e.ID = newEventID()
		}
		req.Events = append(req.Events, &weirpb.ProposedEvent{
			Id: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata,
			ContentType: e.ContentType, CorrelationId: e.CorrelationID, CausationId: e.CausationID,
		})
	}
	op := "append to " + quote(aggregate)
	for attempt := 0; ; attempt++ {
		resp, err := call(ctx, c, op, c.events.AppendEvents, req)
		if err == nil {
			return &AppendResult{
				FirstVersion: resp.GetFirstVersion(), LastVersion: resp.GetLastVersion(),
				FirstPosition: resp.GetFirstPosition(), LastPosition: resp.GetLastPosition(),
				Duplicate: resp.GetDuplicate(),
			}, nil
		}
		if conflict := versionConflict(err); conflict != nil {
			return nil, conflict
		}
		if connect.CodeOf(err) != connect.CodeUnavailable || attempt+1 == maxAppendAttempts || !c.backoff.wait(ctx, c.closed, attempt) {
			return nil, err
		}
	}
}

// versionConflict returns err as a *VersionConflictError when it is one.
func versionConflict(err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != connect.CodeAborted {
		return nil
	}
	for _, d := range e.err.Details() {
		v, derr := d.Value()
		if c, ok := v.(*weirpb.AppendConflict); derr == nil && ok {
			return &VersionConflictError{Aggregate: c.GetAggregate(), Expected: ExpectedVersion(c.GetExpected()), Current: c.GetCurrentVersion(), err: err}
		}
	}
	return nil
}

// Read returns an aggregate's events from version fromVersion (1: the
// first) on, all of them (paging through the server's limit per call). An
// aggregate without events has none: not an error.
func (c *Client) Read(ctx context.Context, aggregate string, fromVersion int64) ([]Event, error) {
	var out []Event
	for {
		resp, err := call(ctx, c, "read aggregate "+quote(aggregate), c.events.ReadAggregate,
			&weirpb.ReadAggregateRequest{Aggregate: aggregate, FromVersion: fromVersion})
		if err != nil {
			return nil, err
		}
		evs := resp.GetEvents()
		if len(evs) == 0 {
			return out, nil
		}
		for _, e := range evs {
			out = append(out, fromPBEvent(e))
		}
		fromVersion = evs[len(evs)-1].GetVersion() + 1
	}
}

// ReadAll reads at most max events (0: the server's limit) of the global
// order from position on, of one category when category is not empty. It
// returns the events and the position to read from next.
func (c *Client) ReadAll(ctx context.Context, position int64, max int, category string) ([]Event, int64, error) {
	resp, err := call(ctx, c, "read events", c.events.ReadAll,
		&weirpb.ReadAllRequest{FromPosition: position, MaxEvents: int32(max), Category: category})
	if err != nil {
		return nil, 0, err
	}
	out := make([]Event, 0, len(resp.GetEvents()))
	for _, e := range resp.GetEvents() {
		out = append(out, fromPBEvent(e))
	}
	return out, resp.GetNextPosition(), nil
}

func fromPBEvent(e *weirpb.StoredEvent) Event {
	ev := Event{
		ID: e.GetId(), Type: e.GetType(), Aggregate: e.GetAggregate(), Version: e.GetVersion(), Position: e.GetPosition(),
		Data: e.GetData(), Metadata: e.GetMetadata(), ContentType: e.GetContentType(),
		CorrelationID: e.GetCorrelationId(), CausationID: e.GetCausationId(),
	}
	if e.GetTime() != nil {
		ev.Time = e.GetTime().AsTime()
	}
	return ev
}

// EventSubscription follows the global order of events (or one category
// of it). Next returns them one at a time, in position order, each once;
// Position says where to resume (store it with what the events changed,
// and pass it to a later subscription to go on exactly there). A broken
// connection is reopened from Position, with backoff.
type EventSubscription struct {
	c        *Client
	category string
	ctx      context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex // guards Position for other goroutines
	position int64

	stream   *connect.ServerStreamForClient[weirpb.SubscribeEventsResponse]
	buffered []*weirpb.StoredEvent
	next     int64 // the message's next_position, once buffered is drained
	caughtUp bool
	attempt  int
}

// SubscribeAll follows every event from position on (FromEnd: from the
// end, only events appended from now on). Close ends it; so does ctx.
func (c *Client) SubscribeAll(ctx context.Context, position int64) (*EventSubscription, error) {
	return c.subscribeEvents(ctx, "", position)
}

// SubscribeCategory follows the events of aggregates of one category
// ("order" for "order-1", "order-2"…) from global position on (FromEnd:
// from the end).
func (c *Client) SubscribeCategory(ctx context.Context, category string, position int64) (*EventSubscription, error) {
	if category == "" {
		return nil, fmt.Errorf("%w: a category is required", ErrInvalidArgument)
	}
	return c.subscribeEvents(ctx, category, position)
}

func (c *Client) subscribeEvents(ctx context.Context, category string, position int64) (*EventSubscription, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if position < FromEnd {
		return nil, fmt.Errorf("%w: position %d", ErrInvalidArgument, position)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &EventSubscription{c: c, category: category, ctx: ctx, cancel: cancel, position: position}
	go func() { // the client's Close ends its subscriptions
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.open(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// open starts the server stream from the current position, and reads its
// first message so that errors (a bad position, no such category) show.
func (s *EventSubscription) open() error {
	var stream *connect.ServerStreamForClient[weirpb.SubscribeEventsResponse]
	var err error
	pos := s.Position()
	fromEnd := pos == FromEnd
	if fromEnd {
		pos = 0
	}
	op := "subscribe to all events"
	if s.category == "" {
		stream, err = s.c.events.SubscribeAll(s.ctx, connect.NewRequest(&weirpb.SubscribeAllRequest{FromPosition: pos, FromEnd: fromEnd}))
	} else {
		op = "subscribe to category " + quote(s.category)
		stream, err = s.c.events.SubscribeCategory(s.ctx, connect.NewRequest(&weirpb.SubscribeCategoryRequest{Category: s.category, FromPosition: pos, FromEnd: fromEnd}))
	}
	if err != nil {
		return wrapError(op, err)
	}
	if !stream.Receive() {
		err := stream.Err()
		stream.Close()
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("the server ended the subscription"))
		}
		return wrapError(op, err)
	}
	s.stream = stream
	s.take(stream.Msg())
	return nil
}

func (s *EventSubscription) take(msg *weirpb.SubscribeEventsResponse) {
	s.buffered = msg.GetEvents()
	s.next = msg.GetNextPosition()
	s.caughtUp = msg.GetCaughtUp()
	if len(s.buffered) == 0 {
		s.setPosition(s.next)
	}
}

func (s *EventSubscription) setPosition(p int64) {
	s.mu.Lock()
	s.position = p
	s.mu.Unlock()
}

// Position is where the subscription goes on: after the last event Next
// returned (and past the events of other categories skipped since).
func (s *EventSubscription) Position() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.position
}

// CaughtUp reports whether the subscription had reached the end of the
// global order when it last heard from the server and has no event
// waiting to be returned.
func (s *EventSubscription) CaughtUp() bool { return s.caughtUp && len(s.buffered) == 0 }

// Next returns the next event, waiting for one to be appended if need be.
// It returns an error once the subscription is closed or its context is
// done, or when the server refuses it; a lost connection is reopened.
// Next must not be called concurrently.
func (s *EventSubscription) Next() (Event, error) {
	for {
		if len(s.buffered) > 0 {
			e := s.buffered[0]
			s.buffered = s.buffered[1:]
			pos := e.GetPosition() + 1
			if len(s.buffered) == 0 {
				pos = s.next
			}
			s.setPosition(pos)
			return fromPBEvent(e), nil
		}
		if s.stream != nil && s.stream.Receive() {
			s.attempt = 0
			s.take(s.stream.Msg())
			continue
		}
		var err error
		if s.stream != nil {
			err = s.stream.Err()
			s.stream.Close()
			s.stream = nil
		}
		if s.ctx.Err() != nil {
			if s.c.isClosed() {
				return Event{}, ErrClosed
			}
			return Event{}, s.ctx.Err()
		}
		if err != nil && !retryable(err) {
			return Event{}, wrapError("event subscription", err)
		}
		if !s.c.backoff.wait(s.ctx, s.c.closed, s.attempt) {
			if s.c.isClosed() {
				return Event{}, ErrClosed
			}
			return Event{}, s.ctx.Err()
		}
		s.attempt++
		if err := s.open(); err != nil && !retryable(err) {
			return Event{}, err
		}
	}
}

// Close ends the subscription; a Next under way returns. It may be called
// from any goroutine.
func (s *EventSubscription) Close() { s.cancel() }
