// Package group is the coordinator of Weir's native consumer groups (the
// `group` subscription mode): members join and leave, a member that stops
// heartbeating within its session timeout is removed, and the partitions of
// the streams the members consume are reassigned on every membership change,
// with a generation number so that a stale member cannot commit.
//
// The Coordinator is a pure state machine: it does no I/O, starts no
// goroutines and reads time only through the clock given to New. The broker
// wraps it: it stores committed offsets, resolves start offsets, and runs a
// timer that calls Expire at NextExpiry.
//
// # Cooperative handover
//
// No two members may consume the same partition at once. Each partition has
// an owner (the member allowed to consume it now, or none) and a target (the
// member the group's Strategy wants it to go to). On every membership or
// partition-count change the generation goes up and the targets are
// recomputed. A partition that has no owner, or whose owner is its target,
// gets owner = target at once. A partition owned by another member that is
// still in the group stays with that member, which is told to revoke it,
// until the member acknowledges a generation at or after the one at which the
// move was decided (or leaves, or expires); only then does the target own it.
//
// A member's loop is therefore:
//
//  1. Join, then Heartbeat well within the session timeout.
//  2. Consume the partitions in MemberState.Assigned.
//  3. For each partition in MemberState.Revoke: stop consuming it and commit
//     its offset, then Heartbeat with ackGeneration = MemberState.Generation.
//  4. Partitions in MemberState.Pending are coming once their current owner
//     has released them; a later Heartbeat shows them in Assigned.
//
// Commits are fenced with CheckCommit: only the member that owns a partition,
// quoting the generation it was last told, may commit to it.
package group

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Errors, each returned wrapped with a message naming the group, the member
// and what was asked.
var (
	ErrUnknownMember         = errors.New("unknown group member")
	ErrStaleGeneration       = errors.New("stale group generation")
	ErrNotOwner              = errors.New("partition not owned by this member")
	ErrUnknownStream         = errors.New("unknown stream")
	ErrInconsistentStrategy  = errors.New("inconsistent group assignment strategy")
	ErrInvalidSessionTimeout = errors.New("invalid session timeout")
	ErrInvalidArgument       = errors.New("invalid argument")
)

// Session timeouts.
const (
	DefaultSessionTimeout = 10 * time.Second
	MinSessionTimeout     = 100 * time.Millisecond
	MaxSessionTimeout     = 5 * time.Minute
)

// JoinRequest is what a member joins (or re-joins) a group with.
type JoinRequest struct {
	// MemberID is "" for a new member: the coordinator assigns a unique id,
	// ClientID + "-" + random hex. A non-empty MemberID re-joins that member.
	MemberID string
	ClientID string
	// Streams are the streams this member consumes; a group may span several
	// streams and its members may consume different ones. At least one.
	Streams []string
	// SessionTimeout is how long the member may go without a heartbeat before
	// it is removed: 0 means DefaultSessionTimeout (on a re-join too),
	// otherwise it must lie in [MinSessionTimeout, MaxSessionTimeout].
	SessionTimeout time.Duration
	// Strategy is the assignment strategy; "" means the group's (Range for a
	// new group). The first member fixes the group's strategy for as long as
	// the group has members.
	Strategy Strategy
}

// MemberState is what a member is told by Join and Heartbeat. Every list is
// sorted by (stream, partition) and nil when empty.
type MemberState struct {
	MemberID   string
	Generation int64
	// Assigned are the partitions the member owns and should consume.
	Assigned []Partition
	// Revoke are the partitions the member still owns but must give up: stop
	// consuming them, commit, then heartbeat with ackGeneration = Generation.
	Revoke []Partition
	// Pending are the partitions that will be the member's once their current
	// owner has released them: do not consume them yet.
	Pending []Partition
}

// MemberInfo describes one member.
type MemberInfo struct {
	MemberID       string
	ClientID       string
	Streams        []string // sorted
	SessionTimeout time.Duration
	LastHeartbeat  time.Time // of the last Join or Heartbeat
	Owned          []Partition
	Target         []Partition
}

