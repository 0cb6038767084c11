package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/broker"
)

// eventsBatch is how many events one subscription message carries at most.
const eventsBatch = 500

// Events implements weirpbconnect.EventsHandler (the event store, a service
// of its own in events.proto) over the Service's broker; its subscriptions
// end when the Service is closed.
type Events struct {
	weirpbconnect.UnimplementedEventsHandler
	svc *Service
}

var _ weirpbconnect.EventsHandler = (*Events)(nil)

// EventsHandler returns the path prefix of the Events service
// ("/weir.v1.Events/") and its handler, to mount beside Handler's.
func (s *Service) EventsHandler() (string, http.Handler) {
	return weirpbconnect.NewEventsHandler(&Events{svc: s}, connect.WithReadMaxBytes(s.maxBytes), connect.WithInterceptors(s.wrap...))
}

// fail maps the event store's errors, then the broker's (errors.go).
func (e *Events) fail(ctx context.Context, method string, err error) error {
	var conflict *broker.VersionConflictError
	if errors.As(err, &conflict) {
		ce := connect.NewError(connect.CodeAborted, err)
		if detail, derr := connect.NewErrorDetail(&weirpb.AppendConflict{
			Aggregate: conflict.Aggregate, Expected: int64(conflict.Expected), CurrentVersion: conflict.Current,
		}); derr == nil {
			ce.AddDetail(detail)
		}
		return ce
	}
	if errors.Is(err, broker.ErrEventIDExists) {
		return connect.NewError(connect.CodeAlreadyExists, err)
	}
	return e.svc.fail(ctx, method, err)
}

// expectedVersion converts the request's expectation (none: any).
func expectedVersion(msg *weirpb.AppendEventsRequest) (broker.ExpectedVersion, error) {
	switch x := msg.GetExpected().(type) {
	case nil:
		return broker.AnyVersion, nil
	case *weirpb.AppendEventsRequest_ExpectedVersion:
		if x.ExpectedVersion < 0 {
			return 0, invalidArgument("expected_version must be 0 or more, got %d (use any, no_stream or stream_exists)", x.ExpectedVersion)
		}
		return broker.ExpectedVersion(x.ExpectedVersion), nil
	case *weirpb.AppendEventsRequest_Any:
		return broker.AnyVersion, nil
	case *weirpb.AppendEventsRequest_NoStream:
		return broker.NoStream, nil
	case *weirpb.AppendEventsRequest_StreamExists:
		return broker.StreamExists, nil
	}
	return 0, invalidArgument("unknown expected version")
}

// AppendEvents implements weirpbconnect.EventsHandler.
func (e *Events) AppendEvents(ctx context.Context, req *connect.Request[weirpb.AppendEventsRequest]) (*connect.Response[weirpb.AppendEventsResponse], error) {
	msg := req.Msg
	expected, err := expectedVersion(msg)
	if err != nil {
		return nil, err
	}
	events := make([]broker.NewEvent, len(msg.GetEvents()))
	for i, ev := range msg.GetEvents() {
		events[i] = broker.NewEvent{
			ID: ev.GetId(), Type: ev.GetType(), Data: ev.GetData(), Metadata: ev.GetMetadata(),
			ContentType: ev.GetContentType(), CorrelationID: ev.GetCorrelationId(), CausationID: ev.GetCausationId(),
		}
	}
	res, err := e.svc.broker.AppendEvents(ctx, msg.GetAggregate(), expected, events)
	if err != nil {
		return nil, e.fail(ctx, "AppendEvents", err)
	}
	paceAppended(ctx, events)
	return connect.NewResponse(&weirpb.AppendEventsResponse{
		FirstVersion: res.FirstVersion, LastVersion: res.LastVersion,
		FirstPosition: res.FirstPosition, LastPosition: res.LastPosition,
		Duplicate: res.Duplicate,
	}), nil
}

