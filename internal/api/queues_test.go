package api_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/broker"
)

func TestQueueAdmin(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			ctx := t.Context()
			q := "jobs-" + strings.ReplaceAll(proto, "+", "-")
			info := createQueue(t, c, q, 2, &weirpb.SubscriptionConfig{MaxDeliveries: 3, AckTimeout: durationpb.New(10 * time.Second)})
			cfg := info.GetConfig()
			if cfg.GetStream() != q || cfg.GetName() != q || !info.GetQueue() || info.GetPartitions() != 2 ||
				cfg.GetAckTimeout().AsDuration() != 10*time.Second || cfg.GetMaxDeliveries() != 3 || cfg.GetDeadLetterStream() != q+".dlq" ||
				cfg.GetBackoffInitial().AsDuration() != 100*time.Millisecond || info.GetDepth() != 0 {
				t.Errorf("CreateQueue = %v", info)
			}
			_, err := c.CreateQueue(ctx, connect.NewRequest(&weirpb.CreateQueueRequest{Name: q}))
			wantCode(t, "duplicate CreateQueue", err, connect.CodeAlreadyExists)

			list, err := c.ListQueues(ctx, connect.NewRequest(&weirpb.ListQueuesRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var queues []string
			for _, qi := range list.Msg.GetQueues() {
				if qi.GetQueue() {
					queues = append(queues, qi.GetConfig().GetName())
				}
			}
			// The dead-letter queue exists as soon as max_deliveries is set.
			if !slices.Contains(queues, q) || !slices.Contains(queues, q+".dlq") {
				t.Errorf("ListQueues = %v, want %s and its dead-letter queue", queues, q)
			}

			publish(t, c, q, -1, seq("j", 5)...)
			if info := describeSub(t, c, q, ""); info.GetDepth() != 5 {
				t.Errorf("after 5 publishes: %v", info)
			}

			// A second subscription on the queue's stream, from its start.
			resp, err := c.CreateSubscription(ctx, connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
				Stream: q, Name: "audit", Filter: "size(value) > 0",
				Start: &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}},
			}}))
			if err != nil {
				t.Fatalf("CreateSubscription: %v", err)
			}
			if a := resp.Msg; a.GetQueue() || a.GetConfig().GetFilter() != "size(value) > 0" || a.GetConfig().GetDeadLetterStream() != q+".audit.dlq" {
				t.Errorf("CreateSubscription = %v", a)
			}
			waitSub(t, c, q, "audit", "depth 5", func(i *weirpb.SubscriptionInfo) bool { return i.GetDepth() == 5 })
			_, err = c.CreateSubscription(ctx, connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{Stream: q, Name: "audit"}}))
			wantCode(t, "duplicate CreateSubscription", err, connect.CodeAlreadyExists)

			subs, err := c.ListSubscriptions(ctx, connect.NewRequest(&weirpb.ListSubscriptionsRequest{Stream: q}))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range subs.Msg.GetSubscriptions() {
				names = append(names, s.GetConfig().GetName())
			}
			if !slices.Equal(names, []string{"audit", q}) {
				t.Errorf("ListSubscriptions = %v", names)
			}

			if _, err := c.DeleteSubscription(ctx, connect.NewRequest(&weirpb.DeleteSubscriptionRequest{Stream: q, Subscription: "audit"})); err != nil {
				t.Errorf("DeleteSubscription: %v", err)
			}
			_, err = c.DescribeSubscription(ctx, connect.NewRequest(&weirpb.DescribeSubscriptionRequest{Stream: q, Subscription: "audit"}))
			wantCode(t, "DescribeSubscription after delete", err, connect.CodeNotFound)

			purged, err := c.PurgeQueue(ctx, connect.NewRequest(&weirpb.PurgeRequest{Stream: q}))
			if err != nil || purged.Msg.GetPurged() != 5 {
				t.Errorf("PurgeQueue = %v, %v; want 5 purged", purged, err)
			}
			if info := describeSub(t, c, q, q); info.GetDepth() != 0 {
				t.Errorf("after the purge: %v", info)
			}
		})
	}
}

