package mqtt

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// $SYS topics, in the style of Mosquitto's (docs/PROTOCOLS.md, "MQTT
// front end"): every Config.SysInterval the server publishes the values
// that changed, at QoS 0, to the connected clients whose subscriptions
// match, and keeps the last values as retained messages in memory, sent
// to new subscriptions. They are not records: they go neither to the
// exchange (so other protocols' bindings never see them) nor to storage,
// and a session that is not connected misses them, as with QoS 0 messages
// in Mosquitto. Filters starting with a wildcard do not match them
// (MatchTopic); clients may not publish to them.

// DefaultSysInterval is how often the $SYS topics are published.
const DefaultSysInterval = 10 * time.Second

// sysPrefix starts the topics of the server's own state.
const sysPrefix = "$SYS/"

// sysTree holds the $SYS values last published.
type sysTree struct {
	start  time.Time
	mu     sync.Mutex
	values map[string]string // topic → payload
}

// sysMessage is one $SYS topic's value.
type sysMessage struct{ topic, payload string }

func (s *Server) sysLoop(interval time.Duration) {
	defer s.bg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.publishSys()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// sysValues computes the $SYS values now.
func (s *Server) sysValues() []sysMessage {
	st := s.Stats()
	persistentConnected := 0
	for _, c := range s.liveConns() {
		if _, ok := s.sessions.get(c.clientID); ok {
			persistentConnected++
		}
	}
	disconnected := st.Sessions - persistentConnected
	var packetsIn, packetsOut uint64
	for i := range st.PacketsReceived {
		packetsIn += st.PacketsReceived[i]
		packetsOut += st.PacketsSent[i]
	}
	var pubIn, pubOut uint64
	for i := range st.PublishReceived {
		pubIn += st.PublishReceived[i]
		pubOut += st.PublishSent[i]
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []sysMessage{
		{"$SYS/broker/version", "weir " + s.cfg.Version},
		{"$SYS/broker/uptime", i(int64(time.Since(s.sys.start)/time.Second)) + " seconds"},
		{"$SYS/broker/clients/connected", i(st.Connections)},
		{"$SYS/broker/clients/disconnected", i(int64(disconnected))},
		{"$SYS/broker/clients/total", i(st.Connections + int64(disconnected))},
		{"$SYS/broker/clients/maximum", i(st.ConnectionsMax)},
		{"$SYS/broker/messages/received", u(packetsIn)},
		{"$SYS/broker/messages/sent", u(packetsOut)},
		{"$SYS/broker/publish/messages/received", u(pubIn)},
		{"$SYS/broker/publish/messages/sent", u(pubOut)},
		{"$SYS/broker/bytes/received", u(st.BytesReceived)},
		{"$SYS/broker/bytes/sent", u(st.BytesSent)},
		{"$SYS/broker/retained messages/count", i(int64(st.Retained))},
		{"$SYS/broker/subscriptions/count", i(int64(st.Subscriptions))},
	}
}

// publishSys publishes the $SYS values that changed since the last time.
func (s *Server) publishSys() {
	var changed []sysMessage
	values := s.sysValues()
	s.sys.mu.Lock()
	for _, m := range values {
		if s.sys.values[m.topic] != m.payload {
			s.sys.values[m.topic] = m.payload
			changed = append(changed, m)
		}
	}
	s.sys.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	for _, c := range s.liveConns() {
		// Off this loop, so a slow client delays no one; a client still
		// busy with the previous round skips this one.
		if c.sysBusy.CompareAndSwap(false, true) {
			go func() {
				defer c.sysBusy.Store(false)
				c.sendSys(changed)
			}()
		}
	}
}

// sendSys sends the $SYS messages the session's subscriptions match.
func (c *conn) sendSys(msgs []sysMessage) {
	if !c.live.Load() || c.ctx.Err() != nil {
		return // not connected yet, or gone
	}
	for _, m := range msgs {
		match, ok := c.matching(c.queue, m.topic, "")
		if !ok {
			continue
		}
		rec := sysRecord(m)
		p, _ := c.fromRecord(&rec, m.topic, match.rap, match.subIDs)
		if c.write(p) != nil {
			return
		}
	}
}

// sysRecord is a $SYS value as a retained record (QoS 0).
func sysRecord(m sysMessage) broker.Record {
	return broker.Record{Key: []byte(m.topic), Value: []byte(m.payload),
		Headers: []broker.Header{{Key: headerQoS, Value: []byte{'0'}}, {Key: headerRetain, Value: []byte("1")}}}
}

// sysRetained returns the $SYS values whose topics match filter, as
// retained records.
func (s *Server) sysRetained(filter string) []broker.Record {
	s.sys.mu.Lock()
	defer s.sys.mu.Unlock()
	var out []broker.Record
	for topic, payload := range s.sys.values {
		if MatchTopic(filter, topic) {
			out = append(out, sysRecord(sysMessage{topic, payload}))
		}
	}
	return out
}

// isSysTopic reports whether clients may not publish to topic.
func isSysTopic(topic string) bool { return strings.HasPrefix(topic, sysPrefix) }
