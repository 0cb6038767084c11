package api_test

import (
	"context"
	"fmt"
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

func createQueue(t *testing.T, c weirpbconnect.WeirClient, name string, partitions int32, sub *weirpb.SubscriptionConfig) *weirpb.SubscriptionInfo {
	t.Helper()
	resp, err := c.CreateQueue(t.Context(), connect.NewRequest(&weirpb.CreateQueueRequest{Name: name, Partitions: partitions, Subscription: sub}))
	if err != nil {
		t.Fatalf("CreateQueue %s: %v", name, err)
	}
	return resp.Msg
}

func describeSub(t *testing.T, c weirpbconnect.WeirClient, stream, sub string) *weirpb.SubscriptionInfo {
	t.Helper()
	resp, err := c.DescribeSubscription(t.Context(), connect.NewRequest(&weirpb.DescribeSubscriptionRequest{Stream: stream, Subscription: sub}))
	if err != nil {
		t.Fatalf("DescribeSubscription %s/%s: %v", stream, sub, err)
	}
	return resp.Msg
}

// waitSub polls a subscription until ok accepts its description.
func waitSub(t *testing.T, c weirpbconnect.WeirClient, stream, sub string, what string, ok func(*weirpb.SubscriptionInfo) bool) {
	t.Helper()
	var info *weirpb.SubscriptionInfo
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if info = describeSub(t, c, stream, sub); ok(info) {
			return
		}
	}
	t.Fatalf("%s/%s: want %s, have %v", stream, sub, what, info)
}

func sharedMode(sub string) *weirpb.SubscribeRequest_Shared {
	return &weirpb.SubscribeRequest_Shared{Shared: &weirpb.SharedMode{Subscription: sub}}
}

// consume starts a shared-mode subscription of a stream's subscription
// (empty: the queue's own) with a prefetch.
func consume(t *testing.T, c weirpbconnect.WeirClient, stream, sub string, prefetch int32) *subscriber {
	t.Helper()
	s := subscribe(t, c, &weirpb.SubscribeRequest{Stream: stream, Credits: prefetch, Mode: sharedMode(sub)})
	if s.subscribed.GetSubscriptionId() == "" || s.subscribed.GetMemberId() != "" {
		t.Fatalf("Subscribed = %v", s.subscribed)
	}
	return s
}

// deliveries collects exactly n records of a shared-mode subscription with
// their delivery counts.
func (s *subscriber) deliveries(n int, timeout time.Duration) ([]*weirpb.Record, []int32) {
	s.t.Helper()
	var recs []*weirpb.Record
	var counts []int32
	deadline := time.Now().Add(timeout)
	for len(recs) < n {
		ev := s.next(time.Until(deadline)).GetRecords()
		if ev == nil || len(ev.GetDeliveryCounts()) != len(ev.GetRecords()) {
			s.t.Fatalf("event %v, want records with their delivery counts", ev)
		}
		recs = append(recs, ev.GetRecords()...)
		counts = append(counts, ev.GetDeliveryCounts()...)
	}
	if len(recs) > n {
		s.t.Fatalf("got %d records, want %d", len(recs), n)
	}
	return recs, counts
}

// settler is one of a client's Ack, Nack, Reject and Extend.
type settler func(context.Context, *connect.Request[weirpb.SettleRequest]) (*connect.Response[weirpb.SettleResponse], error)

// settle settles records delivered to s.
func settle(t *testing.T, method settler, s *subscriber, recs []*weirpb.Record, errText string, delay time.Duration) error {
	t.Helper()
	req := &weirpb.SettleRequest{SubscriptionId: s.subscribed.GetSubscriptionId(), Error: errText}
	for _, r := range recs {
		req.Records = append(req.Records, &weirpb.PartitionOffset{Partition: r.GetPartition(), Offset: r.GetOffset()})
	}
	if delay != 0 {
		req.Delay = durationpb.New(delay)
	}
	_, err := method(t.Context(), connect.NewRequest(req))
	return err
}

func mustSettle(t *testing.T, what string, method settler, s *subscriber, recs []*weirpb.Record, errText string, delay time.Duration) {
	t.Helper()
	if err := settle(t, method, s, recs, errText, delay); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// refs names records by partition/offset.
func refs(recs []*weirpb.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%d/%d", r.GetPartition(), r.GetOffset())
	}
	return out
}

