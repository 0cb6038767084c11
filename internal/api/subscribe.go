package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/filter"
)

// Subscription tuning.
const (
	// DefaultCredits is SubscribeRequest.credits when unset.
	DefaultCredits = 1000
	// subscribeReadBytes bounds one read, and so one Records event (plus
	// one record), well below the 4 MiB gRPC clients accept by default.
	subscribeReadBytes = 1 << 20
	// idleWait is how long one read waits for records; the loop then checks
	// that the stream still exists and reads again.
	idleWait = 2 * time.Second
)

// subscription is one Subscribe call: its loop, on the call's goroutine,
// owns the reader and is the only one to send on the stream.
type subscription struct {
	id       string
	svc      *Service
	stream   string
	streamID [16]byte
	reader   *broker.Reader
	credits  credits
	wake     *waker
	member   *groupMember    // group mode only; set before the subscription is registered
	shared   *sharedConsumer // shared mode only; likewise

	// Group mode, owned by the loop: the partitions in the reader and the
	// generation last announced.
	owned      map[int32]bool
	generation int64
}

// Subscribe delivers records as they arrive, in one of four modes, within
// the credits the client grants (see the proto; in shared mode the credits
// are the prefetch, see prefetch).
func (s *Service) Subscribe(ctx context.Context, req *connect.Request[weirpb.SubscribeRequest], out *connect.ServerStream[weirpb.SubscribeResponse]) error {
	msg := req.Msg
	if msg.GetStream() == "" {
		return invalidArgument("stream is required")
	}
	if msg.GetCredits() < 0 {
		return invalidArgument("credits must not be negative, got %d", msg.GetCredits())
	}
	ctx, done := s.bind(ctx)
	defer done()

	info, err := s.broker.DescribeStream(msg.GetStream())
	if err != nil {
		return s.fail(ctx, "Subscribe", err)
	}
	sub := &subscription{svc: s, stream: msg.GetStream(), streamID: info.ID, wake: newWaker()}
	sub.credits.add(int64(cmp.Or(msg.GetCredits(), DefaultCredits)))

	// Checked before a group is joined, so that a bad filter costs nothing.
	var f *filter.Filter
	if _, shared := msg.GetMode().(*weirpb.SubscribeRequest_Shared); !shared {
		if f, err = broker.CompileFilter(msg.GetFilter()); err != nil {
			return s.fail(ctx, "Subscribe", err)
		}
	}
	switch mode := msg.GetMode().(type) {
	case *weirpb.SubscribeRequest_Group:
		err = sub.joinGroup(ctx, msg, mode.Group)
	case *weirpb.SubscribeRequest_Ephemeral:
		sub.reader, err = s.broker.Tail(msg.GetStream())
	case *weirpb.SubscribeRequest_Positions:
		sub.reader, err = sub.openPositions(mode.Positions, len(info.Partitions))
	case *weirpb.SubscribeRequest_Shared:
		err = sub.openShared(msg, mode.Shared)
	default:
		return invalidArgument("mode is required: group, ephemeral, positions or shared")
	}
	if err != nil {
		return s.fail(ctx, "Subscribe", err)
	}
	if sub.reader != nil && f != nil {
		sub.reader.SetFilter(f)
	}
	if sub.member != nil {
		defer sub.member.leave()
	}
	if err := s.subs.add(sub); err != nil {
		return s.fail(ctx, "Subscribe", err)
	}
	defer s.subs.remove(sub)
	if sub.shared != nil {
		// Before the subscription leaves the registry, so that Close
		// waits for it.
		defer sub.closeShared()
	}

	err = sub.run(ctx, out)
	if ctx.Err() != nil && context.Cause(ctx) != errShuttingDown {
		return nil // the client went away: nobody to tell
	}
	return s.fail(ctx, "Subscribe", err)
}

// joinGroup joins the subscription's group as a new member.
func (sub *subscription) joinGroup(ctx context.Context, msg *weirpb.SubscribeRequest, mode *weirpb.GroupMode) error {
	if mode.GetGroup() == "" {
		return invalidArgument("group.group is required")
	}
	start, err := startFromProto("group.start", mode.GetStart(), broker.StartPosition{Kind: broker.StartLatest})
	if err != nil {
		return err
	}
	session, err := durationFromProto("group.session_timeout", mode.GetSessionTimeout())
	if err != nil {
		return err
	}
	b := sub.svc.broker
	if sub.reader, err = b.NewReader(sub.stream, nil); err != nil {
		return err
	}
	st, err := b.JoinGroup(ctx, broker.JoinOptions{
		Group:          mode.GetGroup(),
		Streams:        []string{sub.stream},
		ClientID:       msg.GetClientId(),
		SessionTimeout: session,
		Strategy:       mode.GetStrategy(),
		Start:          start,
	})
	if err != nil {
		return err
	}
	if session == 0 {
		session = 10 * time.Second // the broker's default
	}
	sub.owned = make(map[int32]bool)
	sub.member = newGroupMember(b, sub.svc.logger, st, session, sub.wake.interrupt)
	return nil
}

