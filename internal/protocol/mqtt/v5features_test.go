package mqtt

import (
	"maps"
	"slices"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
)

// TestTopicAliases: CONNACK offers topic aliases; paho.golang publishes
// with a topic and an alias, then with the alias alone, and subscribers
// see the topic; aliases are the connection's, not the session's.
func TestTopicAliases(t *testing.T) {
	n := startNode(t)
	raw := dialRaw(t, n.addr, Version5)
	ack := raw.connect(&Connect{ClientID: "probe", CleanStart: true, KeepAlive: 30})
	if !ack.Props.Has(propTopicAliasMaximum) || ack.Props.TopicAliasMaximum != DefaultTopicAliasMaximum {
		t.Fatalf("CONNACK topic alias maximum %v %d", ack.Props.Has(propTopicAliasMaximum), ack.Props.TopicAliasMaximum)
	}
	if ack.Props.Has(propSubIDAvailable) && ack.Props.SubIDAvailable == 0 {
		t.Fatal("CONNACK says subscription identifiers are not available")
	}

	s311, msgs, _ := pahoClient(t, n.addr, "alias-sub", true)
	wait(t, s311.Subscribe("alias/#", 1, nil))
	pub := paho5Client(t, n.addr, "alias-pub", func(*paho5.Publish) {})
	ctx := t.Context()
	one, two := uint16(1), uint16(2)
	for _, p := range []*paho5.Publish{
		{Topic: "alias/a", QoS: 1, Payload: []byte("1"), Properties: &paho5.PublishProperties{TopicAlias: &one}},
		{Topic: "", QoS: 1, Payload: []byte("2"), Properties: &paho5.PublishProperties{TopicAlias: &one}},
		{Topic: "alias/b", QoS: 0, Payload: []byte("3"), Properties: &paho5.PublishProperties{TopicAlias: &two}},
		{Topic: "alias/c", QoS: 1, Payload: []byte("4"), Properties: &paho5.PublishProperties{TopicAlias: &one}}, // set again
		{Topic: "", QoS: 1, Payload: []byte("5"), Properties: &paho5.PublishProperties{TopicAlias: &one}},
		{Topic: "", QoS: 1, Payload: []byte("6"), Properties: &paho5.PublishProperties{TopicAlias: &two}},
	} {
		if _, err := pub.Publish(ctx, p); err != nil {
			t.Fatalf("publish %s: %v", p.Payload, err)
		}
	}
	// MQTT orders messages per topic (different topics are stored in
	// parallel).
	got := map[string]string{}
	for range 6 {
		m := recvMsg(t, msgs)
		got[m.topic] += m.payload
	}
	if want := map[string]string{"alias/a": "12", "alias/b": "36", "alias/c": "45"}; !maps.Equal(got, want) {
		t.Errorf("payloads by topic %v, want %v", got, want)
	}

	// A new connection of the same client id starts without aliases.
	c := dialRaw(t, n.addr, Version5)
	c.connect(&Connect{ClientID: "alias-pub", CleanStart: false, KeepAlive: 30})
	p := &Publish{Topic: "", QoS: 0, Payload: []byte("x")}
	p.Props.TopicAlias = 1
	p.Props.Set(propTopicAlias)
	c.send(p)
	if d := c.expectClosed(5 * time.Second); d == nil || d.ReasonCode != reasonProtocolError {
		t.Errorf("alias of an earlier connection: DISCONNECT %+v, want 0x82", d)
	}
}

// TestSubscriptionIdentifiers: a subscription's identifier comes with the
// messages it matches (all of them when several match), with retained
// messages sent on subscription, and after a restart of a persistent
// session; paho.golang reads it.
func TestSubscriptionIdentifiers(t *testing.T) {
	n := startNode(t)
	ctx := t.Context()
	got := make(chan *paho5.Publish, 10)
	sub := paho5Client(t, n.addr, "sid-paho", func(p *paho5.Publish) { got <- p })
	id := 77
	if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Properties: &paho5.SubscribeProperties{SubscriptionIdentifier: &id},
		Subscriptions: []paho5.SubscribeOptions{{Topic: "sid/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := paho5Client(t, n.addr, "sid-pub", func(*paho5.Publish) {})
	if _, err := pub.Publish(ctx, &paho5.Publish{Topic: "sid/x", QoS: 1, Payload: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.Properties == nil || p.Properties.SubscriptionIdentifier == nil || *p.Properties.SubscriptionIdentifier != 77 {
			t.Errorf("paho.golang got properties %+v, want subscription identifier 77", p.Properties)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}

	// Raw: a persistent session with two subscriptions, one retained
	// message.
	if _, err := pub.Publish(ctx, &paho5.Publish{Topic: "sid/r/x", QoS: 1, Retain: true, Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	connect := func() *rawClient {
		c := dialRaw(t, n.addr, Version5)
		cp := &Connect{ClientID: "sid-raw", KeepAlive: 60}
		cp.Props.SessionExpiry = 3600
		cp.Props.Set(propSessionExpiry)
		c.connect(cp)
		return c
	}
	raw := connect()
	subscribe := func(pid uint16, filter string, subID int) {
		s := &Subscribe{PacketID: pid, Subscriptions: []Subscription{{Filter: filter, QoS: 1}}}
		if subID != 0 {
			s.Props.SubscriptionIDs = []int{subID}
			s.Props.Set(propSubscriptionID)
		}
		raw.send(s)
	}
	subscribe(1, "sid/+/x", 5)
	if sa := raw.recv(5 * time.Second).(*Suback); sa.Codes[0] != 1 {
		t.Fatalf("SUBACK %+v", sa)
	}
	r := raw.recvPublish(5 * time.Second)
	if !r.Retain || string(r.Payload) != "kept" || !slices.Equal(r.Props.SubscriptionIDs, []int{5}) {
		t.Errorf("retained message %+v, want subscription identifier 5", r)
	}
	raw.send(&Ack{Type: typePuback, PacketID: r.PacketID})
	subscribe(2, "sid/r/#", 300000) // a multi-byte identifier
	raw.recv(5 * time.Second)       // SUBACK
	r = raw.recvPublish(5 * time.Second)
	if !slices.Equal(r.Props.SubscriptionIDs, []int{300000}) {
		t.Errorf("retained message for the second subscription: identifiers %v", r.Props.SubscriptionIDs)
	}
	raw.send(&Ack{Type: typePuback, PacketID: r.PacketID})
	subscribe(3, "sid/nothing", 0) // without an identifier
	raw.recv(5 * time.Second)
	raw.send(&Disconnect{})
	raw.expectClosed(5 * time.Second)

	n.restart()
	pub = paho5Client(t, n.addr, "sid-pub2", func(*paho5.Publish) {})
	raw = connect()
	for _, tc := range []struct {
		topic string
		ids   []int
	}{{"sid/r/x", []int{5, 300000}}, {"sid/a/x", []int{5}}, {"sid/nothing", nil}} {
		if _, err := pub.Publish(ctx, &paho5.Publish{Topic: tc.topic, QoS: 1, Payload: []byte(tc.topic)}); err != nil {
			t.Fatal(err)
		}
		p := raw.recvPublish(5 * time.Second)
		if p.Topic != tc.topic || !slices.Equal(p.Props.SubscriptionIDs, tc.ids) {
			t.Errorf("%s: got %s with identifiers %v, want %v", tc.topic, p.Topic, p.Props.SubscriptionIDs, tc.ids)
		}
		raw.send(&Ack{Type: typePuback, PacketID: p.PacketID})
	}
}