// PartitionOwnership is the owner and the target of one partition ("" for
// none).
type PartitionOwnership struct {
	Partition Partition
	Owner     string
	Target    string
}

// Description is a snapshot of a group.
type Description struct {
	Group string
	// Strategy is "" while the group has no members.
	Strategy   Strategy
	Generation int64
	Members    []MemberInfo         // sorted by MemberID
	Partitions []PartitionOwnership // sorted by partition; those with an owner or a target
}

// member is one member of the group.
type member struct {
	id             string
	clientID       string
	streams        []string // sorted, no duplicates
	sessionTimeout time.Duration
	lastHeartbeat  time.Time
	// generation is the generation last returned to the member; it is the
	// only one the member may commit with.
	generation int64
	// ackedGeneration is the highest generation the member acknowledged.
	ackedGeneration int64
}

func (m *member) deadline() time.Time { return m.lastHeartbeat.Add(m.sessionTimeout) }

// partitionState is the owner and target of one partition.
type partitionState struct {
	owner, target string
	// revokeGeneration is, while the owner is a member other than the target,
	// the generation at which the partition was first moved away from that
	// owner: the owner releases it by acknowledging that generation or later.
	// Zero otherwise.
	revokeGeneration int64
}

// Coordinator is one consumer group's coordinator. It is safe for concurrent
// use: one mutex guards it, and every method is cheap (linear in the group's
// members and partitions, a rebalance adds a sort) and does no I/O, so the
// broker may call it while holding its own locks.
type Coordinator struct {
	group string
	now   func() time.Time

	mu sync.Mutex
	// strategy is the group's strategy, "" while it has no members.
	strategy   Strategy
	generation int64
	members    map[string]*member
	// counts holds the partition count of every stream some member consumes,
	// and of no other.
	counts map[string]int32
	// partitions holds every partition with an owner or a target, and no
	// other.
	partitions map[Partition]*partitionState
}

// New returns the coordinator of an empty group. now is its clock (nil:
// time.Now); tests pass a fake, or time.Now inside a synctest bubble.
func New(group string, now func() time.Time) *Coordinator {
	if now == nil {
		now = time.Now
	}
	return &Coordinator{
		group:      group,
		now:        now,
		members:    make(map[string]*member),
		counts:     make(map[string]int32),
		partitions: make(map[Partition]*partitionState),
	}
}

