package group

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRandomizedInvariants drives coordinators with random sequences of
// joins, re-joins, leaves, heartbeats (acknowledging or not), expiries,
// stream growth, deletion and re-creation, and checks after every step the
// coordinator's state against an independent model of its clients.
func TestRandomizedInvariants(t *testing.T) {
	seeds, steps := 200, 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		sim := newSimulation(t, seed)
		for range steps {
			sim.step()
			sim.check()
			if t.Failed() {
				t.Fatalf("seed %d, after:\n%s", seed, sim.history())
			}
		}
	}
}

var simStreams = []string{"s0", "s1", "s2"}

// simClient is the model of one member: what it was told and what it
// consumes.
type simClient struct {
	id         string
	streams    []string
	timeout    time.Duration
	lastSeen   time.Time
	generation int64 // last told
	acked      int64
	// consuming is what the client consumes: Assigned and Revoke of the last
	// state it was told (a client stops consuming Revoke before it acks).
	consuming map[Partition]bool
}

func (sc *simClient) told(st MemberState) {
	sc.generation = st.Generation
	sc.consuming = make(map[Partition]bool)
	for _, p := range slices.Concat(st.Assigned, st.Revoke) {
		sc.consuming[p] = true
	}
}

// revokeMark is when the model first saw a partition owned by a member
// other than its target.
type revokeMark struct {
	owner      string
	generation int64
}

type simulation struct {
	t           *testing.T
	rng         *rand.Rand
	clock       *fakeClock
	c           *Coordinator
	broker      map[string]int32 // the streams that exist
	clients     map[string]*simClient
	removed     []string
	nextClient  int
	generation  int64
	revokeSince map[Partition]revokeMark
	steps       []string
}

func newSimulation(t *testing.T, seed uint64) *simulation {
	c, clock := newFake()
	return &simulation{
		t:           t,
		rng:         rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		clock:       clock,
		c:           c,
		broker:      map[string]int32{"s0": 1, "s1": 3, "s2": 0},
		clients:     make(map[string]*simClient),
		revokeSince: make(map[Partition]revokeMark),
	}
}

func (s *simulation) logf(format string, args ...any) {
	s.steps = append(s.steps, fmt.Sprintf(format, args...))
}

func (s *simulation) history() string {
	steps := s.steps[max(0, len(s.steps)-30):]
	return strings.Join(steps, "\n")
}

func (s *simulation) partitionCounts(stream string) (int32, bool) {
	n, ok := s.broker[stream]
	return n, ok
}

// randomClient returns a present client, nil if there is none.
func (s *simulation) randomClient() *simClient {
	if len(s.clients) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(s.clients))
	return s.clients[ids[s.rng.IntN(len(ids))]]
}

func (s *simulation) randomStreams() []string {
	var out []string
	for len(out) == 0 {
		for _, stream := range simStreams {
			if s.rng.IntN(2) == 0 {
				out = append(out, stream)
			}
		}
	}
	return out
}

// expectJoinError is the error a join of streams with strategy must fail
// with, nil if it must succeed.
func (s *simulation) expectJoinError(streams []string, strategy Strategy) error {
	for _, stream := range streams {
		if _, ok := s.broker[stream]; !ok {
			return ErrUnknownStream
		}
	}
	if current := s.c.Describe().Strategy; strategy != "" && current != "" && strategy != current {
		return ErrInconsistentStrategy
	}
	return nil
}

