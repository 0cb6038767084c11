package kafka

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// Share groups (KIP-932) map onto Weir's shared subscriptions: a share
// group G consuming topic T is the shared subscription G on stream T. The
// broker holds the records' state (acquired = in flight to a consumer,
// delivery counts, acknowledgements, dead-lettering); this file holds what
// only Kafka has: the group's members and their epochs (heartbeats), and
// the share sessions of ShareFetch and ShareAcknowledge. Both are in memory,
// as the classic groups' membership: members rejoin after a restart, and
// what they held is delivered again once its ack deadline passes.

// Defaults of the share-group settings (Kafka's group configs
// share.session.timeout.ms, share.heartbeat.interval.ms and
// group.share.delivery.count.limit).
const (
	DefaultShareSessionTimeout    = 45 * time.Second
	DefaultShareHeartbeatInterval = 5 * time.Second
	shareDeliveryCountLimit       = 5
	// shareDefaultMaxRecords is ShareFetch's MaxRecords when the client
	// sends none (KIP-1206's default).
	shareDefaultMaxRecords = 500
	// shareMaxAckOffsets bounds the offsets one request may acknowledge,
	// so a range of 2^62 offsets costs nothing.
	shareMaxAckOffsets = 1 << 20
)

// Share session epochs (KIP-932): 0 opens a session, -1 closes it, any
// other value must be the one the session expects next.
const (
	shareInitialEpoch = 0
	shareFinalEpoch   = -1
)

// Acknowledge types of ShareFetch and ShareAcknowledge.
const (
	ackGap     = 0
	ackAccept  = 1
	ackRelease = 2
	ackReject  = 3
	ackRenew   = 4 // v2 (KIP-1222)
)

// shareCoordinator is the server's share groups and share sessions.
type shareCoordinator struct {
	s *Server

	mu       sync.Mutex
	groups   map[string]*shareGroup
	sessions map[shareSessionKey]*shareSession
	reaping  bool // the expiry goroutine runs
}

type shareGroup struct {
	name    string
	epoch   int32 // grows with every change of membership or assignment
	members map[string]*shareMember
}

type shareMember struct {
	id         string
	epoch      int32
	clientID   string
	clientHost string
	rack       *string
	topics     []string // subscribed, sorted
	assigned   []shareAssignment
	deadline   time.Time // the member is removed when no heartbeat came by then
}

// shareAssignment is a topic's partitions assigned to a member: every
// partition of each subscribed topic that exists (any member may get any
// record of a shared subscription, so every member fetches from all).
type shareAssignment struct {
	topic      string
	id         [16]byte
	partitions []int32
}

type shareSessionKey struct{ group, member string }

type topicPartitionID struct {
	id        [16]byte
	partition int32
}

// shareSession is one member's share session: tied to the connection that
// opened it (closing that connection ends it and releases what the member
// holds), with the epoch the next request must carry and the partitions
// it fetches.
type shareSession struct {
	conn  *conn
	epoch int32
	parts map[topicPartitionID]struct{}
}

func newShareCoordinator(s *Server) *shareCoordinator {
	return &shareCoordinator{s: s, groups: make(map[string]*shareGroup), sessions: make(map[shareSessionKey]*shareSession)}
}

// shareConsumerID is the broker consumer id of a share-group member.
func shareConsumerID(memberID string) string { return "kafka-share/" + memberID }

func sameAssignment(a, b []shareAssignment) bool {
	return slices.EqualFunc(a, b, func(x, y shareAssignment) bool {
		return x.topic == y.topic && x.id == y.id && slices.Equal(x.partitions, y.partitions)
	})
}

// assignment computes a member's assignment for the topics it subscribes
// to, creating the group's shared subscription on each topic that lacks
// one (starting at the latest offset, share.auto.offset.reset's default).
// Topics that do not exist (or cannot carry a subscription) are left out
// until they do.
func (sc *shareCoordinator) assignment(ctx context.Context, group string, topics []string) []shareAssignment {
	b := sc.s.cfg.Broker
	var out []shareAssignment
	for _, t := range topics {
		info, err := b.DescribeStream(t)
		if err != nil {
			continue
		}
		if err := sc.ensureSubscription(ctx, t, group); err != nil {
			sc.s.log.Info("kafka: share group cannot consume topic", "group", group, "topic", t, "err", err)
			continue
		}
		a := shareAssignment{topic: t, id: info.ID, partitions: make([]int32, len(info.Partitions))}
		for i, p := range info.Partitions {
			a.partitions[i] = p.Partition
		}
		out = append(out, a)
	}
	return out
}

