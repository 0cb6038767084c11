package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
)

// Classic groups are consumer groups whose members assign partitions
// themselves (Kafka's classic group protocol): the coordinator gathers the
// members and their opaque protocol metadata, picks a leader and a protocol
// every member supports, hands the leader the members' metadata, and passes
// the leader's opaque assignments back to each member. The broker does not
// look inside metadata or assignments.
//
// A group name is live under one coordinator at a time: while a classic
// group has members, a native group of the same name cannot be joined, and
// the other way round. Committed offsets are shared: both kinds commit to
// the same offsets table, so a group consumed over Kafka and later over the
// native API (or the other way round) resumes where the other stopped.

// Errors of classic groups.
var (
	ErrRebalanceInProgress   = errors.New("group is rebalancing")
	ErrMemberIDRequired      = errors.New("member id required")
	ErrInconsistentGroup     = errors.New("inconsistent group protocol")
	ErrInvalidSessionTimeout = errors.New("invalid session timeout")
	// ErrFencedInstanceID: a static member's instance id now belongs to a
	// newer member (the instance restarted and joined again).
	ErrFencedInstanceID = errors.New("static member fenced by a newer instance")
)

// ClassicProtocol is one assignment protocol a member supports, with its
// metadata (opaque to the broker).
type ClassicProtocol struct {
	Name     string
	Metadata []byte
}

// ClassicJoinRequest is a member's JoinGroup.
type ClassicJoinRequest struct {
	Group            string
	MemberID         string // "" for a new member
	ClientID         string
	ClientHost       string
	ProtocolType     string
	Protocols        []ClassicProtocol
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	// RequireKnownMemberID: a new member first gets ErrMemberIDRequired
	// with its id, and joins with it (Kafka's JoinGroup v4 and later).
	// Static members skip that round trip.
	RequireKnownMemberID bool
	// InstanceID makes the member static (Kafka's group.instance.id,
	// KIP-345): see classic_static.go.
	InstanceID string
	// SkipAssignmentSupported: the member understands SkipAssignment
	// (Kafka's JoinGroup v9, KIP-814).
	SkipAssignmentSupported bool
}

// ClassicMember is a member as the leader sees it at a join.
type ClassicMember struct {
	MemberID string
	Metadata []byte
}

// ClassicJoinResult is the answer to a join once the rebalance completes.
type ClassicJoinResult struct {
	Generation   int32
	ProtocolType string
	Protocol     string
	Leader       string
	MemberID     string
	Members      []ClassicMember // for the leader only
	// SkipAssignment tells a static leader that rejoined a stable group
	// that the assignment stands: it must not assign again.
	SkipAssignment bool
}

// ClassicSyncResult is a member's assignment for its generation.
type ClassicSyncResult struct {
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// ClassicGroupInfo describes a classic group.
type ClassicGroupInfo struct {
	Group        string
	State        string // Empty, PreparingRebalance, CompletingRebalance, Stable
	ProtocolType string
	Protocol     string
	Generation   int32
	Leader       string
	Members      []ClassicMemberInfo
}

// ClassicMemberInfo describes one member of a classic group.
type ClassicMemberInfo struct {
	MemberID, ClientID, ClientHost string
	InstanceID                     string // "" for a dynamic member
	Metadata, Assignment           []byte
}

type classicState int

const (
	classicEmpty classicState = iota
	classicPreparing
	classicCompleting
	classicStable
)

func (s classicState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}[s]
}

// Bounds of classic session and rebalance timeouts.
const (
	classicMinSession = 1 * time.Second
	classicMaxSession = 30 * time.Minute
	classicTick       = 100 * time.Millisecond
)

type classicRegistry struct {
	b      *Broker
	mu     sync.Mutex // a leaf except for calls into state; never held with groups.mu
	groups map[string]*classicGroup
}

type classicGroup struct {
	name         string
	state        classicState
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*classicMember
	static       map[string]string    // instance id → member id of static members
	pending      map[string]time.Time // ids handed out, not yet joined, until
	deadline     time.Time            // of the rebalance under way
	joinSeq      int
}

type classicMember struct {
	id, clientID, clientHost string
	instanceID               string // "" for a dynamic member
	protocols                []ClassicProtocol
	session, rebalance       time.Duration
	lastSeen                 time.Time
	seq                      int
	assignment               []byte
	joinCh                   chan classicJoinOutcome // set while its join waits
	syncCh                   chan classicSyncOutcome // set while its sync waits
}

