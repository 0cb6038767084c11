package group

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// ps returns partitions of one stream, nil for none (as MemberState has it).
func ps(stream string, partitions ...int32) []Partition {
	var out []Partition
	for _, p := range partitions {
		out = append(out, Partition{stream, p})
	}
	return out
}

// streams is a partitionCounts over a fixed map.
func streams(counts map[string]int32) func(string) (int32, bool) {
	return func(stream string) (int32, bool) {
		n, ok := counts[stream]
		return n, ok
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ now time.Time }

func (f *fakeClock) Now() time.Time { return f.now }

func newFake() (*Coordinator, *fakeClock) {
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return New("g", clock.Now), clock
}

func mustJoin(t *testing.T, c *Coordinator, req JoinRequest, counts map[string]int32) MemberState {
	t.Helper()
	st, err := c.Join(req, streams(counts))
	if err != nil {
		t.Fatalf("Join(%+v): %v", req, err)
	}
	return st
}

func mustHeartbeat(t *testing.T, c *Coordinator, id string, ack int64) MemberState {
	t.Helper()
	st, err := c.Heartbeat(id, ack)
	if err != nil {
		t.Fatalf("Heartbeat(%s, %d): %v", id, ack, err)
	}
	return st
}

func wantState(t *testing.T, got MemberState, want MemberState) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state =\n%+v\nwant\n%+v", got, want)
	}
}

func wantErr(t *testing.T, err, want error, mentions ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	for _, s := range mentions {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestJoinAssignsIDsAndPartitions(t *testing.T) {
	c, _ := newFake()
	if !c.Empty() {
		t.Fatal("new group not empty")
	}
	if _, ok := c.NextExpiry(); ok {
		t.Error("NextExpiry of an empty group")
	}
	a := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s", "s"}}, map[string]int32{"s": 3})
	if !strings.HasPrefix(a.MemberID, "a-") || len(a.MemberID) != len("a-")+16 {
		t.Errorf("member id %q, want a-<16 hex digits>", a.MemberID)
	}
	wantState(t, a, MemberState{MemberID: a.MemberID, Generation: 1, Assigned: ps("s", 0, 1, 2)})
	if c.Empty() {
		t.Error("group with a member is empty")
	}
	anonymous := mustJoin(t, c, JoinRequest{Streams: []string{"s"}}, map[string]int32{"s": 3})
	if !strings.HasPrefix(anonymous.MemberID, "member-") {
		t.Errorf("member id without client id %q, want member-<hex>", anonymous.MemberID)
	}
	d := c.Describe()
	if d.Strategy != Range || d.Generation != 2 || len(d.Members) != 2 {
		t.Errorf("Describe = %+v", d)
	}
	if d.Members[0].SessionTimeout != DefaultSessionTimeout {
		t.Errorf("session timeout %v, want the default", d.Members[0].SessionTimeout)
	}
	if !reflect.DeepEqual(d.Members[0].Streams, []string{"s"}) {
		t.Errorf("streams %v, want [s] (duplicates dropped)", d.Members[0].Streams)
	}
}

// TestHandover: a partition moves only after its owner acknowledges.
func TestHandover(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 4}
	a := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts)
	wantState(t, a, MemberState{MemberID: a.MemberID, Generation: 1, Assigned: ps("s", 0, 1, 2, 3)})
	A := a.MemberID

	b := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts)
	B := b.MemberID
	wantState(t, b, MemberState{MemberID: B, Generation: 2, Pending: ps("s", 2, 3)})

	// A still at generation 1 may commit with it: it still owns everything.
	if err := c.CheckCommit(A, 1, Partition{"s", 3}); err != nil {
		t.Errorf("A commits s/3 at generation 1 before learning generation 2: %v", err)
	}

	a = mustHeartbeat(t, c, A, 0)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0, 1), Revoke: ps("s", 2, 3)})

	if err := c.CheckCommit(A, 2, Partition{"s", 2}); err != nil {
		t.Errorf("A commits revoking s/2 at generation 2: %v", err)
	}
	wantErr(t, c.CheckCommit(A, 1, Partition{"s", 2}), ErrStaleGeneration, A, "s/2", "generation 1", "generation is 2")
	wantErr(t, c.CheckCommit(B, 2, Partition{"s", 2}), ErrNotOwner, B, "s/2", "generation 2")

	// Acknowledging an older generation releases nothing.
	a = mustHeartbeat(t, c, A, 1)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0, 1), Revoke: ps("s", 2, 3)})
	b = mustHeartbeat(t, c, B, 0)
	wantState(t, b, MemberState{MemberID: B, Generation: 2, Pending: ps("s", 2, 3)})

	// Acknowledging a generation it has not been told is refused.
	_, err := c.Heartbeat(B, 3)
	wantErr(t, err, ErrInvalidArgument, B, "generation 3", "generation 2")

	a = mustHeartbeat(t, c, A, 2)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0, 1)})
	b = mustHeartbeat(t, c, B, 0)
	wantState(t, b, MemberState{MemberID: B, Generation: 2, Assigned: ps("s", 2, 3)})

	wantErr(t, c.CheckCommit(A, 2, Partition{"s", 2}), ErrNotOwner, A, "s/2")
	if err := c.CheckCommit(B, 2, Partition{"s", 2}); err != nil {
		t.Errorf("B commits s/2 after the handover: %v", err)
	}
	if err := c.CheckCommit(A, 2, Partition{"s", 1}); err != nil {
		t.Errorf("A commits its own s/1: %v", err)
	}

	d := c.Describe()
	wantPartitions := []PartitionOwnership{
		{Partition{"s", 0}, A, A},
		{Partition{"s", 1}, A, A},
		{Partition{"s", 2}, B, B},
		{Partition{"s", 3}, B, B},
	}
	if d.Generation != 2 || !reflect.DeepEqual(d.Partitions, wantPartitions) {
		t.Errorf("Describe: generation %d partitions %+v", d.Generation, d.Partitions)
	}
	if !reflect.DeepEqual(d.Members[0].Owned, ps("s", 0, 1)) || !reflect.DeepEqual(d.Members[1].Target, ps("s", 2, 3)) {
		t.Errorf("Describe members %+v", d.Members)
	}
}