// ensureSubscription creates the shared subscription group on stream topic
// unless it exists: Kafka's defaults, a record is delivered at most
// group.share.delivery.count.limit (5) times and then dead-lettered, and
// the acquisition lock is the ack timeout (30 s, as
// group.share.record.lock.duration.ms), unless the group's configuration
// (share.auto.offset.reset, share.record.lock.duration.ms) says otherwise.
func (sc *shareCoordinator) ensureSubscription(ctx context.Context, topic, group string) error {
	b := sc.s.cfg.Broker
	_, err := b.DescribeSubscription(topic, group)
	if !errors.Is(err, broker.ErrSubscriptionNotFound) {
		return err
	}
	gs, err := b.GroupSettings(group)
	if err != nil {
		return err
	}
	start := broker.StartLatest
	if gs.SharedStart != nil {
		start = *gs.SharedStart
	}
	// A share group's subscription is created implicitly: consuming is the
	// right it needs (Kafka: READ on the group and the topic).
	if err := broker.AuthorizeSubscription(ctx, topic, group, auth.ActionConsume); err != nil {
		return err
	}
	_, err = b.CreateSubscription(broker.WithoutIdentity(ctx), broker.SubscriptionConfig{
		Stream: topic, Name: group,
		Start:         broker.StartPosition{Kind: start},
		MaxDeliveries: shareDeliveryCountLimit,
		AckTimeout:    gs.AckTimeout,
	})
	if errors.Is(err, broker.ErrSubscriptionExists) {
		return nil
	}
	if err == nil {
		sc.s.log.Info("kafka: created shared subscription for share group", "group", group, "topic", topic)
	}
	return err
}

// startReaper starts, once, the goroutine that expires members whose
// heartbeats stopped; sc.mu is held.
func (sc *shareCoordinator) startReaper() {
	if sc.reaping {
		return
	}
	sc.reaping = true
	s := sc.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		tick := time.NewTicker(min(s.cfg.ShareSessionTimeout/4, 100*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-tick.C:
				sc.expire(time.Now())
			}
		}
	}()
}

// expire removes the members whose session timeout passed; what they held
// is delivered again at once.
func (sc *shareCoordinator) expire(now time.Time) {
	type gone struct {
		group string
		m     *shareMember
	}
	var expired []gone
	sc.mu.Lock()
	for _, g := range sc.groups {
		for id, m := range g.members {
			if now.After(m.deadline) {
				delete(g.members, id)
				g.epoch++
				expired = append(expired, gone{g.name, m})
			}
		}
	}
	for _, e := range expired {
		delete(sc.sessions, shareSessionKey{e.group, e.m.id})
	}
	sc.mu.Unlock()
	for _, e := range expired {
		sc.s.log.Info("kafka: share group member expired", "group", e.group, "member", e.m.id)
		sc.release(e.group, e.m.id, e.m.assigned)
	}
}

// release gives back what a member holds on the given topics, for
// delivery to other members at once (their delivery counts stay).
func (sc *shareCoordinator) release(group, memberID string, topics []shareAssignment) {
	for _, a := range topics {
		sc.s.cfg.Broker.CloseConsumer(a.topic, group, shareConsumerID(memberID))
	}
}

// releaseSession releases what a member holds on the topics of a session.
func (sc *shareCoordinator) releaseSession(key shareSessionKey, sess *shareSession) {
	b := sc.s.cfg.Broker
	done := make(map[[16]byte]bool)
	for tp := range sess.parts {
		if done[tp.id] {
			continue
		}
		done[tp.id] = true
		if name, err := b.StreamNameByID(tp.id); err == nil {
			b.CloseConsumer(name, key.group, shareConsumerID(key.member))
		}
	}
}

// connClosed ends the share sessions a closed connection opened.
func (sc *shareCoordinator) connClosed(c *conn) {
	var ended []shareSessionKey
	var sessions []*shareSession
	sc.mu.Lock()
	for k, sess := range sc.sessions {
		if sess.conn == c {
			delete(sc.sessions, k)
			ended = append(ended, k)
			sessions = append(sessions, sess)
		}
	}
	sc.mu.Unlock()
	for i, k := range ended {
		sc.releaseSession(k, sessions[i])
	}
}

// nextShareEpoch is the session epoch after e: it wraps from MaxInt32 to 1.
func nextShareEpoch(e int32) int32 {
	if e == math.MaxInt32 {
		return 1
	}
	return e + 1
}
