package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// Ack settles records delivered on a shared-mode subscription, and answers
// once that is durable. Records already settled are ignored.
func (s *Service) Ack(ctx context.Context, req *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error) {
	sub, refs, err := s.settling(req.Msg)
	if err != nil {
		return nil, err
	}
	if err := s.ack(ctx, sub, refs); err != nil {
		return nil, s.fail(ctx, "Ack", err)
	}
	return connect.NewResponse(&weirpb.SettleResponse{}), nil
}

// ack settles refs of sub (Ack and AckStream). The credits come back as
// soon as the broker has taken the records from this consumer, not once
// their acks are durable: the fsync of the acks then overlaps the delivery
// of the next records instead of adding to every record's cycle. It still
// returns only once the acks are durable: an ack is confirmed only then. If
// ctx is cancelled the broker still applies the ack (it cannot leave the
// records half-settled); only the answer is lost.
func (s *Service) ack(ctx context.Context, sub *subscription, refs []broker.DeliveryRef) error {
	released := false
	err := s.broker.AckThen(ctx, sub.stream, sub.shared.name, sub.id, refs, func() {
		sub.returnCredits(refs)
		released = true
	})
	if !released && (err == nil || !refused(err)) {
		// Failing past its checks, an Ack still took the records from
		// the consumer: they are delivered again.
		sub.returnCredits(refs)
	}
	return err
}

// Nack gives records back for redelivery after the subscription's backoff,
// or after delay when it is set, keeping error for the dead-letter headers.
// Records delivered max_deliveries times are dead-lettered instead.
func (s *Service) Nack(ctx context.Context, req *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error) {
	sub, refs, err := s.settling(req.Msg)
	if err != nil {
		return nil, err
	}
	delay, err := durationFromProto("delay", req.Msg.GetDelay())
	if err != nil {
		return nil, err
	}
	if delay < 0 {
		return nil, invalidArgument("delay must not be negative (unset: the subscription's backoff), got %v", delay)
	}
	if err := s.broker.Nack(ctx, sub.stream, sub.shared.name, sub.id, refs, req.Msg.GetError(), delay); err != nil {
		return nil, s.fail(ctx, "Nack", err)
	}
	sub.returnCredits(refs)
	return connect.NewResponse(&weirpb.SettleResponse{}), nil
}

// Reject dead-letters records now, with error as the reason.
func (s *Service) Reject(ctx context.Context, req *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error) {
	sub, refs, err := s.settling(req.Msg)
	if err != nil {
		return nil, err
	}
	if err := s.broker.Reject(ctx, sub.stream, sub.shared.name, sub.id, refs, req.Msg.GetError()); err != nil {
		return nil, s.fail(ctx, "Reject", err)
	}
	sub.returnCredits(refs)
	return connect.NewResponse(&weirpb.SettleResponse{}), nil
}

// Extend moves the ack deadline of records the client still works on to
// delay from now. They keep holding their credits until then.
func (s *Service) Extend(ctx context.Context, req *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error) {
	sub, refs, err := s.settling(req.Msg)
	if err != nil {
		return nil, err
	}
	delay, err := durationFromProto("delay", req.Msg.GetDelay())
	if err != nil {
		return nil, err
	}
	if delay <= 0 || delay > broker.MaxAckTimeout {
		return nil, invalidArgument("delay is required: the new ack deadline from now, up to %v; got %v", broker.MaxAckTimeout, delay)
	}
	deadline := time.Now().Add(delay)
	if err := s.broker.Extend(ctx, sub.stream, sub.shared.name, sub.id, refs, delay); err != nil {
		return nil, s.fail(ctx, "Extend", err)
	}
	sub.shared.prefetch.extend(refs, deadline)
	return connect.NewResponse(&weirpb.SettleResponse{}), nil
}

// settling finds the shared-mode subscription a SettleRequest names and
// converts its records.
func (s *Service) settling(msg *weirpb.SettleRequest) (*subscription, []broker.DeliveryRef, error) {
	sub, err := s.sharedSubscription(msg.GetSubscriptionId())
	if err != nil {
		return nil, nil, err
	}
	refs, err := deliveryRefsFromProto(msg.GetRecords())
	if err != nil {
		return nil, nil, err
	}
	return sub, refs, nil
}

// sharedSubscription finds the shared-mode subscription of a Subscribe
// call by its id.
func (s *Service) sharedSubscription(id string) (*subscription, error) {
	sub, err := s.subs.get(id)
	if err != nil {
		return nil, err
	}
	if sub.shared == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("subscription %q is not in shared mode; only records of shared subscriptions are settled", sub.id))
	}
	return sub, nil
}

// returnCredits releases the credits settled records held and wakes the
// subscription's loop if that lets it receive more.
func (sub *subscription) returnCredits(refs []broker.DeliveryRef) {
	if sub.shared.prefetch.release(refs) > 0 {
		sub.wake.notify()
	}
}

// refused tells the errors with which the broker turns a settlement down
// before changing anything.
func refused(err error) bool {
	for _, e := range []error{broker.ErrNotInFlight, broker.ErrPartitionNotFound, broker.ErrSubscriptionNotFound, broker.ErrStreamNotFound, broker.ErrInvalidArgument} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
