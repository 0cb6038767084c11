package api_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

func ephemeral() *weirpb.SubscribeRequest_Ephemeral {
	return &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}
}

func fromEarliest(offsets map[int32]int64) *weirpb.SubscribeRequest_Positions {
	return &weirpb.SubscribeRequest_Positions{Positions: &weirpb.PositionsMode{
		Offsets: offsets,
		Start:   &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}},
	}}
}

func TestSubscribeEphemeral(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "ticker", 3)
	publish(t, n.grpc, "ticker", -1, seq("before-", 6)...)
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			sub := subscribe(t, c, &weirpb.SubscribeRequest{Stream: "ticker", Mode: ephemeral()})
			if sub.subscribed.GetSubscriptionId() == "" || sub.subscribed.GetMemberId() != "" {
				t.Errorf("Subscribed = %v", sub.subscribed)
			}
			after := seq(proto+"-after-", 6)
			publish(t, n.grpc, "ticker", -1, after...)
			got := values(sub.records(6, 5*time.Second))
			slices.Sort(got)
			slices.Sort(after)
			if !slices.Equal(got, after) {
				t.Errorf("ephemeral subscriber got %q, want only %q", got, after)
			}
			sub.quiet(200 * time.Millisecond)
		})
	}
}

func TestSubscribePositions(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "log", 2)
	publish(t, n.grpc, "log", 0, seq("p0-", 5)...)
	publish(t, n.grpc, "log", 1, seq("p1-", 5)...)

	sub := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "log", Mode: fromEarliest(map[int32]int64{1: 3})})
	if got := values(sub.records(2, 5*time.Second)); !slices.Equal(got, []string{"p1-3", "p1-4"}) {
		t.Errorf("from partition 1 offset 3: %q", got)
	}
	sub.quiet(100 * time.Millisecond)

	all := subscribe(t, n.json, &weirpb.SubscribeRequest{Stream: "log", Mode: fromEarliest(nil)})
	if got := all.records(10, 5*time.Second); len(got) != 10 {
		t.Errorf("every partition from the earliest: %d records", len(got))
	}
}

func TestSubscribeCredits(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "work", 2)
	publish(t, n.grpc, "work", -1, seq("w", 40)...)
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			sub := subscribe(t, c, &weirpb.SubscribeRequest{Stream: "work", Credits: 5, Mode: fromEarliest(nil)})
			got := sub.records(5, 5*time.Second)
			sub.quiet(300 * time.Millisecond) // exactly 5, then nothing

			_, err := c.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{
				SubscriptionId: sub.subscribed.GetSubscriptionId(), Credits: 7}))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, sub.records(7, 5*time.Second)...)
			sub.quiet(300 * time.Millisecond)

			_, err = c.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{
				SubscriptionId: sub.subscribed.GetSubscriptionId(), Credits: 100}))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, sub.records(28, 5*time.Second)...)
			// Every record once, in order within each partition.
			seen := make(map[string]bool)
			next := map[int32]int64{}
			for _, r := range got {
				if seen[string(r.GetValue())] {
					t.Errorf("%s delivered twice", r.GetValue())
				}
				seen[string(r.GetValue())] = true
				if r.GetOffset() != next[r.GetPartition()] {
					t.Errorf("partition %d: offset %d, want %d", r.GetPartition(), r.GetOffset(), next[r.GetPartition()])
				}
				next[r.GetPartition()] = r.GetOffset() + 1
			}
			_, err = c.AddCredits(t.Context(), connect.NewRequest(&weirpb.AddCreditsRequest{
				SubscriptionId: sub.subscribed.GetSubscriptionId(), Credits: -1}))
			wantCode(t, "negative AddCredits", err, connect.CodeInvalidArgument)
		})
	}
}

// groupSub starts a group subscription from the earliest offsets.
func groupSub(t *testing.T, n *node, clientID string) *subscriber {
	t.Helper()
	return subscribe(t, n.grpc, &weirpb.SubscribeRequest{
		Stream:   "orders",
		ClientId: clientID,
		Mode: &weirpb.SubscribeRequest_Group{Group: &weirpb.GroupMode{
			Group:          "billing",
			Start:          &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}},
			SessionTimeout: durationpb.New(900 * time.Millisecond),
		}},
	})
}

func partitionsOf(a *weirpb.Assignment) (assigned map[int32]int64, revoked []int32) {
	assigned = make(map[int32]int64)
	for _, p := range a.GetAssigned() {
		assigned[p.GetPartition()] = p.GetOffset()
	}
	for _, p := range a.GetRevoked() {
		revoked = append(revoked, p.GetPartition())
	}
	slices.Sort(revoked)
	return assigned, revoked
}

func commit(t *testing.T, n *node, sub *subscriber, generation int64, offsets map[int32]int64) {
	t.Helper()
	req := &weirpb.CommitRequest{Group: "billing", MemberId: sub.subscribed.GetMemberId(), Generation: generation}
	for p, off := range offsets {
		req.Offsets = append(req.Offsets, &weirpb.OffsetCommit{Stream: "orders", Partition: p, Offset: off})
	}
	if _, err := n.grpc.Commit(t.Context(), connect.NewRequest(req)); err != nil {
		t.Fatalf("Commit %v at generation %d: %v", offsets, generation, err)
	}
}

