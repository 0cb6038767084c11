package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker/group"
	"github.com/weirmq/weir/internal/state"
)

// JoinOptions are a member's request to join a consumer group.
type JoinOptions struct {
	Group          string
	Streams        []string
	MemberID       string // empty for a new member
	ClientID       string
	SessionTimeout time.Duration // 0: 10 s
	Strategy       string        // "range" (default) or "roundrobin"
	// Start is where the member starts reading a partition that the group
	// has no committed offset for.
	Start StartPosition
}

// PartitionRef names one partition of one stream.
type PartitionRef struct {
	Stream    string
	Partition int32
}

// Assignment is a partition a member may consume and where to start.
type Assignment struct {
	PartitionRef
	Offset int64
}

// GroupState is a member's view of its group after a join or heartbeat.
// Assigned partitions are the member's to consume. Revoke partitions are
// still the member's but move to another member: it stops reading them,
// commits what it processed, and acknowledges Generation in its next
// heartbeat. Pending partitions will become the member's once their previous
// owner has done so.
type GroupState struct {
	Group      string
	MemberID   string
	Generation int64
	Assigned   []Assignment
	Revoke     []PartitionRef
	Pending    []PartitionRef
}

// OffsetCommit is one committed position.
type OffsetCommit struct {
	Stream    string
	Partition int32
	Offset    int64
	Metadata  string
}

// GroupOffset is a committed offset with the partition's lag.
type GroupOffset struct {
	Stream     string
	Partition  int32
	Offset     int64
	Metadata   string
	CommitTime time.Time
	EndOffset  int64
	Lag        int64
}

// GroupMember describes one member of a group.
type GroupMember struct {
	MemberID, ClientID string
	Streams            []string
	SessionTimeout     time.Duration
	LastHeartbeat      time.Time
	Assigned           []PartitionRef
}

// GroupInfo describes a group: its members (if any are active) and its
// committed offsets.
type GroupInfo struct {
	Group      string
	Strategy   string
	Generation int64
	Members    []GroupMember
	Offsets    []GroupOffset
}

// groupRegistry holds the coordinators of the groups that have members.
// Membership lives in memory (members rejoin after a restart, as with
// Kafka's coordinator); committed offsets live in the state store.
type groupRegistry struct {
	b      *Broker
	mu     sync.Mutex
	groups map[string]*groupEntry
	wake   chan struct{} // capacity 1: a member joined
}

type groupEntry struct {
	coord  *group.Coordinator
	starts map[string]StartPosition // by member
}

func (g *groupRegistry) init(b *Broker) {
	g.b = b
	g.groups = make(map[string]*groupEntry)
	g.wake = make(chan struct{}, 1)
}

// nextExpiry is how long until the earliest member session ends (at most a
// minute).
func (g *groupRegistry) nextExpiry() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := time.Minute
	var now time.Time // read only when some group has members
	for _, e := range g.groups {
		if at, ok := e.coord.NextExpiry(); ok {
			if now.IsZero() {
				now = g.b.now()
			}
			d = min(d, max(at.Sub(now), 0))
		}
	}
	return d
}

// expireLoop removes members whose session timed out, waking when the
// earliest session ends (or when a member joins, which may be earlier).
func (g *groupRegistry) expireLoop() {
	defer g.b.bg.Done()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		t.Reset(g.nextExpiry())
		select {
		case <-g.b.ctx.Done():
			return
		case <-t.C:
		case <-g.wake:
		}
		g.mu.Lock()
		for name, e := range g.groups {
			for _, id := range e.coord.Expire() {
				delete(e.starts, id)
				g.b.cfg.Logger.Info("group member session expired", "group", name, "member", id)
			}
			if e.coord.Empty() {
				delete(g.groups, name)
			}
		}
		g.mu.Unlock()
	}
}

func (g *groupRegistry) entry(name string) (*groupEntry, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.groups[name]
	if !ok {
		return nil, fmt.Errorf("%w: group %q has no active members", ErrUnknownMember, name)
	}
	return e, nil
}

func (g *groupRegistry) streamRemoved(stream string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.groups {
		e.coord.RemoveStream(stream)
	}
}

func (g *groupRegistry) partitionsChanged(stream string, count int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.groups {
		e.coord.SetPartitionCount(stream, count)
	}
}

