package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

// ackRequest acks recs in one AckStream request.
func ackRequest(id uint64, sub string, recs []*weirpb.Record) *weirpb.AckStreamRequest {
	req := &weirpb.AckStreamRequest{Id: id, SubscriptionId: sub}
	for _, r := range recs {
		req.Partitions = append(req.Partitions, r.GetPartition())
		req.Offsets = append(req.Offsets, r.GetOffset())
	}
	return req
}

// TestAckStream: every request on an AckStream is answered with its id,
// with the code an Ack call would have failed with when it is refused; a
// refused request leaves the stream open for the next; acks answered are
// durable (a restart delivers none of them again) and give their credits
// back; the stream ends once the client closes its side.
func TestAckStream(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	createQueue(t, n.grpc, "work", 2, nil)
	values := []string{"a", "b", "c", "d", "e", "f"}
	publish(t, n.grpc, "work", -1, values...)
	const prefetch = 6
	s := consume(t, n.grpc, "work", "", prefetch)
	recs, _ := s.deliveries(len(values), 5*time.Second)
	id := s.subscribed.GetSubscriptionId()
	publish(t, n.grpc, "work", -1, "g")
	other := consume(t, n.grpc, "work", "", 1)
	otherRecs, _ := other.deliveries(1, 5*time.Second)

	// One stream carries the acks of both subscriptions.
	stream := n.grpc.AckStream(t.Context())
	requests := []*weirpb.AckStreamRequest{
		ackRequest(1, id, recs[:2]),
		{Id: 2, SubscriptionId: id, Partitions: []int32{0}},
		ackRequest(3, "no-such-subscription", recs[2:3]),
		ackRequest(4, id, []*weirpb.Record{recs[2], otherRecs[0]}), // the other's record: all refused
		{Id: 5, SubscriptionId: id},
		ackRequest(6, id, recs[2:4]),
		ackRequest(7, id, recs[4:]),
		ackRequest(8, other.subscribed.GetSubscriptionId(), otherRecs),
	}
	want := map[uint64]string{1: "", 2: "invalid_argument", 3: "not_found", 4: "failed_precondition", 5: "invalid_argument", 6: "", 7: "", 8: ""}
	for _, req := range requests {
		if err := stream.Send(req); err != nil {
			t.Fatalf("Send %d: %v", req.GetId(), err)
		}
	}
	if err := stream.CloseRequest(); err != nil {
		t.Fatal(err)
	}
	got := make(map[uint64]string)
	for {
		resp, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Receive after %d answers: %v", len(got), err)
		}
		if _, dup := got[resp.GetId()]; dup {
			t.Errorf("request %d answered twice", resp.GetId())
		}
		got[resp.GetId()] = resp.GetCode()
		if (resp.GetCode() == "") != (resp.GetMessage() == "") {
			t.Errorf("answer %v: an error has a code and a message, a success neither", resp)
		}
	}
	if err := stream.CloseResponse(); err != nil {
		t.Error(err)
	}
	for reqID, code := range want {
		if have, ok := got[reqID]; !ok || have != code {
			t.Errorf("request %d answered %q (answered: %v), want %q", reqID, have, ok, code)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d answers for %d requests", len(got), len(want))
	}

	// Answered means durable: nothing is left, and the credits came back.
	if info := describeSub(t, n.grpc, "work", "work"); info.GetDepth() != 0 || info.GetInFlight() != 0 {
		t.Errorf("after the answers: depth %d, in flight %d; want 0 and 0", info.GetDepth(), info.GetInFlight())
	}
	other.cancel()
	<-other.closed
	publish(t, n.grpc, "work", -1, values...)
	more, _ := s.deliveries(prefetch, 5*time.Second)
	s.cancel()
	n.stop(t)

	// After a restart only the records delivered since come again.
	n = startNode(t, dir)
	if info := describeSub(t, n.grpc, "work", "work"); info.GetDepth() != int64(len(more)) {
		t.Errorf("depth %d after a restart, want %d", info.GetDepth(), len(more))
	}
}

// TestAckStreamEndsWithTheClient: a client whose connection goes away
// ends the stream's handler on the server, and the acks it had answered
// stay applied.
func TestAckStreamEndsWithTheClient(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "gone", 1, nil)
	publish(t, n.grpc, "gone", -1, "x", "y")
	s := consume(t, n.grpc, "gone", "", 10)
	recs, _ := s.deliveries(2, 5*time.Second)

	// A client of its own, whose connection the test can cut.
	conns := make(chan net.Conn, 1)
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &h2, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conns <- c
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	stream := weirpbconnect.NewWeirClient(&http.Client{Transport: tr}, n.base, connect.WithGRPC()).AckStream(t.Context())
	if err := stream.Send(ackRequest(1, s.subscribed.GetSubscriptionId(), recs)); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Receive(); err != nil || resp.GetId() != 1 || resp.GetCode() != "" {
		t.Fatalf("answer %v, %v; want request 1 done", resp, err)
	}
	if open := openStreams(t, n, "AckStream"); open != 1 {
		t.Fatalf("%d AckStream handlers on the server while the client is there, want 1", open)
	}
	(<-conns).Close()
	waitStreams(t, n, "AckStream", 0, "the AckStream handler ends after its client's connection closed")
	if info := describeSub(t, n.grpc, "gone", "gone"); info.GetDepth() != 0 {
		t.Errorf("depth %d after the client went away, want 0: its answered acks are applied", info.GetDepth())
	}
}

// TestAckStreamEndsAtShutdown: a stream the client keeps open does not hold
// the server's shutdown: it ends with Unavailable.
func TestAckStreamEndsAtShutdown(t *testing.T) {
	n := startNode(t, "")
	createQueue(t, n.grpc, "stay", 1, nil)
	publish(t, n.grpc, "stay", -1, "x")
	s := consume(t, n.grpc, "stay", "", 10)
	recs, _ := s.deliveries(1, 5*time.Second)
	stream := n.grpc.AckStream(t.Context())
	if err := stream.Send(ackRequest(1, s.subscribed.GetSubscriptionId(), recs)); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Receive(); err != nil || resp.GetCode() != "" {
		t.Fatalf("answer %v, %v; want request 1 done", resp, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an AckStream open: %v", err)
	}
	if _, err := stream.Receive(); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("Receive after the shutdown: %v, want unavailable", err)
	}
}

// waitStreams waits until the server has want streaming calls of a
// procedure open.
func waitStreams(t *testing.T, n *node, procedure string, want int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); openStreams(t, n, procedure) != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d open after 5 s, want %d", what, openStreams(t, n, procedure), want)
		}
	}
}

// openStreams reads the server's count of open streaming calls of a
// procedure of weir.v1.Weir from its metrics.
func openStreams(t *testing.T, n *node, procedure string) int {
	t.Helper()
	resp, err := n.h1.Get(n.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	series := `weir_api_streams{procedure="weir.v1.Weir/` + procedure + `"} `
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
			open, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return open
		}
	}
	return 0
}