// TestPurgeInFlight purges a record a consumer holds: its credit comes back
// at the record's deadline, and acking it later is harmless.
func TestPurgeInFlight(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "purged", 1, &weirpb.SubscriptionConfig{AckTimeout: durationpb.New(500 * time.Millisecond)})
	publish(t, n.grpc, "purged", -1, seq("p", 3)...)
	s := consume(t, n.grpc, "purged", "", 1)
	held, _ := s.deliveries(1, 5*time.Second)
	delivered := time.Now()
	purged, err := n.grpc.PurgeQueue(t.Context(), connect.NewRequest(&weirpb.PurgeRequest{Stream: "purged"}))
	if err != nil || purged.Msg.GetPurged() != 3 {
		t.Fatalf("PurgeQueue = %v, %v; want 3", purged, err)
	}
	publish(t, n.grpc, "purged", -1, "after")
	s.quiet(300 * time.Millisecond) // the purged record holds the only credit
	recs, counts := s.deliveries(1, 5*time.Second)
	if string(recs[0].GetValue()) != "after" || counts[0] != 1 {
		t.Errorf("after the purge: %s (count %d)", recs[0].GetValue(), counts[0])
	}
	if took := time.Since(delivered); took < 450*time.Millisecond {
		t.Errorf("the purged record's credit came back after %v, before its deadline", took)
	}
	mustSettle(t, "Ack of a purged record", n.grpc.Ack, s, held, "", 0)
	mustSettle(t, "Ack", n.grpc.Ack, s, recs, "", 0)
	if info := describeSub(t, n.grpc, "purged", ""); info.GetDepth() != 0 || info.GetInFlight() != 0 {
		t.Errorf("at the end: %v", info)
	}
}