// JoinGroup adds a member to a group (or refreshes it, with its MemberID) and
// returns its view, with a start offset for each assigned partition: the
// committed offset, or opts.Start when there is none.
func (b *Broker) JoinGroup(ctx context.Context, opts JoinOptions) (GroupState, error) {
	if err := Authorize(ctx, auth.ResourceGroup, opts.Group, auth.ActionConsume); err != nil {
		return GroupState{}, err
	}
	if err := ValidateGroupName(opts.Group); err != nil {
		return GroupState{}, err
	}
	if b.classic.active(opts.Group) {
		return GroupState{}, fmt.Errorf("%w: group %q has Kafka members", ErrGroupBusy, opts.Group)
	}
	// Partition counts are read before taking the registry lock: b.mu and
	// groups.mu are never held together.
	counts := make(map[string]int32, len(opts.Streams))
	for _, name := range opts.Streams {
		s, err := b.stream(name)
		if err != nil {
			return GroupState{}, err
		}
		counts[name] = int32(len(s.partitions()))
	}
	g := &b.groups
	g.mu.Lock()
	e, ok := g.groups[opts.Group]
	if !ok {
		e = &groupEntry{coord: group.New(opts.Group, b.cfg.Now), starts: make(map[string]StartPosition)}
		g.groups[opts.Group] = e
	}
	st, err := e.coord.Join(group.JoinRequest{
		MemberID: opts.MemberID, ClientID: opts.ClientID, Streams: opts.Streams,
		SessionTimeout: opts.SessionTimeout, Strategy: group.Strategy(opts.Strategy),
	}, func(stream string) (int32, bool) { n, ok := counts[stream]; return n, ok })
	if err == nil {
		e.starts[st.MemberID] = opts.Start
	} else if e.coord.Empty() {
		delete(g.groups, opts.Group)
	}
	g.mu.Unlock()
	if err != nil {
		return GroupState{}, mapGroupError(err)
	}
	select {
	case g.wake <- struct{}{}: // its session may end before the others'
	default:
	}
	return b.groupState(opts.Group, e, st)
}

func (g *groupRegistry) dropIfEmpty(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.groups[name]; ok && e.coord.Empty() {
		delete(g.groups, name)
	}
}

// Heartbeat keeps a member's session alive, acknowledges the generation
// whose revocations it has carried out, and returns its current view.
func (b *Broker) Heartbeat(ctx context.Context, groupName, memberID string, ackGeneration int64) (GroupState, error) {
	e, err := b.groups.entry(groupName)
	if err != nil {
		return GroupState{}, err
	}
	st, err := e.coord.Heartbeat(memberID, ackGeneration)
	if err != nil {
		return GroupState{}, mapGroupError(err)
	}
	return b.groupState(groupName, e, st)
}

// LeaveGroup removes a member; its partitions move to the others at once.
func (b *Broker) LeaveGroup(ctx context.Context, groupName, memberID string) error {
	e, err := b.groups.entry(groupName)
	if err != nil {
		return err
	}
	if err := e.coord.Leave(memberID); err != nil {
		return mapGroupError(err)
	}
	b.groups.mu.Lock()
	delete(e.starts, memberID)
	b.groups.mu.Unlock()
	b.groups.dropIfEmpty(groupName)
	return nil
}

func (b *Broker) groupState(groupName string, e *groupEntry, st group.MemberState) (GroupState, error) {
	b.groups.mu.Lock()
	start := e.starts[st.MemberID]
	b.groups.mu.Unlock()
	out := GroupState{Group: groupName, MemberID: st.MemberID, Generation: st.Generation}
	for _, p := range st.Assigned {
		off, err := b.startOffset(groupName, p.Stream, p.Partition, start)
		if err != nil {
			return GroupState{}, err
		}
		out.Assigned = append(out.Assigned, Assignment{PartitionRef: PartitionRef{p.Stream, p.Partition}, Offset: off})
	}
	for _, p := range st.Revoke {
		out.Revoke = append(out.Revoke, PartitionRef{p.Stream, p.Partition})
	}
	for _, p := range st.Pending {
		out.Pending = append(out.Pending, PartitionRef{p.Stream, p.Partition})
	}
	return out, nil
}

// startOffset is where a group resumes a partition: its committed offset
// (moved into the retained range if retention passed it), or pos.
func (b *Broker) startOffset(groupName, stream string, partition int32, pos StartPosition) (int64, error) {
	s, err := b.stream(stream)
	if err != nil {
		return 0, err
	}
	l, err := s.partition(partition)
	if err != nil {
		return 0, err
	}
	c, err := b.state.GetOffset(state.OffsetKey{Group: groupName, Stream: stream, Partition: partition})
	switch {
	case err == nil:
		return min(max(c.Offset, l.StartOffset()), l.EndOffset()), nil
	case errors.Is(err, state.ErrNotFound):
		return resolveStart(l, pos)
	default:
		return 0, err
	}
}