// Join adds a member to the group, or with a non-empty req.MemberID updates
// an existing member's streams, session timeout and client id, and returns
// the member's state. Joining refreshes the member's session. A new member,
// or a changed set of streams, rebalances the group.
//
// partitionCounts reports a stream's partition count, false for a stream that
// does not exist (ErrUnknownStream). It is called for each requested stream
// before the coordinator's lock is taken, so it may call into the broker.
// Partitions are never removed: a count lower than the one the coordinator
// already knows is ignored, a higher one rebalances.
//
// Errors: ErrInvalidArgument (no streams, an empty stream name, an unknown
// strategy, nil partitionCounts), ErrInvalidSessionTimeout, ErrUnknownStream,
// ErrUnknownMember (a MemberID the group does not have, e.g. after it
// expired: join again with MemberID ""), ErrInconsistentStrategy.
func (c *Coordinator) Join(req JoinRequest, partitionCounts func(stream string) (int32, bool)) (MemberState, error) {
	streams, timeout, err := c.validateJoin(req)
	if err != nil {
		return MemberState{}, err
	}
	if partitionCounts == nil {
		return MemberState{}, fmt.Errorf("%w: group %q: join without partition counts", ErrInvalidArgument, c.group)
	}
	reported := make(map[string]int32, len(streams))
	for _, stream := range streams {
		n, ok := partitionCounts(stream)
		if !ok {
			return MemberState{}, fmt.Errorf("%w: %q (group %q)", ErrUnknownStream, stream, c.group)
		}
		reported[stream] = max(n, 0)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	var m *member
	if req.MemberID != "" {
		m = c.members[req.MemberID]
		if m == nil {
			return MemberState{}, fmt.Errorf("%w: group %q has no member %q", ErrUnknownMember, c.group, req.MemberID)
		}
	}
	if req.Strategy != "" && c.strategy != "" && req.Strategy != c.strategy {
		return MemberState{}, fmt.Errorf("%w: group %q uses %q, member asked for %q",
			ErrInconsistentStrategy, c.group, c.strategy, req.Strategy)
	}

	changed := false
	for stream, n := range reported {
		if current, ok := c.counts[stream]; ok && n > current {
			changed = true // a stream grew
		}
		c.counts[stream] = max(c.counts[stream], n)
	}
	if m == nil {
		m = &member{id: c.newMemberID(req.ClientID), clientID: req.ClientID}
		c.members[m.id] = m
		if c.strategy == "" {
			c.strategy = cmp.Or(req.Strategy, Range)
		}
		changed = true
	} else {
		if req.ClientID != "" {
			m.clientID = req.ClientID
		}
		if !slices.Equal(m.streams, streams) {
			changed = true
		}
	}
	m.streams = streams
	m.sessionTimeout = timeout
	m.lastHeartbeat = c.now()
	if changed {
		c.rebalance()
	}
	return c.stateOf(m), nil
}

// validateJoin checks what can be checked without the lock, and returns the
// requested streams sorted without duplicates and the session timeout.
func (c *Coordinator) validateJoin(req JoinRequest) ([]string, time.Duration, error) {
	if len(req.Streams) == 0 {
		return nil, 0, fmt.Errorf("%w: group %q: join without streams", ErrInvalidArgument, c.group)
	}
	if slices.Contains(req.Streams, "") {
		return nil, 0, fmt.Errorf("%w: group %q: empty stream name", ErrInvalidArgument, c.group)
	}
	if req.Strategy != "" && !req.Strategy.valid() {
		return nil, 0, fmt.Errorf("%w: group %q: unknown assignment strategy %q (want %q or %q)",
			ErrInvalidArgument, c.group, req.Strategy, Range, RoundRobin)
	}
	timeout := req.SessionTimeout
	if timeout == 0 {
		timeout = DefaultSessionTimeout
	}
	if timeout < MinSessionTimeout || timeout > MaxSessionTimeout {
		return nil, 0, fmt.Errorf("%w: %v is outside [%v, %v] (group %q)",
			ErrInvalidSessionTimeout, req.SessionTimeout, MinSessionTimeout, MaxSessionTimeout, c.group)
	}
	streams := slices.Compact(slices.Sorted(slices.Values(req.Streams)))
	return streams, timeout, nil
}

// newMemberID returns an id no member has: clientID (or "member") + "-" +
// 16 random hex digits.
func (c *Coordinator) newMemberID(clientID string) string {
	prefix := clientID
	if prefix == "" {
		prefix = "member"
	}
	for {
		var random [8]byte
		_, _ = rand.Read(random[:]) // crypto/rand.Read never fails
		id := prefix + "-" + hex.EncodeToString(random[:])
		if c.members[id] == nil {
			return id
		}
	}
}

// Heartbeat refreshes a member's session and returns its state. An
// ackGeneration > 0 acknowledges that the member stopped consuming, and
// committed, every partition it was told to revoke up to that generation:
// those partitions go to their targets at once. ackGeneration may not exceed
// the generation last returned to the member (ErrInvalidArgument: a member
// cannot acknowledge what it has not been told). ErrUnknownMember if the
// member left or expired. Membership changes only through Join, Leave and
// Expire: a member whose session ran out but that Expire has not removed yet
// is still a member, and a heartbeat renews its session.
func (c *Coordinator) Heartbeat(memberID string, ackGeneration int64) (MemberState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[memberID]
	if m == nil {
		return MemberState{}, fmt.Errorf("%w: group %q has no member %q", ErrUnknownMember, c.group, memberID)
	}
	if ackGeneration > m.generation {
		return MemberState{}, fmt.Errorf("%w: group %q: member %q acknowledges generation %d but was last told generation %d",
			ErrInvalidArgument, c.group, memberID, ackGeneration, m.generation)
	}
	m.lastHeartbeat = c.now()
	if ackGeneration > m.ackedGeneration {
		m.ackedGeneration = ackGeneration
		c.releaseAcknowledged(m)
	}
	return c.stateOf(m), nil
}

// Leave removes a member and rebalances: its partitions go to their new
// targets at once. ErrUnknownMember if it is not in the group.
func (c *Coordinator) Leave(memberID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members[memberID] == nil {
		return fmt.Errorf("%w: group %q has no member %q", ErrUnknownMember, c.group, memberID)
	}
	c.remove(memberID)
	c.rebalance()
	return nil
}

// Expire removes every member whose session ran out: whose last Join or
// Heartbeat is at least its session timeout old by the clock. It rebalances
// once if it removed any, and returns the removed ids sorted (nil if none).
func (c *Coordinator) Expire() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var expired []string
	for id, m := range c.members {
		if !now.Before(m.deadline()) {
			expired = append(expired, id)
		}
	}
	if len(expired) == 0 {
		return nil
	}
	slices.Sort(expired)
	for _, id := range expired {
		c.remove(id)
	}
	c.rebalance()
	return expired
}

