package api_test

import (
	"bytes"
	"context"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// apiGoroutines returns the stacks of the goroutines running code of
// internal/api.
func apiGoroutines() []string {
	var buf bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&buf, 2)
	var out []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "weir/internal/api.") && !strings.Contains(g, "internal/api_test.") {
			out = append(out, g)
		}
	}
	return out
}

// waitNoAPIGoroutines fails if goroutines of internal/api remain after d.
func waitNoAPIGoroutines(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := apiGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of internal/api left after the clients went away:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoLeaksWhenClientsVanish opens subscriptions of every mode, one of
// them blocked on HTTP/2 flow control and one on credits, and a long poll,
// then makes the clients vanish mid-stream: every goroutine of the API must
// end, and the group member must leave its group at once.
func TestNoLeaksWhenClientsVanish(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 2)
	big := make([]*weirpb.Record, 100)
	for i := range big {
		big[i] = &weirpb.Record{Value: bytes.Repeat([]byte{'x'}, 64<<10)}
	}
	if _, err := n.grpc.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: big})); err != nil {
		t.Fatal(err)
	}

	// Never read: 6.4 MB fill the client's HTTP/2 window, so the server
	// blocks sending.
	stuck := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "orders", Mode: fromEarliest(nil)})
	credit := subscribe(t, n.json, &weirpb.SubscribeRequest{Stream: "orders", Credits: 1, Mode: fromEarliest(nil)})
	credit.records(1, 5*time.Second)
	tail := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "orders", Mode: ephemeral()})
	member := groupSub(t, n, "leaver")
	member.assignment(5 * time.Second)

	pollCtx, cancelPoll := context.WithCancel(t.Context())
	polled := make(chan error, 1)
	go func() {
		_, err := n.grpc.Fetch(pollCtx, connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", Partition: 1, Offset: 50, MaxWait: durationpb.New(30 * time.Second)}))
		polled <- err
	}()

	time.Sleep(200 * time.Millisecond)
	if len(apiGoroutines()) < 5 {
		t.Fatalf("only %d goroutines of internal/api with 4 subscriptions and a long poll open; the check below would prove nothing", len(apiGoroutines()))
	}
	for _, s := range []*subscriber{stuck, credit, tail, member} {
		s.cancel()
	}
	cancelPoll()
	<-polled
	waitNoAPIGoroutines(t, 5*time.Second)

	_, err := n.grpc.DescribeGroup(t.Context(), connect.NewRequest(&weirpb.DescribeGroupRequest{Group: "billing"}))
	wantCode(t, "DescribeGroup after its only member vanished", err, connect.CodeNotFound)
}

// TestNoLeaksWhenSharedConsumersVanish makes shared-mode subscribers vanish
// while blocked on HTTP/2 flow control, on their prefetch and in Receive:
// every goroutine of the API ends, and the records they held are back in
// their subscriptions at once.
func TestNoLeaksWhenSharedConsumersVanish(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "big", 1, nil)
	big := make([]*weirpb.Record, 100)
	for i := range big {
		big[i] = &weirpb.Record{Value: bytes.Repeat([]byte{'x'}, 64<<10)}
	}
	if _, err := n.grpc.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "big", Records: big})); err != nil {
		t.Fatal(err)
	}
	createQueue(t, n.grpc, "small", 1, nil)
	publish(t, n.grpc, "small", -1, seq("s", 10)...)

	// Never read: the records fill the client's HTTP/2 window.
	stuck := consume(t, n.grpc, "big", "", 0)
	full := consume(t, n.json, "small", "", 2)
	full.deliveries(2, 5*time.Second)
	waiting := consume(t, n.grpc, "small", "", 100)
	waiting.deliveries(8, 5*time.Second)
	waitSub(t, n.grpc, "big", "", "records in flight", func(i *weirpb.SubscriptionInfo) bool { return i.GetInFlight() > 0 })

	time.Sleep(100 * time.Millisecond)
	if len(apiGoroutines()) < 3 {
		t.Fatalf("only %d goroutines of internal/api with 3 subscriptions open; the check below would prove nothing", len(apiGoroutines()))
	}
	for _, s := range []*subscriber{stuck, full, waiting} {
		s.cancel()
	}
	waitNoAPIGoroutines(t, 5*time.Second)
	for _, q := range []string{"big", "small"} {
		waitSub(t, n.grpc, q, "", "no consumer and nothing in flight", func(i *weirpb.SubscriptionInfo) bool {
			return i.GetConsumers() == 0 && i.GetInFlight() == 0
		})
	}
	again := consume(t, n.grpc, "small", "", 0)
	// Each was delivered before (a record the first consumer to go held
	// may have gone to the second before it went too).
	if _, counts := again.deliveries(10, 5*time.Second); slices.Min(counts) < 2 {
		t.Errorf("delivery counts after the consumers vanished: %v, want at least 2", counts)
	}
}

// TestShutdownEndsSubscriptions checks that a server stopping with open
// subscriptions ends them with Unavailable at once rather than waiting for
// the drain to time out.
func TestShutdownEndsSubscriptions(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 1)
	createQueue(t, n.grpc, "jobs", 1, nil)
	subs := []*subscriber{
		subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "orders", Mode: ephemeral()}),
		subscribe(t, n.json, &weirpb.SubscribeRequest{Stream: "orders", Mode: ephemeral()}),
		groupSub(t, n, "a"),
		consume(t, n.grpc, "jobs", "", 0),
	}
	start := time.Now()
	n.stop(t)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v with open subscriptions", took)
	}
	for _, s := range subs {
		if err := s.end(5 * time.Second); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("subscription ended with %v, want Unavailable: shutting down", err)
		}
	}
	waitNoAPIGoroutines(t, time.Second)
}

// TestSubscriptionEndsWhenStreamDeleted checks that deleting a stream ends
// its subscriptions with NotFound rather than leaving them spinning.
func TestSubscriptionEndsWhenStreamDeleted(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "temp", 1)
	sub := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "temp", Mode: ephemeral()})
	if _, err := n.grpc.DeleteStream(t.Context(), connect.NewRequest(&weirpb.DeleteStreamRequest{Name: "temp"})); err != nil {
		t.Fatal(err)
	}
	createStream(t, n.grpc, "temp", 1) // a new stream of the same name is another stream
	if err := sub.end(5 * time.Second); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("subscription ended with %v, want NotFound", err)
	}
}
