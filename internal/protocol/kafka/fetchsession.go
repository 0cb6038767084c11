package kafka

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sessions (KIP-227). A consumer's fetch names every partition it
// reads; with a session, the broker remembers that set (and each
// partition's fetch offset and byte limit), so later fetches name only the
// partitions whose offset changed, and responses carry only the partitions
// with something new: records, an error, or a changed high watermark, last
// stable offset or log start offset.
//
// Sessions belong to the connection that created them (its serving
// goroutine is the only one to touch them, so they need no lock) and end
// with it; a client that comes back on a new connection gets
// FETCH_SESSION_ID_NOT_FOUND and starts a new session with a full fetch,
// which KIP-227 allows (a broker may drop a session at any time). At most
// maxFetchSessions per connection: creating one more drops another.

// Session epochs: 0 creates a session, -1 closes it (or, with session id
// 0, asks for a fetch without a session).
const (
	fetchInitialEpoch = 0
	fetchFinalEpoch   = -1
	maxFetchSessions  = 8
)

type fetchSession struct {
	id    int32
	epoch int32 // the epoch the next request must carry
	parts []*sessionPartition
	index map[sessionKey]*sessionPartition
}

// sessionKey names a partition: by topic name before Fetch v13, by topic
// id from v13.
type sessionKey struct {
	topic     string
	id        [16]byte
	partition int32
}

type sessionPartition struct {
	key sessionKey
	req kmsg.FetchRequestTopicPartition // fetch offset and byte limit
	// What the client was last told.
	sent                     bool
	hw, lastStable, logStart int64
}

func topicKey(version int16, name string, id [16]byte, partition int32) sessionKey {
	if version >= 13 {
		return sessionKey{id: id, partition: partition}
	}
	return sessionKey{topic: name, partition: partition}
}

// fetchSession resolves a Fetch request's session: nil for a fetch without
// one, or the session whose partitions to read, updated by the request.
// incremental reports whether the response carries only what changed.
func (c *conn) fetchSession(req *kmsg.FetchRequest) (sess *fetchSession, incremental bool, code int16) {
	switch {
	case req.SessionID == 0 && req.SessionEpoch == fetchFinalEpoch:
		return nil, false, 0
	case req.SessionEpoch == fetchFinalEpoch:
		delete(c.fetchSessions, req.SessionID)
		return nil, false, 0
	case req.SessionEpoch == fetchInitialEpoch:
		if req.SessionID != 0 {
			delete(c.fetchSessions, req.SessionID)
		}
		if c.fetchSessions == nil {
			c.fetchSessions = make(map[int32]*fetchSession)
		}
		for id := range c.fetchSessions {
			if len(c.fetchSessions) < maxFetchSessions {
				break
			}
			delete(c.fetchSessions, id)
		}
		sess = &fetchSession{epoch: 1, index: make(map[sessionKey]*sessionPartition)}
		for sess.id == 0 || c.fetchSessions[sess.id] != nil {
			sess.id = rand.Int32N(math.MaxInt32) + 1
		}
		c.fetchSessions[sess.id] = sess
		sess.update(req)
		return sess, false, 0
	}
	sess = c.fetchSessions[req.SessionID]
	switch {
	case sess == nil:
		return nil, false, kerr.FetchSessionIDNotFound.Code
	case sess.epoch != req.SessionEpoch:
		return nil, false, kerr.InvalidFetchSessionEpoch.Code
	}
	sess.update(req)
	if sess.epoch == math.MaxInt32 {
		sess.epoch = 1
	} else {
		sess.epoch++
	}
	return sess, true, 0
}

// update applies a request's partitions (added, or with a new offset) and
// forgotten topics.
func (s *fetchSession) update(req *kmsg.FetchRequest) {
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			k := topicKey(req.Version, t.Topic, t.TopicID, p.Partition)
			sp := s.index[k]
			if sp == nil {
				sp = &sessionPartition{key: k}
				s.index[k] = sp
				s.parts = append(s.parts, sp)
			}
			sp.req = p
		}
	}
	forgot := false
	for _, t := range req.ForgottenTopics {
		for _, p := range t.Partitions {
			k := topicKey(req.Version, t.Topic, t.TopicID, p)
			if _, ok := s.index[k]; ok {
				delete(s.index, k)
				forgot = true
			}
		}
	}
	if forgot {
		kept := s.parts[:0]
		for _, sp := range s.parts {
			if s.index[sp.key] == sp {
				kept = append(kept, sp)
			}
		}
		clear(s.parts[len(kept):])
		s.parts = kept
	}
}

// request is req with the session's partitions, grouped by topic.
func (s *fetchSession) request(req *kmsg.FetchRequest) *kmsg.FetchRequest {
	full := *req
	full.Topics = nil
	for _, sp := range s.parts {
		n := len(full.Topics)
		if n == 0 || full.Topics[n-1].Topic != sp.key.topic || full.Topics[n-1].TopicID != sp.key.id {
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = sp.key.topic, sp.key.id
			full.Topics = append(full.Topics, t)
			n++
		}
		full.Topics[n-1].Partitions = append(full.Topics[n-1].Partitions, sp.req)
	}
	return &full
}

// answer sets the session id on resp and, for an incremental fetch, keeps
// only the partitions with something new; it records what the client was
// told.
func (s *fetchSession) answer(version int16, resp *kmsg.FetchResponse, incremental bool) {
	resp.SessionID = s.id
	var served map[*sessionPartition]bool
	keptTopics := resp.Topics[:0]
	for _, t := range resp.Topics {
		kept := t.Partitions[:0]
		for _, p := range t.Partitions {
			sp := s.index[topicKey(version, t.Topic, t.TopicID, p.Partition)]
			changed := sp == nil || !sp.sent || len(p.RecordBatches) > 0 || p.ErrorCode != 0 ||
				p.HighWatermark != sp.hw || p.LastStableOffset != sp.lastStable || p.LogStartOffset != sp.logStart
			if !incremental || changed {
				kept = append(kept, p)
				if sp != nil {
					sp.sent, sp.hw, sp.lastStable, sp.logStart = true, p.HighWatermark, p.LastStableOffset, p.LogStartOffset
					if len(p.RecordBatches) > 0 {
						if served == nil {
							served = make(map[*sessionPartition]bool)
						}
						served[sp] = true
					}
				}
			}
		}
		if len(kept) > 0 {
			t.Partitions = kept
			keptTopics = append(keptTopics, t)
		}
	}
	resp.Topics = keptTopics
	// Partitions that got records go to the back, so that, under the
	// response's byte budget, the others get their turn (as Kafka does).
	if len(served) > 0 {
		slices.SortStableFunc(s.parts, func(a, b *sessionPartition) int {
			switch {
			case served[a] == served[b]:
				return 0
			case served[a]:
				return 1
			}
			return -1
		})
	}
}