type classicJoinOutcome struct {
	res ClassicJoinResult
	err error
}

type classicSyncOutcome struct {
	res ClassicSyncResult
	err error
}

func (r *classicRegistry) init(b *Broker) {
	r.b = b
	r.groups = make(map[string]*classicGroup)
}

// loop expires sessions and ends rebalances that waited long enough, and
// now and then forgets idle idempotent producers.
func (r *classicRegistry) loop() {
	defer r.b.bg.Done()
	t := time.NewTicker(classicTick)
	defer t.Stop()
	// The clock is read only when there is something to look at (tests
	// drive it by hand).
	const pruneEvery = int(time.Minute / classicTick)
	for ticks := 1; ; ticks++ {
		select {
		case <-r.b.ctx.Done():
			r.closeAll()
			return
		case <-t.C:
		}
		r.tick()
		if ticks%pruneEvery == 0 {
			r.b.producers.prune(r.b.now)
		}
	}
}

func (r *classicRegistry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.groups {
		for _, m := range g.members {
			m.failWaits(ErrClosed)
		}
	}
}

func (r *classicRegistry) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.groups) == 0 {
		return
	}
	now := r.b.now()
	for name, g := range r.groups {
		for id, until := range g.pending {
			if now.After(until) {
				delete(g.pending, id)
			}
		}
		changed := false
		for id, m := range g.members {
			if m.joinCh == nil && now.Sub(m.lastSeen) > m.session {
				r.b.cfg.Logger.Info("kafka group member session expired", "group", name, "member", id)
				m.failWaits(ErrUnknownMember)
				g.remove(id)
				changed = true
			}
		}
		if changed {
			g.prepareRebalance(now)
		}
		if g.state == classicPreparing && !now.Before(g.deadline) {
			for id, m := range g.members {
				if m.joinCh == nil {
					m.failWaits(ErrUnknownMember)
					g.remove(id)
				}
			}
			g.completeJoin(now)
		} else {
			g.maybeCompleteJoin(now)
		}
		if g.state == classicEmpty && len(g.members) == 0 && len(g.pending) == 0 {
			delete(r.groups, name)
		}
	}
}

func (m *classicMember) failWaits(err error) {
	if m.joinCh != nil {
		m.joinCh <- classicJoinOutcome{err: err}
		m.joinCh = nil
	}
	if m.syncCh != nil {
		m.syncCh <- classicSyncOutcome{err: err}
		m.syncCh = nil
	}
}

// active reports whether a classic group of that name has members.
func (r *classicRegistry) active(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[name]
	return ok && len(g.members) > 0
}

func (r *classicRegistry) group(name string) (*classicGroup, error) {
	g, ok := r.groups[name]
	if !ok {
		return nil, fmt.Errorf("%w: group %q has no members", ErrUnknownMember, name)
	}
	return g, nil
}

func (g *classicGroup) member(id string) (*classicMember, error) {
	m, ok := g.members[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, id, g.name)
	}
	return m, nil
}

func newMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// supports reports whether every member (and the protocols offered) share
// at least one protocol.
func (g *classicGroup) compatible(protocols []ClassicProtocol, except string) bool {
	for _, p := range protocols {
		ok := true
		for id, m := range g.members {
			if id != except && !slices.ContainsFunc(m.protocols, func(q ClassicProtocol) bool { return q.Name == p.Name }) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// ClassicJoin joins (or rejoins) a member and waits until the rebalance
// completes, answering with the generation, the leader and, to the leader,
// every member's metadata.
func (b *Broker) ClassicJoin(ctx context.Context, req ClassicJoinRequest) (ClassicJoinResult, error) {
	if err := Authorize(ctx, auth.ResourceGroup, req.Group, auth.ActionConsume); err != nil {
		return ClassicJoinResult{}, err
	}
	if err := ValidateGroupName(req.Group); err != nil {
		return ClassicJoinResult{}, err
	}
	if len(req.Protocols) == 0 || req.ProtocolType == "" {
		return ClassicJoinResult{}, fmt.Errorf("%w: a join needs a protocol type and at least one protocol", ErrInconsistentGroup)
	}
	if req.SessionTimeout < classicMinSession || req.SessionTimeout > classicMaxSession {
		return ClassicJoinResult{}, fmt.Errorf("%w: session timeout %v is outside [%v, %v]", ErrInvalidSessionTimeout, req.SessionTimeout, classicMinSession, classicMaxSession)
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if b.nativeGroupActive(req.Group) {
		return ClassicJoinResult{}, fmt.Errorf("%w: group %q has native members", ErrInconsistentGroup, req.Group)
	}
	r := &b.classic
	now := b.now()
	r.mu.Lock()
	g, ok := r.groups[req.Group]
	if !ok {
		g = &classicGroup{name: req.Group, members: make(map[string]*classicMember),
			static: make(map[string]string), pending: make(map[string]time.Time)}
		r.groups[req.Group] = g
	}
	staticID, isStatic := g.static[req.InstanceID]
	isStatic = isStatic && req.InstanceID != ""
	except := req.MemberID
	if isStatic && req.MemberID == "" {
		except = staticID // the member it replaces
	}
	if len(g.members) > 0 && (req.ProtocolType != g.protocolType || !g.compatible(req.Protocols, except)) {
		r.mu.Unlock()
		return ClassicJoinResult{}, fmt.Errorf("%w: group %q uses protocol type %q and protocols its members share", ErrInconsistentGroup, req.Group, g.protocolType)
	}
	if err := g.fenced(req.MemberID, req.InstanceID); err != nil && req.MemberID != "" {
		r.mu.Unlock()
		return ClassicJoinResult{}, err
	}
	if isStatic && req.MemberID == "" {
		return r.rejoinStatic(ctx, g, staticID, req, now) // releases r.mu
	}
	m, known := g.members[req.MemberID]
	switch {
	case req.MemberID == "" && req.InstanceID != "":
		// A new static member: no member-id round trip (Kafka's rule);
		// its id starts with its instance id, as Kafka's do.
		m = &classicMember{id: newMemberID(req.InstanceID)}
	case req.MemberID == "" && req.RequireKnownMemberID:
		id := newMemberID(req.ClientID)
		g.pending[id] = now.Add(req.SessionTimeout)
		r.mu.Unlock()
		return ClassicJoinResult{MemberID: id}, ErrMemberIDRequired
	case req.MemberID == "":
		m = &classicMember{id: newMemberID(req.ClientID)}
	case known:
	default:
		if _, ok := g.pending[req.MemberID]; !ok {
			r.mu.Unlock()
			return ClassicJoinResult{}, fmt.Errorf("%w: %q in group %q", ErrUnknownMember, req.MemberID, req.Group)
		}
		delete(g.pending, req.MemberID)
		m = &classicMember{id: req.MemberID}
	}
	if !known {
		g.joinSeq++
		m.seq = g.joinSeq
		g.members[m.id] = m
		if req.InstanceID != "" {
			m.instanceID = req.InstanceID
			g.static[req.InstanceID] = m.id
		}
	}
	m.update(req, now)
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	m.failWaits(ErrRebalanceInProgress) // an earlier join or sync of this member
	return r.joinAndWait(ctx, g, m, now)
}

// update takes a join's settings.
func (m *classicMember) update(req ClassicJoinRequest, now time.Time) {
	m.clientID, m.clientHost, m.protocols = req.ClientID, req.ClientHost, slices.Clone(req.Protocols)
	m.session, m.rebalance, m.lastSeen = req.SessionTimeout, req.RebalanceTimeout, now
}

// joinAndWait makes m wait in a rebalance (starting one if none is under
// way) until it completes. Called with r.mu held; releases it.
func (r *classicRegistry) joinAndWait(ctx context.Context, g *classicGroup, m *classicMember, now time.Time) (ClassicJoinResult, error) {
	ch := make(chan classicJoinOutcome, 1)
	m.joinCh = ch
	if g.state != classicPreparing {
		g.prepareRebalance(now)
	}
	g.maybeCompleteJoin(now)
	r.mu.Unlock()
	select {
	case out := <-ch:
		return out.res, out.err
	case <-ctx.Done():
		return ClassicJoinResult{}, ctx.Err()
	}
}

// prepareRebalance starts a rebalance: every member must join again within
// the longest rebalance timeout of the members.
func (g *classicGroup) prepareRebalance(now time.Time) {
	if len(g.members) == 0 {
		g.state = classicEmpty
		return
	}
	var longest time.Duration
	for _, m := range g.members {
		longest = max(longest, m.rebalance)
		if m.syncCh != nil {
			m.syncCh <- classicSyncOutcome{err: ErrRebalanceInProgress}
			m.syncCh = nil
		}
	}
	if g.state != classicPreparing {
		g.deadline = now.Add(longest)
	}
	g.state = classicPreparing
}

func (g *classicGroup) maybeCompleteJoin(now time.Time) {
	if g.state != classicPreparing {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoin(now)
}

// completeJoin ends the join phase: a new generation, a protocol all members
// support (the one most members list first among those), and a leader.
func (g *classicGroup) completeJoin(now time.Time) {
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = classicEmpty, "", ""
		return
	}
	members := g.sortedMembers()
	g.protocol = g.selectProtocol(members)
	if _, ok := g.members[g.leader]; !ok {
		g.leader = members[0].id
	}
	g.state = classicCompleting
	for _, m := range members {
		m.assignment = nil
		m.lastSeen = now
		res := ClassicJoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader, MemberID: m.id}
		if m.id == g.leader {
			res.Members = g.memberMetadata(members)
		}
		if m.joinCh != nil {
			m.joinCh <- classicJoinOutcome{res: res}
			m.joinCh = nil
		}
	}
}

// sortedMembers lists the members in the order they joined.
func (g *classicGroup) sortedMembers() []*classicMember {
	members := make([]*classicMember, 0, len(g.members))
	for _, m := range g.members {
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b *classicMember) int { return a.seq - b.seq })
	return members
}

// memberMetadata is what the leader gets: every member's metadata for the
// group's protocol.
func (g *classicGroup) memberMetadata(members []*classicMember) []ClassicMember {
	out := make([]ClassicMember, 0, len(members))
	for _, o := range members {
		out = append(out, ClassicMember{MemberID: o.id, Metadata: o.metadata(g.protocol)})
	}
	return out
}

// selectProtocol is the protocol every member supports that the most
// members list first among those (members sorted by join order).
func (g *classicGroup) selectProtocol(members []*classicMember) string {
	votes := make(map[string]int)
	var candidates []string
	for _, p := range members[0].protocols {
		if g.compatible([]ClassicProtocol{p}, "") {
			candidates = append(candidates, p.Name)
		}
	}
	for _, m := range members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	protocol := ""
	for _, c := range candidates {
		if protocol == "" || votes[c] > votes[protocol] {
			protocol = c
		}
	}
	return protocol
}

func (m *classicMember) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// ClassicSync hands the leader's assignments (by member id) to the group
// and returns the member's own, waiting for the leader's if needed.
func (b *Broker) ClassicSync(ctx context.Context, groupName, memberID, instanceID string, generation int32, assignments map[string][]byte) (ClassicSyncResult, error) {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionConsume); err != nil {
		return ClassicSyncResult{}, err
	}
	r := &b.classic
	now := b.now()
	r.mu.Lock()
	g, err := r.group(groupName)
	if err != nil {
		r.mu.Unlock()
		return ClassicSyncResult{}, err
	}
	m, err := g.staticMember(memberID, instanceID)
	if err != nil {
		r.mu.Unlock()
		return ClassicSyncResult{}, err
	}
	m.lastSeen = now
	if generation != g.generation {
		r.mu.Unlock()
		return ClassicSyncResult{}, fmt.Errorf("%w: generation %d, the group is at %d", ErrStaleGeneration, generation, g.generation)
	}
	switch g.state {
	case classicPreparing:
		r.mu.Unlock()
		return ClassicSyncResult{}, ErrRebalanceInProgress
	case classicStable:
		res := ClassicSyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}
		r.mu.Unlock()
		return res, nil
	}
	if memberID == g.leader {
		for id, o := range g.members {
			o.assignment = assignments[id]
			if o.syncCh != nil {
				o.syncCh <- classicSyncOutcome{res: ClassicSyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: o.assignment}}
				o.syncCh = nil
			}
		}
		g.state = classicStable
		res := ClassicSyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}
		r.mu.Unlock()
		return res, nil
	}
	if m.syncCh != nil {
		m.syncCh <- classicSyncOutcome{err: ErrRebalanceInProgress}
	}
	ch := make(chan classicSyncOutcome, 1)
	m.syncCh = ch
	r.mu.Unlock()
	select {
	case out := <-ch:
		return out.res, out.err
	case <-ctx.Done():
		return ClassicSyncResult{}, ctx.Err()
	}
}

