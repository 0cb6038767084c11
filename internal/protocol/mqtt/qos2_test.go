package mqtt

import (
	"fmt"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

// TestQoS2Outbound: a QoS 2 subscriber of a persistent session gets the
// message exactly once across reconnects and server restarts: an
// unanswered PUBLISH is sent again (DUP, the same packet id), after PUBREC
// only PUBREL is, and after PUBCOMP nothing.
func TestQoS2Outbound(t *testing.T) {
	n := startNode(t)
	connect := func() (*rawClient, *Connack) {
		c := dialRaw(t, n.addr, Version5)
		cp := &Connect{ClientID: "q2sub", KeepAlive: 60}
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(propSessionExpiry)
		return c, c.connect(cp)
	}
	sub, _ := connect()
	if codes := sub.subscribe(1, Subscription{Filter: "q2/#", QoS: 2}); codes[0] != 2 {
		t.Fatalf("SUBACK %v, want QoS 2 granted", codes)
	}
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "q2pub", CleanStart: true, KeepAlive: 60})
	pub.send(&Publish{Topic: "q2/a", QoS: 2, PacketID: 9, Payload: []byte("exactly once")})
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubrec {
		t.Fatalf("publisher got %+v, want PUBREC", a)
	}
	pub.send(&Ack{Type: typePubrel, PacketID: 9})
	pub.recv(5 * time.Second) // PUBCOMP

	first := sub.recvPublish(5 * time.Second)
	if first.QoS != 2 || first.Dup || string(first.Payload) != "exactly once" {
		t.Fatalf("first delivery %+v", first)
	}
	id := first.PacketID

	// No PUBREC: a reconnect sends the PUBLISH again, same id, DUP.
	sub.nc.Close()
	sub, ack := connect()
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	p := sub.recvPublish(5 * time.Second)
	if p.PacketID != id || !p.Dup || p.QoS != 2 || string(p.Payload) != "exactly once" {
		t.Fatalf("after reconnect %+v, want the PUBLISH again with id %d and DUP", p, id)
	}
	sub.expectNothing(300 * time.Millisecond) // the queue's copy is not sent as well

	// And across a restart.
	sub.nc.Close()
	n.restart()
	sub, _ = connect()
	p = sub.recvPublish(5 * time.Second)
	if p.PacketID != id || !p.Dup || string(p.Payload) != "exactly once" {
		t.Fatalf("after restart %+v, want the PUBLISH again with id %d", p, id)
	}
	sub.expectNothing(300 * time.Millisecond)

	// PUBREC: PUBREL, and from now on only PUBREL is sent again.
	sub.send(&Ack{Type: typePubrec, PacketID: id})
	if a, ok := sub.recv(5 * time.Second).(*Ack); !ok || a.Type != typePubrel || a.PacketID != id {
		t.Fatalf("got %+v, want PUBREL %d", a, id)
	}
	sub.nc.Close()
	sub, _ = connect()
	if a, ok := sub.recv(5 * time.Second).(*Ack); !ok || a.Type != typePubrel || a.PacketID != id {
		t.Fatalf("after reconnect got %+v, want PUBREL %d", a, id)
	}
	sub.expectNothing(300 * time.Millisecond)
	sub.nc.Close()
	n.restart()
	sub, _ = connect()
	if a, ok := sub.recv(5 * time.Second).(*Ack); !ok || a.Type != typePubrel || a.PacketID != id {
		t.Fatalf("after restart got %+v, want PUBREL %d", a, id)
	}
	sub.expectNothing(300 * time.Millisecond) // the record was acknowledged at PUBREC

	// PUBCOMP: done, for good.
	sub.send(&Ack{Type: typePubcomp, PacketID: id})
	sub.expectNothing(300 * time.Millisecond)
	sub.nc.Close()
	n.restart()
	sub, _ = connect()
	sub.expectNothing(500 * time.Millisecond)

	// A later message flows through the whole handshake; QoS 1 publishes
	// are delivered at QoS 1.
	pub = dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "q2pub", CleanStart: true, KeepAlive: 60})
	pub.send(&Publish{Topic: "q2/b", QoS: 1, PacketID: 1, Payload: []byte("q1")})
	pub.send(&Publish{Topic: "q2/b", QoS: 2, PacketID: 2, Payload: []byte("q2")})
	p = sub.recvPublish(5 * time.Second)
	if p.QoS != 1 || string(p.Payload) != "q1" {
		t.Fatalf("got %+v, want the QoS 1 message at QoS 1", p)
	}
	sub.send(&Ack{Type: typePuback, PacketID: p.PacketID})
	p = sub.recvPublish(5 * time.Second)
	if p.QoS != 2 || string(p.Payload) != "q2" || p.Dup {
		t.Fatalf("got %+v", p)
	}
	sub.send(&Ack{Type: typePubrec, PacketID: p.PacketID})
	if a := sub.recv(5 * time.Second).(*Ack); a.Type != typePubrel || a.PacketID != p.PacketID {
		t.Fatalf("got %+v, want PUBREL", a)
	}
	sub.send(&Ack{Type: typePubcomp, PacketID: p.PacketID})
	sub.nc.Close()
	sub, _ = connect()
	sub.expectNothing(500 * time.Millisecond)
	if left := n.s.qos2.entries("q2sub"); len(left) != 0 {
		t.Errorf("QoS 2 state left after PUBCOMP: %+v", left)
	}
}