func header(r *weirpb.Record, key string) (string, bool) {
	for _, h := range r.GetHeaders() {
		if h.GetKey() == key {
			return string(h.GetValue()), true
		}
	}
	return "", false
}

// TestSharedPrefetch runs two consumers of a queue with a prefetch of 5:
// they get disjoint records, never more than 5 unsettled each, and each
// settlement lets exactly as many more through.
func TestSharedPrefetch(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			q := "work-" + strings.ReplaceAll(proto, "+", "-")
			createQueue(t, c, q, 2, nil)
			publish(t, c, q, -1, seq("w", 30)...)
			a, b := consume(t, c, q, "", 5), consume(t, c, q, "", 5)

			seen := make(map[string]string) // record → consumer
			take := func(name string, s *subscriber, k int) []*weirpb.Record {
				t.Helper()
				recs, counts := s.deliveries(k, 5*time.Second)
				for i, r := range recs {
					if counts[i] != 1 {
						t.Errorf("%s: %s delivered with count %d, want 1", name, r.GetValue(), counts[i])
					}
					if other, dup := seen[string(r.GetValue())]; dup {
						t.Errorf("%s: %s also went to %s", name, r.GetValue(), other)
					}
					seen[string(r.GetValue())] = name
					if r.GetStream() != q {
						t.Errorf("record of stream %q, want %q", r.GetStream(), q)
					}
				}
				return recs
			}
			heldA, heldB := take("a", a, 5), take("b", b, 5)
			a.quiet(300 * time.Millisecond) // the prefetch is full
			b.quiet(50 * time.Millisecond)
			info := describeSub(t, c, q, "")
			if info.GetInFlight() != 10 || info.GetConsumers() != 2 || info.GetDepth() != 30 {
				t.Errorf("with 10 in flight: %v", info)
			}

			// Acks settle (the depth drops at once) and return the credits.
			mustSettle(t, "Ack", c.Ack, a, heldA, "", 0)
			if info := describeSub(t, c, q, ""); info.GetDepth() != 25 {
				t.Errorf("after 5 acks: %v", info)
			}
			heldA = take("a", a, 5)
			a.quiet(200 * time.Millisecond)
			mustSettle(t, "Ack", c.Ack, a, heldA[:2], "", 0)
			heldA = append(heldA[2:], take("a", a, 2)...)
			a.quiet(200 * time.Millisecond)
			// Acking again is harmless and returns nothing twice.
			mustSettle(t, "second Ack", c.Ack, b, heldB[:1], "", 0)
			mustSettle(t, "second Ack", c.Ack, b, heldB[:1], "", 0)
			heldB = append(heldB[1:], take("b", b, 1)...)
			b.quiet(200 * time.Millisecond)

			// Drain, acking each batch as it comes: every record once.
			mustSettle(t, "Ack", c.Ack, a, heldA, "", 0)
			mustSettle(t, "Ack", c.Ack, b, heldB, "", 0)
			for len(seen) < 30 {
				var ev *weirpb.SubscribeResponse
				var name string
				var s *subscriber
				select {
				case ev = <-a.events:
					name, s = "a", a
				case ev = <-b.events:
					name, s = "b", b
				case <-time.After(5 * time.Second):
					t.Fatalf("%d records of 30 delivered", len(seen))
				}
				for _, r := range ev.GetRecords().GetRecords() {
					if other, dup := seen[string(r.GetValue())]; dup {
						t.Errorf("%s: %s also went to %s", name, r.GetValue(), other)
					}
					seen[string(r.GetValue())] = name
				}
				if len(ev.GetRecords().GetRecords()) > 5 {
					t.Errorf("%s got %d records at once with a prefetch of 5", name, len(ev.GetRecords().GetRecords()))
				}
				mustSettle(t, "Ack", c.Ack, s, ev.GetRecords().GetRecords(), "", 0)
			}
			if info := describeSub(t, c, q, ""); info.GetDepth() != 0 || info.GetInFlight() != 0 {
				t.Errorf("after acking everything: %v", info)
			}
		})
	}
}

