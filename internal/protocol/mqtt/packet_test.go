package mqtt

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }

func v5props() Properties {
	var p Properties
	p.ContentType = "text/plain"
	p.Set(propContentType)
	p.CorrelationData = []byte{1, 2, 3}
	p.Set(propCorrelationData)
	p.ResponseTopic = "reply/here"
	p.Set(propResponseTopic)
	p.MessageExpiry = 60
	p.Set(propMessageExpiry)
	p.PayloadFormat = 1
	p.Set(propPayloadFormat)
	p.User = []UserProperty{{"a", "1"}, {"a", "2"}, {"b", ""}}
	p.Set(propUserProperty)
	return p
}

// decodeAll reads one packet from b as a client (or server) sent it.
func decodeAll(t *testing.T, b []byte, version byte, fromServer bool) (Packet, error) {
	t.Helper()
	return readPacket(bufio.NewReader(bytes.NewReader(b)), version, 1<<20, fromServer)
}

func TestRoundTrip(t *testing.T) {
	var connProps Properties
	connProps.SessionExpiry = 3600
	connProps.Set(propSessionExpiry)
	connProps.ReceiveMaximum = 10
	connProps.Set(propReceiveMaximum)
	var ackProps Properties
	ackProps.AssignedClientID = "weir-1"
	ackProps.Set(propAssignedClientID)
	ackProps.MaximumPacketSize = 1 << 20
	ackProps.Set(propMaximumPacketSize)
	tests := []struct {
		name       string
		version    byte
		fromServer bool
		p          Packet
	}{
		{"connect 3.1.1", Version311, false, &Connect{ProtocolName: "MQTT", Version: Version311, CleanStart: true, KeepAlive: 30, ClientID: "c1"}},
		{"connect 3.1", Version31, false, &Connect{ProtocolName: "MQIsdp", Version: Version31, KeepAlive: 10, ClientID: "old", Username: strp("u"), Password: []byte("p")}},
		{"connect will 3.1.1", Version311, false, &Connect{ProtocolName: "MQTT", Version: Version311, ClientID: "c2",
			Will: &Will{Topic: "w/t", Payload: []byte("gone"), QoS: 1, Retain: true}, Username: strp("user"), Password: []byte{}}},
		{"connect 5", Version5, false, &Connect{ProtocolName: "MQTT", Version: Version5, ClientID: "c3", Props: connProps,
			Will: &Will{Topic: "w", Payload: []byte{}, QoS: 2, Props: v5props()}, Password: []byte("only password")}},
		{"connack 3.1.1", Version311, true, &Connack{SessionPresent: true}},
		{"connack 5", Version5, true, &Connack{ReasonCode: reasonClientIDNotValid, Props: ackProps}},
		{"publish qos0", Version311, false, &Publish{Topic: "a/b", Payload: []byte("x")}},
		{"publish qos1 dup retain", Version311, false, &Publish{Topic: "a/b", QoS: 1, Dup: true, Retain: true, PacketID: 7, Payload: []byte{}}},
		{"publish 5", Version5, false, &Publish{Topic: "a", QoS: 2, PacketID: 65535, Props: v5props(), Payload: []byte("p")}},
		{"puback", Version311, false, &Ack{Type: typePuback, PacketID: 3}},
		{"puback 5 reason", Version5, false, &Ack{Type: typePuback, PacketID: 3, ReasonCode: reasonNoMatchingSubscribers}},
		{"pubrel", Version311, false, &Ack{Type: typePubrel, PacketID: 9}},
		{"pubrec 5", Version5, true, &Ack{Type: typePubrec, PacketID: 9}},
		{"subscribe 3.1.1", Version311, false, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#", QoS: 0}}}},
		{"subscribe 5", Version5, false, &Subscribe{PacketID: 2, Subscriptions: []Subscription{{Filter: "$share/g/x", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}},
		{"suback", Version311, true, &Suback{PacketID: 1, Codes: []byte{1, 0x80}}},
		{"unsubscribe", Version5, false, &Unsubscribe{PacketID: 4, Filters: []string{"a", "b/#"}}},
		{"unsuback 3.1.1", Version311, true, &Unsuback{PacketID: 4}},
		{"unsuback 5", Version5, true, &Unsuback{PacketID: 4, Codes: []byte{0, reasonNoSubscriptionExisted}}},
		{"pingreq", Version311, false, &Pingreq{}},
		{"pingresp", Version5, true, &Pingresp{}},
		{"disconnect", Version311, false, &Disconnect{}},
		{"disconnect 5", Version5, true, &Disconnect{ReasonCode: reasonKeepAliveTimeout}},
		{"auth", Version5, false, &Auth{ReasonCode: 0x18}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendPacket(nil, tt.p, tt.version)
			readVersion := tt.version
			if _, ok := tt.p.(*Connect); ok {
				readVersion = 0
			}
			got, err := decodeAll(t, b, readVersion, tt.fromServer)
			if err != nil {
				t.Fatalf("decode % x: %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.p) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, tt.p)
			}
		})
	}
}

// TestKnownBytes checks encodings against bytes worked out from the
// specifications, so that the round trip is not only self-consistent.
func TestKnownBytes(t *testing.T) {
	// MQTT 3.1.1 section 3.1: CONNECT "MQTT" level 4, clean session, keep
	// alive 60, client id "ab".
	connect := []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'a', 'b'}
	p, err := decodeAll(t, connect, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	want := &Connect{ProtocolName: "MQTT", Version: Version311, CleanStart: true, KeepAlive: 60, ClientID: "ab"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("CONNECT = %#v, want %#v", p, want)
	}
	// A remaining length of 321 is 0xC1 0x02 (section 2.2.3).
	pub := &Publish{Topic: "t", Payload: make([]byte, 318)}
	b := AppendPacket(nil, pub, Version311)
	if !bytes.Equal(b[:3], []byte{0x30, 0xC1, 0x02}) {
		t.Errorf("PUBLISH header = % x, want 30 c1 02", b[:3])
	}
	if got := AppendPacket(nil, &Connack{ReasonCode: 0}, Version311); !bytes.Equal(got, []byte{0x20, 2, 0, 0}) {
		t.Errorf("CONNACK = % x", got)
	}
	// MQTT 5 CONNACK with no properties: property length 0.
	if got := AppendPacket(nil, &Connack{SessionPresent: true}, Version5); !bytes.Equal(got, []byte{0x20, 3, 1, 0, 0}) {
		t.Errorf("CONNACK 5 = % x", got)
	}
	if got := AppendPacket(nil, &Ack{Type: typePuback, PacketID: 0x0102}, Version5); !bytes.Equal(got, []byte{0x40, 2, 1, 2}) {
		t.Errorf("PUBACK 5 success = % x, want the short form", got)
	}
	if got := AppendPacket(nil, &Pingresp{}, Version311); !bytes.Equal(got, []byte{0xD0, 0}) {
		t.Errorf("PINGRESP = % x", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	connect311 := func(flags byte, rest ...byte) []byte {
		body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 0}, rest...)
		return append([]byte{0x10, byte(len(body))}, body...)
	}
	tests := []struct {
		name    string
		b       []byte
		version byte
		want    error
	}{
		{"first packet not CONNECT", []byte{0xC0, 0}, 0, ErrProtocol},
		{"second CONNECT", connect311(0x02, 0, 0), Version311, ErrProtocol},
		{"reserved type 0", []byte{0x00, 0}, Version311, ErrMalformed},
		{"server packet from client", []byte{0x20, 2, 0, 0}, Version311, ErrProtocol},
		{"pingreq with flags", []byte{0xC1, 0}, Version311, ErrMalformed},
		{"subscribe without flag 2", []byte{0x80, 6, 0, 1, 0, 1, 'a', 0}, Version311, ErrMalformed},
		{"varint of five bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, Version311, ErrMalformed},
		{"publish qos 3", []byte{0x36, 5, 0, 1, 'a', 0, 1}, Version311, ErrMalformed},
		{"publish qos 0 with dup", []byte{0x38, 3, 0, 1, 'a'}, Version311, ErrMalformed},
		{"publish packet id 0", []byte{0x32, 5, 0, 1, 'a', 0, 0}, Version311, ErrMalformed},
		{"topic not utf-8", []byte{0x30, 4, 0, 2, 0xc3, 0x28}, Version311, ErrMalformed},
		{"topic with U+0000", []byte{0x30, 4, 0, 2, 'a', 0}, Version311, ErrMalformed},
		{"string longer than packet", []byte{0x30, 3, 0, 9, 'a'}, Version311, ErrMalformed},
		{"connect reserved flag", connect311(0x03, 0, 0), 0, ErrMalformed},
		{"connect will qos without will", connect311(0x08, 0, 0), 0, ErrMalformed},
		{"connect password without user", connect311(0x40, 0, 0, 0, 0), 0, ErrMalformed},
		{"connect trailing bytes", connect311(0x02, 0, 0, 9), 0, ErrMalformed},
		{"subscribe empty", []byte{0x82, 2, 0, 1}, Version311, ErrProtocol},
		{"subscribe qos 3", []byte{0x82, 6, 0, 1, 0, 1, 'a', 3}, Version311, ErrMalformed},
		{"subscribe 3.1.1 option bits", []byte{0x82, 6, 0, 1, 0, 1, 'a', 4}, Version311, ErrMalformed},
		{"subscribe 5 retain handling 3", []byte{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x30}, Version5, ErrMalformed},
		{"unsubscribe empty", []byte{0xA2, 2, 0, 1}, Version311, ErrProtocol},
		{"unknown property", []byte{0x30, 6, 0, 1, 'a', 2, 0x7f, 0}, Version5, ErrMalformed},
		{"property twice", []byte{0x30, 8, 0, 1, 'a', 4, 0x01, 1, 0x01, 1}, Version5, ErrProtocol},
		{"property length past end", []byte{0x30, 4, 0, 1, 'a', 9}, Version5, ErrMalformed},
		{"receive maximum 0", []byte{0x30, 7, 0, 1, 'a', 3, 0x21, 0, 0}, Version5, ErrProtocol},
		{"auth in 3.1.1", []byte{0xF0, 0}, Version311, ErrProtocol},
		{"disconnect 3.1.1 with body", []byte{0xE0, 1, 0}, Version311, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodeAll(t, tt.b, tt.version, false)
			if !errors.Is(err, tt.want) {
				t.Errorf("decode % x = %#v, %v; want %v", tt.b, p, err, tt.want)
			}
		})
	}
	// Size is checked before the body is read.
	_, err := ReadPacket(bufio.NewReader(bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})), Version311, 1024)
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Errorf("huge remaining length: %v, want ErrPacketTooLarge", err)
	}
	// An unknown protocol level decodes, for the CONNACK that refuses it.
	unknown := []byte{0x10, 10, 0, 4, 'M', 'Q', 'T', 'T', 9, 0xff, 0xff, 0xff}
	p, err := decodeAll(t, unknown, 0, false)
	if c, ok := p.(*Connect); err != nil || !ok || c.supported() {
		t.Errorf("unknown level: %#v, %v; want an unsupported Connect", p, err)
	}
}