// ClassicHeartbeat keeps a member's session alive. During a rebalance it
// answers ErrRebalanceInProgress, telling the member to join again.
func (b *Broker) ClassicHeartbeat(groupName, memberID, instanceID string, generation int32) error {
	r := &b.classic
	r.mu.Lock()
	defer r.mu.Unlock()
	g, err := r.group(groupName)
	if err != nil {
		return err
	}
	m, err := g.staticMember(memberID, instanceID)
	if err != nil {
		return err
	}
	m.lastSeen = r.b.now()
	if g.state == classicPreparing {
		return ErrRebalanceInProgress
	}
	if generation != g.generation {
		return fmt.Errorf("%w: generation %d, the group is at %d", ErrStaleGeneration, generation, g.generation)
	}
	return nil
}

// ClassicLeave removes a member; the others rebalance. A static member
// may be named by its instance id alone (memberID "": an administrator
// removing it); with both, they must match (ErrFencedInstanceID).
func (b *Broker) ClassicLeave(groupName, memberID, instanceID string) error {
	r := &b.classic
	r.mu.Lock()
	defer r.mu.Unlock()
	g, err := r.group(groupName)
	if err != nil {
		return err
	}
	if instanceID != "" && memberID == "" {
		id, ok := g.static[instanceID]
		if !ok {
			return fmt.Errorf("%w: no static member %q in group %q", ErrUnknownMember, instanceID, groupName)
		}
		memberID = id
	}
	m, err := g.staticMember(memberID, instanceID)
	if err != nil {
		return err
	}
	m.failWaits(ErrUnknownMember)
	g.remove(memberID)
	now := r.b.now()
	g.prepareRebalance(now)
	g.maybeCompleteJoin(now)
	return nil
}