// TestQoS2Refused: an MQTT 5 PUBREC with an error code ends the message:
// no PUBREL, no redelivery.
func TestQoS2Refused(t *testing.T) {
	n := startNode(t)
	sub := dialRaw(t, n.addr, Version5)
	cp := &Connect{ClientID: "refuser", KeepAlive: 60}
	cp.Props.SessionExpiry = 60
	cp.Props.Set(propSessionExpiry)
	sub.connect(cp)
	sub.subscribe(1, Subscription{Filter: "r/#", QoS: 2})
	pub := dialRaw(t, n.addr, Version5)
	pub.connect(&Connect{ClientID: "rp", CleanStart: true, KeepAlive: 60})
	pub.send(&Publish{Topic: "r/1", QoS: 2, PacketID: 1, Payload: []byte("no")})
	p := sub.recvPublish(5 * time.Second)
	sub.send(&Ack{Type: typePubrec, PacketID: p.PacketID, ReasonCode: reasonImplementationSpecific})
	sub.expectNothing(300 * time.Millisecond)
	sub.nc.Close()
	sub = dialRaw(t, n.addr, Version5)
	sub.connect(cp)
	sub.expectNothing(500 * time.Millisecond)
	// An unknown packet id: PUBREL 0x92.
	sub.send(&Ack{Type: typePubrec, PacketID: 777})
	if a := sub.recv(5 * time.Second).(*Ack); a.Type != typePubrel || a.ReasonCode != reasonPacketIDNotFound {
		t.Fatalf("got %+v, want PUBREL 0x92", a)
	}
}