func TestSharedErrors(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "q", 1, nil)
	createStream(t, n.grpc, "plain", 1)
	publish(t, n.grpc, "q", -1, "x", "y")
	a, b := consume(t, n.grpc, "q", "", 1), consume(t, n.grpc, "q", "", 1)
	heldA, _ := a.deliveries(1, 5*time.Second)
	heldB, _ := b.deliveries(1, 5*time.Second)
	positions := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "plain", Mode: ephemeral()})
	shared := func(stream, sub, filter string) *weirpb.SubscribeRequest {
		return &weirpb.SubscribeRequest{Stream: stream, Mode: sharedMode(sub), Filter: filter}
	}
	ref := func(r *weirpb.Record) []*weirpb.PartitionOffset {
		return []*weirpb.PartitionOffset{{Partition: r.GetPartition(), Offset: r.GetOffset()}}
	}
	tests := []struct {
		name string
		call func(c weirpbconnect.WeirClient) error
		code connect.Code
		msg  string // a substring of the message
	}{
		{"describe a subscription of an unknown queue", func(c weirpbconnect.WeirClient) error {
			_, err := c.DescribeSubscription(t.Context(), connect.NewRequest(&weirpb.DescribeSubscriptionRequest{Stream: "nope"}))
			return err
		}, connect.CodeNotFound, `"nope"`},
		{"describe an unknown subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.DescribeSubscription(t.Context(), connect.NewRequest(&weirpb.DescribeSubscriptionRequest{Stream: "plain"}))
			return err
		}, connect.CodeNotFound, "subscription not found"},
		{"purge an unknown queue", func(c weirpbconnect.WeirClient) error {
			_, err := c.PurgeQueue(t.Context(), connect.NewRequest(&weirpb.PurgeRequest{Stream: "nope"}))
			return err
		}, connect.CodeNotFound, "nope"},
		{"delete an unknown subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.DeleteSubscription(t.Context(), connect.NewRequest(&weirpb.DeleteSubscriptionRequest{Stream: "q", Subscription: "ghost"}))
			return err
		}, connect.CodeNotFound, "ghost"},
		{"list the subscriptions of an unknown stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.ListSubscriptions(t.Context(), connect.NewRequest(&weirpb.ListSubscriptionsRequest{Stream: "nope"}))
			return err
		}, connect.CodeNotFound, "nope"},
		{"duplicate queue", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{Name: "q"}))
			return err
		}, connect.CodeAlreadyExists, `"q"`},
		{"queue over an existing stream", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{Name: "plain"}))
			return err
		}, connect.CodeAlreadyExists, "plain"},
		{"queue without a name", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{}))
			return err
		}, connect.CodeInvalidArgument, "name is required"},
		{"queue with another subscription name", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{Name: "q2", Subscription: &weirpb.SubscriptionConfig{Name: "other"}}))
			return err
		}, connect.CodeInvalidArgument, "subscription.name"},
		{"duplicate subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{Stream: "q", Name: "q"}}))
			return err
		}, connect.CodeAlreadyExists, "subscription already exists"},
		{"subscription without config", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{}))
			return err
		}, connect.CodeInvalidArgument, "config is required"},
		{"subscription with a bad filter", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
				Stream: "plain", Name: "f", Filter: "headers['type'] =="}}))
			return err
		}, connect.CodeInvalidArgument, "filter:1:"},
		{"queue with a bad filter", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{Name: "q3", Subscription: &weirpb.SubscriptionConfig{Filter: "key == 1"}}))
			return err
		}, connect.CodeInvalidArgument, "filter:1:5"},
		{"subscription with a bad ack timeout", func(c weirpbconnect.WeirClient) error {
			_, err := c.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
				Stream: "plain", Name: "t", AckTimeout: durationpb.New(-time.Second)}}))
			return err
		}, connect.CodeInvalidArgument, "ack timeout"},
		{"redrive a negative count", func(c weirpbconnect.WeirClient) error {
			_, err := c.Redrive(t.Context(), connect.NewRequest(&weirpb.RedriveRequest{Stream: "q", Max: -1}))
			return err
		}, connect.CodeInvalidArgument, "max must not be negative"},
		{"consume an unknown subscription", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, shared("plain", "", ""))
		}, connect.CodeNotFound, "subscription not found"},
		{"consume an unknown stream", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, shared("nope", "", ""))
		}, connect.CodeNotFound, "nope"},
		{"consume with a filter", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, shared("q", "", "true"))
		}, connect.CodeInvalidArgument, "has its own"},
		{"subscribe with a bad filter", func(c weirpbconnect.WeirClient) error {
			return firstEventError(t, c, &weirpb.SubscribeRequest{Stream: "plain", Mode: ephemeral(), Filter: "key =="})
		}, connect.CodeInvalidArgument, "filter:1:"},
		{"ack with an unknown subscription id", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: "0123", Records: ref(heldA[0])}))
			return err
		}, connect.CodeNotFound, "0123"},
		{"ack without a subscription id", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{Records: ref(heldA[0])}))
			return err
		}, connect.CodeInvalidArgument, "subscription_id is required"},
		{"ack without records", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: a.subscribed.GetSubscriptionId()}))
			return err
		}, connect.CodeInvalidArgument, "records is required"},
		{"ack a record another consumer holds", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: a.subscribed.GetSubscriptionId(), Records: ref(heldB[0])}))
			return err
		}, connect.CodeFailedPrecondition, "not held by"},
		{"nack a record another consumer holds", func(c weirpbconnect.WeirClient) error {
			_, err := c.Nack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: b.subscribed.GetSubscriptionId(), Records: ref(heldA[0])}))
			return err
		}, connect.CodeFailedPrecondition, "not held by"},
		{"ack in a missing partition", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: a.subscribed.GetSubscriptionId(),
				Records: []*weirpb.PartitionOffset{{Partition: 5}}}))
			return err
		}, connect.CodeNotFound, "partition"},
		{"ack on a subscription not in shared mode", func(c weirpbconnect.WeirClient) error {
			_, err := c.Ack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: positions.subscribed.GetSubscriptionId(), Records: ref(heldA[0])}))
			return err
		}, connect.CodeFailedPrecondition, "not in shared mode"},
		{"credits for a shared-mode subscription", func(c weirpbconnect.WeirClient) error {
			_, err := c.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{SubscriptionId: a.subscribed.GetSubscriptionId(), Credits: 1}))
			return err
		}, connect.CodeFailedPrecondition, "shared mode"},
		{"nack with a negative delay", func(c weirpbconnect.WeirClient) error {
			_, err := c.Nack(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: a.subscribed.GetSubscriptionId(), Records: ref(heldA[0]),
				Delay: durationpb.New(-time.Second)}))
			return err
		}, connect.CodeInvalidArgument, "delay must not be negative"},
		{"extend without a delay", func(c weirpbconnect.WeirClient) error {
			_, err := c.Extend(t.Context(), connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: a.subscribed.GetSubscriptionId(), Records: ref(heldA[0])}))
			return err
		}, connect.CodeInvalidArgument, "delay is required"},
	}
	for proto, c := range n.clients() {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				err := tt.call(c)
				wantCode(t, tt.name, err, tt.code)
				if err != nil && !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %q does not contain %q", err, tt.msg)
				}
			})
		}
	}
	// The failed settlements changed nothing: each consumer still holds its
	// record, and can settle it.
	mustSettle(t, "Ack", n.grpc.Ack, a, heldA, "", 0)
	mustSettle(t, "Ack", n.json.Ack, b, heldB, "", 0)
	if info := describeSub(t, n.grpc, "q", ""); info.GetDepth() != 0 {
		t.Errorf("after the acks: %v", info)
	}
}