// TestSharedNackRejectRedrive nacks a record with a delay (it comes back
// with delivery count 2 after the delay), rejects one and nacks the first
// past max_deliveries (both land in the dead-letter queue with headers
// saying why), then redrives them back.
func TestSharedNackRejectRedrive(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			q := "tasks-" + strings.ReplaceAll(proto, "+", "-")
			dlq := q + ".dlq"
			info := createQueue(t, c, q, 1, &weirpb.SubscriptionConfig{MaxDeliveries: 2, BackoffInitial: durationpb.New(time.Minute)})
			if info.GetConfig().GetDeadLetterStream() != dlq {
				t.Errorf("dead-letter stream %q, want %q", info.GetConfig().GetDeadLetterStream(), dlq)
			}
			publish(t, c, q, -1, "a", "b", "c")
			sub := consume(t, c, q, "", 10)
			recs, counts := sub.deliveries(3, 5*time.Second)
			if got := values(recs); !slices.Equal(got, []string{"a", "b", "c"}) || !slices.Equal(counts, []int32{1, 1, 1}) {
				t.Fatalf("first deliveries %q %v", got, counts)
			}
			a, b, rest := recs[0], recs[1], recs[2]

			// Nack with a delay: redelivered after it (not after the
			// subscription's backoff of a minute), delivery count 2.
			start := time.Now()
			mustSettle(t, "Nack", c.Nack, sub, []*weirpb.Record{a}, "flaky", 400*time.Millisecond)
			if info := describeSub(t, c, q, ""); info.GetWaiting() != 1 || info.GetInFlight() != 2 {
				t.Errorf("after a nack: %v", info)
			}
			again, counts := sub.deliveries(1, 5*time.Second)
			if took := time.Since(start); took < 350*time.Millisecond {
				t.Errorf("nacked record came back after %v, want the 400ms delay", took)
			}
			if string(again[0].GetValue()) != "a" || counts[0] != 2 {
				t.Errorf("redelivered %s with count %d, want a with 2", again[0].GetValue(), counts[0])
			}

			// Reject b; nack a a second time: max_deliveries is 2.
			mustSettle(t, "Reject", c.Reject, sub, []*weirpb.Record{b}, "bad payload", 0)
			mustSettle(t, "Nack", c.Nack, sub, again, "still flaky", 0)
			mustSettle(t, "Ack", c.Ack, sub, []*weirpb.Record{rest}, "", 0)
			waitSub(t, c, q, "", "everything settled, 2 dead-lettered", func(i *weirpb.SubscriptionInfo) bool {
				return i.GetDepth() == 0 && i.GetDeadLettered() == 2
			})

			dead := subscribe(t, c, &weirpb.SubscribeRequest{Stream: dlq, Mode: fromEarliest(nil)}).records(2, 5*time.Second)
			want := map[string]map[string]string{
				"b": {broker.HeaderDeadLetterReason: broker.ReasonRejected, broker.HeaderLastError: "bad payload", broker.HeaderDeliveryCount: "1"},
				"a": {broker.HeaderDeadLetterReason: broker.ReasonMaxDeliveries, broker.HeaderLastError: "still flaky", broker.HeaderDeliveryCount: "2"},
			}
			for _, r := range dead {
				w := want[string(r.GetValue())]
				w[broker.HeaderDeadLetterStream] = q
				w[broker.HeaderDeadLetterPartition] = "0"
				for k, v := range w {
					if got, _ := header(r, k); got != v {
						t.Errorf("dead-lettered %s: header %s = %q, want %q", r.GetValue(), k, got, v)
					}
				}
			}

			moved, err := c.Redrive(t.Context(), connect.NewRequest(&weirpb.RedriveRequest{Stream: q}))
			if err != nil || moved.Msg.GetMoved() != 2 {
				t.Fatalf("Redrive = %v, %v; want 2 moved", moved, err)
			}
			back, counts := sub.deliveries(2, 5*time.Second)
			got := values(back)
			slices.Sort(got)
			if !slices.Equal(got, []string{"a", "b"}) || !slices.Equal(counts, []int32{1, 1}) {
				t.Errorf("after the redrive: %q with counts %v, want a and b, first deliveries", got, counts)
			}
			for _, r := range back {
				for _, h := range r.GetHeaders() {
					if strings.HasPrefix(h.GetKey(), "x-") {
						t.Errorf("redriven %s keeps header %s", r.GetValue(), h.GetKey())
					}
				}
			}
			if info := describeSub(t, c, dlq, ""); info.GetDepth() != 0 {
				t.Errorf("dead-letter queue after the redrive: %v", info)
			}
		})
	}
}

