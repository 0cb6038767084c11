package mqtt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/weirmq/weir/internal/broker"
)

// pahoMessage is what a paho 3.1.1 handler saw.
type pahoMessage struct {
	topic    string
	payload  string
	qos      byte
	retained bool
	dup      bool
}

// pahoClient connects a paho 3.1.1 client whose messages go to the
// returned channel.
func pahoClient(t *testing.T, addr, id string, clean bool) (paho.Client, chan pahoMessage, bool) {
	t.Helper()
	msgs := make(chan pahoMessage, 100)
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			msgs <- pahoMessage{m.Topic(), string(m.Payload()), m.Qos(), m.Retained(), m.Duplicate()}
		})
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, msgs, tok.(*paho.ConnectToken).SessionPresent()
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("paho: %v (timed out: %v)", tok.Error(), tok.Error() == nil)
	}
}

func recvMsg(t *testing.T, ch chan pahoMessage) pahoMessage {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return pahoMessage{}
	}
}

func noMsg(t *testing.T, ch chan pahoMessage, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}

// TestPersistentSessionAcrossRestart: QoS 1 messages published while a
// persistent session is offline, and one delivered but not acknowledged,
// are delivered after the server restarts; a clean session leaves nothing.
func TestPersistentSessionAcrossRestart(t *testing.T) {
	n := startNode(t)
	sub, _, present := pahoClient(t, n.addr, "dev-1", false)
	if present {
		t.Error("session present on the first connection")
	}
	wait(t, sub.Subscribe("s/#", 1, nil))
	sub.Disconnect(100)

	// A raw client takes one message and never acknowledges it.
	raw := dialRaw(t, n.addr, Version311)
	raw.connect(&Connect{ClientID: "dev-2", KeepAlive: 60})
	if codes := raw.subscribe(1, Subscription{Filter: "s/#", QoS: 1}); !slices.Equal(codes, []byte{1}) {
		t.Fatalf("SUBACK codes %v", codes)
	}

	pub, _, _ := pahoClient(t, n.addr, "pub", true)
	for i := range 3 {
		wait(t, pub.Publish(fmt.Sprintf("s/%d", i), 1, false, fmt.Sprint("m", i)))
	}
	first := raw.recvPublish(5 * time.Second)
	if first.Topic != "s/0" || string(first.Payload) != "m0" || first.QoS != 1 || first.Dup {
		t.Fatalf("first delivery %+v", first)
	}
	pub.Disconnect(100)
	n.restart()

	sub, msgs, present := pahoClient(t, n.addr, "dev-1", false)
	if !present {
		t.Error("session not present after the restart")
	}
	for i := range 3 {
		m := recvMsg(t, msgs)
		if want := (pahoMessage{fmt.Sprintf("s/%d", i), fmt.Sprint("m", i), 1, false, false}); m != want {
			t.Errorf("after restart got %+v, want %+v", m, want)
		}
	}
	noMsg(t, msgs, 300*time.Millisecond)
	sub.Disconnect(100)

	raw = dialRaw(t, n.addr, Version311)
	if ack := raw.connect(&Connect{ClientID: "dev-2", KeepAlive: 60}); !ack.SessionPresent || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
	for i := range 3 {
		p := raw.recvPublish(5 * time.Second)
		// All three were sent (the client read one; the others were on
		// the wire) and none acknowledged: all come again as DUP.
		if p.Topic != fmt.Sprintf("s/%d", i) || p.QoS != 1 || !p.Dup {
			t.Errorf("redelivery %d: %+v, want s/%d QoS 1 DUP", i, p, i)
		}
		raw.send(&Ack{Type: typePuback, PacketID: p.PacketID})
	}
	raw.send(&Disconnect{})
	raw.expectClosed(5 * time.Second)
	// Acknowledged: nothing comes again.
	raw = dialRaw(t, n.addr, Version311)
	raw.connect(&Connect{ClientID: "dev-2", KeepAlive: 60})
	raw.expectNothing(300 * time.Millisecond)

	// A clean session ends with its queue.
	c, _, _ := pahoClient(t, n.addr, "clean-1", true)
	wait(t, c.Subscribe("x", 1, nil))
	if _, err := n.b.DescribeStream(sessionQueue("clean-1")); err != nil {
		t.Fatalf("clean session's queue while connected: %v", err)
	}
	c.Disconnect(100)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := n.b.DescribeStream(sessionQueue("clean-1"))
		if errors.Is(err, broker.ErrStreamNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clean session's queue after disconnect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A persistent session resumed with clean session is discarded.
	_, _, present = pahoClient(t, n.addr, "dev-1", true)
	if present {
		t.Error("session present with clean session set")
	}
	if _, ok := n.s.sessions.get("dev-1"); ok {
		t.Error("session dev-1 still stored after a clean-session connect")
	}
}

func TestRetained(t *testing.T) {
	n := startNode(t)
	pub, _, _ := pahoClient(t, n.addr, "pub", true)
	wait(t, pub.Publish("r/a", 1, true, "A"))
	wait(t, pub.Publish("r/b", 0, true, "B"))
	wait(t, pub.Publish("other", 1, true, "O"))

	s1, msgs1, _ := pahoClient(t, n.addr, "s1", true)
	wait(t, s1.Subscribe("r/+", 1, nil))
	got := map[string]pahoMessage{}
	for range 2 {
		m := recvMsg(t, msgs1)
		got[m.topic] = m
	}
	if want := (pahoMessage{"r/a", "A", 1, true, false}); got["r/a"] != want {
		t.Errorf("r/a: %+v, want %+v", got["r/a"], want)
	}
	if want := (pahoMessage{"r/b", "B", 0, true, false}); got["r/b"] != want {
		t.Errorf("r/b: %+v, want %+v", got["r/b"], want)
	}
	noMsg(t, msgs1, 200*time.Millisecond)
	// Live messages are not marked retained; an empty retained message
	// clears the topic.
	wait(t, pub.Publish("r/a", 1, true, ""))
	if m := recvMsg(t, msgs1); m.topic != "r/a" || m.payload != "" || m.retained {
		t.Errorf("live delivery of the clearing message: %+v", m)
	}
	n.restart()
	s2, msgs2, _ := pahoClient(t, n.addr, "s2", true)
	wait(t, s2.Subscribe("r/#", 1, nil))
	if m := recvMsg(t, msgs2); m.topic != "r/b" || m.payload != "B" || !m.retained {
		t.Errorf("after restart: %+v, want r/b retained", m)
	}
	noMsg(t, msgs2, 300*time.Millisecond)
}

func TestWills(t *testing.T) {
	n := startNode(t)
	watcher, msgs, _ := pahoClient(t, n.addr, "watcher", true)
	wait(t, watcher.Subscribe("status/#", 1, nil))

	// Broken connection: the will is published (and retained).
	a := dialRaw(t, n.addr, Version311)
	a.connect(&Connect{ClientID: "a", CleanStart: true, KeepAlive: 60, Will: &Will{Topic: "status/a", Payload: []byte("lost"), QoS: 1, Retain: true}})
	a.nc.Close()
	if m := recvMsg(t, msgs); m.topic != "status/a" || m.payload != "lost" {
		t.Errorf("will: %+v", m)
	}
	// DISCONNECT: no will.
	b := dialRaw(t, n.addr, Version311)
	b.connect(&Connect{ClientID: "b", CleanStart: true, KeepAlive: 60, Will: &Will{Topic: "status/b", Payload: []byte("lost")}})
	b.send(&Disconnect{})
	b.expectClosed(5 * time.Second)
	noMsg(t, msgs, 300*time.Millisecond)
	// MQTT 5 "disconnect with will message": the will.
	c := dialRaw(t, n.addr, Version5)
	c.connect(&Connect{ClientID: "c", CleanStart: true, KeepAlive: 60, Will: &Will{Topic: "status/c", Payload: []byte("bye")}})
	c.send(&Disconnect{ReasonCode: reasonDisconnectWithWill})
	if m := recvMsg(t, msgs); m.topic != "status/c" || m.payload != "bye" {
		t.Errorf("will on disconnect 0x04: %+v", m)
	}
	// Keep-alive timeout: the will, and DISCONNECT 0x8D for MQTT 5.
	d := dialRaw(t, n.addr, Version5)
	d.connect(&Connect{ClientID: "d", CleanStart: true, KeepAlive: 1, Will: &Will{Topic: "status/d", Payload: []byte("silent")}})
	start := time.Now()
	if x := d.expectClosed(5 * time.Second); x == nil || x.ReasonCode != reasonKeepAliveTimeout {
		t.Errorf("keep-alive end: DISCONNECT %+v, want 0x8D", x)
	}
	if el := time.Since(start); el < 1400*time.Millisecond {
		t.Errorf("closed after %v, before 1.5 × the keep-alive", el)
	}
	if m := recvMsg(t, msgs); m.topic != "status/d" || m.payload != "silent" {
		t.Errorf("will on keep-alive timeout: %+v", m)
	}
	// The retained will of a.
	late, lateMsgs, _ := pahoClient(t, n.addr, "late", true)
	wait(t, late.Subscribe("status/a", 0, nil))
	if m := recvMsg(t, lateMsgs); m.payload != "lost" || !m.retained {
		t.Errorf("retained will: %+v", m)
	}
}

// paho5Client connects a paho.golang MQTT 5 client.
func paho5Client(t *testing.T, addr, id string, onMsg func(*paho5.Publish)) *paho5.Client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho5.NewClient(paho5.ClientConfig{ClientID: id, Conn: nc,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(r paho5.PublishReceived) (bool, error) { onMsg(r.Packet); return true, nil },
		}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho5.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
	if err != nil {
		t.Fatalf("paho5 connect: %v (%+v)", err, ack)
	}
	t.Cleanup(func() { c.Disconnect(&paho5.Disconnect{}) })
	return c
}

func TestSharedSubscriptions(t *testing.T) {
	n := startNode(t)
	var mu sync.Mutex
	counts := map[string]int{}
	byMember := map[string]int{}
	plain := 0
	member := func(name string) func(*paho5.Publish) {
		return func(p *paho5.Publish) {
			mu.Lock()
			defer mu.Unlock()
			counts[string(p.Payload)]++
			byMember[name]++
		}
	}
	ctx := t.Context()
	var clients []*paho5.Client
	for _, name := range []string{"m1", "m2"} {
		c := paho5Client(t, n.addr, name, member(name))
		sa, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "$share/workers/jobs/#", QoS: 1}}})
		if err != nil || sa.Reasons[0] != 1 {
			t.Fatalf("subscribe %s: %v %+v", name, err, sa)
		}
		clients = append(clients, c)
	}
	other := paho5Client(t, n.addr, "plain", func(*paho5.Publish) { mu.Lock(); plain++; mu.Unlock() })
	if _, err := other.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "jobs/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub := paho5Client(t, n.addr, "pub", func(*paho5.Publish) {})
	const total = 40
	for i := range total {
		if _, err := pub.Publish(ctx, &paho5.Publish{Topic: fmt.Sprintf("jobs/%d", i%4), QoS: 1, Payload: fmt.Append(nil, i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(counts) == total && plain == total
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(counts) != total || plain != total {
		t.Fatalf("group got %d distinct of %d, plain subscriber %d", len(counts), total, plain)
	}
	for k, c := range counts {
		if c != 1 {
			t.Errorf("message %s delivered %d times to the group", k, c)
		}
	}
	t.Logf("shared deliveries by member: %v", byMember)
	if len(byMember) != 2 {
		t.Errorf("deliveries by member %v: both members should have taken part", byMember)
	}
}

func TestV5Properties(t *testing.T) {
	n := startNode(t)
	got := make(chan *paho5.Publish, 10)
	sub := paho5Client(t, n.addr, "sub5", func(p *paho5.Publish) { got <- p })
	ctx := t.Context()
	if _, err := sub.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "req/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	s311, msgs, _ := pahoClient(t, n.addr, "sub311", true)
	wait(t, s311.Subscribe("req/#", 1, nil))
	// A stream bound to amq.topic keeps the record as stored (the session
	// queues drop it once acknowledged).
	if _, err := n.b.CreateStream(ctx, broker.StreamConfig{Name: "req-log"}); err != nil {
		t.Fatal(err)
	}
	if err := n.b.Bind(ctx, Exchange, broker.Binding{Destination: "req-log", Key: "req.#"}); err != nil {
		t.Fatal(err)
	}
	pub := paho5Client(t, n.addr, "pub5", func(*paho5.Publish) {})
	expiry := uint32(3600)
	format := byte(1)
	props := &paho5.PublishProperties{
		ContentType: "application/json", CorrelationData: []byte("c-1"), ResponseTopic: "reply/me",
		MessageExpiry: &expiry, PayloadFormat: &format,
		User: paho5.UserProperties{{Key: "k", Value: "v1"}, {Key: "k", Value: "v2"}},
	}
	if _, err := pub.Publish(ctx, &paho5.Publish{Topic: "req/1", QoS: 1, Payload: []byte(`{}`), Properties: props}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		pp := p.Properties
		if pp == nil || pp.ContentType != "application/json" || string(pp.CorrelationData) != "c-1" || pp.ResponseTopic != "reply/me" ||
			pp.PayloadFormat == nil || *pp.PayloadFormat != 1 || pp.MessageExpiry == nil || *pp.MessageExpiry > 3600 || *pp.MessageExpiry < 3590 ||
			!slices.Equal(pp.User, props.User) {
			t.Errorf("properties received: %+v", pp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no message")
	}
	if m := recvMsg(t, msgs); m.topic != "req/1" || m.payload != "{}" {
		t.Errorf("3.1.1 subscriber: %+v", m)
	}
	// Stored as Weir headers.
	fr, err := n.b.Fetch(ctx, "req-log", 0, 0, 1<<20, 0)
	if err != nil || len(fr.Records) != 1 {
		t.Fatalf("fetch: %v %+v", err, fr)
	}
	hs := map[string][]string{}
	for _, h := range fr.Records[0].Headers {
		hs[h.Key] = append(hs[h.Key], string(h.Value))
	}
	for k, want := range map[string][]string{
		broker.HeaderContentType: {"application/json"}, broker.HeaderCorrelationID: {"c-1"},
		broker.HeaderReplyTo: {"reply.me"}, "k": {"v1", "v2"}, headerQoS: {"1"},
	} {
		if !slices.Equal(hs[k], want) {
			t.Errorf("header %s = %q, want %q", k, hs[k], want)
		}
	}
	if len(hs[broker.HeaderExpiresAt]) != 1 {
		t.Errorf("no expires-at header: %v", hs)
	}
	if string(fr.Records[0].Key) != "req.1" {
		t.Errorf("record key %q, want the routing key req.1", fr.Records[0].Key)
	}
}

// TestWillDelay: an MQTT 5 will waits for its delay, and is not published
// when the client id connects again within it.
func TestWillDelay(t *testing.T) {
	n := startNode(t)
	watcher, msgs, _ := pahoClient(t, n.addr, "watcher", true)
	wait(t, watcher.Subscribe("status/#", 1, nil))
	connect := func(id string) *rawClient {
		c := dialRaw(t, n.addr, Version5)
		cp := &Connect{ClientID: id, CleanStart: false, KeepAlive: 60, Will: &Will{Topic: "status/" + id, Payload: []byte("gone")}}
		cp.Props.SessionExpiry = 60
		cp.Props.Set(propSessionExpiry)
		cp.Will.Props.WillDelay = 1
		cp.Will.Props.Set(propWillDelay)
		c.connect(cp)
		return c
	}
	a := connect("a")
	b := connect("b")
	start := time.Now()
	a.nc.Close()
	b.nc.Close()
	connect("b") // back within the delay: no will for b
	m := recvMsg(t, msgs)
	if m.topic != "status/a" || m.payload != "gone" {
		t.Errorf("will: %+v", m)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("will published after %v, before its 1 s delay", el)
	}
	noMsg(t, msgs, 1500*time.Millisecond)
}