func TestTopics(t *testing.T) {
	matches := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+", "/b", true},
		{"+", "/b", false},
		{"a/+/c", "a//c", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b/", true},
		{"a/#", "b", false},
	}
	for _, m := range matches {
		if got := MatchTopic(m.filter, m.topic); got != m.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", m.filter, m.topic, got, m.want)
		}
	}
	for _, f := range []string{"a", "a/+", "+", "#", "a/#", "+/+/#", "/", "a//b"} {
		if !ValidFilter(f) {
			t.Errorf("ValidFilter(%q) = false", f)
		}
	}
	for _, f := range []string{"", "a#", "a/#/b", "a+", "+a/b", "#/a"} {
		if ValidFilter(f) {
			t.Errorf("ValidFilter(%q) = true", f)
		}
	}
	for _, n := range []string{"", "a/+", "a/#"} {
		if ValidTopicName(n) {
			t.Errorf("ValidTopicName(%q) = true", n)
		}
	}
	if k := RoutingKey("sensors/room.1/temp"); k != "sensors.room/1.temp" {
		t.Errorf("RoutingKey = %q", k)
	}
	if tpc := TopicOf("sensors.room/1.temp"); tpc != "sensors/room.1/temp" {
		t.Errorf("TopicOf = %q", tpc)
	}
	if k := BindingKey("sensors/+/x.y/#"); k != "sensors.*.x/y.#" {
		t.Errorf("BindingKey = %q", k)
	}
	shared := []struct {
		in            string
		group, filter string
		shared, valid bool
	}{
		{"$share/g/a/+", "g", "a/+", true, true},
		{"$share/g", "", "", true, false},
		{"$share//a", "", "", true, false},
		{"$share/g+/a", "", "", true, false},
		{"$share/g/a#", "", "", true, false},
		{"a/b", "", "", false, false},
	}
	for _, s := range shared {
		g, f, sh, v := parseShared(s.in)
		if g != s.group || f != s.filter || sh != s.shared || v != s.valid {
			t.Errorf("parseShared(%q) = %q %q %v %v", s.in, g, f, sh, v)
		}
	}
	if !strings.HasPrefix(sessionQueue("a client/with space"), sessionPrefix+"h.") || sessionQueue("dev-1") != sessionPrefix+"c.dev-1" {
		t.Errorf("sessionQueue: %q %q", sessionQueue("a client/with space"), sessionQueue("dev-1"))
	}
}