// TestSharedConsumerLeaves checks that the records a consumer held go to
// another one at once when it goes away, long before their ack deadline.
func TestSharedConsumerLeaves(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "handoff", 2, nil)
	publish(t, n.grpc, "handoff", -1, seq("h", 4)...)
	a := consume(t, n.grpc, "handoff", "", 10)
	held, _ := a.deliveries(4, 5*time.Second)
	b := consume(t, n.json, "handoff", "", 10)
	b.quiet(200 * time.Millisecond)

	a.cancel()
	start := time.Now()
	recs, counts := b.deliveries(4, 5*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the records of a consumer that left came back after %v", took)
	}
	if got, want := refs(recs), refs(held); !sameSet(got, want) || !slices.Equal(counts, []int32{2, 2, 2, 2}) {
		t.Errorf("second consumer got %v (counts %v), want %v with count 2", got, counts, want)
	}
	err := settle(t, n.grpc.Ack, a, held, "", 0)
	wantCode(t, "Ack by a consumer that left", err, connect.CodeNotFound)
	if info := describeSub(t, n.grpc, "handoff", ""); info.GetConsumers() != 1 || info.GetInFlight() != 4 {
		t.Errorf("after the handover: %v", info)
	}
}

// TestSharedAckDeadline checks that a record held past its ack deadline
// returns its credit: with a prefetch of 1, it is delivered again.
func TestSharedAckDeadline(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "slow", 1, &weirpb.SubscriptionConfig{AckTimeout: durationpb.New(300 * time.Millisecond)})
	publish(t, n.grpc, "slow", -1, "x", "y")
	s := consume(t, n.grpc, "slow", "", 1)
	first, _ := s.deliveries(1, 5*time.Second)
	s.quiet(150 * time.Millisecond)
	// Extend keeps it (and its credit) for longer.
	mustSettle(t, "Extend", n.grpc.Extend, s, first, "", 500*time.Millisecond)
	s.quiet(400 * time.Millisecond)
	again, counts := s.deliveries(1, 5*time.Second)
	if refs(again)[0] != refs(first)[0] || counts[0] != 2 {
		t.Errorf("after the deadline: %v with count %v, want %v again with count 2", refs(again), counts, refs(first))
	}
	mustSettle(t, "Ack", n.grpc.Ack, s, again, "", 0)
	if next, counts := s.deliveries(1, 5*time.Second); string(next[0].GetValue()) != "y" || counts[0] != 1 {
		t.Errorf("then %s with count %d, want y with 1", next[0].GetValue(), counts[0])
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSharedSubscriptionDeleted checks that deleting a subscription (or its
// stream) ends its consumers with NotFound.
func TestSharedSubscriptionDeleted(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "gone", 1, nil)
	if _, err := n.grpc.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{
		Config: &weirpb.SubscriptionConfig{Stream: "gone", Name: "side"}})); err != nil {
		t.Fatal(err)
	}
	side := consume(t, n.grpc, "gone", "side", 0)
	own := consume(t, n.json, "gone", "", 0)
	if _, err := n.grpc.DeleteSubscription(t.Context(), connect.NewRequest(&weirpb.DeleteSubscriptionRequest{Stream: "gone", Subscription: "side"})); err != nil {
		t.Fatal(err)
	}
	if err := side.end(5 * time.Second); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("consumer of a deleted subscription ended with %v, want NotFound", err)
	}
	if _, err := n.grpc.DeleteStream(t.Context(), connect.NewRequest(&weirpb.DeleteStreamRequest{Name: "gone"})); err != nil {
		t.Fatal(err)
	}
	if err := own.end(5 * time.Second); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("consumer of a deleted queue ended with %v, want NotFound", err)
	}
}
