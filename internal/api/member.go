package api

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// pendingPoll is how often a member heartbeats while partitions are on
// their way to it (Pending) or it owes a revocation acknowledgement, so that
// a handover completes quickly; otherwise it heartbeats every third of its
// session timeout.
const pendingPoll = 100 * time.Millisecond

// groupMember is a group subscription's membership: it heartbeats on its own
// goroutine, hands each new state to the subscription's loop, and
// acknowledges revocations once the client has (or once the session timeout
// has passed since the revocation was first seen, so that a client that
// never acknowledges cannot hold partitions forever).
type groupMember struct {
	broker  *broker.Broker
	logger  *slog.Logger
	group   string
	id      string
	session time.Duration
	wake    func() // tells the loop a new state (or a failure) is there

	ackNow chan struct{} // buffered: heartbeat at once

	mu       sync.Mutex
	state    broker.GroupState
	fresh    bool  // state not yet taken by the loop
	failure  error // the heartbeat failed; the subscription ends
	told     int64 // the latest generation announced to the client
	acked    int64 // the generation to acknowledge in heartbeats
	deadline time.Time
	awaiting int64 // a generation with revocations the client has not acknowledged, or 0
}

func newGroupMember(b *broker.Broker, logger *slog.Logger, st broker.GroupState, session time.Duration, wake func()) *groupMember {
	m := &groupMember{
		broker:  b,
		logger:  logger,
		group:   st.Group,
		id:      st.MemberID,
		session: session,
		wake:    wake,
		ackNow:  make(chan struct{}, 1),
	}
	m.update(st)
	return m
}

// heartbeatLoop runs until ctx ends or a heartbeat fails.
func (m *groupMember) heartbeatLoop(ctx context.Context) {
	interval := m.session / 3
	timer := time.NewTimer(m.nextHeartbeat(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-m.ackNow:
		}
		st, err := m.broker.Heartbeat(ctx, m.group, m.id, m.ackGeneration(time.Now()))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.mu.Lock()
			m.failure = fmt.Errorf("heartbeat of member %q in group %q: %w", m.id, m.group, err)
			m.mu.Unlock()
			m.wake()
			return
		}
		m.update(st)
		m.wake()
		timer.Reset(m.nextHeartbeat(interval))
	}
}

// update records a new state for the loop, and starts the acknowledgement
// deadline of a revocation not seen before.
func (m *groupMember) update(st broker.GroupState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state, m.fresh = st, true
	if len(st.Revoke) > 0 && m.awaiting == 0 && m.acked < st.Generation {
		m.awaiting, m.deadline = st.Generation, time.Now().Add(m.session)
	}
}

func (m *groupMember) nextHeartbeat(interval time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.state.Pending) > 0 || m.awaiting != 0 {
		return min(interval, pendingPoll)
	}
	return interval
}

// ackGeneration returns the generation to acknowledge: the client's, or the
// one whose revocations it left unacknowledged for a whole session timeout.
func (m *groupMember) ackGeneration(now time.Time) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.awaiting != 0 && m.acked < m.awaiting && !now.Before(m.deadline) {
		m.logger.Warn("subscriber did not acknowledge a revocation within the session timeout; releasing the partitions",
			"group", m.group, "member", m.id, "generation", m.awaiting)
		m.acked = m.awaiting
	}
	if m.acked >= m.awaiting {
		m.awaiting = 0
	}
	return m.acked
}

// next returns the latest state if the loop has not seen it yet, and the
// failure that ends the subscription, if any.
func (m *groupMember) next() (broker.GroupState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failure != nil {
		return broker.GroupState{}, false, m.failure
	}
	fresh := m.fresh
	m.fresh = false
	return m.state, fresh, nil
}

// announced records that the client was told generation.
func (m *groupMember) announced(generation int64) {
	m.mu.Lock()
	m.told = max(m.told, generation)
	m.mu.Unlock()
}

// acknowledge is the client's AckRevocation: it has committed what it
// processed of the partitions revoked up to generation.
func (m *groupMember) acknowledge(generation int64) error {
	m.mu.Lock()
	told := m.told
	if generation > 0 && generation <= told {
		m.acked = max(m.acked, generation)
	}
	m.mu.Unlock()
	if generation <= 0 || generation > told {
		return invalidArgument("generation must be one an Assignment event announced (1 to %d), got %d", told, generation)
	}
	select {
	case m.ackNow <- struct{}{}:
	default:
	}
	return nil
}

// leave removes the member from its group, so its partitions move at once.
func (m *groupMember) leave() {
	if err := m.broker.LeaveGroup(context.Background(), m.group, m.id); err != nil {
		m.logger.Debug("leaving group", "group", m.group, "member", m.id, "err", err)
	}
}