// openPositions opens a reader at explicit offsets (clamped to what is
// retained), or of every partition from a start position (unset: latest).
func (sub *subscription) openPositions(mode *weirpb.PositionsMode, partitions int) (*broker.Reader, error) {
	b := sub.svc.broker
	positions := make(map[int32]int64)
	if len(mode.GetOffsets()) > 0 {
		for p, off := range mode.GetOffsets() {
			if off < 0 {
				return nil, invalidArgument("positions.offsets[%d] must not be negative, got %d", p, off)
			}
			resolved, err := b.ResolveStart(sub.stream, p, broker.StartPosition{Kind: broker.StartOffset, Offset: off})
			if err != nil {
				return nil, err
			}
			positions[p] = resolved
		}
		return b.NewReader(sub.stream, positions)
	}
	start, err := startFromProto("positions.start", mode.GetStart(), broker.StartPosition{Kind: broker.StartLatest})
	if err != nil {
		return nil, err
	}
	for p := range int32(partitions) {
		if positions[p], err = b.ResolveStart(sub.stream, p, start); err != nil {
			return nil, err
		}
	}
	return b.NewReader(sub.stream, positions)
}

// run sends the Subscribed event, then records within the credits, and in
// group mode the assignment changes, until ctx ends or something fails.
func (sub *subscription) run(ctx context.Context, out *connect.ServerStream[weirpb.SubscribeResponse]) error {
	subscribed := &weirpb.Subscribed{SubscriptionId: sub.id}
	if sub.member != nil {
		subscribed.MemberId = sub.member.id
	}
	if err := out.Send(&weirpb.SubscribeResponse{Event: &weirpb.SubscribeResponse_Subscribed{Subscribed: subscribed}}); err != nil {
		return err
	}
	if sub.shared != nil {
		return sub.runShared(ctx, out)
	}
	if sub.member != nil {
		var heartbeats sync.WaitGroup
		hbCtx, stop := context.WithCancel(ctx)
		heartbeats.Go(func() { sub.member.heartbeatLoop(hbCtx) })
		defer heartbeats.Wait()
		defer stop()
	}
	for {
		sub.wake.begin()
		if sub.member != nil {
			if err := sub.applyGroupState(out); err != nil {
				return err
			}
		}
		credits := sub.credits.available()
		if credits == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-sub.wake.signal:
			}
			continue
		}
		recs, err := sub.read(ctx)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			continue
		}
		if int64(len(recs)) > credits {
			sub.rewind(recs[credits:])
			recs = recs[:credits]
		}
		sub.credits.take(int64(len(recs)))
		event := &weirpb.Records{Records: recordsToProto(sub.stream, recs)}
		if err := out.Send(&weirpb.SubscribeResponse{Event: &weirpb.SubscribeResponse_Records{Records: event}}); err != nil {
			return err
		}
		bytes := 0
		for i := range recs {
			bytes += recordBytes(&recs[i])
		}
		sub.svc.observer.Delivered(sub.stream, len(recs), bytes)
		paceDelivered(ctx, bytes)
	}
}

// read waits for records up to idleWait, or until the waker interrupts it.
func (sub *subscription) read(ctx context.Context) ([]broker.Record, error) {
	rctx, done := sub.wake.readContext(ctx)
	recs, err := sub.reader.Read(rctx, subscribeReadBytes, idleWait)
	interrupted := rctx.Err() != nil
	done()
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil && interrupted && errors.Is(err, context.Canceled):
		return recs, nil
	case err != nil:
		return nil, err
	case len(recs) == 0 && !interrupted:
		return nil, sub.checkStream(ctx)
	}
	return recs, nil
}

// checkStream fails when the stream was deleted (maybe re-created) under
// the subscription, whose reader then reads closed partitions.
func (sub *subscription) checkStream(ctx context.Context) error {
	id, err := sub.svc.broker.StreamID(sub.stream)
	if errors.Is(err, broker.ErrStreamNotFound) || err == nil && id != sub.streamID {
		return fmt.Errorf("%w: %q was deleted; subscribe again", broker.ErrStreamNotFound, sub.stream)
	}
	return err
}

// rewind moves the reader back to the first of the records it read but
// could not send for lack of credits, so nothing is buffered.
func (sub *subscription) rewind(unsent []broker.Record) {
	first := make(map[int32]int64)
	for _, r := range unsent {
		if off, ok := first[r.Partition]; !ok || r.Offset < off {
			first[r.Partition] = r.Offset
		}
	}
	for p, off := range first {
		sub.reader.Assign(p, off)
	}
}

// applyGroupState applies the group's latest state to the reader, if it is
// new: newly assigned partitions are read from their start offset, revoked
// (or lost) ones are dropped at once, and the change is announced in an
// Assignment event.
func (sub *subscription) applyGroupState(out *connect.ServerStream[weirpb.SubscribeResponse]) error {
	st, fresh, err := sub.member.next()
	if err != nil {
		return err
	}
	if !fresh {
		return nil
	}
	event := &weirpb.Assignment{Generation: st.Generation}
	assigned := make(map[int32]bool, len(st.Assigned))
	for _, a := range st.Assigned {
		if a.Stream != sub.stream {
			continue
		}
		assigned[a.Partition] = true
		if !sub.owned[a.Partition] {
			sub.owned[a.Partition] = true
			sub.reader.Assign(a.Partition, a.Offset)
			event.Assigned = append(event.Assigned, &weirpb.PartitionAssignment{Stream: a.Stream, Partition: a.Partition, Offset: a.Offset})
		}
	}
	for _, p := range slices.Sorted(maps.Keys(sub.owned)) {
		if !assigned[p] {
			delete(sub.owned, p)
			sub.reader.Unassign(p)
			event.Revoked = append(event.Revoked, &weirpb.PartitionRef{Stream: sub.stream, Partition: p})
		}
	}
	if len(event.Assigned) == 0 && len(event.Revoked) == 0 && st.Generation == sub.generation {
		return nil
	}
	sub.generation = st.Generation
	sub.member.announced(st.Generation)
	return out.Send(&weirpb.SubscribeResponse{Event: &weirpb.SubscribeResponse_Assignment{Assignment: event}})
}