// NextExpiry returns the earliest moment at which Expire would remove a
// member if nothing else happened, false if the group has no members.
func (c *Coordinator) NextExpiry() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var earliest time.Time
	found := false
	for _, m := range c.members {
		if d := m.deadline(); !found || d.Before(earliest) {
			earliest, found = d, true
		}
	}
	return earliest, found
}

// SetPartitionCount tells the coordinator a stream now has count partitions.
// Partitions are never removed, so a count not above the known one is
// ignored; so is a stream no member consumes (Join asks for its count). It
// rebalances if it changed anything.
func (c *Coordinator) SetPartitionCount(stream string, count int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	current, consumed := c.counts[stream]
	if !consumed || count <= current {
		return
	}
	c.counts[stream] = count
	c.rebalance()
}

// RemoveStream tells the coordinator a stream was deleted: its partitions are
// dropped at once (nobody can consume or commit them any more) and the group
// rebalances. Members keep the stream in their subscriptions, with zero
// partitions, so if a stream of that name is created again SetPartitionCount
// gives them its partitions (as Kafka consumers subscribed by topic name
// behave).
func (c *Coordinator) RemoveStream(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for p := range c.partitions {
		if p.Stream == stream {
			delete(c.partitions, p)
			changed = true
		}
	}
	if c.counts[stream] > 0 {
		c.counts[stream] = 0
		changed = true
	}
	if changed {
		c.rebalance()
	}
}

// CheckCommit returns nil iff memberID may commit an offset of p with
// generation: the member is in the group (else ErrUnknownMember), generation
// is the one last returned to it by Join or Heartbeat (else
// ErrStaleGeneration), and it owns p, as Assigned or Revoke (else
// ErrNotOwner).
func (c *Coordinator) CheckCommit(memberID string, generation int64, p Partition) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[memberID]
	if m == nil {
		return fmt.Errorf("%w: group %q has no member %q (commit of %s at generation %d)",
			ErrUnknownMember, c.group, memberID, p, generation)
	}
	if generation != m.generation {
		return fmt.Errorf("%w: group %q: member %q commits %s at generation %d, its generation is %d",
			ErrStaleGeneration, c.group, memberID, p, generation, m.generation)
	}
	if ps := c.partitions[p]; ps == nil || ps.owner != memberID {
		return fmt.Errorf("%w: group %q: member %q does not own %s (generation %d)",
			ErrNotOwner, c.group, memberID, p, generation)
	}
	return nil
}

// Empty reports whether the group has no members.
func (c *Coordinator) Empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members) == 0
}

