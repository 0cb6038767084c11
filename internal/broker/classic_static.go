package broker

import (
	"context"
	"fmt"
	"time"
)

// Static membership (Kafka's KIP-345). A member that joins with an instance
// id (group.instance.id) is static: the group remembers which member id
// holds each instance id. When the instance restarts and joins again without
// a member id, it takes the place of its old member — new member id, same
// join order and assignment — and the old member id is fenced: its
// requests answer ErrFencedInstanceID. In a stable group whose protocol
// choice the new join does not change, the rejoin completes at once with
// the current generation, so the other members see no rebalance. A static
// member leaves by session expiry, or when it (or an administrator, by
// instance id) sends a leave; Kafka clients do not leave on close.

// fenced reports whether instanceID is held by another member than
// memberID.
func (g *classicGroup) fenced(memberID, instanceID string) error {
	if instanceID == "" {
		return nil
	}
	if id, ok := g.static[instanceID]; ok && id != memberID {
		return fmt.Errorf("%w: instance %q of group %q is member %q, not %q", ErrFencedInstanceID, instanceID, g.name, id, memberID)
	}
	return nil
}

// staticMember is the member memberID, after checking that instanceID
// (when set) is not held by another member.
func (g *classicGroup) staticMember(memberID, instanceID string) (*classicMember, error) {
	if err := g.fenced(memberID, instanceID); err != nil {
		return nil, err
	}
	return g.member(memberID)
}

// remove removes a member (and its instance id).
func (g *classicGroup) remove(id string) {
	if m, ok := g.members[id]; ok && m.instanceID != "" && g.static[m.instanceID] == id {
		delete(g.static, m.instanceID)
	}
	delete(g.members, id)
}

// rejoinStatic handles a static member joining without a member id while
// its instance id is held by oldID (the instance restarted): the member
// gets a new id, keeping its place, and the old id is fenced. A stable
// group whose protocol choice does not change answers at once with the
// current generation and assignment (no rebalance); otherwise, or while
// the leader may be assigning under the old id, the group rebalances.
// Called with r.mu held; releases it.
func (r *classicRegistry) rejoinStatic(ctx context.Context, g *classicGroup, oldID string, req ClassicJoinRequest, now time.Time) (ClassicJoinResult, error) {
	old := g.members[oldID]
	old.failWaits(ErrFencedInstanceID)
	m := &classicMember{id: newMemberID(req.InstanceID), instanceID: req.InstanceID, seq: old.seq, assignment: old.assignment}
	delete(g.members, oldID)
	g.members[m.id] = m
	g.static[req.InstanceID] = m.id
	previousLeader := g.leader
	if g.leader == oldID {
		g.leader = m.id
	}
	m.update(req, now)
	r.b.cfg.Logger.Info("kafka static group member replaced", "group", g.name, "instance", req.InstanceID, "old", oldID, "new", m.id)
	if g.state == classicStable && g.selectProtocol(g.sortedMembers()) == g.protocol {
		res := ClassicJoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, MemberID: m.id,
			// An older client told it leads would assign again, and a
			// stable group would not pass that on: it is told the old
			// leader id (Kafka's answer; clients recognise their
			// instance id in it).
			Leader: previousLeader}
		if m.id == g.leader && req.SkipAssignmentSupported {
			res.Leader, res.SkipAssignment = m.id, true
			res.Members = g.memberMetadata(g.sortedMembers())
		}
		r.mu.Unlock()
		return res, nil
	}
	return r.joinAndWait(ctx, g, m, now)
}
