package mqtt

import (
	"net"
	"sync/atomic"
)

// Stats are the front end's counters since the server started: what the
// $SYS topics publish and internal/server turns into Prometheus metrics.
type Stats struct {
	// Connections is the number of connections with a session (CONNACK
	// sent), ConnectionsMax the most there were at once, ConnectionsTotal
	// the connections accepted (CONNECT or not).
	Connections      int64
	ConnectionsMax   int64
	ConnectionsTotal uint64
	// PacketsReceived and PacketsSent count control packets by type
	// (index: the packet type, 1 CONNECT to 15 AUTH); malformed packets
	// are not counted.
	PacketsReceived [16]uint64
	PacketsSent     [16]uint64
	// PublishReceived and PublishSent count PUBLISH packets by QoS (resent
	// ones included).
	PublishReceived [3]uint64
	PublishSent     [3]uint64
	// BytesReceived and BytesSent count the bytes of MQTT connections
	// (over WebSocket: of the MQTT stream, not the frames).
	BytesReceived uint64
	BytesSent     uint64
	// Sessions is the number of persistent sessions stored (connected or
	// not), Retained of retained messages, Subscriptions of the
	// subscriptions of connected sessions.
	Sessions      int
	Retained      int
	Subscriptions int
}

// PacketTypeName names a control packet type, for metrics labels.
func PacketTypeName(t int) string {
	names := [...]string{"", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	if t <= 0 || t >= len(names) {
		return ""
	}
	return names[t]
}

// counters are the atomic counters behind Stats.
type counters struct {
	connections, connectionsMax atomic.Int64
	connectionsTotal            atomic.Uint64
	packetsIn, packetsOut       [16]atomic.Uint64
	publishIn, publishOut       [3]atomic.Uint64
	bytesIn, bytesOut           atomic.Uint64
}

func (k *counters) connected() {
	n := k.connections.Add(1)
	for {
		m := k.connectionsMax.Load()
		if n <= m || k.connectionsMax.CompareAndSwap(m, n) {
			return
		}
	}
}

func (k *counters) disconnected() { k.connections.Add(-1) }

// packet counts a packet received (in) or sent.
func (k *counters) packet(p Packet, in bool) {
	t := p.packetType()
	packets, publishes := &k.packetsOut, &k.publishOut
	if in {
		packets, publishes = &k.packetsIn, &k.publishIn
	}
	packets[t&15].Add(1)
	if pub, ok := p.(*Publish); ok && pub.QoS < 3 {
		publishes[pub.QoS].Add(1)
	}
}

// countingConn counts the bytes read from and written to a connection.
type countingConn struct {
	net.Conn
	k *counters
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.k.bytesIn.Add(uint64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.k.bytesOut.Add(uint64(n))
	return n, err
}

// Stats returns the front end's counters.
func (s *Server) Stats() Stats {
	k := &s.counters
	st := Stats{
		Connections:      k.connections.Load(),
		ConnectionsMax:   k.connectionsMax.Load(),
		ConnectionsTotal: k.connectionsTotal.Load(),
		BytesReceived:    k.bytesIn.Load(),
		BytesSent:        k.bytesOut.Load(),
		Sessions:         s.sessions.count(),
		Retained:         s.retained.count(),
	}
	for i := range st.PacketsReceived {
		st.PacketsReceived[i] = k.packetsIn[i].Load()
		st.PacketsSent[i] = k.packetsOut[i].Load()
	}
	for i := range st.PublishReceived {
		st.PublishReceived[i] = k.publishIn[i].Load()
		st.PublishSent[i] = k.publishOut[i].Load()
	}
	for _, c := range s.liveConns() {
		c.mu.Lock()
		st.Subscriptions += len(c.subs)
		c.mu.Unlock()
	}
	return st
}
