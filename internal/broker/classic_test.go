package broker

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

func classicJoin(id string, protocols ...string) ClassicJoinRequest {
	req := ClassicJoinRequest{Group: "cg", MemberID: id, ClientID: "c", ProtocolType: "consumer",
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 5 * time.Second}
	for _, p := range protocols {
		req.Protocols = append(req.Protocols, ClassicProtocol{Name: p, Metadata: []byte(p + "-meta")})
	}
	return req
}

// TestClassicGroup walks a classic group through two members joining (with
// the member-id round trip), protocol choice, leader assignment, a third
// member's rebalance, fencing of stale generations, and a session expiry.
func TestClassicGroup(t *testing.T) {
	b := openBroker(t, t.TempDir())
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})

	// A new member first gets its id.
	req := classicJoin("", "roundrobin", "range")
	req.RequireKnownMemberID = true
	res, err := b.ClassicJoin(ctx, req)
	if !errors.Is(err, ErrMemberIDRequired) || res.MemberID == "" {
		t.Fatalf("first join: %v %+v", err, res)
	}
	id1 := res.MemberID
	if _, err := b.ClassicJoin(ctx, classicJoin("made-up", "range")); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("join with an id never handed out: %v", err)
	}
	r1, err := b.ClassicJoin(ctx, classicJoin(id1, "roundrobin", "range"))
	if err != nil || r1.Generation != 1 || r1.Leader != id1 || len(r1.Members) != 1 {
		t.Fatalf("join alone: %v %+v", err, r1)
	}
	if _, err := b.ClassicSync(ctx, "cg", id1, "", 1, map[string][]byte{id1: []byte("all")}); err != nil {
		t.Fatal(err)
	}
	// A second member (supporting only range) makes the first rejoin.
	var wg sync.WaitGroup
	var r2 ClassicJoinResult
	var err2 error
	wg.Add(1)
	go func() {
		defer wg.Done()
		r2, err2 = b.ClassicJoin(ctx, classicJoin("", "range"))
	}()
	waitUntil(t, func() bool { return errors.Is(b.ClassicHeartbeat("cg", id1, "", 1), ErrRebalanceInProgress) })
	r1, err = b.ClassicJoin(ctx, classicJoin(id1, "roundrobin", "range"))
	wg.Wait()
	if err != nil || err2 != nil {
		t.Fatalf("rejoin: %v, %v", err, err2)
	}
	if r1.Generation != 2 || r2.Generation != 2 || r1.Protocol != "range" || r2.Protocol != "range" {
		t.Fatalf("generation 2: %+v %+v", r1, r2)
	}
	if r1.Leader != id1 || len(r1.Members) != 2 || len(r2.Members) != 0 {
		t.Fatalf("the leader alone gets the members: %+v %+v", r1, r2)
	}
	for _, m := range r1.Members {
		if string(m.Metadata) != "range-meta" {
			t.Errorf("member %s metadata %q, want the chosen protocol's", m.MemberID, m.Metadata)
		}
	}
	id2 := r2.MemberID
	// The follower's sync waits for the leader's.
	var s2 ClassicSyncResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		s2, err2 = b.ClassicSync(ctx, "cg", id2, "", 2, nil)
	}()
	if _, err := b.ClassicSync(ctx, "cg", id1, "", 1, nil); !errors.Is(err, ErrStaleGeneration) {
		t.Errorf("sync with generation 1: %v", err)
	}
	s1, err := b.ClassicSync(ctx, "cg", id1, "", 2, map[string][]byte{id1: []byte("p0"), id2: []byte("p1")})
	wg.Wait()
	if err != nil || err2 != nil || string(s1.Assignment) != "p0" || string(s2.Assignment) != "p1" {
		t.Fatalf("sync: %v %v %q %q", err, err2, s1.Assignment, s2.Assignment)
	}
	info, ok := b.DescribeClassicGroup("cg")
	if !ok || info.State != "Stable" || len(info.Members) != 2 {
		t.Fatalf("describe: %+v", info)
	}

	// Commits are fenced by generation; a group with members refuses
	// commits from outside.
	commit := []OffsetCommit{{Stream: "s", Partition: 0, Offset: 0}}
	if _, err := b.ClassicCommit(ctx, "cg", id1, "", 1, commit); !errors.Is(err, ErrStaleGeneration) {
		t.Errorf("commit with generation 1: %v", err)
	}
	if _, err := b.ClassicCommit(ctx, "cg", "", "", -1, commit); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("commit without a member while members are in: %v", err)
	}
	if err := b.CommitOffsets(ctx, "cg", "", 0, commit); !errors.Is(err, ErrGroupBusy) {
		t.Errorf("native commit without a member while Kafka members are in: %v", err)
	}
	errs, err := b.ClassicCommit(ctx, "cg", id2, "", 2, append(commit, OffsetCommit{Stream: "nope", Partition: 0}))
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrStreamNotFound) {
		t.Errorf("commit: %v %v", err, errs)
	}
	if off, _, found, err := b.CommittedOffset("cg", "s", 0); err != nil || !found || off != 0 {
		t.Errorf("committed offset %d %v %v", off, found, err)
	}

	// The second member stops heartbeating: its session ends, and the
	// leader is told to rejoin.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.ClassicHeartbeat("cg", id1, "", 2)
		if errors.Is(err, ErrRebalanceInProgress) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("heartbeat while the other member expires: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r1, err = b.ClassicJoin(ctx, classicJoin(id1, "range"))
	if err != nil || r1.Generation != 3 || len(r1.Members) != 1 {
		t.Fatalf("after the expiry: %v %+v", err, r1)
	}
	if err := b.ClassicLeave("cg", id1, ""); err != nil {
		t.Fatal(err)
	}
	if info, ok := b.DescribeClassicGroup("cg"); ok && len(info.Members) != 0 {
		t.Errorf("members after the last left: %+v", info)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNextSequenceWraps(t *testing.T) {
	if got := nextSeq(math.MaxInt32, 1); got != 0 {
		t.Errorf("nextSeq(MaxInt32, 1) = %d, want 0", got)
	}
	if got := nextSeq(math.MaxInt32-1, 3); got != 1 {
		t.Errorf("nextSeq(MaxInt32-1, 3) = %d, want 1", got)
	}
}
