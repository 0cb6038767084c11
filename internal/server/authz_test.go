package server

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/auth"
)

// startAuthzServer starts a server whose users file has alice (no rules:
// everything), bob (rules below) and dave (no rules, at most 2
// connections).
func startAuthzServer(t *testing.T) *Server {
	t.Helper()
	cfg := testConfig(t)
	cfg.Users = writeAuthzUsers(t)
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeAuthzUsers writes the users file of startAuthzServer.
func writeAuthzUsers(t *testing.T) string {
	t.Helper()
	u := auth.New()
	for _, n := range []string{"alice", "bob", "dave", "quinn"} {
		if err := u.Add(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []auth.Permission{
		{Resource: auth.ResourceStream, Name: "orders.*", Actions: []auth.Action{auth.ActionPublish, auth.ActionConsume}},
		{Resource: auth.ResourceGroup, Name: "g-ok", Actions: []auth.Action{auth.ActionConsume}},
		{Resource: auth.ResourceExchange, Name: "ex-ok", Actions: []auth.Action{auth.ActionPublish}},
		{Resource: auth.ResourceQueue, Name: "q-ok", Actions: []auth.Action{auth.ActionConsume}},
		{Resource: auth.ResourceTopic, Name: "sensors/*", Actions: []auth.Action{auth.ActionPublish, auth.ActionConsume}},
	} {
		if err := u.Grant("bob", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.SetMaxConnections("dave", 2); err != nil {
		t.Fatal(err)
	}
	if err := u.SetQuotas("quinn", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func kafkaAs(t *testing.T, s *Server, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Addr("kafka")),
		kgo.SASL(scram.Auth{User: user, Pass: "pw-" + user}.AsSha256Mechanism()), kgo.RequestRetries(2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKafkaAuthorization: franz-go as bob produces to and fetches from a
// topic his rules allow; another topic is TOPIC_AUTHORIZATION_FAILED (and
// hidden from Metadata), a group he may not use GROUP_AUTHORIZATION_FAILED,
// creating a topic without manage TOPIC_AUTHORIZATION_FAILED.
func TestKafkaAuthorization(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(kafkaAs(t, s, "alice"))
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "orders.eu", "secret"); err != nil {
		t.Fatal(err)
	}
	bob := kafkaAs(t, s, "bob")
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "orders.eu", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatalf("produce to an allowed topic: %v", err)
	}
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("no")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to a forbidden topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	meta := kmsg.NewPtrMetadataRequest()
	resp, err := meta.RequestWith(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, tp := range resp.Topics {
		seen = append(seen, *tp.Topic)
	}
	if !slices.Contains(seen, "orders.eu") || slices.Contains(seen, "secret") {
		t.Errorf("bob's Metadata lists %v, want orders.eu and not secret", seen)
	}

	ids, err := adm.ListTopics(ctx, "orders.eu", "secret")
	if err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes = 1 << 20
	for _, topic := range []string{"orders.eu", "secret"} {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = topic, ids[topic].ID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
	}
	fresp, err := fetch.RequestWith(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	for i, ft := range fresp.Topics {
		want := int16(0)
		if i == 1 { // secret, second in the request (v13+ answers by topic ID)
			want = kerr.TopicAuthorizationFailed.Code
		}
		if got := ft.Partitions[0].ErrorCode; got != want {
			t.Errorf("fetch %s: error %d, want %d", ft.Topic, got, want)
		}
	}

	for group, want := range map[string]*kerr.Error{"g-ok": nil, "g-bad": kerr.GroupAuthorizationFailed} {
		commit := kmsg.NewPtrOffsetCommitRequest()
		commit.Group, commit.Generation = group, -1
		ct := kmsg.NewOffsetCommitRequestTopic()
		ct.Topic = "orders.eu"
		cp := kmsg.NewOffsetCommitRequestTopicPartition()
		cp.Offset = 1
		ct.Partitions = append(ct.Partitions, cp)
		commit.Topics = append(commit.Topics, ct)
		cresp, err := commit.RequestWith(ctx, bob)
		if err != nil {
			t.Fatal(err)
		}
		wantCode := int16(0)
		if want != nil {
			wantCode = want.Code
		}
		if got := cresp.Topics[0].Partitions[0].ErrorCode; got != wantCode {
			t.Errorf("commit in group %s: error %d, want %d", group, got, wantCode)
		}
	}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.ProtocolType, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = "g-bad", "consumer", 10000, 10000
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
	jresp, err := join.RequestWith(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if jresp.ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Errorf("join g-bad: error %d, want GROUP_AUTHORIZATION_FAILED", jresp.ErrorCode)
	}

	res, err := kadm.NewClient(bob).CreateTopics(ctx, 1, 1, nil, "orders.new")
	if err != nil {
		t.Fatal(err)
	}
	if r := res["orders.new"]; !errors.Is(r.Err, kerr.TopicAuthorizationFailed) {
		t.Errorf("create topic without manage: %v, want TOPIC_AUTHORIZATION_FAILED", r.Err)
	}
}

// TestAMQPAuthorization: amqp091-go as bob publishes through an exchange
// he may use and consumes his queue; a publish to another exchange closes
// the channel with 403 ACCESS_REFUSED, as does declaring a queue.
func TestAMQPAuthorization(t *testing.T) {
	s := startAuthzServer(t)
	url := func(user string) string { return "amqp://" + user + ":pw-" + user + "@" + s.Addr("amqp") + "/" }
	admin, err := amqp091.Dial(url("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range []string{"ex-ok", "ex-bad"} {
		if err := ach.ExchangeDeclare(ex, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"q-ok", "secret-q"} {
		if _, err := ach.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ach.QueueBind("q-ok", "", "ex-ok", false, nil); err != nil {
		t.Fatal(err)
	}

	conn, err := amqp091.Dial(url("bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "ex-ok", "", false, false, amqp091.Publishing{Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish to an allowed exchange: ack %v, %v", ok, err)
	}
	msgs, err := ch.Consume("q-ok", "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume an allowed queue: %v", err)
	}
	select {
	case m := <-msgs:
		if string(m.Body) != "hello" {
			t.Errorf("got %q", m.Body)
		}
		m.Ack(false)
	case <-ctx.Done():
		t.Fatal("no delivery from q-ok")
	}

	refused := func(name string, do func(ch *amqp091.Channel) error) {
		t.Helper()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		err = do(ch)
		var ae *amqp091.Error
		if !errors.As(err, &ae) {
			select {
			case ae = <-closed:
			case <-ctx.Done():
			}
		}
		if ae == nil || ae.Code != amqp091.AccessRefused {
			t.Errorf("%s: %v, want channel closed with 403 ACCESS_REFUSED", name, ae)
		}
	}
	refused("publish to ex-bad", func(ch *amqp091.Channel) error {
		return ch.PublishWithContext(ctx, "ex-bad", "", false, false, amqp091.Publishing{Body: []byte("no")})
	})
	refused("declare a queue", func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare("mine", true, false, false, false, nil)
		return err
	})
	refused("consume another queue", func(ch *amqp091.Channel) error {
		_, err := ch.Consume("secret-q", "", false, false, false, false, nil)
		return err
	})
}

// TestMQTTAuthorization: as bob, an MQTT 5 client (paho.golang) gets
// 0x87 not authorized in PUBACK and SUBACK for topics outside his rules,
// and an MQTT 3.1.1 client (paho.mqtt.golang) gets SUBACK 0x80 while its
// forbidden publish is dropped (a subscriber to # sees only the allowed
// one).
func TestMQTTAuthorization(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	nc, err := net.Dial("tcp", s.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho5.NewClient(paho5.ClientConfig{ClientID: "bob5", Conn: nc})
	if _, err := c.Connect(ctx, &paho5.Connect{ClientID: "bob5", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "bob", PasswordFlag: true, Password: []byte("pw-bob")}); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho5.Disconnect{})
	sa, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "sensors/#", QoS: 1}, {Topic: "secret/#", QoS: 1}}})
	if err != nil && sa == nil {
		t.Fatal(err)
	}
	if len(sa.Reasons) != 2 || sa.Reasons[0] != 1 || sa.Reasons[1] != 0x87 {
		t.Errorf("SUBACK reasons %v, want [1 0x87]", sa.Reasons)
	}
	if r, err := c.Publish(ctx, &paho5.Publish{Topic: "sensors/1", QoS: 1, Payload: []byte("21")}); err != nil || r.ReasonCode != 0 {
		t.Errorf("publish to sensors/1: %v %v", r, err)
	}
	r, err := c.Publish(ctx, &paho5.Publish{Topic: "secret/1", QoS: 1, Payload: []byte("no")})
	if r == nil || r.ReasonCode != 0x87 {
		t.Errorf("publish to secret/1: %v %v, want PUBACK 0x87", r, err)
	}

	// MQTT 3.1.1: alice (no rules) watches everything.
	got := make(chan string, 16)
	alice := paho.NewClient(pahoOptions("tcp://"+s.Addr("mqtt"), "alice311").SetUsername("alice").SetPassword("pw-alice"))
	if tok := alice.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("alice connect: %v", tok.Error())
	}
	defer alice.Disconnect(100)
	if tok := alice.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("alice subscribe: %v", tok.Error())
	}
	bob := paho.NewClient(pahoOptions("tcp://"+s.Addr("mqtt"), "bob311").SetUsername("bob").SetPassword("pw-bob"))
	if tok := bob.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("bob connect: %v", tok.Error())
	}
	defer bob.Disconnect(100)
	st := bob.Subscribe("secret/#", 1, nil)
	if !st.WaitTimeout(10 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	if codes := st.(*paho.SubscribeToken).Result(); codes["secret/#"] != 0x80 {
		t.Errorf("3.1.1 SUBACK %v, want 0x80", codes)
	}
	for _, topic := range []string{"secret/2", "sensors/2"} {
		if tok := bob.Publish(topic, 1, false, "x"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	for {
		select {
		case topic := <-got:
			if topic == "secret/2" {
				t.Fatal("a forbidden 3.1.1 publish was delivered")
			}
			if topic == "sensors/2" {
				return // published after secret/2 on the same connection, acked in order
			}
		case <-ctx.Done():
			t.Fatal("alice never got sensors/2")
		}
	}
}

// TestSDKAuthorization: the SDK as bob gets PermissionDenied for a stream
// his rules do not cover and for creating one.
func TestSDKAuthorization(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	admin, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth("alice", "pw-alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, name := range []string{"orders.eu", "secret"} {
		if _, err := admin.CreateStream(ctx, weir.StreamConfig{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	bob, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth("bob", "pw-bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := bob.Publish(ctx, "orders.eu", weir.Record{Value: []byte("ok")}); err != nil {
		t.Errorf("publish to an allowed stream: %v", err)
	}
	if _, err := bob.Publish(ctx, "secret", weir.Record{Value: []byte("no")}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("publish to a forbidden stream: %v, want PermissionDenied", err)
	}
	if _, err := bob.CreateStream(ctx, weir.StreamConfig{Name: "orders.new", Partitions: 1}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("create a stream without manage: %v, want PermissionDenied", err)
	}
}

// TestPerUserConnectionLimit: dave may hold 2 connections (max-connections
// in the users file): his third is refused with each protocol's answer
// while alice's third is accepted; a closed connection frees its place.
func TestPerUserConnectionLimit(t *testing.T) {
	s := startAuthzServer(t)
	url := func(user string) string { return "amqp://" + user + ":pw-" + user + "@" + s.Addr("amqp") + "/" }
	var open []*amqp091.Connection
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for range 2 {
		c, err := amqp091.Dial(url("dave"))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	_, err := amqp091.Dial(url("dave"))
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.NotAllowed {
		t.Errorf("dave's third AMQP connection: %v, want 530 NOT_ALLOWED", err)
	}
	for range 3 {
		c, err := amqp091.Dial(url("alice"))
		if err != nil {
			t.Fatalf("alice: %v", err)
		}
		open = append(open, c)
	}
	// MQTT 5 and Kafka count against the same limit.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	nc, err := net.Dial("tcp", s.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho5.NewClient(paho5.ClientConfig{ClientID: "dave5", Conn: nc})
	ca, err := c.Connect(ctx, &paho5.Connect{ClientID: "dave5", CleanStart: true, KeepAlive: 30,
		UsernameFlag: true, Username: "dave", PasswordFlag: true, Password: []byte("pw-dave")})
	if err == nil || ca == nil || ca.ReasonCode != 0x97 {
		t.Errorf("dave's MQTT 5 connection: %v %v, want CONNACK 0x97 quota exceeded", ca, err)
	}
	kc := kafkaAs(t, s, "dave", kgo.RequestRetries(0))
	if err := kc.Ping(ctx); err == nil {
		t.Error("dave's Kafka connection was accepted")
	}
	// Closing one of dave's connections frees a place (the server sees the
	// close a moment later, so try until a deadline).
	open[0].Close()
	for {
		c, err := amqp091.Dial(url("dave"))
		if err == nil {
			open = append(open, c)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("dave never got his place back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// throttleHook records the throttle times franz-go is told of.
type throttleHook struct{ got chan time.Duration }

func (h throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	select {
	case h.got <- d:
	default:
	}
}

// TestKafkaQuotaThrottle: quinn may produce and consume 1,000 bytes a
// second; producing and then fetching 20 KB makes the responses carry a
// throttle time, which franz-go reports (no timing is asserted).
func TestKafkaQuotaThrottle(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	hook := throttleHook{got: make(chan time.Duration, 16)}
	cl := kafkaAs(t, s, "quinn", kgo.WithHooks(hook), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("quota"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	value := make([]byte, 20_000)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "quota", Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-hook.got:
		if d <= 0 {
			t.Errorf("produce throttle %v", d)
		}
	case <-ctx.Done():
		t.Fatal("no throttle reported for produce")
	}
	if fs := cl.PollFetches(ctx); fs.Err() != nil || len(fs.Records()) != 1 {
		t.Fatalf("fetch: %v, %d records", fs.Err(), len(fs.Records()))
	}
	select {
	case d := <-hook.got:
		if d <= 0 {
			t.Errorf("fetch throttle %v", d)
		}
	case <-ctx.Done():
		t.Fatal("no throttle reported for fetch")
	}
}

// TestKafkaCertificateUser: with tls-client-cert-user=cn, franz-go over
// mutual TLS without SASL is bob (its certificate's CN) and gets bob's
// rules; a certificate naming no user of the file is refused.
func TestKafkaCertificateUser(t *testing.T) {
	ts := newTLSSetup(t)
	ts.requireClientCerts("require")
	ts.cfg.Users = writeAuthzUsers(t)
	ts.cfg.TLSClientCertUser = "cn"
	s := ts.start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(kafkaAs(t, s, "alice"))
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, "orders.eu", "secret"); err != nil {
		t.Fatal(err)
	}
	client := func(cn string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka-tls")), kgo.RequestRetries(1),
			kgo.DialTLSConfig(ts.ca.ClientConfig(ts.ca.Client(t, ts.dir, cn))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	bob := client("bob")
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "orders.eu", Value: []byte("ok")}).FirstErr(); err != nil {
		t.Fatalf("bob by certificate, allowed topic: %v", err)
	}
	if err := bob.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("no")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("bob by certificate, forbidden topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if err := client("mallory").Ping(pctx); err == nil {
		t.Error("a certificate of no user was logged in")
	}
}

// TestKafkaAuthorizationDescribe: the describing requests answer as Kafka
// does without DESCRIBE: ListOffsets and DescribeConfigs refuse a topic bob
// may not see, ListGroups leaves out a group he may not see, and
// DescribeGroups and OffsetFetch refuse it.
func TestKafkaAuthorizationDescribe(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	alice := kadm.NewClient(kafkaAs(t, s, "alice"))
	if _, err := alice.CreateTopics(ctx, 1, 1, nil, "orders.eu", "secret"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"g-ok", "g-bad"} {
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: "orders.eu", Partition: 0, At: 0, LeaderEpoch: -1})
		if _, err := alice.CommitOffsets(ctx, g, os); err != nil {
			t.Fatalf("alice commits in %s: %v", g, err)
		}
	}
	bobClient := kafkaAs(t, s, "bob")
	bob := kadm.NewClient(bobClient)

	// ListOffsets straight to the broker (kadm would stop at Metadata's
	// refusal of secret first).
	lo := kmsg.NewPtrListOffsetsRequest()
	for _, topic := range []string{"orders.eu", "secret"} {
		lt := kmsg.NewListOffsetsRequestTopic()
		lt.Topic = topic
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Timestamp = -1
		lt.Partitions = append(lt.Partitions, lp)
		lo.Topics = append(lo.Topics, lt)
	}
	if err := bobClient.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	node := bobClient.DiscoveredBrokers()[0]
	raw, err := node.Request(ctx, lo)
	if err != nil {
		t.Fatal(err)
	}
	loResp := raw.(*kmsg.ListOffsetsResponse)
	for _, lt := range loResp.Topics {
		want := int16(0)
		if lt.Topic == "secret" {
			want = kerr.TopicAuthorizationFailed.Code
		}
		if got := lt.Partitions[0].ErrorCode; got != want {
			t.Errorf("ListOffsets %s: error %d, want %d", lt.Topic, got, want)
		}
	}

	dc := kmsg.NewPtrDescribeConfigsRequest()
	for _, topic := range []string{"orders.eu", "secret"} {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		dc.Resources = append(dc.Resources, r)
	}
	raw, err = node.Request(ctx, dc)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range raw.(*kmsg.DescribeConfigsResponse).Resources {
		want := int16(0)
		if rr.ResourceName == "secret" {
			want = kerr.TopicAuthorizationFailed.Code
		}
		if rr.ErrorCode != want {
			t.Errorf("DescribeConfigs %s: error %d, want %d", rr.ResourceName, rr.ErrorCode, want)
		}
	}

	listed, err := bob.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := listed.Groups(); !slices.Contains(names, "g-ok") || slices.Contains(names, "g-bad") {
		t.Errorf("bob's ListGroups: %v, want g-ok and not g-bad", names)
	}

	// Straight to the broker: kadm makes one group's error the whole
	// call's.
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"g-ok", "g-bad"}
	if raw, err = node.Request(ctx, dg); err != nil {
		t.Fatal(err)
	}
	for _, g := range raw.(*kmsg.DescribeGroupsResponse).Groups {
		want := int16(0)
		if g.Group == "g-bad" {
			want = kerr.GroupAuthorizationFailed.Code
		}
		if g.ErrorCode != want {
			t.Errorf("DescribeGroups %s: error %d, want %d", g.Group, g.ErrorCode, want)
		}
	}
	for group, want := range map[string]int16{"g-ok": 0, "g-bad": kerr.GroupAuthorizationFailed.Code} {
		of := kmsg.NewPtrOffsetFetchRequest()
		of.Group = group
		if raw, err = node.Request(ctx, of); err != nil {
			t.Fatal(err)
		}
		resp := raw.(*kmsg.OffsetFetchResponse)
		if resp.ErrorCode != want {
			t.Errorf("OffsetFetch %s: error %d, want %d", group, resp.ErrorCode, want)
		}
		if want == 0 && (len(resp.Topics) != 1 || resp.Topics[0].Topic != "orders.eu") {
			t.Errorf("OffsetFetch %s: %+v, want the offset of orders.eu", group, resp.Topics)
		}
	}
	if _, err := bob.FetchOffsets(ctx, "g-bad"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("kadm offsets of g-bad: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
}