// ReadAggregate implements weirpbconnect.EventsHandler.
func (e *Events) ReadAggregate(ctx context.Context, req *connect.Request[weirpb.ReadAggregateRequest]) (*connect.Response[weirpb.ReadAggregateResponse], error) {
	msg := req.Msg
	if msg.GetFromVersion() < 0 || msg.GetMaxEvents() < 0 {
		return nil, invalidArgument("from_version and max_events must not be negative, got %d and %d", msg.GetFromVersion(), msg.GetMaxEvents())
	}
	evs, err := e.svc.broker.ReadAggregate(ctx, msg.GetAggregate(), msg.GetFromVersion(), int(msg.GetMaxEvents()))
	if err != nil {
		return nil, e.fail(ctx, "ReadAggregate", err)
	}
	return connect.NewResponse(&weirpb.ReadAggregateResponse{Events: storedEvents(evs)}), nil
}

// ReadAll implements weirpbconnect.EventsHandler.
func (e *Events) ReadAll(ctx context.Context, req *connect.Request[weirpb.ReadAllRequest]) (*connect.Response[weirpb.ReadAllResponse], error) {
	msg := req.Msg
	if msg.GetMaxEvents() < 0 {
		return nil, invalidArgument("max_events must not be negative, got %d", msg.GetMaxEvents())
	}
	r, err := e.svc.broker.ReadEvents(ctx, msg.GetFromPosition(), int(msg.GetMaxEvents()), msg.GetCategory(), 0)
	if err != nil {
		return nil, e.fail(ctx, "ReadAll", err)
	}
	return connect.NewResponse(&weirpb.ReadAllResponse{Events: storedEvents(r.Events), NextPosition: r.Next, EndPosition: r.End}), nil
}

// SubscribeAll implements weirpbconnect.EventsHandler.
func (e *Events) SubscribeAll(ctx context.Context, req *connect.Request[weirpb.SubscribeAllRequest], out *connect.ServerStream[weirpb.SubscribeEventsResponse]) error {
	return e.follow(ctx, "SubscribeAll", "", req.Msg.GetFromPosition(), req.Msg.GetFromEnd(), out)
}

// SubscribeCategory implements weirpbconnect.EventsHandler.
func (e *Events) SubscribeCategory(ctx context.Context, req *connect.Request[weirpb.SubscribeCategoryRequest], out *connect.ServerStream[weirpb.SubscribeEventsResponse]) error {
	if req.Msg.GetCategory() == "" {
		return invalidArgument("category is required")
	}
	return e.follow(ctx, "SubscribeCategory", req.Msg.GetCategory(), req.Msg.GetFromPosition(), req.Msg.GetFromEnd(), out)
}

// follow sends the global order (of one category, when not empty) from a
// position on, until the client goes away or the server stops. Each
// message says where to resume; caught_up marks the end of the log.
func (e *Events) follow(ctx context.Context, method, category string, from int64, fromEnd bool, out *connect.ServerStream[weirpb.SubscribeEventsResponse]) error {
	ctx, done := e.svc.bind(ctx)
	defer done()
	b := e.svc.broker
	if fromEnd {
		end, err := b.EventLogEnd()
		if err != nil {
			return e.fail(ctx, method, err)
		}
		from = end
	}
	announced := false
	// The first read does not wait, so that the client hears at once
	// whether it is caught up.
	for wait := time.Duration(0); ; wait = idleWait {
		r, err := b.ReadEvents(ctx, from, eventsBatch, category, wait)
		if err != nil {
			return e.fail(ctx, method, err)
		}
		caughtUp := r.Next >= r.End
		if len(r.Events) > 0 || r.Next != from || (caughtUp && !announced) {
			msg := &weirpb.SubscribeEventsResponse{Events: storedEvents(r.Events), NextPosition: r.Next, CaughtUp: caughtUp}
			if err := out.Send(msg); err != nil {
				return e.fail(ctx, method, err)
			}
			announced = caughtUp
			paceEvents(ctx, r.Events)
		}
		from = r.Next
	}
}

func storedEvents(evs []broker.Event) []*weirpb.StoredEvent {
	out := make([]*weirpb.StoredEvent, len(evs))
	for i := range evs {
		ev := &evs[i]
		out[i] = &weirpb.StoredEvent{
			Id: ev.ID, Type: ev.Type, Aggregate: ev.Aggregate, Version: ev.Version, Position: ev.Position,
			Data: ev.Data, Metadata: ev.Metadata, ContentType: ev.ContentType,
			CorrelationId: ev.CorrelationID, CausationId: ev.CausationID, Time: timestamppb.New(ev.Time),
		}
	}
	return out
}