// ClassicCommit commits a classic group's offsets: a member with its
// current generation, or, with memberID "" and generation -1, anyone while
// the group has no members (tools, consumers that assign themselves).
// The result holds one error (or nil) per offset.
func (b *Broker) ClassicCommit(ctx context.Context, groupName, memberID, instanceID string, generation int32, offsets []OffsetCommit) ([]error, error) {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionConsume); err != nil {
		return nil, err
	}
	if err := ValidateGroupName(groupName); err != nil {
		return nil, err
	}
	if err := b.checkClassicMember(groupName, memberID, instanceID, generation); err != nil {
		return nil, err
	}
	if memberID == "" && b.nativeGroupActive(groupName) {
		return nil, fmt.Errorf("%w: group %q has native members", ErrGroupBusy, groupName)
	}
	errs := b.checkOffsets(offsets)
	var ok []int
	for i, err := range errs {
		if err == nil {
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return errs, nil
	}
	now := b.now()
	err := b.state.Update(func(tx *state.Tx) error {
		for _, i := range ok {
			o := offsets[i]
			err := tx.CommitOffset(state.OffsetKey{Group: groupName, Stream: o.Stream, Partition: o.Partition},
				state.CommittedOffset{Offset: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata, CommitTime: now})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return errs, err
}

// checkClassicMember checks that a commit may be made for a classic group:
// by a member with its current generation, or, with memberID "" and
// generation -1, by anyone while the group has no members.
func (b *Broker) checkClassicMember(groupName, memberID, instanceID string, generation int32) error {
	r := &b.classic
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.groups[groupName]
	var err error
	switch {
	case memberID == "" && generation < 0:
		if g != nil && len(g.members) > 0 {
			err = fmt.Errorf("%w: group %q has members", ErrUnknownMember, groupName)
		}
	case g == nil:
		err = fmt.Errorf("%w: %q in group %q", ErrUnknownMember, memberID, groupName)
	default:
		var m *classicMember
		if m, err = g.staticMember(memberID, instanceID); err == nil {
			m.lastSeen = b.now()
			switch {
			case generation != g.generation:
				err = fmt.Errorf("%w: generation %d, the group is at %d", ErrStaleGeneration, generation, g.generation)
			case g.state == classicCompleting:
				err = ErrRebalanceInProgress
			}
		}
	}
	return err
}

// checkOffsets checks that each offset's partition exists and the offset
// is not negative: one error (or nil) per offset.
func (b *Broker) checkOffsets(offsets []OffsetCommit) []error {
	errs := make([]error, len(offsets))
	for i, o := range offsets {
		s, err := b.stream(o.Stream)
		if err == nil {
			_, err = s.partition(o.Partition)
		}
		if err == nil && o.Offset < 0 {
			err = fmt.Errorf("%w: offset %d", ErrOffsetOutOfRange, o.Offset)
		}
		errs[i] = err
	}
	return errs
}

// CommittedOffset returns a group's committed offset of one partition;
// found is false when there is none.
func (b *Broker) CommittedOffset(groupName, stream string, partition int32) (offset int64, metadata string, found bool, err error) {
	c, err := b.state.GetOffset(state.OffsetKey{Group: groupName, Stream: stream, Partition: partition})
	if errors.Is(err, state.ErrNotFound) {
		return -1, "", false, nil
	}
	if err != nil {
		return -1, "", false, err
	}
	return c.Offset, c.Metadata, true, nil
}

// CommittedOffsets returns every committed offset of a group.
func (b *Broker) CommittedOffsets(groupName string) ([]OffsetCommit, error) {
	list, err := b.state.ListOffsets(groupName)
	if err != nil {
		return nil, err
	}
	out := make([]OffsetCommit, len(list))
	for i, o := range list {
		out[i] = OffsetCommit{Stream: o.Stream, Partition: o.Partition, Offset: o.Committed.Offset, Metadata: o.Committed.Metadata}
	}
	return out, nil
}

// DescribeClassicGroup describes a classic group; ok is false when no
// classic group of that name has members or a rebalance under way.
func (b *Broker) DescribeClassicGroup(groupName string) (ClassicGroupInfo, bool) {
	r := &b.classic
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[groupName]
	if !ok {
		return ClassicGroupInfo{}, false
	}
	info := ClassicGroupInfo{Group: g.name, State: g.state.String(), ProtocolType: g.protocolType, Protocol: g.protocol, Generation: g.generation, Leader: g.leader}
	for _, m := range g.sortedMembers() {
		info.Members = append(info.Members, ClassicMemberInfo{
			MemberID: m.id, ClientID: m.clientID, ClientHost: m.clientHost, InstanceID: m.instanceID,
			Metadata: m.metadata(g.protocol), Assignment: m.assignment,
		})
	}
	return info, true
}

// ListClassicGroups describes every classic group known in memory.
func (b *Broker) ListClassicGroups() []ClassicGroupInfo {
	r := &b.classic
	r.mu.Lock()
	names := make([]string, 0, len(r.groups))
	for name := range r.groups {
		names = append(names, name)
	}
	r.mu.Unlock()
	slices.Sort(names)
	var out []ClassicGroupInfo
	for _, name := range names {
		if info, ok := b.DescribeClassicGroup(name); ok {
			out = append(out, info)
		}
	}
	return out
}

// nativeGroupActive reports whether a native group of that name has members.
func (b *Broker) nativeGroupActive(name string) bool {
	b.groups.mu.Lock()
	defer b.groups.mu.Unlock()
	e, ok := b.groups.groups[name]
	return ok && !e.coord.Empty()
}

// ErrGroupNotEmpty is returned when deleting a group that has members.
var ErrGroupNotEmpty = errors.New("group has members")

// DeleteGroup deletes a group's committed offsets. The group must have no
// members under either coordinator.
func (b *Broker) DeleteGroup(ctx context.Context, groupName string) error {
	if err := Authorize(ctx, auth.ResourceGroup, groupName, auth.ActionManage); err != nil {
		return err
	}
	if err := ValidateGroupName(groupName); err != nil {
		return err
	}
	if b.classic.active(groupName) || b.nativeGroupActive(groupName) {
		return fmt.Errorf("%w: %q", ErrGroupNotEmpty, groupName)
	}
	offsets, err := b.state.ListOffsets(groupName)
	if err != nil {
		return err
	}
	if len(offsets) == 0 {
		return fmt.Errorf("%w: %q", ErrGroupNotFound, groupName)
	}
	return b.state.Update(func(tx *state.Tx) error { return tx.DeleteOffsets(groupName) })
}