// TestQueueFull checks that a publish refused by a queue's max length (set
// up on the broker here) is ResourceExhausted.
func TestQueueFull(t *testing.T) {
	n := startNode(t, "")
	_, err := n.srv.Broker().CreateQueue(t.Context(), broker.QueueConfig{Name: "bounded", Partitions: 1,
		Subscription: broker.SubscriptionConfig{MaxLength: 2, Overflow: broker.OverflowRejectPublish}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, n.grpc, "bounded", -1, "a", "b")
	for proto, c := range n.clients() {
		_, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "bounded", Records: []*weirpb.Record{{Value: []byte("c")}}}))
		wantCode(t, proto+": publish to a full queue", err, connect.CodeResourceExhausted)
		if err != nil && !strings.Contains(err.Error(), "max length is 2") {
			t.Errorf("%s: error %q does not give the max length", proto, err)
		}
	}
}

// TestQueueMaxLengthBytes: max_length_bytes goes through the API both ways,
// depth_bytes describes what the bound counts, a full queue refuses
// publishes with ResourceExhausted, and a negative bound is
// InvalidArgument.
func TestQueueMaxLengthBytes(t *testing.T) {
	n := startNode(t, "")
	ctx := t.Context()
	for proto, c := range n.clients() {
		name := "bytes-" + strings.ReplaceAll(proto, "+", "-")
		resp, err := c.CreateQueue(ctx, connect.NewRequest(&weirpb.CreateQueueRequest{Name: name,
			Subscription: &weirpb.SubscriptionConfig{MaxLengthBytes: 250, Overflow: broker.OverflowRejectPublish}}))
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if cfg := resp.Msg.GetConfig(); cfg.GetMaxLengthBytes() != 250 || cfg.GetOverflow() != broker.OverflowRejectPublish {
			t.Errorf("%s: created with %v", proto, cfg)
		}
		// Records of 100 bytes: key (1), value (97), header h=v (2).
		rec := &weirpb.Record{Key: []byte("k"), Value: []byte(strings.Repeat("v", 97)), Headers: []*weirpb.Header{{Key: "h", Value: []byte("v")}}}
		for range 3 {
			if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: name, Records: []*weirpb.Record{rec}})); err != nil {
				t.Fatalf("%s: publish: %v", proto, err)
			}
		}
		_, err = c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: name, Records: []*weirpb.Record{rec}}))
		wantCode(t, proto+": publish to a full queue", err, connect.CodeResourceExhausted)
		if err != nil && !strings.Contains(err.Error(), "max length is 250 bytes") {
			t.Errorf("%s: error %q does not give the bound", proto, err)
		}
		info, err := c.DescribeSubscription(ctx, connect.NewRequest(&weirpb.DescribeSubscriptionRequest{Stream: name}))
		if err != nil || info.Msg.GetDepth() != 3 || info.Msg.GetDepthBytes() != 300 || info.Msg.GetConfig().GetMaxLengthBytes() != 250 {
			t.Errorf("%s: described as %v, %v; want depth 3, 300 bytes", proto, info.Msg, err)
		}
		_, err = c.CreateSubscription(ctx, connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
			Stream: name, Name: "negative", MaxLengthBytes: -1}}))
		wantCode(t, proto+": negative max_length_bytes", err, connect.CodeInvalidArgument)
		if err != nil && !strings.Contains(err.Error(), "max length in bytes must not be negative") {
			t.Errorf("%s: error %q does not say what is wrong", proto, err)
		}
	}
}
