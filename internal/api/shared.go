package api

import (
	"cmp"
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// maxReceive bounds the records one Receive takes, whatever the prefetch,
// so that records go out while the rest are received.
const maxReceive = DefaultCredits

// sharedConsumer is what a shared-mode subscription adds: it is a consumer
// (named by the subscription id) of a shared subscription, and the records
// in flight to it hold its prefetch.
type sharedConsumer struct {
	name     string // of the shared subscription
	prefetch *prefetch
}

// openShared checks the shared subscription a Subscribe call consumes.
func (sub *subscription) openShared(msg *weirpb.SubscribeRequest, mode *weirpb.SharedMode) error {
	if msg.GetFilter() != "" {
		return invalidArgument("filter applies to group, ephemeral and positions modes; a shared subscription has its own (SubscriptionConfig.filter)")
	}
	name := cmp.Or(mode.GetSubscription(), sub.stream)
	if _, err := sub.svc.broker.DescribeSubscription(sub.stream, name); err != nil {
		return err
	}
	sub.shared = &sharedConsumer{name: name, prefetch: newPrefetch(int(cmp.Or(msg.GetCredits(), DefaultCredits)))}
	return nil
}

// closeShared ends the consumer: the broker delivers the records it held
// in flight again at once, to the subscription's other consumers.
func (sub *subscription) closeShared() {
	sub.svc.broker.CloseConsumer(sub.stream, sub.shared.name, sub.id)
}

// runShared receives records within the prefetch and sends them with their
// delivery counts, until ctx ends or something fails.
func (sub *subscription) runShared(ctx context.Context, out *connect.ServerStream[weirpb.SubscribeResponse]) error {
	for {
		sub.wake.begin()
		free, deadline := sub.shared.prefetch.available(time.Now())
		if free == 0 {
			if err := sub.waitForCredits(ctx, deadline); err != nil {
				return err
			}
			continue
		}
		ds, err := sub.svc.broker.Receive(ctx, sub.stream, sub.shared.name, sub.id, min(free, maxReceive), idleWait)
		if err != nil {
			return sub.sharedError(ctx, err)
		}
		if len(ds) == 0 {
			if err := sub.checkStream(ctx); err != nil {
				return err
			}
			continue
		}
		// Held before the client can see them, so that its settlements
		// find them.
		sub.shared.prefetch.hold(ds)
		bytes, err := sub.sendDeliveries(out, ds)
		if err != nil {
			return err
		}
		paceDelivered(ctx, bytes)
	}
}

// waitForCredits waits until a settlement returns credits or the first held
// record's deadline (zero: none) passes.
func (sub *subscription) waitForCredits(ctx context.Context, deadline time.Time) error {
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-sub.wake.signal:
	case <-expired:
	}
	return nil
}

// sendDeliveries sends records in Records events of about
// subscribeReadBytes at most, and returns the bytes of the records sent.
func (sub *subscription) sendDeliveries(out *connect.ServerStream[weirpb.SubscribeResponse], ds []broker.Delivery) (sent int, err error) {
	for len(ds) > 0 {
		n, size := 0, 0
		for n < len(ds) {
			b := recordBytes(&ds[n].Record)
			if n > 0 && size+b > subscribeReadBytes {
				break
			}
			n, size = n+1, size+b
		}
		event := deliveriesToProto(sub.stream, ds[:n])
		if err := out.Send(&weirpb.SubscribeResponse{Event: &weirpb.SubscribeResponse_Records{Records: event}}); err != nil {
			return sent, err
		}
		sub.svc.observer.Delivered(sub.stream, n, size)
		sent += size
		ds = ds[n:]
	}
	return sent, nil
}

// sharedError explains why Receive failed: the broker stops a shared
// subscription's engine (ErrClosed) when the subscription or its stream is
// deleted, which the client is told as NotFound.
func (sub *subscription) sharedError(ctx context.Context, err error) error {
	if !errors.Is(err, broker.ErrClosed) || ctx.Err() != nil {
		return err
	}
	if _, derr := sub.svc.broker.DescribeSubscription(sub.stream, sub.shared.name); errors.Is(derr, broker.ErrSubscriptionNotFound) || errors.Is(derr, broker.ErrStreamNotFound) {
		return derr
	}
	return err
}