// TestQoS2Paho: paho.mqtt.golang (3.1.1) and paho.golang (5) subscribers
// at QoS 2 receive QoS 2 publishes at QoS 2, each once.
func TestQoS2Paho(t *testing.T) {
	n := startNode(t)
	c311, msgs, _ := pahoClient(t, n.addr, "paho-q2", false)
	wait(t, c311.Subscribe("exact/#", 2, nil))
	got5 := make(chan *paho5.Publish, 100)
	c5 := paho5Client(t, n.addr, "paho5-q2", func(p *paho5.Publish) { got5 <- p })
	ctx := t.Context()
	if sa, err := c5.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "exact/#", QoS: 2}}}); err != nil || sa.Reasons[0] != 2 {
		t.Fatalf("paho.golang subscribe: %v %+v", err, sa)
	}
	pub := paho5Client(t, n.addr, "paho5-pub", func(*paho5.Publish) {})
	const total = 20
	for i := range total {
		if _, err := pub.Publish(ctx, &paho5.Publish{Topic: fmt.Sprint("exact/", i), QoS: 2, Payload: fmt.Append(nil, i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range total {
		m := recvMsg(t, msgs)
		if m.qos != 2 || m.payload != fmt.Sprint(i) || m.topic != fmt.Sprint("exact/", i) {
			t.Errorf("paho 3.1.1 message %d: %+v", i, m)
		}
		select {
		case p := <-got5:
			if p.QoS != 2 || string(p.Payload) != fmt.Sprint(i) {
				t.Errorf("paho.golang message %d: QoS %d %q", i, p.QoS, p.Payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("paho.golang: message %d missing", i)
		}
	}
	noMsg(t, msgs, 300*time.Millisecond)
	select {
	case p := <-got5:
		t.Errorf("paho.golang: extra message %q", p.Payload)
	default:
	}
	// Every handshake completed: no QoS 2 state is left.
	deadline := time.Now().Add(5 * time.Second)
	for len(n.s.qos2.entries("paho-q2")) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if left := n.s.qos2.entries("paho-q2"); len(left) != 0 {
		t.Errorf("QoS 2 state left: %d entries", len(left))
	}
}

// TestQoS2InboundResume: a persistent session's QoS 2 publish is stored
// once when the client resends it after a reconnect or a restart (it did
// not get the PUBREC, or did not send PUBREL yet); PUBREL after the
// reconnect completes it; a clean session starts without that state.
func TestQoS2InboundResume(t *testing.T) {
	n := startNode(t)
	// The watcher's session collects what is stored while it is away.
	sub, _, _ := pahoClient(t, n.addr, "watch-in", false)
	wait(t, sub.Subscribe("in2/#", 1, nil))
	sub.Disconnect(0)
	connect := func(clean bool) *rawClient {
		c := dialRaw(t, n.addr, Version311)
		c.connect(&Connect{ClientID: "in2pub", CleanStart: clean, KeepAlive: 60})
		return c
	}
	pub := connect(false)
	msg := &Publish{Topic: "in2/a", QoS: 2, PacketID: 11, Payload: []byte("once")}
	pub.send(msg)
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubrec || a.PacketID != 11 {
		t.Fatalf("got %+v, want PUBREC 11", a)
	}
	msg.Dup = true
	for _, restart := range []bool{false, true} {
		pub.nc.Close()
		if restart {
			n.restart()
		}
		pub = connect(false)
		pub.send(msg) // the PUBREC was lost, as far as the client knows
		if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubrec || a.PacketID != 11 {
			t.Fatalf("restart %v: got %+v, want PUBREC 11", restart, a)
		}
	}
	pub.send(&Ack{Type: typePubrel, PacketID: 11})
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubcomp || a.PacketID != 11 {
		t.Fatalf("got %+v, want PUBCOMP 11", a)
	}
	sub, msgs, _ := pahoClient(t, n.addr, "watch-in", false)
	if m := recvMsg(t, msgs); m.payload != "once" {
		t.Fatalf("got %+v", m)
	}
	noMsg(t, msgs, 500*time.Millisecond)
	sub.Disconnect(0)

	// Released: the packet id is free again, also after a restart.
	pub.nc.Close()
	n.restart()
	pub = connect(false)
	pub.send(&Publish{Topic: "in2/b", QoS: 2, PacketID: 11, Payload: []byte("next")})
	pub.recv(5 * time.Second) // PUBREC
	pub.send(&Ack{Type: typePubrel, PacketID: 11})
	pub.recv(5 * time.Second) // PUBCOMP
	sub, msgs, _ = pahoClient(t, n.addr, "watch-in", false)
	if m := recvMsg(t, msgs); m.payload != "next" {
		t.Fatalf("a new publish with a released packet id: %+v", m)
	}
	if ids := n.s.qos2.receivedIn("in2pub"); len(ids) != 0 {
		t.Errorf("received packet ids left: %v", ids)
	}
}