// FuzzDecodePacket feeds arbitrary bytes to the decoder, as a client's
// and as a server's, for each protocol level: it must never panic, must
// respect the size limit, and whatever decodes must encode to bytes that
// decode to the same packet.
func FuzzDecodePacket(f *testing.F) {
	seeds := []Packet{
		&Connect{ProtocolName: "MQTT", Version: Version5, ClientID: "c", Will: &Will{Topic: "w", Payload: []byte("x"), Props: v5props()}, Username: strp("u"), Password: []byte("p")},
		&Publish{Topic: "a/b", QoS: 1, PacketID: 1, Props: v5props(), Payload: []byte("x")},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "$share/g/#", QoS: 1}}},
		&Unsubscribe{PacketID: 1, Filters: []string{"x"}},
		&Ack{Type: typePubrel, PacketID: 1, ReasonCode: 0x92},
		&Disconnect{ReasonCode: 0x04},
		&Connack{SessionPresent: true},
		&Suback{PacketID: 1, Codes: []byte{0, 1, 0x80}},
	}
	for _, s := range seeds {
		for _, v := range []byte{0, Version311, Version5} {
			f.Add(AppendPacket(nil, s, max(v, Version311)), v)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, version byte) {
		version %= 6
		for _, fromServer := range []bool{false, true} {
			p, err := readPacket(bufio.NewReader(bytes.NewReader(b)), version, 4096, fromServer)
			if err != nil {
				continue
			}
			encVersion := version
			if c, ok := p.(*Connect); ok {
				if !c.supported() {
					continue
				}
				encVersion = c.Version
			}
			if encVersion == 0 {
				encVersion = Version311
			}
			again := AppendPacket(nil, p, encVersion)
			p2, err := readPacket(bufio.NewReader(bytes.NewReader(again)), version, 1<<20, fromServer)
			if err != nil {
				t.Fatalf("re-encoded %#v as % x: %v", p, again, err)
			}
			if !reflect.DeepEqual(normalize(p), normalize(p2)) {
				t.Fatalf("round trip changed the packet:\n%#v\n%#v", p, p2)
			}
		}
	})
}

// normalize makes empty and nil slices alike, which encoding cannot tell
// apart.
func normalize(p Packet) Packet {
	switch p := p.(type) {
	case *Publish:
		q := *p
		if len(q.Payload) == 0 {
			q.Payload = nil
		}
		return &q
	}
	return p
}