// TestSubscribeGroupHandover runs two subscribers of one group: the second
// one's arrival moves half the partitions (after the first commits and
// acknowledges), and the first one's departure moves the rest at once, each
// starting from the offsets the first one committed.
func TestSubscribeGroupHandover(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 4)
	for p := range int32(4) {
		publish(t, n.grpc, "orders", p, seq(fmt.Sprintf("p%d-", p), 10)...)
	}

	a := groupSub(t, n, "a")
	if a.subscribed.GetMemberId() == "" {
		t.Fatal("group subscription without a member id")
	}
	first := a.assignment(5 * time.Second)
	assigned, revoked := partitionsOf(first)
	if len(assigned) != 4 || len(revoked) != 0 {
		t.Fatalf("first member's assignment %v, want all 4 partitions", first)
	}
	for p, off := range assigned {
		if off != 0 {
			t.Errorf("partition %d starts at %d, want 0 (earliest)", p, off)
		}
	}
	if got := a.records(40, 5*time.Second); len(got) != 40 {
		t.Fatalf("first member read %d records", len(got))
	}
	// It processed 7 records of each partition.
	commit(t, n, a, first.GetGeneration(), map[int32]int64{0: 7, 1: 7, 2: 7, 3: 7})

	b := groupSub(t, n, "b")
	// a is told to give up two partitions; b gets them once a acknowledged.
	rev := a.assignment(5 * time.Second)
	_, moved := partitionsOf(rev)
	if len(moved) != 2 || rev.GetGeneration() <= first.GetGeneration() {
		t.Fatalf("first member's second assignment %v, want two partitions revoked at a later generation", rev)
	}
	commit(t, n, a, rev.GetGeneration(), map[int32]int64{moved[0]: 8, moved[1]: 8})
	if _, err := n.grpc.AckRevocation(t.Context(), connect.NewRequest(&weirpb.AckRevocationRequest{
		SubscriptionId: a.subscribed.GetSubscriptionId(), Generation: rev.GetGeneration()})); err != nil {
		t.Fatal(err)
	}
	var bGot map[int32]int64
	for deadline := time.Now().Add(5 * time.Second); len(bGot) < 2 && time.Now().Before(deadline); {
		got, _ := partitionsOf(b.assignment(5 * time.Second))
		if bGot == nil {
			bGot = make(map[int32]int64)
		}
		for p, off := range got {
			bGot[p] = off
		}
	}
	if want := map[int32]int64{moved[0]: 8, moved[1]: 8}; fmt.Sprint(bGot) != fmt.Sprint(want) {
		t.Fatalf("second member was assigned %v, want %v (the committed offsets)", bGot, want)
	}
	if got := b.records(4, 5*time.Second); len(got) != 4 {
		t.Fatalf("second member read %d records", len(got))
	}

	// a goes away: b gets a's partitions at once (well within the session
	// timeout), from a's commits.
	a.cancel()
	start := time.Now()
	var rest map[int32]int64
	for len(rest) == 0 {
		rest, _ = partitionsOf(b.assignment(5 * time.Second))
	}
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("handover after the first member left took %v", took)
	}
	var kept []int32
	for p := range int32(4) {
		if !slices.Contains(moved, p) {
			kept = append(kept, p)
		}
	}
	if want := map[int32]int64{kept[0]: 7, kept[1]: 7}; fmt.Sprint(rest) != fmt.Sprint(want) {
		t.Errorf("after the first member left the second got %v, want %v", rest, want)
	}
	if got := b.records(6, 5*time.Second); len(got) != 6 {
		t.Errorf("second member read %d records of the first member's partitions", len(got))
	}

	desc, err := n.grpc.DescribeGroup(t.Context(), connect.NewRequest(&weirpb.DescribeGroupRequest{Group: "billing"}))
	if err != nil {
		t.Fatal(err)
	}
	if m := desc.Msg.GetMembers(); len(m) != 1 || m[0].GetMemberId() != b.subscribed.GetMemberId() || len(m[0].GetAssigned()) != 4 {
		t.Errorf("group members %v, want only the second member, with all 4 partitions", m)
	}
}

// TestSubscribeRevocationTimeout checks that a subscriber that never
// acknowledges a revocation loses the partitions after its session timeout.
func TestSubscribeRevocationTimeout(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "orders", 2)
	a := groupSub(t, n, "a")
	a.assignment(5 * time.Second)
	b := groupSub(t, n, "b")
	if _, revoked := partitionsOf(a.assignment(5 * time.Second)); len(revoked) != 1 {
		t.Fatalf("first member did not lose a partition")
	}
	start := time.Now()
	var got map[int32]int64
	for len(got) == 0 {
		got, _ = partitionsOf(b.assignment(5 * time.Second))
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("partition moved after %v without an acknowledgement, want about the session timeout", took)
	}
}

// A stream deleted and created again under a subscription ends it with
// NotFound: its reader followed the old stream's partitions, and the new
// stream's records are not the old one's.
func TestSubscribeStreamRecreated(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "phoenix", 2)
	sub := subscribe(t, n.grpc, &weirpb.SubscribeRequest{Stream: "phoenix", Mode: ephemeral()})
	publish(t, n.grpc, "phoenix", -1, "old")
	if got := values(sub.records(1, 5*time.Second)); got[0] != "old" {
		t.Fatalf("got %q", got)
	}
	if _, err := n.grpc.DeleteStream(t.Context(), connect.NewRequest(&weirpb.DeleteStreamRequest{Name: "phoenix"})); err != nil {
		t.Fatal(err)
	}
	createStream(t, n.grpc, "phoenix", 2)
	publish(t, n.grpc, "phoenix", -1, "new")
	if err := sub.end(10 * time.Second); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("subscription of a re-created stream ended with %v, want NotFound", err)
	}
}
