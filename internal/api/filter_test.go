package api_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

const ordersOnly = "headers['type'] == 'order'"

// publishTyped publishes n records alternating between the types order and
// refund, valued "<type>-<i>", and returns the values of the orders.
func publishTyped(t *testing.T, c weirpbconnect.WeirClient, stream string, n int) []string {
	t.Helper()
	req := &weirpb.PublishRequest{Stream: stream}
	var orders []string
	for i := range n {
		typ := []string{"order", "refund"}[i%2]
		v := fmt.Sprintf("%s-%d", typ, i)
		if typ == "order" {
			orders = append(orders, v)
		}
		req.Records = append(req.Records, &weirpb.Record{
			Key:     []byte(fmt.Sprint("k", i)),
			Value:   []byte(v),
			Headers: []*weirpb.Header{{Key: "type", Value: []byte(typ)}},
		})
	}
	if _, err := c.Publish(t.Context(), connect.NewRequest(req)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return orders
}

func sortedValues(recs []*weirpb.Record) []string {
	out := values(recs)
	slices.Sort(out)
	return out
}

// TestSubscribeFilter filters a group, a positions and an ephemeral
// subscription with SubscribeRequest.filter, and a shared subscription with
// its own.
func TestSubscribeFilter(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 3)
	orders := publishTyped(t, n.grpc, "orders", 20)
	slices.Sort(orders)

	group := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "orders", Filter: ordersOnly, Mode: &weirpb.SubscribeRequest_Group{Group: &weirpb.GroupMode{
		Group: "billing", Start: &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}}}}})
	if got := sortedValues(group.records(10, 5*time.Second)); !slices.Equal(got, orders) {
		t.Errorf("group subscription with a filter got %q, want %q", got, orders)
	}
	group.quiet(200 * time.Millisecond)

	// Credits count only the records that match.
	positions := subscribe(t, n.json, &weirpb.SubscribeRequest{Stream: "orders", Filter: ordersOnly, Credits: 4, Mode: fromEarliest(nil)})
	got := positions.records(4, 5*time.Second)
	positions.quiet(200 * time.Millisecond)
	if _, err := n.json.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{
		SubscriptionId: positions.subscribed.GetSubscriptionId(), Credits: 100})); err != nil {
		t.Fatal(err)
	}
	got = append(got, positions.records(6, 5*time.Second)...)
	if got := sortedValues(got); !slices.Equal(got, orders) {
		t.Errorf("positions subscription with a filter got %q, want %q", got, orders)
	}

	live := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "orders", Filter: "key == 'k1' || value_string.startsWith('order-2')", Mode: ephemeral()})
	publishTyped(t, n.grpc, "orders", 4) // order-0, refund-1, order-2, refund-3
	if got := sortedValues(live.records(2, 5*time.Second)); !slices.Equal(got, []string{"order-2", "refund-1"}) {
		t.Errorf("ephemeral subscription with a filter got %q", got)
	}
	live.quiet(200 * time.Millisecond)

	// A shared subscription's filter settles what does not match.
	_, err := n.grpc.CreateSubscription(t.Context(), connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
		Stream: "orders", Name: "orders-only", Filter: ordersOnly,
		Start: &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	consumer := consume(t, n.json, "orders", "orders-only", 100)
	recs, _ := consumer.deliveries(12, 5*time.Second)
	want := append(slices.Clone(orders), "order-0", "order-2")
	slices.Sort(want)
	if got := sortedValues(recs); !slices.Equal(got, want) {
		t.Errorf("shared subscription with a filter got %q, want %q", got, want)
	}
	consumer.quiet(200 * time.Millisecond)
	mustSettle(t, "Ack", n.json.Ack, consumer, recs, "", 0)
	if info := describeSub(t, n.grpc, "orders", "orders-only"); info.GetDepth() != 0 {
		t.Errorf("after acking every order: %v", info)
	}
}