// CommitOffsets durably records a group's positions: each offset is the next
// record to process. A member may commit only the partitions it owns, with
// the generation it was last given; a group without active members accepts
// commits with an empty memberID (tools and standalone consumers).
func (b *Broker) CommitOffsets(ctx context.Context, groupName, memberID string, generation int64, offsets []OffsetCommit) error {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionConsume); err != nil {
		return err
	}
	if err := ValidateGroupName(groupName); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	for _, o := range offsets {
		s, err := b.stream(o.Stream)
		if err != nil {
			return err
		}
		l, err := s.partition(o.Partition)
		if err != nil {
			return err
		}
		if o.Offset < 0 || o.Offset > l.EndOffset() {
			return fmt.Errorf("%w: offset %d of %s/%d is beyond the end %d", ErrOffsetOutOfRange, o.Offset, o.Stream, o.Partition, l.EndOffset())
		}
	}
	b.groups.mu.Lock()
	e := b.groups.groups[groupName]
	b.groups.mu.Unlock()
	if memberID == "" {
		if e != nil && !e.coord.Empty() || b.classic.active(groupName) {
			return fmt.Errorf("%w: group %q has active members; commit as one of them", ErrGroupBusy, groupName)
		}
	} else {
		if e == nil {
			return fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, groupName)
		}
		for _, o := range offsets {
			if err := e.coord.CheckCommit(memberID, generation, group.Partition{Stream: o.Stream, Partition: o.Partition}); err != nil {
				return mapGroupError(err)
			}
		}
	}
	now := b.now()
	return b.state.Update(func(tx *state.Tx) error {
		for _, o := range offsets {
			err := tx.CommitOffset(state.OffsetKey{Group: groupName, Stream: o.Stream, Partition: o.Partition},
				state.CommittedOffset{Offset: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata, CommitTime: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// ResetOffsets moves a group's committed offsets on one stream (every
// partition) to pos. The group must have no active members.
func (b *Broker) ResetOffsets(ctx context.Context, groupName, stream string, pos StartPosition) ([]GroupOffset, error) {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionManage); err != nil {
		return nil, err
	}
	if err := ValidateGroupName(groupName); err != nil {
		return nil, err
	}
	b.groups.mu.Lock()
	e := b.groups.groups[groupName]
	busy := e != nil && !e.coord.Empty()
	b.groups.mu.Unlock()
	if busy {
		return nil, fmt.Errorf("%w: stop the consumers of group %q before resetting its offsets", ErrGroupBusy, groupName)
	}
	s, err := b.stream(stream)
	if err != nil {
		return nil, err
	}
	var commits []OffsetCommit
	for p, l := range s.partitions() {
		off, err := resolveStart(l, pos)
		if err != nil {
			return nil, err
		}
		commits = append(commits, OffsetCommit{Stream: stream, Partition: int32(p), Offset: off})
	}
	if err := b.CommitOffsets(ctx, groupName, "", 0, commits); err != nil {
		return nil, err
	}
	info, err := b.DescribeGroup(groupName)
	if err != nil {
		return nil, err
	}
	return info.Offsets, nil
}

// ListGroups names every group with committed offsets or active members.
func (b *Broker) ListGroups() ([]string, error) {
	names, err := b.state.ListGroups()
	if err != nil {
		return nil, err
	}
	b.groups.mu.Lock()
	for name := range b.groups.groups {
		names = append(names, name)
	}
	b.groups.mu.Unlock()
	slices.Sort(names)
	return slices.Compact(names), nil
}

// DescribeGroup returns a group's members, assignment and offsets with lag.
func (b *Broker) DescribeGroup(groupName string) (GroupInfo, error) {
	info := GroupInfo{Group: groupName}
	b.groups.mu.Lock()
	e := b.groups.groups[groupName]
	b.groups.mu.Unlock()
	if e != nil {
		d := e.coord.Describe()
		info.Strategy, info.Generation = string(d.Strategy), d.Generation
		for _, m := range d.Members {
			gm := GroupMember{MemberID: m.MemberID, ClientID: m.ClientID, Streams: m.Streams, SessionTimeout: m.SessionTimeout, LastHeartbeat: m.LastHeartbeat}
			for _, p := range m.Owned {
				gm.Assigned = append(gm.Assigned, PartitionRef{p.Stream, p.Partition})
			}
			info.Members = append(info.Members, gm)
		}
	}
	offsets, err := b.state.ListOffsets(groupName)
	if err != nil {
		return info, err
	}
	for _, o := range offsets {
		g := GroupOffset{Stream: o.Stream, Partition: o.Partition, Offset: o.Committed.Offset, Metadata: o.Committed.Metadata, CommitTime: o.Committed.CommitTime}
		if s, err := b.stream(o.Stream); err == nil {
			if l, err := s.partition(o.Partition); err == nil {
				g.EndOffset = l.EndOffset()
				g.Lag = max(g.EndOffset-g.Offset, 0)
			}
		}
		info.Offsets = append(info.Offsets, g)
	}
	if e == nil && len(info.Offsets) == 0 {
		return info, fmt.Errorf("%w: %q", ErrGroupNotFound, groupName)
	}
	return info, nil
}

func mapGroupError(err error) error {
	switch {
	case errors.Is(err, group.ErrUnknownMember):
		return fmt.Errorf("%w: %w", ErrUnknownMember, err)
	case errors.Is(err, group.ErrStaleGeneration):
		return fmt.Errorf("%w: %w", ErrStaleGeneration, err)
	case errors.Is(err, group.ErrNotOwner):
		return fmt.Errorf("%w: %w", ErrNotAssigned, err)
	case errors.Is(err, group.ErrUnknownStream):
		return fmt.Errorf("%w: %w", ErrStreamNotFound, err)
	case errors.Is(err, group.ErrInconsistentStrategy), errors.Is(err, group.ErrInvalidSessionTimeout), errors.Is(err, group.ErrInvalidArgument):
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return err
}
