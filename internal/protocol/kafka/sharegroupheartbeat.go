package kafka

import (
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// handleShareGroupHeartbeat answers ShareGroupHeartbeat (key 76): joins
// (member epoch 0, with the client's own member id), heartbeats (the
// member's current epoch, else FENCED_MEMBER_EPOCH) and leaves (-1). Each
// member is assigned every partition of the topics it subscribes to; the
// assignment is sent when it changed (with a new member epoch) and on every
// heartbeat that names the subscribed topics. Joining creates the group's
// shared subscription on each topic that lacks one.
func handleShareGroupHeartbeat(c *conn, req *kmsg.ShareGroupHeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ShareGroupHeartbeatResponse)
	sc := c.s.share
	fail := func(code int16, err error) (kmsg.Response, error) {
		resp.ErrorCode, resp.ErrorMessage = code, errorMessage(err)
		return resp, nil
	}
	if err := broker.ValidateGroupName(req.GroupID); err != nil {
		return fail(kerr.InvalidGroupID.Code, err)
	}
	if req.MemberID == "" {
		return fail(kerr.InvalidRequest.Code, fmt.Errorf("a share group member sends its own member id"))
	}
	if req.MemberEpoch == -1 {
		sc.leave(req.GroupID, req.MemberID)
		resp.MemberID, resp.MemberEpoch = &req.MemberID, -1
		return resp, nil
	}
	if req.MemberEpoch < 0 {
		return fail(kerr.InvalidRequest.Code, fmt.Errorf("member epoch %d", req.MemberEpoch))
	}
	if req.MemberEpoch == 0 && len(req.SubscribedTopicNames) == 0 {
		return fail(kerr.InvalidRequest.Code, fmt.Errorf("a joining member names the topics it subscribes to"))
	}

	// The group's configuration (IncrementalAlterConfigs) may shorten or
	// lengthen the session and the heartbeat interval.
	session, interval := c.s.cfg.ShareSessionTimeout, c.s.cfg.ShareHeartbeatInterval
	if gs, err := c.s.cfg.Broker.GroupSettings(req.GroupID); err == nil && (gs.SessionTimeout > 0 || gs.HeartbeatInterval > 0) {
		session = cmpOr(gs.SessionTimeout, session)
		interval = cmpOr(gs.HeartbeatInterval, min(interval, session/3))
	}

	// Check the member before the (possibly slow) subscription creation.
	topics := req.SubscribedTopicNames
	sc.mu.Lock()
	g := sc.groups[req.GroupID]
	var m *shareMember
	if g != nil {
		m = g.members[req.MemberID]
	}
	if req.MemberEpoch > 0 {
		switch {
		case m == nil:
			sc.mu.Unlock()
			return fail(kerr.UnknownMemberID.Code, fmt.Errorf("member %q is not in share group %q", req.MemberID, req.GroupID))
		case m.epoch != req.MemberEpoch:
			sc.mu.Unlock()
			return fail(kerr.FencedMemberEpoch.Code, fmt.Errorf("member epoch %d, the current one is %d", req.MemberEpoch, m.epoch))
		}
		if topics == nil {
			topics = m.topics
		}
		m.deadline = time.Now().Add(session) // the assignment below may take a while
	}
	sc.mu.Unlock()
	topics = slices.Compact(slices.Sorted(slices.Values(topics)))
	assigned := sc.assignment(c.ctx, req.GroupID, topics)

	sc.mu.Lock()
	defer sc.mu.Unlock()
	g = sc.groups[req.GroupID]
	if g == nil {
		g = &shareGroup{name: req.GroupID, members: make(map[string]*shareMember)}
		sc.groups[req.GroupID] = g
	}
	m = g.members[req.MemberID]
	if req.MemberEpoch > 0 && (m == nil || m.epoch != req.MemberEpoch) {
		// Expired or fenced while the assignment was computed.
		return fail(kerr.UnknownMemberID.Code, fmt.Errorf("member %q left share group %q", req.MemberID, req.GroupID))
	}
	if m == nil {
		m = &shareMember{id: req.MemberID}
		g.members[req.MemberID] = m
	}
	m.clientID, m.clientHost = c.clientID, c.clientHost
	if req.RackID != nil {
		m.rack = req.RackID
	}
	m.topics = topics
	m.deadline = time.Now().Add(session)
	changed := req.MemberEpoch == 0 || !sameAssignment(m.assigned, assigned)
	if changed {
		g.epoch++
		m.epoch = g.epoch
		m.assigned = assigned
	}
	sc.startReaper()

	resp.MemberID = &req.MemberID
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = int32(interval / time.Millisecond)
	if changed || req.SubscribedTopicNames != nil {
		a := kmsg.NewShareGroupHeartbeatResponseAssignment()
		for _, t := range m.assigned {
			tp := kmsg.NewShareGroupHeartbeatResponseAssignmentTopicPartition()
			tp.TopicID, tp.Partitions = t.id, t.partitions
			a.TopicPartitions = append(a.TopicPartitions, tp)
		}
		resp.Assignment = &a
	}
	return resp, nil
}

// leave removes a member (a heartbeat with epoch -1) and releases what it
// holds; leaving a group one is not in is not an error.
func (sc *shareCoordinator) leave(group, memberID string) {
	sc.mu.Lock()
	g := sc.groups[group]
	var m *shareMember
	if g != nil {
		m = g.members[memberID]
	}
	if m == nil {
		sc.mu.Unlock()
		return
	}
	delete(g.members, memberID)
	g.epoch++
	key := shareSessionKey{group, memberID}
	sess := sc.sessions[key]
	delete(sc.sessions, key)
	sc.mu.Unlock()
	sc.release(group, memberID, m.assigned)
	if sess != nil {
		sc.releaseSession(key, sess)
	}
}
