package mqtt

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestBadInput: bad packets close only their connection, with the MQTT 5
// reason code; the server goes on serving others.
func TestBadInput(t *testing.T) {
	n := startNode(t)
	tests := []struct {
		name    string
		version byte
		send    []byte // after a good CONNECT
		packet  Packet // or this
		reason  byte   // MQTT 5 DISCONNECT reason; 0: none expected
	}{
		{"reserved packet type", Version5, []byte{0x00, 0}, nil, reasonMalformed},
		{"bad flags", Version5, []byte{0xC3, 0}, nil, reasonMalformed},
		{"second CONNECT", Version5, nil, &Connect{ProtocolName: "MQTT", Version: Version5, ClientID: "x"}, reasonProtocolError},
		{"wildcard topic", Version5, nil, &Publish{Topic: "a/+", QoS: 0}, reasonTopicNameInvalid},
		{"topic alias 0", Version5, nil, func() Packet {
			p := &Publish{Topic: "a", QoS: 0}
			p.Props.TopicAlias = 0
			p.Props.Set(propTopicAlias)
			return p
		}(), reasonTopicAliasInvalid},
		{"topic alias over the maximum", Version5, nil, func() Packet {
			p := &Publish{Topic: "a", QoS: 0}
			p.Props.TopicAlias = DefaultTopicAliasMaximum + 1
			p.Props.Set(propTopicAlias)
			return p
		}(), reasonTopicAliasInvalid},
		{"topic alias not set", Version5, nil, func() Packet {
			p := &Publish{Topic: "", QoS: 0}
			p.Props.TopicAlias = 3
			p.Props.Set(propTopicAlias)
			return p
		}(), reasonProtocolError},
		{"two subscription identifiers", Version5, nil, func() Packet {
			p := &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}}}
			p.Props.SubscriptionIDs = []int{1, 2}
			p.Props.Set(propSubscriptionID)
			return p
		}(), reasonProtocolError},
		{"subscription identifier in PUBLISH", Version5, nil, func() Packet {
			p := &Publish{Topic: "a", QoS: 0}
			p.Props.SubscriptionIDs = []int{1}
			p.Props.Set(propSubscriptionID)
			return p
		}(), reasonProtocolError},
		{"too large", Version5, []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, nil, reasonPacketTooLarge},
		{"server packet", Version5, []byte{0x90, 3, 0, 1, 0}, nil, reasonProtocolError},
		{"bad utf-8 3.1.1", Version311, []byte{0x30, 4, 0, 2, 0xc3, 0x28}, nil, 0},
		{"wildcard topic 3.1.1", Version311, nil, &Publish{Topic: "#"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, n.addr, tt.version)
			if ack := c.connect(&Connect{ClientID: "bad", CleanStart: true, KeepAlive: 30}); ack.ReasonCode != 0 {
				t.Fatalf("CONNACK %+v", ack)
			}
			if tt.packet != nil {
				c.send(tt.packet)
			} else if _, err := c.nc.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			d := c.expectClosed(5 * time.Second)
			switch {
			case tt.reason == 0 && d != nil:
				t.Errorf("3.1.1 connection got DISCONNECT %+v", d)
			case tt.reason != 0 && (d == nil || d.ReasonCode != tt.reason):
				t.Errorf("DISCONNECT %+v, want reason %#x", d, tt.reason)
			}
		})
	}
	// The server still serves.
	ok := dialRaw(t, n.addr, Version311)
	if ack := ok.connect(&Connect{ClientID: "good", CleanStart: true}); ack.ReasonCode != 0 {
		t.Errorf("after bad input: CONNACK %+v", ack)
	}
}

func TestConnectRefusals(t *testing.T) {
	n := startNode(t)
	// Unknown protocol level: return code 1, then closed.
	c := dialRaw(t, n.addr, Version311)
	if _, err := c.nc.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if p := c.recv(5 * time.Second); p.(*Connack).ReasonCode != returnUnacceptableVersion {
		t.Errorf("unknown level: %+v", p)
	}
	c.expectClosed(5 * time.Second)
	// 3.1.1: an empty client id needs a clean session.
	c = dialRaw(t, n.addr, Version311)
	if ack := c.connect(&Connect{}); ack.ReasonCode != returnIdentifierRejected {
		t.Errorf("empty id, persistent: %+v", ack)
	}
	c.expectClosed(5 * time.Second)
	// MQTT 5: the server assigns one.
	c = dialRaw(t, n.addr, Version5)
	ack := c.connect(&Connect{CleanStart: true})
	if ack.ReasonCode != 0 || !ack.Props.Has(propAssignedClientID) || ack.Props.AssignedClientID == "" {
		t.Errorf("empty id, MQTT 5: %+v", ack)
	}
	// Nothing but CONNECT first.
	c = dialRaw(t, n.addr, Version311)
	c.send(&Pingreq{})
	c.expectClosed(5 * time.Second)
	// Invalid will topic.
	c = dialRaw(t, n.addr, Version5)
	if ack := c.connect(&Connect{ClientID: "w", CleanStart: true, Will: &Will{Topic: "a/#", Payload: []byte{}}}); ack.ReasonCode != reasonTopicNameInvalid {
		t.Errorf("wildcard will topic: %+v", ack)
	}
}

