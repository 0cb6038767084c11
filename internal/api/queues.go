package api

import (
	"cmp"
	"context"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// CreateQueue creates a queue: a stream whose records are dropped once its
// shared subscription of the same name settled them. That subscription
// starts at the queue's first record.
func (s *Service) CreateQueue(ctx context.Context, req *connect.Request[weirpb.CreateQueueRequest]) (*connect.Response[weirpb.SubscriptionInfo], error) {
	msg := req.Msg
	name := msg.GetName()
	if name == "" {
		return nil, invalidArgument("name is required")
	}
	if c := msg.GetSubscription(); c != nil {
		if (c.GetStream() != "" && c.GetStream() != name) || (c.GetName() != "" && c.GetName() != name) {
			return nil, invalidArgument("subscription.stream and subscription.name are the queue's name %q; leave them empty", name)
		}
		if c.GetStart() != nil {
			return nil, invalidArgument("subscription.start must be unset: a queue's subscription starts at its first record")
		}
	}
	sub, err := subscriptionConfigFromProto("subscription", msg.GetSubscription())
	if err != nil {
		return nil, err
	}
	// Unset or zero: the broker's default; negative: off.
	dedup, err := durationFromProto("dedup_window", msg.GetDedupWindow())
	if err != nil {
		return nil, err
	}
	info, err := s.broker.CreateQueue(ctx, broker.QueueConfig{Name: name, Partitions: msg.GetPartitions(), Subscription: sub, DedupWindow: dedup})
	if err != nil {
		return nil, s.fail(ctx, "CreateQueue", err)
	}
	return s.subscriptionInfo(ctx, "CreateQueue", info)
}

// ListQueues describes every queue's own subscription, by name.
func (s *Service) ListQueues(ctx context.Context, req *connect.Request[weirpb.ListQueuesRequest]) (*connect.Response[weirpb.ListQueuesResponse], error) {
	streams := make(map[string]broker.StreamInfo)
	for _, info := range s.broker.ListStreams() {
		streams[info.Config.Name] = info
	}
	out := &weirpb.ListQueuesResponse{}
	for _, info := range s.broker.ListQueues() {
		st, ok := streams[info.Config.Stream]
		if !ok {
			continue // created after ListStreams; the next call lists it
		}
		if !subscriptionVisible(ctx, info.Config.Stream, info.Config.Name) {
			continue
		}
		out.Queues = append(out.Queues, subscriptionInfoToProto(info, st))
	}
	return connect.NewResponse(out), nil
}

// PurgeQueue settles every record of a shared subscription not settled yet,
// those in flight included.
func (s *Service) PurgeQueue(ctx context.Context, req *connect.Request[weirpb.PurgeRequest]) (*connect.Response[weirpb.PurgeResponse], error) {
	stream, sub, err := subscriptionName(req.Msg.GetStream(), req.Msg.GetSubscription())
	if err != nil {
		return nil, err
	}
	n, err := s.broker.Purge(ctx, stream, sub)
	if err != nil {
		return nil, s.fail(ctx, "PurgeQueue", err)
	}
	return connect.NewResponse(&weirpb.PurgeResponse{Purged: n}), nil
}

// Redrive moves records from a shared subscription's dead-letter stream
// back to the stream they came from.
func (s *Service) Redrive(ctx context.Context, req *connect.Request[weirpb.RedriveRequest]) (*connect.Response[weirpb.RedriveResponse], error) {
	stream, sub, err := subscriptionName(req.Msg.GetStream(), req.Msg.GetSubscription())
	if err != nil {
		return nil, err
	}
	if req.Msg.GetMax() < 0 {
		return nil, invalidArgument("max must not be negative (0: all), got %d", req.Msg.GetMax())
	}
	moved, err := s.broker.Redrive(ctx, stream, sub, req.Msg.GetMax())
	if err != nil {
		return nil, s.fail(ctx, "Redrive", err)
	}
	return connect.NewResponse(&weirpb.RedriveResponse{Moved: moved}), nil
}

// CreateSubscription creates a shared subscription on a stream.
func (s *Service) CreateSubscription(ctx context.Context, req *connect.Request[weirpb.CreateSubscriptionRequest]) (*connect.Response[weirpb.SubscriptionInfo], error) {
	c := req.Msg.GetConfig()
	switch {
	case c == nil:
		return nil, invalidArgument("config is required")
	case c.GetStream() == "":
		return nil, invalidArgument("config.stream is required")
	case c.GetName() == "":
		return nil, invalidArgument("config.name is required")
	}
	cfg, err := subscriptionConfigFromProto("config", c)
	if err != nil {
		return nil, err
	}
	info, err := s.broker.CreateSubscription(ctx, cfg)
	if err != nil {
		return nil, s.fail(ctx, "CreateSubscription", err)
	}
	return s.subscriptionInfo(ctx, "CreateSubscription", info)
}

// DescribeSubscription describes one shared subscription.
func (s *Service) DescribeSubscription(ctx context.Context, req *connect.Request[weirpb.DescribeSubscriptionRequest]) (*connect.Response[weirpb.SubscriptionInfo], error) {
	stream, sub, err := subscriptionName(req.Msg.GetStream(), req.Msg.GetSubscription())
	if err != nil {
		return nil, err
	}
	if err := describeSubscription(ctx, stream, sub); err != nil {
		return nil, s.fail(ctx, "DescribeSubscription", err)
	}
	info, err := s.broker.DescribeSubscription(stream, sub)
	if err != nil {
		return nil, s.fail(ctx, "DescribeSubscription", err)
	}
	return s.subscriptionInfo(ctx, "DescribeSubscription", info)
}

// ListSubscriptions describes the shared subscriptions of a stream, by name.
func (s *Service) ListSubscriptions(ctx context.Context, req *connect.Request[weirpb.ListSubscriptionsRequest]) (*connect.Response[weirpb.ListSubscriptionsResponse], error) {
	stream := req.Msg.GetStream()
	if stream == "" {
		return nil, invalidArgument("stream is required")
	}
	if err := broker.AuthorizeDescribe(ctx, auth.ResourceStream, stream); err != nil {
		return nil, s.fail(ctx, "ListSubscriptions", err)
	}
	st, err := s.broker.DescribeStream(stream)
	if err != nil {
		return nil, s.fail(ctx, "ListSubscriptions", err)
	}
	infos, err := s.broker.ListSubscriptions(stream)
	if err != nil {
		return nil, s.fail(ctx, "ListSubscriptions", err)
	}
	out := &weirpb.ListSubscriptionsResponse{}
	for _, info := range infos {
		if broker.Visible(ctx, auth.ResourceSubscription, info.Config.Name) {
			out.Subscriptions = append(out.Subscriptions, subscriptionInfoToProto(info, st))
		}
	}
	return connect.NewResponse(out), nil
}

// DeleteSubscription deletes a shared subscription and its state. Its
// subscribers end with NotFound.
func (s *Service) DeleteSubscription(ctx context.Context, req *connect.Request[weirpb.DeleteSubscriptionRequest]) (*connect.Response[weirpb.DeleteSubscriptionResponse], error) {
	stream, sub, err := subscriptionName(req.Msg.GetStream(), req.Msg.GetSubscription())
	if err != nil {
		return nil, err
	}
	if err := s.broker.DeleteSubscription(ctx, stream, sub); err != nil {
		return nil, s.fail(ctx, "DeleteSubscription", err)
	}
	return connect.NewResponse(&weirpb.DeleteSubscriptionResponse{}), nil
}

// subscriptionName checks that a request names a stream and returns the
// shared subscription it means: sub, or the queue's own (the stream's name)
// when sub is empty.
func subscriptionName(stream, sub string) (string, string, error) {
	if stream == "" {
		return "", "", invalidArgument("stream is required")
	}
	return stream, cmp.Or(sub, stream), nil
}

// subscriptionInfo answers with info and what it takes from its stream.
func (s *Service) subscriptionInfo(ctx context.Context, method string, info broker.SubscriptionInfo) (*connect.Response[weirpb.SubscriptionInfo], error) {
	st, err := s.broker.DescribeStream(info.Config.Stream)
	if err != nil {
		return nil, s.fail(ctx, method, err)
	}
	return connect.NewResponse(subscriptionInfoToProto(info, st)), nil
}
