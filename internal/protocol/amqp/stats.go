package amqp

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// Stats are the front end's counters since New; internal/server reads
// them at each scrape of /metrics.
type Stats struct {
	// Connections are open past the handshake; ConnectionsTotal were
	// accepted (handshake or not).
	Connections      int64
	ConnectionsTotal uint64
	// FramesReceived counts frames read after the handshake, by type:
	// "method", "header", "body", "heartbeat".
	FramesReceived map[string]uint64
	// MethodsReceived counts method frames read after the handshake by
	// method name ("basic.publish", "basic.ack", ...); only the methods
	// received at least once are present.
	MethodsReceived map[string]uint64
	// MessagesDelivered counts messages sent to clients: basic.deliver
	// and basic.get-ok.
	MessagesDelivered uint64
	// ConnectionErrors and ChannelErrors count the connection and channel
	// exceptions the server raised, by reply code (504, 406, ...);
	// connections closed at shutdown are not counted.
	ConnectionErrors map[uint16]uint64
	ChannelErrors    map[uint16]uint64
}

// Limits of the counter tables: class ids are multiples of 5 up to 90 and
// method ids are below 128 in AMQP 0-9-1; reply codes are below 600.
const (
	statsMaxClass  = 90
	statsMethodIDs = 128
	statsMaxCode   = 600
)

// serverStats holds the counters as atomics in fixed tables, so that
// counting a frame is an index and an atomic add.
type serverStats struct {
	open, accepted atomic.Int64
	frames         [wire.FrameHeartbeat + 1]atomic.Uint64
	methods        [(statsMaxClass/5 + 1) * statsMethodIDs]atomic.Uint64
	delivered      atomic.Uint64
	connErrors     [statsMaxCode]atomic.Uint64
	chanErrors     [statsMaxCode]atomic.Uint64
}

// methodSlot is the index of a method's counter, or -1 for ids outside
// the tables (which the decoder then refuses).
func methodSlot(class, method uint16) int {
	if class%5 != 0 || class > statsMaxClass || method >= statsMethodIDs {
		return -1
	}
	return int(class/5)*statsMethodIDs + int(method)
}

// frameReceived counts a frame read after the handshake.
func (st *serverStats) frameReceived(f wire.Frame) {
	if int(f.Type) < len(st.frames) {
		st.frames[f.Type].Add(1)
	}
	if f.Type == wire.FrameMethod && len(f.Payload) >= 4 {
		if i := methodSlot(binary.BigEndian.Uint16(f.Payload), binary.BigEndian.Uint16(f.Payload[2:])); i >= 0 {
			st.methods[i].Add(1)
		}
	}
}

// raised counts an exception: a connection one or a channel one.
func (st *serverStats) raised(code uint16, connection bool) {
	if code >= statsMaxCode {
		return
	}
	if connection {
		st.connErrors[code].Add(1)
	} else {
		st.chanErrors[code].Add(1)
	}
}

var frameTypeNames = map[int]string{
	wire.FrameMethod: "method", wire.FrameHeader: "header", wire.FrameBody: "body", wire.FrameHeartbeat: "heartbeat",
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		Connections:       st.open.Load(),
		ConnectionsTotal:  uint64(st.accepted.Load()),
		FramesReceived:    make(map[string]uint64, len(frameTypeNames)),
		MethodsReceived:   make(map[string]uint64),
		MessagesDelivered: st.delivered.Load(),
		ConnectionErrors:  make(map[uint16]uint64),
		ChannelErrors:     make(map[uint16]uint64),
	}
	for t, name := range frameTypeNames {
		out.FramesReceived[name] = st.frames[t].Load()
	}
	for i := range st.methods {
		n := st.methods[i].Load()
		if n == 0 {
			continue
		}
		if m := wire.NewMethod(uint16(i/statsMethodIDs*5), uint16(i%statsMethodIDs)); m != nil {
			out.MethodsReceived[m.MethodName()] = n
		}
	}
	for code := range st.connErrors {
		if n := st.connErrors[code].Load(); n > 0 {
			out.ConnectionErrors[uint16(code)] = n
		}
		if n := st.chanErrors[code].Load(); n > 0 {
			out.ChannelErrors[uint16(code)] = n
		}
	}
	return out
}