// TestRevokeSurvivesAnotherRebalance: a partition being revoked from A whose
// target changes again is released by A's acknowledgement of the generation
// it was first told to revoke it at, and goes to the newest target.
func TestRevokeSurvivesAnotherRebalance(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 3}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts).MemberID
	C := mustJoin(t, c, JoinRequest{ClientID: "c", Streams: []string{"s"}}, counts).MemberID // gen 2: a 0,1 c 2
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0, 1), Revoke: ps("s", 2)})
	B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts).MemberID // gen 3: a 0, b 1, c 2
	wantState(t, mustHeartbeat(t, c, A, 2), MemberState{MemberID: A, Generation: 3, Assigned: ps("s", 0), Revoke: ps("s", 1)})
	wantState(t, mustHeartbeat(t, c, C, 0), MemberState{MemberID: C, Generation: 3, Assigned: ps("s", 2)})
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Pending: ps("s", 1)})
	// s/1 goes back to A when B leaves: A consumes it again, nothing pending.
	if err := c.Leave(B); err != nil {
		t.Fatal(err)
	}
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 4, Assigned: ps("s", 0, 1)})
	// Acknowledging generation 3 now must not release s/1, nor anything
	// moved away later.
	mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts) // gen 5
	wantState(t, mustHeartbeat(t, c, A, 3), MemberState{MemberID: A, Generation: 5, Assigned: ps("s", 0), Revoke: ps("s", 1)})
	wantState(t, mustHeartbeat(t, c, A, 5), MemberState{MemberID: A, Generation: 5, Assigned: ps("s", 0)})
}

func TestLeave(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 4}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts).MemberID
	B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts).MemberID
	// A is revoking s/2 and s/3 and leaves without acknowledging: B gets them
	// at once.
	if err := c.Leave(A); err != nil {
		t.Fatal(err)
	}
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Assigned: ps("s", 0, 1, 2, 3)})
	wantErr(t, c.Leave(A), ErrUnknownMember, A)
	wantErr(t, c.CheckCommit(A, 2, Partition{"s", 0}), ErrUnknownMember, A, "s/0")
	if err := c.Leave(B); err != nil {
		t.Fatal(err)
	}
	d := c.Describe()
	if !c.Empty() || d.Generation != 4 || d.Strategy != "" || d.Partitions != nil || d.Members != nil {
		t.Errorf("after everyone left: %+v", d)
	}
}