func TestSessionTakeover(t *testing.T) {
	n := startNode(t)
	first := dialRaw(t, n.addr, Version5)
	first.connect(&Connect{ClientID: "same", CleanStart: true, KeepAlive: 30})
	second := dialRaw(t, n.addr, Version5)
	if ack := second.connect(&Connect{ClientID: "same", CleanStart: true, KeepAlive: 30}); ack.ReasonCode != 0 {
		t.Fatalf("second CONNACK %+v", ack)
	}
	if d := first.expectClosed(5 * time.Second); d == nil || d.ReasonCode != reasonSessionTakenOver {
		t.Errorf("first connection: DISCONNECT %+v, want 0x8E", d)
	}
	second.send(&Pingreq{})
	if _, ok := second.recv(5 * time.Second).(*Pingresp); !ok {
		t.Error("no PINGRESP on the new connection")
	}
}

// TestQoS2Inbound: a QoS 2 publish is stored once even when resent before
// PUBREL; PUBREL completes it; a QoS 1 subscriber gets it at QoS 1.
func TestQoS2Inbound(t *testing.T) {
	n := startNode(t)
	sub := dialRaw(t, n.addr, Version5)
	sub.connect(&Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	if codes := sub.subscribe(1, Subscription{Filter: "q2/#", QoS: 1}); codes[0] != reasonGrantedQoS1 {
		t.Fatalf("SUBACK %v", codes)
	}
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "pub", CleanStart: true, KeepAlive: 30})
	msg := &Publish{Topic: "q2/x", QoS: 2, PacketID: 5, Payload: []byte("once")}
	pub.send(msg)
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubrec || a.PacketID != 5 {
		t.Fatalf("got %+v, want PUBREC 5", a)
	}
	msg.Dup = true
	pub.send(msg)
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubrec || a.PacketID != 5 {
		t.Fatalf("got %+v, want PUBREC 5 again", a)
	}
	pub.send(&Ack{Type: typePubrel, PacketID: 5})
	if a := pub.recv(5 * time.Second).(*Ack); a.Type != typePubcomp || a.PacketID != 5 {
		t.Fatalf("got %+v, want PUBCOMP 5", a)
	}
	p := sub.recvPublish(5 * time.Second)
	if string(p.Payload) != "once" || p.QoS != 1 {
		t.Errorf("delivered %+v", p)
	}
	sub.send(&Ack{Type: typePuback, PacketID: p.PacketID})
	sub.expectNothing(300 * time.Millisecond)
}

// TestUnsubscribe: after UNSUBSCRIBE nothing more arrives; two filters
// with one binding key keep it until both are gone.
func TestUnsubscribe(t *testing.T) {
	n := startNode(t)
	c := dialRaw(t, n.addr, Version5)
	c.connect(&Connect{ClientID: "u", CleanStart: true, KeepAlive: 30})
	c.subscribe(1, Subscription{Filter: "a/+", QoS: 0}, Subscription{Filter: "a/*", QoS: 0})
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "p", CleanStart: true, KeepAlive: 30})
	c.send(&Unsubscribe{PacketID: 2, Filters: []string{"a/*", "nope"}})
	ua := c.recv(5 * time.Second).(*Unsuback)
	if ua.PacketID != 2 || len(ua.Codes) != 2 || ua.Codes[0] != 0 || ua.Codes[1] != reasonNoSubscriptionExisted {
		t.Errorf("UNSUBACK %+v", ua)
	}
	pub.send(&Publish{Topic: "a/b", Payload: []byte("1")})
	if p := c.recvPublish(5 * time.Second); string(p.Payload) != "1" {
		t.Errorf("got %+v", p)
	}
	c.send(&Unsubscribe{PacketID: 3, Filters: []string{"a/+"}})
	c.recv(5 * time.Second)
	pub.send(&Publish{Topic: "a/b", Payload: []byte("2")})
	c.expectNothing(300 * time.Millisecond)
}