// Describe returns a snapshot of the group.
func (c *Coordinator) Describe() Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := Description{Group: c.group, Strategy: c.strategy, Generation: c.generation}
	infos := make(map[string]*MemberInfo, len(c.members))
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		m := c.members[id]
		d.Members = append(d.Members, MemberInfo{
			MemberID:       m.id,
			ClientID:       m.clientID,
			Streams:        slices.Clone(m.streams),
			SessionTimeout: m.sessionTimeout,
			LastHeartbeat:  m.lastHeartbeat,
		})
	}
	for i := range d.Members {
		infos[d.Members[i].MemberID] = &d.Members[i]
	}
	for _, p := range slices.SortedFunc(maps.Keys(c.partitions), comparePartitions) {
		ps := c.partitions[p]
		d.Partitions = append(d.Partitions, PartitionOwnership{Partition: p, Owner: ps.owner, Target: ps.target})
		if info := infos[ps.owner]; info != nil {
			info.Owned = append(info.Owned, p)
		}
		if info := infos[ps.target]; info != nil {
			info.Target = append(info.Target, p)
		}
	}
	return d
}

// remove deletes a member; the caller rebalances.
func (c *Coordinator) remove(memberID string) {
	delete(c.members, memberID)
	if len(c.members) == 0 {
		c.strategy = ""
	}
}

// rebalance starts a new generation: it forgets the streams nobody consumes,
// recomputes every partition's target, and moves every partition whose owner
// is gone, absent or the target to its target. A partition owned by another
// present member stays with it until it acknowledges (releaseAcknowledged).
func (c *Coordinator) rebalance() {
	c.generation++
	consumed := make(map[string]bool)
	assignees := make([]assignee, 0, len(c.members))
	for _, m := range c.members {
		for _, stream := range m.streams {
			consumed[stream] = true
		}
		assignees = append(assignees, assignee{id: m.id, streams: m.streams})
	}
	maps.DeleteFunc(c.counts, func(stream string, _ int32) bool { return !consumed[stream] })

	targets := assign(c.strategy, assignees, c.counts)
	for p, ps := range c.partitions {
		ps.target = targets[p]
	}
	for p, target := range targets {
		if c.partitions[p] == nil {
			c.partitions[p] = &partitionState{target: target}
		}
	}
	for p, ps := range c.partitions {
		if ps.owner != "" && c.members[ps.owner] == nil {
			ps.owner = "" // a removed member needs no acknowledgement
		}
		switch {
		case ps.owner == "" || ps.owner == ps.target:
			ps.owner, ps.revokeGeneration = ps.target, 0
		case ps.revokeGeneration == 0:
			// Newly moved away from its owner, who cannot have acknowledged
			// this generation yet.
			ps.revokeGeneration = c.generation
		case c.members[ps.owner].ackedGeneration >= ps.revokeGeneration:
			ps.owner, ps.revokeGeneration = ps.target, 0 // not reached: acks release at once
		}
		if ps.owner == "" && ps.target == "" {
			delete(c.partitions, p)
		}
	}
}

// releaseAcknowledged hands the partitions m acknowledged revoking over to
// their targets.
func (c *Coordinator) releaseAcknowledged(m *member) {
	for p, ps := range c.partitions {
		if ps.owner == m.id && ps.target != m.id && ps.revokeGeneration <= m.ackedGeneration {
			ps.owner, ps.revokeGeneration = ps.target, 0
			if ps.owner == "" {
				delete(c.partitions, p)
			}
		}
	}
}

// stateOf returns m's state and records the generation it was told.
func (c *Coordinator) stateOf(m *member) MemberState {
	m.generation = c.generation
	st := MemberState{MemberID: m.id, Generation: c.generation}
	for p, ps := range c.partitions {
		switch {
		case ps.owner == m.id && ps.target == m.id:
			st.Assigned = append(st.Assigned, p)
		case ps.owner == m.id:
			st.Revoke = append(st.Revoke, p)
		case ps.target == m.id:
			st.Pending = append(st.Pending, p)
		}
	}
	slices.SortFunc(st.Assigned, comparePartitions)
	slices.SortFunc(st.Revoke, comparePartitions)
	slices.SortFunc(st.Pending, comparePartitions)
	return st
}
