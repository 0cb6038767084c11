package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/auth"
)

// createAuthzResources makes, as alice (no rules: everything), the streams,
// queues, exchanges and groups the visibility tests look at; bob's rules
// (writeAuthzUsers) cover orders.*, q-ok, ex-ok and g-ok, not the others.
func createAuthzResources(t *testing.T, ctx context.Context, s *Server) *weir.Client {
	t.Helper()
	alice, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth("alice", "pw-alice"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	for _, name := range []string{"orders.eu", "secret"} {
		if _, err := alice.CreateStream(ctx, weir.StreamConfig{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"q-ok", "q-bad"} {
		if _, err := alice.CreateQueue(ctx, weir.QueueConfig{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ex-ok", "ex-bad"} {
		if _, err := alice.DeclareExchange(ctx, weir.ExchangeConfig{Name: name, Type: weir.ExchangeDirect}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []string{"g-ok", "g-bad"} {
		if err := alice.CommitOffsets(ctx, g, weir.PartitionOffset{Stream: "orders.eu", Partition: 0, Offset: 0},
			weir.PartitionOffset{Stream: "secret", Partition: 0, Offset: 0}); err != nil {
			t.Fatalf("alice commits in %s: %v", g, err)
		}
	}
	return alice
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("%s: %v, want PermissionDenied", what, err)
	}
}

// TestSDKVisibility: over the SDK (Connect and gRPC), bob's list calls show
// only what his rules let him see, and his describe calls of anything else
// are PermissionDenied whether it exists or not (as Kafka answers
// TOPIC_AUTHORIZATION_FAILED for a topic without DESCRIBE), while alice
// sees everything.
func TestSDKVisibility(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	alice := createAuthzResources(t, ctx, s)
	for _, proto := range []weir.Protocol{weir.ConnectProto, weir.GRPC} {
		bob, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth("bob", "pw-bob"), weir.WithProtocol(proto))
		if err != nil {
			t.Fatal(err)
		}
		defer bob.Close()

		streams, err := bob.ListStreams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range streams {
			names = append(names, st.Config.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"orders.eu", "q-ok"}) {
			t.Errorf("%v: bob's ListStreams: %v, want orders.eu and q-ok (a queue rule covers its stream)", proto, names)
		}
		if _, err := bob.DescribeStream(ctx, "orders.eu"); err != nil {
			t.Errorf("%v: bob describes orders.eu: %v", proto, err)
		}
		wantDenied(t, "describe secret", func() error { _, err := bob.DescribeStream(ctx, "secret"); return err }())
		wantDenied(t, "describe a stream that does not exist", func() error { _, err := bob.DescribeStream(ctx, "nothing"); return err }())
		if _, err := bob.DescribeStream(ctx, "orders.none"); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("%v: describe a stream bob may see that does not exist: %v, want NotFound", proto, err)
		}

		queues, err := bob.ListQueues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(queues) != 1 || queues[0].Config.Name != "q-ok" {
			t.Errorf("%v: bob's ListQueues: %+v, want q-ok alone", proto, queues)
		}
		if _, err := bob.DescribeQueue(ctx, "q-ok"); err != nil {
			t.Errorf("%v: bob describes q-ok: %v", proto, err)
		}
		wantDenied(t, "describe q-bad", func() error { _, err := bob.DescribeQueue(ctx, "q-bad"); return err }())
		wantDenied(t, "subscriptions of secret", func() error { _, err := bob.ListSubscriptions(ctx, "secret"); return err }())
		if subs, err := bob.ListSubscriptions(ctx, "q-ok"); err != nil || len(subs) != 1 {
			t.Errorf("%v: subscriptions of q-ok: %v %v, want q-ok's own", proto, subs, err)
		}

		exchanges, err := bob.ListExchanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, x := range exchanges {
			names = append(names, x.Config.Name)
		}
		if !slices.Equal(names, []string{"ex-ok"}) {
			t.Errorf("%v: bob's ListExchanges: %v, want ex-ok alone", proto, names)
		}

		groups, err := bob.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(groups, []string{"g-ok"}) {
			t.Errorf("%v: bob's ListGroups: %v, want g-ok alone", proto, groups)
		}
		g, err := bob.DescribeGroup(ctx, "g-ok")
		if err != nil {
			t.Fatalf("%v: bob describes g-ok: %v", proto, err)
		}
		for _, o := range g.Offsets {
			if o.Stream != "orders.eu" {
				t.Errorf("%v: bob sees g-ok's offset on %s", proto, o.Stream)
			}
		}
		if len(g.Offsets) != 1 {
			t.Errorf("%v: g-ok's offsets as bob: %+v, want orders.eu's alone", proto, g.Offsets)
		}
		wantDenied(t, "describe g-bad", func() error { _, err := bob.DescribeGroup(ctx, "g-bad"); return err }())

		if cs, err := bob.ListConnectors(ctx); err != nil || len(cs) != 0 {
			t.Errorf("%v: bob's ListConnectors: %v %v, want none and no error", proto, cs, err)
		}
		wantDenied(t, "describe a connector", func() error { _, err := bob.DescribeConnector(ctx, "pg"); return err }())
	}

	// alice sees everything.
	streams, err := alice.ListStreams(ctx)
	if err != nil || len(streams) < 4 {
		t.Errorf("alice's ListStreams: %d streams, %v", len(streams), err)
	}
	if groups, err := alice.ListGroups(ctx); err != nil || !slices.Contains(groups, "g-bad") {
		t.Errorf("alice's ListGroups: %v %v", groups, err)
	}
	if _, err := alice.DescribeStream(ctx, "nothing"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("alice describes a missing stream: %v, want NotFound", err)
	}
	if _, err := alice.DescribeConnector(ctx, "pg"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("alice describes a missing connector: %v, want NotFound", err)
	}
}

// TestAMQPPassiveDeclareAuthorization: amqp091-go as bob may passively
// declare the queue and exchange he has rules on; any other is 403
// ACCESS_REFUSED whether or not it exists, and a name he may see that does
// not exist is 404 NOT_FOUND.
func TestAMQPPassiveDeclareAuthorization(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	createAuthzResources(t, ctx, s)
	conn, err := amqp091.Dial("amqp://bob:pw-bob@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	try := func(what string, declare func(ch *amqp091.Channel) error, want int) {
		t.Helper()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		err = declare(ch)
		var ae *amqp091.Error
		switch {
		case want == 0 && err != nil:
			t.Errorf("%s: %v", what, err)
		case want != 0 && (!errors.As(err, &ae) || ae.Code != want):
			t.Errorf("%s: %v, want %d", what, err, want)
		}
	}
	queue := func(name string) func(*amqp091.Channel) error {
		return func(ch *amqp091.Channel) error {
			_, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
			return err
		}
	}
	exchange := func(name string) func(*amqp091.Channel) error {
		return func(ch *amqp091.Channel) error {
			return ch.ExchangeDeclarePassive(name, "direct", true, false, false, false, nil)
		}
	}
	try("passive q-ok", queue("q-ok"), 0)
	try("passive orders.eu (a stream bob may see)", queue("orders.eu"), 0)
	try("passive q-bad", queue("q-bad"), amqp091.AccessRefused)
	try("passive q-missing (not bob's)", queue("q-missing"), amqp091.AccessRefused)
	try("passive orders.none (bob's, missing)", queue("orders.none"), amqp091.NotFound)
	try("passive ex-ok", exchange("ex-ok"), 0)
	try("passive ex-bad", exchange("ex-bad"), amqp091.AccessRefused)
	try("passive ex-missing", exchange("ex-missing"), amqp091.AccessRefused)
	if n := s.users.Refusals().Count(refusalAMQP, auth.RefusalAuthorization, "bob"); n != 4 {
		t.Errorf("amqp authorization refusals of bob: %d, want 4", n)
	}
}

// TestCertificateUsersEveryProtocol: with tls-client-cert-user=cn, a
// client's verified certificate is its user on AMQP (SASL EXTERNAL with
// amqp091-go), MQTT (paho over TLS, the CONNECT user name ignored) and
// HTTPS (the SDK, when it sends no Authorization), with that user's rules;
// a certificate naming no user is refused by each.
func TestCertificateUsersEveryProtocol(t *testing.T) {
	ts := newTLSSetup(t)
	ts.requireClientCerts("require,https=request")
	ts.cfg.Users = writeAuthzUsers(t)
	ts.cfg.TLSClientCertUser = "cn"
	s := ts.start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	createAuthzResources(t, ctx, s)
	certOf := func(cn string) *tls.Config { return ts.ca.ClientConfig(ts.ca.Client(t, ts.dir, cn)) }
	bob, mallory := certOf("bob"), certOf("mallory")

	t.Run("amqp external", func(t *testing.T) {
		conn, err := amqp091.DialTLS_ExternalAuth("amqps://"+s.Addr("amqp-tls")+"/", bob)
		if err != nil {
			t.Fatalf("EXTERNAL as bob: %v", err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive("q-ok", true, false, false, false, nil); err != nil {
			t.Errorf("bob by certificate, passive q-ok: %v", err)
		}
		var ae *amqp091.Error
		if _, err := ch.QueueDeclarePassive("q-bad", true, false, false, false, nil); !errors.As(err, &ae) || ae.Code != amqp091.AccessRefused {
			t.Errorf("bob by certificate, passive q-bad: %v, want 403 (he is bob, not alice)", err)
		}
		if _, err := amqp091.DialTLS_ExternalAuth("amqps://"+s.Addr("amqp-tls")+"/", mallory); !errors.As(err, &ae) || ae.Code != amqp091.AccessRefused {
			t.Errorf("EXTERNAL with a certificate of no user: %v, want 403 ACCESS_REFUSED", err)
		}
		// PLAIN still works on the TLS port.
		c2, err := amqp091.DialTLS("amqps://alice:pw-alice@"+s.Addr("amqp-tls")+"/", bob)
		if err != nil {
			t.Errorf("PLAIN over TLS beside EXTERNAL: %v", err)
		} else {
			c2.Close()
		}
	})

	t.Run("mqtt", func(t *testing.T) {
		// The CONNECT's user name is not used: alice with a wrong password
		// connects, as bob, whose rules cover sensors/*; a certificate of
		// no user is refused even with bob's password. Over TLS, and over
		// WebSocket on the HTTPS port (WSS).
		for _, url := range []string{"ssl://" + s.Addr("mqtt-tls"), "wss://" + s.Addr("https") + "/mqtt"} {
			if err := pahoPublish(pahoOptions(url, "cert-bob").SetTLSConfig(bob).SetUsername("alice").SetPassword("wrong")); err != nil {
				t.Errorf("paho at %s as bob by certificate: %v", url, err)
			}
			if err := pahoPublish(pahoOptions(url, "cert-mallory").SetTLSConfig(mallory).SetUsername("bob").SetPassword("pw-bob")); err == nil {
				t.Errorf("paho at %s with a certificate of no user was let in", url)
			}
		}
		c := paho.NewClient(pahoOptions("ssl://"+s.Addr("mqtt-tls"), "cert-bob-sub").SetTLSConfig(bob))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(100)
		tok := c.Subscribe("secret/#", 1, nil)
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("subscribe timed out")
		}
		if codes := tok.(*paho.SubscribeToken).Result(); codes["secret/#"] != 0x80 {
			t.Errorf("bob by certificate subscribes to secret/#: %v, want 0x80", codes)
		}
	})

	t.Run("https", func(t *testing.T) {
		dial := func(config *tls.Config, opts ...weir.Option) *weir.Client {
			c, err := weir.Dial(ctx, s.Addr("https"), append(opts, weir.WithTLS(config))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		refused := func(config *tls.Config, opts ...weir.Option) error {
			c, err := weir.Dial(ctx, s.Addr("https"), append(opts, weir.WithTLS(config))...)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.ListStreams(ctx)
			return err
		}
		for _, proto := range []weir.Protocol{weir.GRPC, weir.ConnectProto} {
			asBob := dial(bob, weir.WithProtocol(proto))
			if _, err := asBob.Publish(ctx, "orders.eu", weir.Record{Value: []byte("ok")}); err != nil {
				t.Errorf("%v: bob by certificate publishes to orders.eu: %v", proto, err)
			}
			wantDenied(t, "bob by certificate publishes to secret", func() error {
				_, err := asBob.Publish(ctx, "secret", weir.Record{Value: []byte("no")})
				return err
			}())
			// A bearer token or Basic wins over the certificate.
			asAlice := dial(bob, weir.WithProtocol(proto), weir.WithBasicAuth("alice", "pw-alice"))
			if _, err := asAlice.Publish(ctx, "secret", weir.Record{Value: []byte("alice")}); err != nil {
				t.Errorf("%v: Basic alice with bob's certificate: %v", proto, err)
			}
			if err := refused(mallory, weir.WithProtocol(proto)); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%v: a certificate of no user: %v, want Unauthenticated", proto, err)
			}
			if err := refused(ts.ca.ClientConfig(), weir.WithProtocol(proto)); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%v: no certificate, no credentials: %v, want Unauthenticated", proto, err)
			}
		}
	})
}

// TestAuthRefusalsMetric: refused logins and refused operations are counted
// per protocol and user in weir_auth_refusals_total, users of the file
// under their names and any other name under "(unknown)".
func TestAuthRefusalsMetric(t *testing.T) {
	s := startAuthzServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	createAuthzResources(t, ctx, s)

	// Refused logins: bob with a wrong password, and zed, who is no user.
	for _, user := range []string{"bob", "zed"} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.RequestRetries(0),
			kgo.SASL(scram.Auth{User: user, Pass: "wrong"}.AsSha256Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := cl.Ping(pctx); err == nil {
			t.Errorf("kafka %s with a wrong password was let in", user)
		}
		pcancel()
		cl.Close()
		if _, err := amqp091.Dial("amqp://" + user + ":wrong@" + s.Addr("amqp") + "/"); err == nil {
			t.Errorf("amqp %s with a wrong password was let in", user)
		}
		if err := pahoPublish(pahoOptions("tcp://"+s.Addr("mqtt"), "m-"+user).SetUsername(user).SetPassword("wrong")); err == nil {
			t.Errorf("mqtt %s with a wrong password was let in", user)
		}
		c, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth(user, "wrong"))
		if err == nil {
			_, err = c.ListStreams(ctx)
			c.Close()
		}
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("http %s with a wrong password: %v", user, err)
		}
	}

	// Refused operations of bob on each protocol.
	kc := kafkaAs(t, s, "bob")
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("no")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("kafka produce to secret: %v", err)
	}
	sdk, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth("bob", "pw-bob"))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	wantDenied(t, "sdk publish to secret", func() error { _, err := sdk.Publish(ctx, "secret", weir.Record{}); return err }())
	mc := paho.NewClient(pahoOptions("tcp://"+s.Addr("mqtt"), "m-bob-ok").SetUsername("bob").SetPassword("pw-bob"))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	tok := mc.Subscribe("secret/#", 1, nil)
	tok.WaitTimeout(10 * time.Second)
	mc.Disconnect(100)

	r := s.users.Refusals()
	for _, p := range []string{refusalKafka, refusalAMQP, refusalMQTT, refusalHTTP} {
		if n := r.Count(p, auth.RefusalAuthentication, "bob"); n < 1 {
			t.Errorf("%s authentication refusals of bob: %d", p, n)
		}
		if n := r.Count(p, auth.RefusalAuthentication, auth.UnknownUser); n < 1 {
			t.Errorf("%s authentication refusals of unknown users: %d", p, n)
		}
		if n := r.Count(p, auth.RefusalAuthentication, "zed"); n != 0 {
			t.Errorf("%s: zed, who is no user, has a label of his own", p)
		}
	}
	for _, p := range []string{refusalKafka, refusalMQTT, refusalHTTP} {
		if n := r.Count(p, auth.RefusalAuthorization, "bob"); n < 1 {
			t.Errorf("%s authorization refusals of bob: %d", p, n)
		}
	}
	if n := r.Count(refusalHTTP, auth.RefusalAuthorization, "alice"); n != 0 {
		t.Errorf("alice, who may do everything, was refused %d times", n)
	}

	// And on /metrics.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr("http")+"/metrics", nil)
	req.SetBasicAuth("alice", "pw-alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`weir_auth_refusals_total{kind="authentication",protocol="amqp",user="bob"}`,
		`weir_auth_refusals_total{kind="authentication",protocol="kafka",user="(unknown)"}`,
		`weir_auth_refusals_total{kind="authorization",protocol="http",user="bob"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