// TestSessionExpiry runs in a synctest bubble, whose time.Now is a fake clock.
func TestSessionExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New("g", time.Now)
		counts := map[string]int32{"s": 4}
		start := time.Now()
		A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}, SessionTimeout: time.Second}, counts).MemberID
		B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}, SessionTimeout: 3 * time.Second}, counts).MemberID
		if next, ok := c.NextExpiry(); !ok || !next.Equal(start.Add(time.Second)) {
			t.Errorf("NextExpiry = %v, %v; want %v", next, ok, start.Add(time.Second))
		}
		wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0, 1), Revoke: ps("s", 2, 3)})

		// A stops heartbeating; B carries on.
		time.Sleep(600 * time.Millisecond)
		wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 2, Pending: ps("s", 2, 3)})
		time.Sleep(400*time.Millisecond - time.Nanosecond)
		if got := c.Expire(); got != nil {
			t.Fatalf("Expire 1ns before A's deadline removed %v", got)
		}
		time.Sleep(time.Nanosecond)
		if got := c.Expire(); !reflect.DeepEqual(got, []string{A}) {
			t.Fatalf("Expire at A's deadline = %v, want [%s]", got, A)
		}
		if next, ok := c.NextExpiry(); !ok || !next.Equal(start.Add(600*time.Millisecond+3*time.Second)) {
			t.Errorf("NextExpiry = %v, %v; want B's %v", next, ok, start.Add(600*time.Millisecond+3*time.Second))
		}
		// A's partitions, even those it never acknowledged, are B's at once.
		wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Assigned: ps("s", 0, 1, 2, 3)})
		if got := c.Expire(); got != nil {
			t.Errorf("second Expire removed %v", got)
		}

		wantErr(t, c.CheckCommit(A, 2, Partition{"s", 0}), ErrUnknownMember, A, "s/0")
		_, err := c.Heartbeat(A, 0)
		wantErr(t, err, ErrUnknownMember, A)
		_, err = c.Join(JoinRequest{MemberID: A, Streams: []string{"s"}}, streams(counts))
		wantErr(t, err, ErrUnknownMember, A)

		// B's heartbeat just now pushed its deadline.
		hb := time.Now()
		if next, _ := c.NextExpiry(); !next.Equal(hb.Add(3 * time.Second)) {
			t.Errorf("NextExpiry = %v, want %v", next, hb.Add(3*time.Second))
		}
		time.Sleep(3 * time.Second)
		if got := c.Expire(); !reflect.DeepEqual(got, []string{B}) {
			t.Errorf("Expire = %v, want [%s]", got, B)
		}
		if _, ok := c.NextExpiry(); ok || !c.Empty() {
			t.Error("group not empty after every member expired")
		}
	})
}

func TestExpireSeveralAtOnce(t *testing.T) {
	c, clock := newFake()
	counts := map[string]int32{"s": 2}
	var ids []string
	for _, client := range []string{"c", "a", "b"} {
		ids = append(ids, mustJoin(t, c, JoinRequest{ClientID: client, Streams: []string{"s"}, SessionTimeout: time.Second}, counts).MemberID)
	}
	clock.now = clock.now.Add(time.Second)
	gen := c.Describe().Generation
	got := c.Expire()
	if want := []string{ids[1], ids[2], ids[0]}; !reflect.DeepEqual(got, want) {
		t.Errorf("Expire = %v, want sorted %v", got, want)
	}
	if d := c.Describe(); d.Generation != gen+1 || d.Partitions != nil {
		t.Errorf("after expiry: %+v, want one more generation and no partitions", d)
	}
}

func TestStaleGenerationCommit(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 2}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts).MemberID
	mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts)
	mustHeartbeat(t, c, A, 0) // A learns generation 2
	wantErr(t, c.CheckCommit(A, 1, Partition{"s", 0}), ErrStaleGeneration, A, "s/0", "generation 1", "generation is 2")
	wantErr(t, c.CheckCommit(A, 3, Partition{"s", 0}), ErrStaleGeneration, A, "generation 3")
	if err := c.CheckCommit(A, 2, Partition{"s", 0}); err != nil {
		t.Error(err)
	}
	wantErr(t, c.CheckCommit(A, 2, Partition{"t", 0}), ErrNotOwner, "t/0")
	wantErr(t, c.CheckCommit("nobody", 2, Partition{"s", 0}), ErrUnknownMember, "nobody")
}