// TestSessionExpiry: an MQTT 5 session lasts its expiry interval after its
// connection ends, also across a restart, then its queue and record go.
func TestSessionExpiry(t *testing.T) {
	old := expiryInterval
	expiryInterval = 50 * time.Millisecond
	t.Cleanup(func() { expiryInterval = old })
	n := startNode(t)
	connect := func(id string, expiry uint32, clean bool) (*rawClient, *Connack) {
		c := dialRaw(t, n.addr, Version5)
		cp := &Connect{ClientID: id, CleanStart: clean, KeepAlive: 30}
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(propSessionExpiry)
		return c, c.connect(cp)
	}
	short, _ := connect("short", 1, true)
	short.subscribe(1, Subscription{Filter: "e/#", QoS: 1})
	long, _ := connect("long", 3600, true)
	long.subscribe(1, Subscription{Filter: "e/#", QoS: 1})
	short.send(&Disconnect{})
	long.send(&Disconnect{})
	short.expectClosed(5 * time.Second)
	long.expectClosed(5 * time.Second)
	// Within the interval the session is there, with its messages.
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "p", CleanStart: true})
	pub.send(&Publish{Topic: "e/1", QoS: 1, PacketID: 1, Payload: []byte("kept")})
	pub.recv(5 * time.Second)
	c, ack := connect("short", 1, false)
	if !ack.SessionPresent {
		t.Fatal("session gone within its expiry interval")
	}
	if p := c.recvPublish(5 * time.Second); string(p.Payload) != "kept" {
		t.Errorf("got %+v", p)
	} else {
		c.send(&Ack{Type: typePuback, PacketID: p.PacketID})
	}
	c.send(&Disconnect{})
	c.expectClosed(5 * time.Second)
	n.restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, stored := n.s.sessions.get("short")
		_, err := n.b.DescribeStream(sessionQueue("short"))
		if !stored && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still there 5 s after it expired: stored %v, queue %v", stored, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ack := connect("short", 1, false); ack.SessionPresent {
		t.Error("expired session present")
	}
	if _, ack := connect("long", 3600, false); !ack.SessionPresent {
		t.Error("session with an hour to live not present after the restart")
	}
	// DISCONNECT may not set an expiry when CONNECT set none.
	z, _ := connect("zero", 0, true)
	d := &Disconnect{}
	d.Props.SessionExpiry = 60
	d.Props.Set(propSessionExpiry)
	z.send(d)
	if x := z.expectClosed(5 * time.Second); x == nil || x.ReasonCode != reasonProtocolError {
		t.Errorf("DISCONNECT %+v, want 0x82", x)
	}
}

// TestNoLocal: an MQTT 5 no-local subscription does not get the client's
// own messages; another subscription of the same topic without it does.
func TestNoLocal(t *testing.T) {
	n := startNode(t)
	c := dialRaw(t, n.addr, Version5)
	c.connect(&Connect{ClientID: "self", CleanStart: true, KeepAlive: 30})
	c.subscribe(1, Subscription{Filter: "nl/#", QoS: 0, NoLocal: true})
	c.send(&Publish{Topic: "nl/own", QoS: 1, PacketID: 1, Payload: []byte("own")})
	if a, ok := c.recv(5 * time.Second).(*Ack); !ok || a.Type != typePuback {
		t.Fatalf("want PUBACK, got %+v", a)
	}
	other := dialRaw(t, n.addr, Version311)
	other.connect(&Connect{ClientID: "other", CleanStart: true})
	other.send(&Publish{Topic: "nl/theirs", Payload: []byte("theirs")})
	if p := c.recvPublish(5 * time.Second); string(p.Payload) != "theirs" {
		t.Errorf("got %q, want only the other client's message", p.Payload)
	}
	// The same client with a plain subscription gets its own messages.
	c.subscribe(2, Subscription{Filter: "nl/+", QoS: 0})
	c.send(&Publish{Topic: "nl/own", Payload: []byte("own again")})
	if p := c.recvPublish(5 * time.Second); string(p.Payload) != "own again" {
		t.Errorf("got %q", p.Payload)
	}
	c.expectNothing(200 * time.Millisecond)
}

