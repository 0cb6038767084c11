package mqtt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// Streams the front end keeps its state in. Both are compacted and keyed,
// so they hold one record per retained topic and per persistent session.
const (
	retainedStream = "mqtt.retained"
	sessionsStream = "mqtt.sessions"
	sessionPrefix  = "mqtt.session."
	sharePrefixQ   = "mqtt.share."
)

// openCompacted creates a compacted one-partition stream if it is missing
// and calls fn with every record it holds, oldest first.
func openCompacted(ctx context.Context, b *broker.Broker, name string, fn func(broker.Record) error) error {
	_, err := b.CreateStream(ctx, broker.StreamConfig{Name: name, Partitions: 1, Compacted: true, DedupWindow: -1})
	if err != nil && !errors.Is(err, broker.ErrStreamExists) {
		return fmt.Errorf("mqtt: create %s: %w", name, err)
	}
	info, err := b.DescribeStream(name)
	if err != nil {
		return err
	}
	p := info.Partitions[0]
	r, err := b.NewReader(name, map[int32]int64{0: p.StartOffset})
	if err != nil {
		return err
	}
	for {
		pos := r.Positions()[0]
		if pos >= p.EndOffset {
			return nil
		}
		recs, err := r.Read(ctx, 1<<20, 0)
		if err != nil {
			return fmt.Errorf("mqtt: read %s: %w", name, err)
		}
		if len(recs) == 0 {
			return nil
		}
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
}

// retainedStore holds the retained messages: in memory by topic, and in
// the compacted stream mqtt.retained (key: the topic; value: the payload;
// a tombstone removes it). Only this front end writes that stream.
type retainedStore struct {
	b  *broker.Broker
	mu sync.Mutex // held across a write, so the stream and the map agree
	m  map[string]broker.Record
}

func openRetained(ctx context.Context, b *broker.Broker) (*retainedStore, error) {
	rs := &retainedStore{b: b, m: map[string]broker.Record{}}
	err := openCompacted(ctx, b, retainedStream, func(rec broker.Record) error {
		if len(rec.Value) == 0 {
			delete(rs.m, string(rec.Key))
		} else {
			rs.m[string(rec.Key)] = rec
		}
		return nil
	})
	return rs, err
}

// set stores (or, with an empty payload, removes) a topic's retained
// message; it returns once that is durable.
func (rs *retainedStore) set(ctx context.Context, topic string, rec broker.Record) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rec.Key = []byte(topic)
	if len(rec.Value) == 0 {
		if _, ok := rs.m[topic]; !ok {
			return nil
		}
		rec.Value = nil
	}
	if _, err := rs.b.Publish(ctx, retainedStream, []broker.Record{rec}); err != nil {
		return err
	}
	if rec.Value == nil {
		delete(rs.m, topic)
	} else {
		rs.m[topic] = rec
	}
	return nil
}

func (rs *retainedStore) count() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.m)
}

// matching returns the retained messages whose topics match filter.
func (rs *retainedStore) matching(filter string) []broker.Record {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []broker.Record
	for topic, rec := range rs.m {
		if MatchTopic(filter, topic) {
			out = append(out, rec)
		}
	}
	return out
}

// subState is one subscription of a session as stored.
type subState struct {
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"noLocal,omitempty"`
	RetainAsPublished bool   `json:"rap,omitempty"`
	Group             string `json:"group,omitempty"`  // shared: the group
	Filter            string `json:"filter,omitempty"` // shared: the filter without $share/group/
	SubID             int    `json:"subId,omitempty"`  // MQTT 5 subscription identifier (0: none)
}

// sessionState is a persistent session as stored in mqtt.sessions (its
// subscriptions, by the filter as the client wrote it). The messages it
// has not acknowledged are in its queue.
type sessionState struct {
	Subs map[string]subState `json:"subs"`
	// ExpiresAt (Unix ms) is when an MQTT 5 session that is not connected
	// expires; 0 while connected, or never (3.1.1, expiry 0xFFFFFFFF).
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

// sessionStore keeps the persistent sessions: in memory by client id, and
// in the compacted stream mqtt.sessions.
type sessionStore struct {
	b  *broker.Broker
	mu sync.Mutex
	m  map[string]sessionState
}

func openSessions(ctx context.Context, b *broker.Broker) (*sessionStore, error) {
	ss := &sessionStore{b: b, m: map[string]sessionState{}}
	err := openCompacted(ctx, b, sessionsStream, func(rec broker.Record) error {
		if rec.Value == nil {
			delete(ss.m, string(rec.Key))
			return nil
		}
		var st sessionState
		if err := json.Unmarshal(rec.Value, &st); err != nil {
			return fmt.Errorf("mqtt: session %q: %w", rec.Key, err)
		}
		ss.m[string(rec.Key)] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Session queues without a stored session belong to sessions that
	// ended in a crash (clean sessions are not stored).
	keep := map[string]bool{}
	for id := range ss.m {
		keep[sessionQueue(id)] = true
	}
	for _, q := range b.ListQueues() {
		name := q.Config.Name
		if strings.HasPrefix(name, sessionPrefix) && !keep[name] {
			if err := b.DeleteStream(ctx, name); err != nil && !errors.Is(err, broker.ErrStreamNotFound) {
				return nil, fmt.Errorf("mqtt: remove stale session queue %s: %w", name, err)
			}
		}
	}
	return ss, nil
}

func (ss *sessionStore) get(clientID string) (sessionState, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	st, ok := ss.m[clientID]
	return st, ok
}

// put stores a session durably; nil subs stores an empty one.
func (ss *sessionStore) put(ctx context.Context, clientID string, st sessionState) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := ss.b.Publish(broker.Bookkeeping(ctx), sessionsStream, []broker.Record{{Key: []byte(clientID), Value: v}}); err != nil {
		return err
	}
	ss.m[clientID] = st
	return nil
}

func (ss *sessionStore) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// expired returns the client ids whose sessions expired by now.
func (ss *sessionStore) expired(now time.Time) []string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var ids []string
	for id, st := range ss.m {
		if st.ExpiresAt != 0 && st.ExpiresAt <= now.UnixMilli() {
			ids = append(ids, id)
		}
	}
	return ids
}

func (ss *sessionStore) remove(ctx context.Context, clientID string) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.m[clientID]; !ok {
		return nil
	}
	if _, err := ss.b.Publish(broker.Bookkeeping(ctx), sessionsStream, []broker.Record{{Key: []byte(clientID)}}); err != nil {
		return err
	}
	delete(ss.m, clientID)
	return nil
}

// IsSessionQueue reports whether stream is the queue of an MQTT session.
func IsSessionQueue(stream string) bool { return strings.HasPrefix(stream, sessionPrefix) }

// sessionQueue names the queue of a client id's session: the id itself
// when it is a valid stream name, a hash of it otherwise.
func sessionQueue(clientID string) string {
	if name := sessionPrefix + "c." + clientID; broker.ValidateStreamName(name) == nil {
		return name
	}
	sum := sha256.Sum256([]byte(clientID))
	return sessionPrefix + "h." + hex.EncodeToString(sum[:16])
}

// shareQueue names the queue of a shared subscription.
func shareQueue(group, filter string) string {
	sum := sha256.Sum256([]byte(group + "\x00" + filter))
	return sharePrefixQ + hex.EncodeToString(sum[:16])
}
