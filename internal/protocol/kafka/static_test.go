package kafka_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// staticMember is a franz-go consumer with an instance id, counting the
// rebalances it goes through.
type staticMember struct {
	*groupConsumer
	assigned, revoked atomic.Int32
}

func startStaticMember(t *testing.T, w *weir, instance string, seen *seenSet) *staticMember {
	t.Helper()
	m := &staticMember{}
	m.groupConsumer = startMember(t, w, "static-g", "static-t", seen,
		kgo.InstanceID(instance), kgo.SessionTimeout(20*time.Second),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { m.assigned.Add(1) }),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { m.revoked.Add(1) }),
	)
	return m
}

// TestStaticMembership (KIP-345) runs two static franz-go consumers;
// the follower's client is closed and started again with the same
// instance id: it takes back its partitions in the same generation, and
// the other member sees no rebalance (no revocation, no new assignment).
// Then the restarted member is closed (a static member does not leave on
// close) and an administrator removes it by instance id (kadm
// LeaveGroup): the other member takes every partition at once, without
// waiting for the session timeout.
func TestStaticMembership(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "static-t"); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	produceValues(t, prod, "static-t", 0, 100)
	seen := &seenSet{seen: make(map[int]int)}
	members := map[string]*staticMember{"a": startStaticMember(t, w, "a", seen)}
	waitFor(t, "the first member to consume", func() bool { return seen.count() > 0 })
	members["b"] = startStaticMember(t, w, "b", seen)
	b := w.srv.Broker()
	waitFor(t, "two stable members owning two partitions each", func() bool {
		d, err := adm.DescribeGroups(ctx, "static-g")
		if err != nil || d["static-g"].State != "Stable" || len(d["static-g"].Members) != 2 {
			return false
		}
		for _, m := range d["static-g"].Members {
			a, _ := m.Assigned.AsConsumer()
			if m.InstanceID == nil || len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 2 {
				return false
			}
		}
		return seen.count() == 100
	})
	before, _ := b.DescribeClassicGroup("static-g")
	var follower, leader string
	for _, m := range before.Members {
		if m.MemberID == before.Leader {
			leader = m.InstanceID
		} else {
			follower = m.InstanceID
		}
	}
	// Let the last callbacks land, then take the counts.
	time.Sleep(300 * time.Millisecond)
	leaderAssigned, leaderRevoked := members[leader].assigned.Load(), members[leader].revoked.Load()

	// Restart the follower with the same instance id.
	members[follower].stop()
	restarted := startStaticMember(t, w, follower, seen)
	waitFor(t, "the restarted member to get its partitions", func() bool { return restarted.assigned.Load() > 0 })
	produceValues(t, prod, "static-t", 100, 200)
	waitFor(t, "records after the restart consumed", func() bool { return seen.count() == 200 })
	after, _ := b.DescribeClassicGroup("static-g")
	if after.Generation != before.Generation || after.State != "Stable" || len(after.Members) != 2 {
		t.Fatalf("after the static restart: generation %d (was %d), %s, %d members", after.Generation, before.Generation, after.State, len(after.Members))
	}
	for _, m := range after.Members {
		if m.InstanceID == follower {
			for _, o := range before.Members {
				if o.InstanceID == follower && (o.MemberID == m.MemberID || string(o.Assignment) != string(m.Assignment)) {
					t.Errorf("restarted member: id %q (was %q), same assignment: %v", m.MemberID, o.MemberID, string(o.Assignment) == string(m.Assignment))
				}
			}
		}
	}
	if a, r := members[leader].assigned.Load(), members[leader].revoked.Load(); a != leaderAssigned || r != leaderRevoked {
		t.Errorf("the other member went through a rebalance: assigned %d→%d, revoked %d→%d", leaderAssigned, a, leaderRevoked, r)
	}

	// Close the restarted member (it stays in the group) and remove it
	// by instance id.
	restarted.stop()
	if info, _ := b.DescribeClassicGroup("static-g"); len(info.Members) != 2 {
		t.Fatalf("a static member left on close: %+v", info.Members)
	}
	resp, err := adm.LeaveGroup(ctx, kadm.LeaveGroup("static-g").InstanceIDs(follower, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.InstanceID == follower && r.Err != nil:
			t.Errorf("leave of %q: %v", follower, r.Err)
		case r.InstanceID == "nobody" && r.Err == nil:
			t.Errorf("leave of an unknown instance succeeded")
		}
	}
	waitFor(t, "the remaining member to own every partition", func() bool {
		info, _ := b.DescribeClassicGroup("static-g")
		if info.State != "Stable" || len(info.Members) != 1 {
			return false
		}
		d, err := adm.DescribeGroups(ctx, "static-g")
		if err != nil {
			return false
		}
		for _, m := range d["static-g"].Members {
			a, _ := m.Assigned.AsConsumer()
			if m.InstanceID == nil || *m.InstanceID != leader || len(a.Topics) != 1 || len(a.Topics[0].Partitions) != 4 {
				return false
			}
		}
		return true
	})
	produceValues(t, prod, "static-t", 200, 210)
	waitFor(t, "records after the removal consumed", func() bool { return seen.count() == 210 })
	members[leader].stop()
	for v := range 210 {
		if seen.seen[v] == 0 {
			t.Fatalf("record %s never consumed", strconv.Itoa(v))
		}
	}
}