func (s *simulation) step() {
	t := s.t
	switch op := s.rng.IntN(100); {
	case op < 16: // a new member
		streams := s.randomStreams()
		strategy := []Strategy{"", "", "", Range, RoundRobin}[s.rng.IntN(5)]
		timeout := []time.Duration{MinSessionTimeout, 3 * time.Second, 5 * time.Second, 10 * time.Second}[s.rng.IntN(4)]
		s.nextClient++
		req := JoinRequest{ClientID: fmt.Sprintf("c%04d", s.nextClient), Streams: streams, SessionTimeout: timeout, Strategy: strategy}
		want := s.expectJoinError(streams, strategy)
		st, err := s.c.Join(req, s.partitionCounts)
		s.logf("join %v %q %v → %+v %v", streams, strategy, timeout, st, err)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("join: error %v, want %v", err, want)
			return
		}
		if err != nil {
			return
		}
		sc := &simClient{id: st.MemberID, streams: streams, timeout: timeout, lastSeen: s.clock.now}
		sc.told(st)
		s.clients[sc.id] = sc

	case op < 23: // a member changes its streams
		sc := s.randomClient()
		if sc == nil {
			return
		}
		streams := s.randomStreams()
		want := s.expectJoinError(streams, "")
		st, err := s.c.Join(JoinRequest{MemberID: sc.id, Streams: streams, SessionTimeout: sc.timeout}, s.partitionCounts)
		s.logf("rejoin %s %v → %+v %v", sc.id, streams, st, err)
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("rejoin: error %v, want %v", err, want)
			return
		}
		if err != nil {
			return
		}
		sc.streams, sc.lastSeen = streams, s.clock.now
		sc.told(st)

	case op < 29: // a member leaves
		sc := s.randomClient()
		if sc == nil {
			return
		}
		err := s.c.Leave(sc.id)
		s.logf("leave %s → %v", sc.id, err)
		if err != nil {
			t.Errorf("leave: %v", err)
		}
		delete(s.clients, sc.id)
		s.removed = append(s.removed, sc.id)

	case op < 65: // a heartbeat, half of them acknowledging
		sc := s.randomClient()
		if sc == nil {
			return
		}
		var ack int64
		if s.rng.IntN(2) == 0 {
			ack = sc.generation
			sc.acked = max(sc.acked, ack)
		}
		st, err := s.c.Heartbeat(sc.id, ack)
		s.logf("heartbeat %s ack %d → %+v %v", sc.id, ack, st, err)
		if err != nil {
			t.Errorf("heartbeat: %v", err)
			return
		}
		if ack > 0 && st.Generation == ack && st.Revoke != nil {
			t.Errorf("after acknowledging generation %d, still told to revoke %v", ack, st.Revoke)
		}
		sc.lastSeen = s.clock.now
		sc.told(st)

	case op < 80: // time passes; the broker's timer fires
		var wantNext time.Time
		for _, sc := range s.clients {
			if d := sc.lastSeen.Add(sc.timeout); wantNext.IsZero() || d.Before(wantNext) {
				wantNext = d
			}
		}
		if next, ok := s.c.NextExpiry(); ok != (len(s.clients) > 0) || !next.Equal(wantNext) {
			t.Errorf("NextExpiry = %v, %v; want %v", next, ok, wantNext)
		}
		// Whole 50ms steps, so that the clock often lands exactly on a deadline.
		s.clock.now = s.clock.now.Add(time.Duration(s.rng.IntN(15)) * 50 * time.Millisecond)
		var want []string
		for id, sc := range s.clients {
			if !s.clock.now.Before(sc.lastSeen.Add(sc.timeout)) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		got := s.c.Expire()
		s.logf("expire at %v → %v", s.clock.now, got)
		if !slices.Equal(got, want) {
			t.Errorf("Expire = %v, want %v", got, want)
		}
		for _, id := range want {
			delete(s.clients, id)
			s.removed = append(s.removed, id)
		}

	case op < 88: // a stream grows
		stream := simStreams[s.rng.IntN(len(simStreams))]
		if _, ok := s.broker[stream]; !ok {
			return
		}
		s.broker[stream] += 1 + s.rng.Int32N(3)
		s.c.SetPartitionCount(stream, s.broker[stream])
		s.logf("grow %s to %d", stream, s.broker[stream])

	case op < 92: // a stream is deleted, or created again
		stream := simStreams[s.rng.IntN(len(simStreams))]
		if _, ok := s.broker[stream]; ok {
			delete(s.broker, stream)
			s.c.RemoveStream(stream)
			for _, sc := range s.clients { // consumers find the stream gone
				maps.DeleteFunc(sc.consuming, func(p Partition, _ bool) bool { return p.Stream == stream })
			}
			s.logf("remove %s", stream)
		} else {
			s.broker[stream] = s.rng.Int32N(4)
			s.c.SetPartitionCount(stream, s.broker[stream])
			s.logf("recreate %s with %d", stream, s.broker[stream])
		}

	default: // commits
		if len(s.removed) > 0 {
			id := s.removed[s.rng.IntN(len(s.removed))]
			if err := s.c.CheckCommit(id, s.generation, Partition{"s0", 0}); !errors.Is(err, ErrUnknownMember) {
				t.Errorf("commit by removed %s: %v", id, err)
			}
		}
		sc := s.randomClient()
		if sc == nil {
			return
		}
		d := s.c.Describe()
		for _, po := range d.Partitions {
			err := s.c.CheckCommit(sc.id, sc.generation, po.Partition)
			if (po.Owner == sc.id) != (err == nil) || (err != nil && !errors.Is(err, ErrNotOwner)) {
				t.Errorf("%s commits %s owned by %q: %v", sc.id, po.Partition, po.Owner, err)
			}
			if err := s.c.CheckCommit(sc.id, sc.generation-1, po.Partition); !errors.Is(err, ErrStaleGeneration) {
				t.Errorf("%s commits %s at generation %d, told %d: %v", sc.id, po.Partition, sc.generation-1, sc.generation, err)
			}
		}
		s.logf("commits by %s", sc.id)
	}
}