func TestInconsistentStrategy(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 2}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}, Strategy: RoundRobin}, counts).MemberID
	_, err := c.Join(JoinRequest{ClientID: "b", Streams: []string{"s"}, Strategy: Range}, streams(counts))
	wantErr(t, err, ErrInconsistentStrategy, `"roundrobin"`, `"range"`)
	_, err = c.Join(JoinRequest{MemberID: A, Streams: []string{"s"}, Strategy: Range}, streams(counts))
	wantErr(t, err, ErrInconsistentStrategy)
	if d := c.Describe(); d.Generation != 1 || len(d.Members) != 1 {
		t.Errorf("a refused join changed the group: %+v", d)
	}
	mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts)
	mustJoin(t, c, JoinRequest{ClientID: "c", Streams: []string{"s"}, Strategy: RoundRobin}, counts)
	if d := c.Describe(); d.Strategy != RoundRobin {
		t.Errorf("strategy %q", d.Strategy)
	}
	_, err = c.Join(JoinRequest{ClientID: "d", Streams: []string{"s"}, Strategy: "sticky"}, streams(counts))
	wantErr(t, err, ErrInvalidArgument, "sticky")

	// Once the group is empty, the next member chooses again.
	for _, m := range c.Describe().Members {
		if err := c.Leave(m.MemberID); err != nil {
			t.Fatal(err)
		}
	}
	mustJoin(t, c, JoinRequest{ClientID: "e", Streams: []string{"s"}, Strategy: Range}, counts)
	if d := c.Describe(); d.Strategy != Range {
		t.Errorf("strategy %q after the group emptied, want range", d.Strategy)
	}
}

func TestJoinValidation(t *testing.T) {
	counts := map[string]int32{"s": 1}
	tests := []struct {
		name    string
		req     JoinRequest
		want    error
		timeout time.Duration
	}{
		{"default timeout", JoinRequest{Streams: []string{"s"}}, nil, DefaultSessionTimeout},
		{"minimum timeout", JoinRequest{Streams: []string{"s"}, SessionTimeout: MinSessionTimeout}, nil, MinSessionTimeout},
		{"maximum timeout", JoinRequest{Streams: []string{"s"}, SessionTimeout: MaxSessionTimeout}, nil, MaxSessionTimeout},
		{"timeout too short", JoinRequest{Streams: []string{"s"}, SessionTimeout: MinSessionTimeout - 1}, ErrInvalidSessionTimeout, 0},
		{"timeout too long", JoinRequest{Streams: []string{"s"}, SessionTimeout: MaxSessionTimeout + 1}, ErrInvalidSessionTimeout, 0},
		{"negative timeout", JoinRequest{Streams: []string{"s"}, SessionTimeout: -time.Second}, ErrInvalidSessionTimeout, 0},
		{"no streams", JoinRequest{}, ErrInvalidArgument, 0},
		{"empty stream name", JoinRequest{Streams: []string{"s", ""}}, ErrInvalidArgument, 0},
		{"unknown stream", JoinRequest{Streams: []string{"s", "nope"}}, ErrUnknownStream, 0},
		{"unknown member", JoinRequest{MemberID: "ghost", Streams: []string{"s"}}, ErrUnknownMember, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFake()
			st, err := c.Join(tt.req, streams(counts))
			if tt.want != nil {
				wantErr(t, err, tt.want)
				if tt.want == ErrUnknownStream && !strings.Contains(err.Error(), `"nope"`) {
					t.Errorf("error %q does not name the stream", err)
				}
				if !c.Empty() || c.Describe().Generation != 0 {
					t.Error("a refused join changed the group")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Describe().Members[0].SessionTimeout; got != tt.timeout {
				t.Errorf("session timeout %v, want %v", got, tt.timeout)
			}
			wantState(t, st, MemberState{MemberID: st.MemberID, Generation: 1, Assigned: ps("s", 0)})
		})
	}
	c, _ := newFake()
	_, err := c.Join(JoinRequest{Streams: []string{"s"}}, nil)
	wantErr(t, err, ErrInvalidArgument)
}

func TestRejoin(t *testing.T) {
	c, clock := newFake()
	counts := map[string]int32{"s": 2, "t": 2}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts).MemberID
	B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts).MemberID
	mustHeartbeat(t, c, A, 0)
	mustHeartbeat(t, c, A, 2)

	// The same streams and a new timeout: no rebalance, a fresh session.
	clock.now = clock.now.Add(time.Second)
	a := mustJoin(t, c, JoinRequest{MemberID: A, Streams: []string{"s"}, SessionTimeout: time.Minute}, counts)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0)})
	d := c.Describe()
	if m := d.Members[0]; m.SessionTimeout != time.Minute || !m.LastHeartbeat.Equal(clock.now) || m.ClientID != "a" {
		t.Errorf("re-joined member %+v", m)
	}

	// Other streams: a rebalance; A must release s/0 first.
	a = mustJoin(t, c, JoinRequest{MemberID: A, Streams: []string{"t"}}, counts)
	wantState(t, a, MemberState{MemberID: A, Generation: 3, Assigned: ps("t", 0, 1), Revoke: ps("s", 0)})
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Assigned: ps("s", 1), Pending: ps("s", 0)})
	mustHeartbeat(t, c, A, 3)
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Assigned: ps("s", 0, 1)})

	// A re-join that learns a stream grew rebalances too.
	counts["t"] = 3
	a = mustJoin(t, c, JoinRequest{MemberID: A, Streams: []string{"t"}}, counts)
	wantState(t, a, MemberState{MemberID: A, Generation: 4, Assigned: ps("t", 0, 1, 2)})
	// A lower count than known is ignored.
	counts["t"] = 1
	a = mustJoin(t, c, JoinRequest{MemberID: A, Streams: []string{"t"}}, counts)
	wantState(t, a, MemberState{MemberID: A, Generation: 4, Assigned: ps("t", 0, 1, 2)})
}