// TestPublishPipelineOrder: publishes sent without waiting are answered in
// the order they came, and each topic's messages are delivered in order.
func TestPublishPipelineOrder(t *testing.T) {
	n := startNode(t)
	sub := dialRaw(t, n.addr, Version311)
	sub.connect(&Connect{ClientID: "sub", CleanStart: true, KeepAlive: 60})
	sub.subscribe(1, Subscription{Filter: "o/+", QoS: 1})
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "pub", CleanStart: true, KeepAlive: 60})
	const total = 600
	go func() {
		var buf []byte
		for i := 1; i <= total; i++ {
			topic := []string{"o/a", "o/b", "o/c"}[i%3]
			buf = AppendPacket(buf, &Publish{Topic: topic, QoS: byte(i % 2), PacketID: uint16(i % 2 * i), Payload: fmt.Append(nil, i)}, Version311)
		}
		pub.nc.Write(buf)
	}()
	for i := 1; i <= total; i += 2 {
		a, ok := pub.recv(10 * time.Second).(*Ack)
		if !ok || a.Type != typePuback || int(a.PacketID) != i {
			t.Fatalf("answer %d: %+v, want PUBACK %d", i, a, i)
		}
	}
	last := map[string]int{}
	for range total {
		p := sub.recvPublish(10 * time.Second)
		v, _ := strconv.Atoi(string(p.Payload))
		if v <= last[p.Topic] {
			t.Fatalf("%s: %d after %d", p.Topic, v, last[p.Topic])
		}
		last[p.Topic] = v
		if p.QoS == 1 {
			sub.send(&Ack{Type: typePuback, PacketID: p.PacketID})
		}
	}
}

// passwords is an Authenticator of user names and passwords.
type passwords map[string]string

func (p passwords) Authenticate(_ string, user *string, password []byte) error {
	if user == nil || password == nil || p[*user] != string(password) {
		return errors.New("bad credentials")
	}
	return nil
}

func TestAuthenticator(t *testing.T) {
	n := startNodeWith(t, Config{Authenticator: passwords{"dev": "s3cret"}})
	user := "dev"
	for _, tt := range []struct {
		version  byte
		password []byte
		want     byte
	}{
		{Version311, []byte("s3cret"), 0},
		{Version311, []byte("wrong"), returnBadUserOrPassword},
		{Version5, nil, reasonBadUserOrPassword},
		{Version5, []byte("s3cret"), 0},
	} {
		c := dialRaw(t, n.addr, tt.version)
		ack := c.connect(&Connect{ClientID: "a", CleanStart: true, Username: &user, Password: tt.password})
		if ack.ReasonCode != tt.want {
			t.Errorf("version %d password %q: CONNACK %#x, want %#x", tt.version, tt.password, ack.ReasonCode, tt.want)
		}
		if tt.want != 0 {
			c.expectClosed(5 * time.Second)
		}
	}
}

// TestRetainedReceiveMaximum: retained QoS 1 messages respect the client's
// receive maximum.
func TestRetainedReceiveMaximum(t *testing.T) {
	n := startNode(t)
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "p", CleanStart: true})
	for i := range 5 {
		pub.send(&Publish{Topic: fmt.Sprint("rm/", i), QoS: 1, PacketID: uint16(i + 1), Retain: true, Payload: []byte("r")})
		pub.recv(5 * time.Second)
	}
	c := dialRaw(t, n.addr, Version5)
	cp := &Connect{ClientID: "small", CleanStart: true, KeepAlive: 30}
	cp.Props.ReceiveMaximum = 2
	cp.Props.Set(propReceiveMaximum)
	c.connect(cp)
	c.subscribe(1, Subscription{Filter: "rm/#", QoS: 1})
	var held []uint16
	for range 2 {
		held = append(held, c.recvPublish(5*time.Second).PacketID)
	}
	c.expectNothing(300 * time.Millisecond)
	for got := 2; got < 5; got++ {
		c.send(&Ack{Type: typePuback, PacketID: held[0]})
		held = append(held[1:], c.recvPublish(5*time.Second).PacketID)
	}
	c.expectNothing(200 * time.Millisecond)
}

// TestSessionQueueRepaired: a persistent session whose queue was deleted
// by hand gets it back, bound again, when it connects.
func TestSessionQueueRepaired(t *testing.T) {
	n := startNode(t)
	c := dialRaw(t, n.addr, Version311)
	c.connect(&Connect{ClientID: "fix", KeepAlive: 30})
	c.subscribe(1, Subscription{Filter: "fix/#", QoS: 1})
	c.send(&Disconnect{})
	c.expectClosed(5 * time.Second)
	if err := n.b.DeleteStream(t.Context(), sessionQueue("fix")); err != nil {
		t.Fatal(err)
	}
	c = dialRaw(t, n.addr, Version311)
	if ack := c.connect(&Connect{ClientID: "fix", KeepAlive: 30}); !ack.SessionPresent {
		t.Errorf("CONNACK %+v: the session's subscriptions are stored", ack)
	}
	pub := dialRaw(t, n.addr, Version311)
	pub.connect(&Connect{ClientID: "p", CleanStart: true})
	pub.send(&Publish{Topic: "fix/1", QoS: 1, PacketID: 1, Payload: []byte("again")})
	if p := c.recvPublish(5 * time.Second); string(p.Payload) != "again" {
		t.Errorf("got %+v", p)
	}
}