// check compares the coordinator's description with the model.
func (s *simulation) check() {
	t := s.t
	d := s.c.Describe()
	if d.Generation < s.generation {
		t.Errorf("generation went from %d to %d", s.generation, d.Generation)
	}
	s.generation = d.Generation
	if (len(s.clients) == 0) != s.c.Empty() {
		t.Errorf("Empty() = %v with %d members", s.c.Empty(), len(s.clients))
	}

	// Members are the model's clients.
	var ids []string
	owned := make(map[string][]Partition)
	targeted := make(map[string][]Partition)
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
		sc := s.clients[m.MemberID]
		if sc == nil {
			t.Errorf("member %s is not a client", m.MemberID)
			continue
		}
		if !slices.Equal(m.Streams, sc.streams) || m.SessionTimeout != sc.timeout || !m.LastHeartbeat.Equal(sc.lastSeen) {
			t.Errorf("member %+v, model %+v", m, sc)
		}
	}
	if !slices.IsSorted(ids) || len(ids) != len(s.clients) {
		t.Errorf("members %v, want sorted %v", ids, slices.Sorted(maps.Keys(s.clients)))
	}

	// Which partitions must have a target: every partition of every consumed
	// stream (a deleted stream counts zero).
	mustTarget := make(map[Partition]bool)
	consumers := make(map[string]bool)
	for _, sc := range s.clients {
		for _, stream := range sc.streams {
			consumers[stream] = true
		}
	}
	for stream := range consumers {
		for p := range s.broker[stream] {
			mustTarget[Partition{stream, p}] = true
		}
	}

	owners := make(map[Partition]string)
	var seen []Partition
	for _, po := range d.Partitions {
		p := po.Partition
		seen = append(seen, p)
		if _, dup := owners[p]; dup {
			t.Errorf("partition %s listed twice", p)
		}
		owners[p] = po.Owner
		if po.Owner == "" {
			t.Errorf("partition %s has target %q but no owner", p, po.Target)
		} else if s.clients[po.Owner] == nil {
			t.Errorf("partition %s owned by absent member %q", p, po.Owner)
		} else {
			owned[po.Owner] = append(owned[po.Owner], p)
		}
		if po.Target != "" {
			target := s.clients[po.Target]
			if target == nil || !slices.Contains(target.streams, p.Stream) {
				t.Errorf("partition %s targeted at %q, who does not consume its stream", p, po.Target)
			}
			targeted[po.Target] = append(targeted[po.Target], p)
		}
		if (po.Target != "") != mustTarget[p] {
			t.Errorf("partition %s has target %q, want a target: %v", p, po.Target, mustTarget[p])
		}
		delete(mustTarget, p)

		// Owner and target differ only while the owner has not acknowledged
		// a generation at or after the one the move was decided at.
		if po.Owner == po.Target {
			delete(s.revokeSince, p)
			continue
		}
		mark, ok := s.revokeSince[p]
		if !ok || mark.owner != po.Owner {
			mark = revokeMark{po.Owner, d.Generation}
			s.revokeSince[p] = mark
		}
		if sc := s.clients[po.Owner]; sc != nil && sc.acked >= mark.generation {
			t.Errorf("partition %s still owned by %s, which acknowledged generation %d >= %d", p, po.Owner, sc.acked, mark.generation)
		}
	}
	if !slices.IsSortedFunc(seen, comparePartitions) {
		t.Errorf("partitions not sorted: %v", seen)
	}
	for p := range mustTarget {
		t.Errorf("partition %s of a consumed stream has no target", p)
	}
	maps.DeleteFunc(s.revokeSince, func(p Partition, _ revokeMark) bool { _, ok := owners[p]; return !ok })

	for _, m := range d.Members {
		if !slices.Equal(m.Owned, owned[m.MemberID]) || !slices.Equal(m.Target, targeted[m.MemberID]) {
			t.Errorf("member %s: owned %v target %v; partitions say %v %v", m.MemberID, m.Owned, m.Target, owned[m.MemberID], targeted[m.MemberID])
		}
	}

	// The safety property: what a client consumes, it owns, so no two
	// clients consume one partition.
	for _, sc := range s.clients {
		for p := range sc.consuming {
			if owners[p] != sc.id {
				t.Errorf("client %s consumes %s, owned by %q", sc.id, p, owners[p])
			}
		}
	}
}