// TestDroppedStreamWithoutOtherConsumer: a partition nobody else consumes is
// released (to nobody) by the acknowledgement.
func TestDroppedStreamWithoutOtherConsumer(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 1, "t": 1}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s", "t"}}, counts).MemberID
	a := mustJoin(t, c, JoinRequest{MemberID: A, Streams: []string{"s"}}, counts)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0), Revoke: ps("t", 0)})
	if got := c.Describe().Partitions[1]; got != (PartitionOwnership{Partition{"t", 0}, A, ""}) {
		t.Errorf("t/0: %+v", got)
	}
	a = mustHeartbeat(t, c, A, 2)
	wantState(t, a, MemberState{MemberID: A, Generation: 2, Assigned: ps("s", 0)})
	if got := c.Describe().Partitions; len(got) != 1 {
		t.Errorf("partitions %+v, want only s/0", got)
	}
}

func TestSetPartitionCount(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 2, "t": 1}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s"}}, counts).MemberID
	B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"s"}}, counts).MemberID // a s/0, b s/1
	mustHeartbeat(t, c, A, 0)
	mustHeartbeat(t, c, A, 2)
	mustHeartbeat(t, c, B, 2)

	c.SetPartitionCount("s", 2) // not growth
	c.SetPartitionCount("s", 1) // partitions are never removed
	c.SetPartitionCount("t", 5) // nobody consumes t
	if d := c.Describe(); d.Generation != 2 {
		t.Fatalf("generation %d after no-op SetPartitionCount, want 2", d.Generation)
	}

	c.SetPartitionCount("s", 4) // a s/0,s/1; b s/2,s/3
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3, Assigned: ps("s", 2, 3), Revoke: ps("s", 1)})
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 3, Assigned: ps("s", 0), Pending: ps("s", 1)})
	mustHeartbeat(t, c, B, 3)
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 3, Assigned: ps("s", 0, 1)})

	// t was never joined, so its count comes from the next Join.
	C := mustJoin(t, c, JoinRequest{ClientID: "c", Streams: []string{"t"}}, counts)
	wantState(t, C, MemberState{MemberID: C.MemberID, Generation: 4, Assigned: ps("t", 0)})
}

func TestRemoveStream(t *testing.T) {
	c, _ := newFake()
	counts := map[string]int32{"s": 2, "t": 2}
	A := mustJoin(t, c, JoinRequest{ClientID: "a", Streams: []string{"s", "t"}}, counts).MemberID
	B := mustJoin(t, c, JoinRequest{ClientID: "b", Streams: []string{"t"}}, counts).MemberID // a s/0 s/1 t/0; b t/1 (from a)
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 2, Pending: ps("t", 1)})

	c.RemoveStream("t") // drops t's partitions at once, revoking or not
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 3, Assigned: ps("s", 0, 1)})
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 3})
	wantErr(t, c.CheckCommit(A, 3, Partition{"t", 0}), ErrNotOwner)
	d := c.Describe()
	if len(d.Partitions) != 2 || !reflect.DeepEqual(d.Members[1].Streams, []string{"t"}) {
		t.Errorf("after RemoveStream: %+v", d)
	}
	c.RemoveStream("t")
	c.RemoveStream("never")
	if g := c.Describe().Generation; g != 3 {
		t.Errorf("generation %d after no-op RemoveStream, want 3", g)
	}

	// A stream of the same name created again comes back to its consumers.
	c.SetPartitionCount("t", 3) // range: a t/0 t/1, b t/2
	wantState(t, mustHeartbeat(t, c, A, 0), MemberState{MemberID: A, Generation: 4, Assigned: append(ps("s", 0, 1), ps("t", 0, 1)...)})
	wantState(t, mustHeartbeat(t, c, B, 0), MemberState{MemberID: B, Generation: 4, Assigned: ps("t", 2)})
}
