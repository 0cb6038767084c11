package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func staticJoin(id, instance string, protocols ...string) ClassicJoinRequest {
	req := classicJoin(id, protocols...)
	req.InstanceID = instance
	req.RequireKnownMemberID = true
	return req
}

// TestClassicStaticMembership: two static members form a stable group; the
// follower's instance restarts and rejoins without a member id, taking its
// old assignment in the same generation (no rebalance), while its old id is
// fenced everywhere; the leader's restart is told to skip the assignment
// (v9) or shown the old leader id (older versions); a protocol change
// forces a rebalance; an administrator removes a member by instance id.
func TestClassicStaticMembership(t *testing.T) {
	b := openBroker(t, t.TempDir())
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})

	first, err := b.ClassicJoin(ctx, staticJoin("", "i1", "range"))
	if err != nil {
		t.Fatal(err)
	}
	id1 := first.MemberID
	if _, err := b.ClassicSync(ctx, "cg", id1, "i1", first.Generation, nil); err != nil {
		t.Fatal(err)
	}
	res := make([]ClassicJoinResult, 2)
	var wg sync.WaitGroup
	wg.Go(func() { res[1], _ = b.ClassicJoin(ctx, staticJoin("", "i2", "range")) })
	waitUntil(t, func() bool {
		return errors.Is(b.ClassicHeartbeat("cg", id1, "i1", first.Generation), ErrRebalanceInProgress)
	})
	res[0], err = b.ClassicJoin(ctx, staticJoin(id1, "i1", "range"))
	wg.Wait()
	id2 := res[1].MemberID
	if err != nil || id2 == "" || res[0].Generation != res[1].Generation {
		t.Fatalf("joins: %v %+v", err, res)
	}
	if !strings.HasPrefix(id1, "i1-") || !strings.HasPrefix(id2, "i2-") {
		t.Fatalf("static member ids %q %q (no MEMBER_ID_REQUIRED round trip, prefixed by the instance id)", id1, id2)
	}
	leader := res[0].Leader
	follower, followerInstance := id2, "i2"
	if leader == id2 {
		follower, followerInstance = id1, "i1"
	}
	gen := res[0].Generation
	wg.Go(func() { b.ClassicSync(ctx, "cg", follower, followerInstance, gen, nil) })
	if _, err := b.ClassicSync(ctx, "cg", leader, "", gen, map[string][]byte{id1: []byte("a1"), id2: []byte("a2")}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := map[string]string{id1: "a1", id2: "a2"}[follower]

	// The follower restarts.
	r, err := b.ClassicJoin(ctx, staticJoin("", followerInstance, "range"))
	if err != nil || r.Generation != gen || r.MemberID == follower || r.Leader != leader || len(r.Members) != 0 {
		t.Fatalf("static rejoin: %v %+v (generation %d)", err, r, gen)
	}
	newFollower := r.MemberID
	s, err := b.ClassicSync(ctx, "cg", newFollower, followerInstance, gen, nil)
	if err != nil || string(s.Assignment) != want {
		t.Fatalf("sync after the static rejoin: %v %q, want %q", err, s.Assignment, want)
	}
	if err := b.ClassicHeartbeat("cg", leader, "", gen); err != nil {
		t.Errorf("the other member's heartbeat after the rejoin: %v (no rebalance wanted)", err)
	}
	// The old member id is fenced.
	if err := b.ClassicHeartbeat("cg", follower, followerInstance, gen); !errors.Is(err, ErrFencedInstanceID) {
		t.Errorf("old member's heartbeat: %v, want ErrFencedInstanceID", err)
	}
	if _, err := b.ClassicSync(ctx, "cg", follower, followerInstance, gen, nil); !errors.Is(err, ErrFencedInstanceID) {
		t.Errorf("old member's sync: %v", err)
	}
	if _, err := b.ClassicCommit(ctx, "cg", follower, followerInstance, gen, []OffsetCommit{{Stream: "s", Offset: 1}}); !errors.Is(err, ErrFencedInstanceID) {
		t.Errorf("old member's commit: %v", err)
	}
	if _, err := b.ClassicJoin(ctx, staticJoin(follower, followerInstance, "range")); !errors.Is(err, ErrFencedInstanceID) {
		t.Errorf("old member's join: %v", err)
	}
	if err := b.ClassicLeave("cg", follower, followerInstance); !errors.Is(err, ErrFencedInstanceID) {
		t.Errorf("old member's leave: %v", err)
	}
	if errs, err := b.ClassicCommit(ctx, "cg", newFollower, followerInstance, gen, []OffsetCommit{{Stream: "s", Offset: 1}}); err != nil || errs[0] != nil {
		t.Errorf("new member's commit: %v %v", err, errs)
	}

	// The leader restarts: v9 is told it leads but must not assign.
	leaderInstance := map[string]string{id1: "i1", id2: "i2"}[leader]
	req := staticJoin("", leaderInstance, "range")
	req.SkipAssignmentSupported = true
	r, err = b.ClassicJoin(ctx, req)
	if err != nil || r.Generation != gen || r.Leader != r.MemberID || !r.SkipAssignment || len(r.Members) != 2 {
		t.Fatalf("static leader rejoin (v9): %v %+v", err, r)
	}
	newLeader := r.MemberID
	// And again with an older version: shown the old leader id.
	r, err = b.ClassicJoin(ctx, staticJoin("", leaderInstance, "range"))
	if err != nil || r.Generation != gen || r.Leader != newLeader || r.SkipAssignment || len(r.Members) != 0 {
		t.Fatalf("static leader rejoin (v8): %v %+v", err, r)
	}
	newLeader = r.MemberID
	info, _ := b.DescribeClassicGroup("cg")
	if info.State != "Stable" || info.Generation != gen || len(info.Members) != 2 {
		t.Fatalf("after the restarts: %+v", info)
	}
	for _, m := range info.Members {
		if m.InstanceID == "" || (m.MemberID != newLeader && m.MemberID != newFollower) {
			t.Errorf("member %+v", m)
		}
	}

	// A restart that changes the protocol choice rebalances.
	alone := staticJoin("", "i3", "range", "roundrobin")
	alone.Group = "cg2"
	r, err = b.ClassicJoin(ctx, alone)
	if err != nil || r.Protocol != "range" {
		t.Fatalf("cg2: %v %+v", err, r)
	}
	if _, err := b.ClassicSync(ctx, "cg2", r.MemberID, "i3", r.Generation, map[string][]byte{r.MemberID: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	alone.Protocols = []ClassicProtocol{{Name: "roundrobin"}, {Name: "range"}}
	r2, err := b.ClassicJoin(ctx, alone)
	if err != nil || r2.Generation != r.Generation+1 || r2.Protocol != "roundrobin" || r2.Leader != r2.MemberID || len(r2.Members) != 1 {
		t.Fatalf("static rejoin changing the protocol: %v %+v, want a rebalance", err, r2)
	}

	// An administrator removes a member by instance id.
	if err := b.ClassicLeave("cg", "", "nope"); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("leave of an unknown instance: %v", err)
	}
	if err := b.ClassicLeave("cg", "", followerInstance); err != nil {
		t.Fatal(err)
	}
	info, _ = b.DescribeClassicGroup("cg")
	if len(info.Members) != 1 || info.State != "PreparingRebalance" {
		t.Errorf("after removing an instance: %+v", info)
	}
}
