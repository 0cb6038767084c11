package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/auth"
)

// writeUsers writes a users file with alice (password "wonderland") and
// returns its path and a bearer token of alice.
func writeUsers(t *testing.T) (path, token string) {
	t.Helper()
	u := auth.New()
	if err := u.Add("alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	tok, err := u.NewToken("alice")
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, tok
}

// startAuthServer starts a server with the users file and every listener
// on a free loopback port.
func startAuthServer(t *testing.T) (s *Server, token string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Users, token = writeUsers(t)
	s = newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, token
}

// TestKafkaSASLWithUsersFile runs franz-go's SCRAM-SHA-256, SCRAM-SHA-512
// and PLAIN clients against the users file: the right password produces
// and consumes, a wrong one and no SASL at all are refused.
func TestKafkaSASLWithUsersFile(t *testing.T) {
	s, _ := startAuthServer(t)
	addr := s.Addr("kafka")
	mechanisms := func(password string) map[string]sasl.Mechanism {
		return map[string]sasl.Mechanism{
			"SCRAM-SHA-256": scram.Auth{User: "alice", Pass: password}.AsSha256Mechanism(),
			"SCRAM-SHA-512": scram.Auth{User: "alice", Pass: password}.AsSha512Mechanism(),
			"PLAIN":         plain.Auth{User: "alice", Pass: password}.AsMechanism(),
		}
	}
	for name, mech := range mechanisms("wonderland") {
		t.Run(name, func(t *testing.T) {
			topic := "t-" + strings.ToLower(strings.ReplaceAll(name, "-", ""))
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(mech), kgo.DefaultProduceTopic(topic),
				kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("hello " + name)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			fetches := cl.PollFetches(ctx)
			if err := fetches.Err(); err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "hello "+name {
				t.Errorf("fetched %d records", len(recs))
			}
		})
	}
	for name, mech := range mechanisms("looking-glass") {
		t.Run(name+" wrong password", func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(mech), kgo.RequestRetries(0))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := cl.Ping(ctx); err == nil {
				t.Error("wrong password accepted")
			}
		})
	}
	t.Run("no SASL", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("t"), kgo.RequestRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err == nil {
			t.Error("produce without SASL accepted")
		}
	})
}

// TestAMQPWithUsersFile: amqp091-go with the right credentials (PLAIN and
// AMQPLAIN) works; wrong ones get 403 ACCESS_REFUSED.
func TestAMQPWithUsersFile(t *testing.T) {
	s, _ := startAuthServer(t)
	addr := s.Addr("amqp")
	for _, mech := range []amqp091.Authentication{
		&amqp091.PlainAuth{Username: "alice", Password: "wonderland"},
		&amqp091.AMQPlainAuth{Username: "alice", Password: "wonderland"},
	} {
		conn, err := amqp091.DialConfig("amqp://"+addr+"/", amqp091.Config{SASL: []amqp091.Authentication{mech}})
		if err != nil {
			t.Fatalf("%s: %v", mech.Mechanism(), err)
		}
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("q", true, false, false, false, nil); err != nil {
			t.Errorf("%s: declare: %v", mech.Mechanism(), err)
		}
		conn.Close()
	}
	for _, url := range []string{
		"amqp://alice:looking-glass@" + addr + "/",
		"amqp://mallory:wonderland@" + addr + "/",
		"amqp://guest:guest@" + addr + "/",
	} {
		conn, err := amqp091.Dial(url)
		if err == nil {
			conn.Close()
			t.Errorf("%s: accepted", url)
			continue
		}
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != amqp091.AccessRefused {
			t.Errorf("%s: %v, want 403 ACCESS_REFUSED", url, err)
		}
	}
}

// TestHTTPWithUsersFile: the SDK with a token or Basic credentials works;
// without, or with wrong ones, calls fail with ErrUnauthenticated in every
// protocol. /healthz stays open; /metrics needs credentials.
func TestHTTPWithUsersFile(t *testing.T) {
	s, token := startAuthServer(t)
	addr := s.Addr("http")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for name, opt := range map[string]weir.Option{"token": weir.WithToken(token), "basic": weir.WithBasicAuth("alice", "wonderland")} {
		for _, proto := range []weir.Protocol{weir.GRPC, weir.ConnectProto} {
			c, err := weir.Dial(ctx, addr, opt, weir.WithProtocol(proto))
			if err != nil {
				t.Fatalf("%s %v: Dial: %v", name, proto, err)
			}
			if _, err := c.ListStreams(ctx); err != nil {
				t.Errorf("%s %v: ListStreams: %v", name, proto, err)
			}
			if info, err := c.ServerInfo(ctx); err != nil || info.User != "alice" || info.Version != "test-1.2.3" {
				t.Errorf("%s %v: ServerInfo = %+v, %v; want user alice, version test-1.2.3", name, proto, info, err)
			}
			c.Close()
		}
	}
	// A streaming call (a subscription) carries the token too.
	c, err := weir.Dial(ctx, addr, weir.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateStream(ctx, weir.StreamConfig{Name: "s", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "s", weir.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	cons, err := c.Consume(ctx, "s", func(_ context.Context, m *weir.Message) error {
		select {
		case got <- string(m.Value):
		default:
		}
		return nil
	}, weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatalf("Consume with token: %v", err)
	}
	select {
	case v := <-got:
		if v != "v" {
			t.Errorf("consumed %q", v)
		}
	case <-ctx.Done():
		t.Error("nothing consumed with a token")
	}
	cons.Close(ctx)
	stranger, err := weir.Dial(ctx, addr, weir.WithoutDialCheck())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Consume(ctx, "s", func(context.Context, *weir.Message) error { return nil }); !errors.Is(err, weir.ErrUnauthenticated) {
		t.Errorf("Consume without credentials = %v, want ErrUnauthenticated", err)
	}

	for name, opts := range map[string][]weir.Option{
		"none":           nil,
		"wrong token":    {weir.WithToken(token + "x")},
		"wrong password": {weir.WithBasicAuth("alice", "looking-glass")},
		"unknown user":   {weir.WithBasicAuth("mallory", "wonderland")},
	} {
		for _, proto := range []weir.Protocol{weir.GRPC, weir.ConnectProto, weir.ConnectJSON} {
			_, err := weir.Dial(ctx, addr, append(opts, weir.WithProtocol(proto))...)
			if !errors.Is(err, weir.ErrUnauthenticated) {
				t.Errorf("%s %v: Dial = %v, want ErrUnauthenticated", name, proto, err)
			}
		}
	}

	base := "http://" + addr
	if resp, _, err := get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without credentials: %v %v", resp, err)
	}
	resp, _, err := get(base + "/metrics")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without credentials: %v %v", resp, err)
	}
	if got := strings.Join(resp.Header.Values("WWW-Authenticate"), "; "); !strings.Contains(got, "Bearer") || !strings.Contains(got, "Basic") {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	for _, header := range []string{"Bearer " + token, "bearer " + token} {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/metrics with %q: %d", header[:6], resp.StatusCode)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	req.SetBasicAuth("alice", "wonderland")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with Basic: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestAuthOnListensEverywhere: with a users file, an address without a
// host binds every interface.
func TestAuthOnListensEverywhere(t *testing.T) {
	cfg := testConfig(t)
	cfg.Users, _ = writeUsers(t)
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr, cfg.HTTPAddr = ":0", "", "", ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(s.Addr("kafka"))
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		t.Errorf("kafka bound %s, want every interface", s.Addr("kafka"))
	}
}

// TestMQTTWithUsersFile: paho, over TCP and over WebSocket, with the right
// user name and password connects and publishes; a wrong password, an
// unknown user and none at all are refused with "bad user name or
// password".
func TestMQTTWithUsersFile(t *testing.T) {
	s, _ := startAuthServer(t)
	broker := "tcp://" + s.Addr("mqtt")
	connect := func(user, password string) error {
		opts := pahoOptions(broker, "c-"+user+password)
		if user != "" {
			opts.SetUsername(user).SetPassword(password)
		}
		return pahoPublish(opts)
	}
	if err := connect("alice", "wonderland"); err != nil {
		t.Errorf("right password: %v", err)
	}
	for _, b := range []string{broker, "ws://" + s.Addr("http") + "/mqtt"} {
		// Over WebSocket the HTTP layer lets the upgrade through (browsers
		// cannot send headers) and the MQTT CONNECT is checked.
		broker = b
		if err := connect("alice", "wonderland"); err != nil {
			t.Errorf("%s: right password: %v", b, err)
		}
		for _, c := range [][2]string{{"alice", "looking-glass"}, {"mallory", "wonderland"}, {"", ""}} {
			err := connect(c[0], c[1])
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "bad user name or password") {
				t.Errorf("%s: user %q password %q: %v, want bad user name or password", b, c[0], c[1], err)
			}
		}
	}
}

// TestSafeDefault: without a users file, addresses without a host or with
// the unspecified one bind loopback, a non-loopback host is refused unless
// insecure-listen-any is true, and the log says so.
func TestSafeDefault(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr, cfg.HTTPAddr = ":0", "0.0.0.0:0", "[::]:0", "localhost:0"
	var logs lockedBuffer
	s, err := New(cfg, slogTo(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Endpoints() {
		host, _, _ := net.SplitHostPort(e.Addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s bound %s, want loopback", e.Name, e.Addr)
		}
	}
	if len(s.Endpoints()) != 4 {
		t.Errorf("endpoints %v", s.Endpoints())
	}
	if !strings.Contains(logs.String(), "authentication is off") || !strings.Contains(logs.String(), "loopback only") {
		t.Errorf("log does not say so:\n%s", logs.String())
	}
	// Without authentication, the API answers without credentials.
	c, err := weir.Dial(t.Context(), s.Addr("http"))
	if err != nil {
		t.Fatalf("Dial without auth: %v", err)
	}
	c.Close()

	bad := testConfig(t)
	bad.KafkaAddr = "192.0.2.10:9092"
	err = bad.Validate()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "kafka-addr") || !strings.Contains(err.Error(), "insecure-listen-any") {
		t.Errorf("non-loopback host without auth: %v", err)
	}
	bad.HTTPAddr = "weir.example.com:8080"
	bad.KafkaAddr = ""
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "http-addr") {
		t.Errorf("host name without auth: %v", err)
	}
	bad.InsecureListenAny = "true"
	if err := bad.Validate(); err != nil {
		t.Errorf("with insecure-listen-any: %v", err)
	}
	bad.InsecureListenAny = "perhaps"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "insecure-listen-any") {
		t.Errorf("insecure-listen-any perhaps: %v", err)
	}
	bad.InsecureListenAny, bad.Users = "false", "users.yaml"
	if err := bad.Validate(); err != nil {
		t.Errorf("with users: %v", err)
	}

	// insecure-listen-any keeps ":0" on every interface.
	open := testConfig(t)
	open.KafkaAddr, open.AMQPAddr, open.MQTTAddr, open.HTTPAddr = ":0", "", "", ""
	open.InsecureListenAny = "true"
	o := newTestServer(t, open)
	if err := o.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(o.Addr("kafka"))
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		t.Errorf("insecure-listen-any: kafka bound %s", o.Addr("kafka"))
	}
}

// TestBadUsersFile: Start fails with an error naming the file and line.
func TestBadUsersFile(t *testing.T) {
	cfg := testConfig(t)
	cfg.Users = filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, cfg.Users, "users:\n  - name: alice\n    password: secret\n")
	s := newTestServer(t, cfg)
	err := s.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "users.yaml: line 3") || !strings.Contains(err.Error(), "field password") {
		t.Errorf("Start = %v", err)
	}
	cfg = testConfig(t)
	cfg.Users = filepath.Join(t.TempDir(), "missing.yaml")
	s = newTestServer(t, cfg)
	if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Start with a missing file = %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// slogTo logs to w as text, at every level.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lockedBuffer is a log destination safe to read while goroutines log.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestKcatSCRAMWithUsersFile: librdkafka (kcat), a second SCRAM
// implementation, produces with SCRAM-SHA-512 and consumes with
// SCRAM-SHA-256; a wrong password is refused. kcat is installed by .ci/run.
func TestKcatSCRAMWithUsersFile(t *testing.T) {
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not installed (apt-get install kcat; .ci/run does it): %v", err)
	}
	s, _ := startAuthServer(t)
	kcat := func(mech, password, stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, append([]string{"-b", s.Addr("kafka"),
			"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=alice", "-X", "sasl.password=" + password}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("%w: %s", err, stderr.String())
		}
		return string(out), nil
	}
	if _, err := kcat("SCRAM-SHA-512", "wonderland", "one\ntwo\n", "-P", "-t", "kc"); err != nil {
		t.Fatalf("produce: %v", err)
	}
	out, err := kcat("SCRAM-SHA-256", "wonderland", "", "-C", "-t", "kc", "-o", "beginning", "-e", "-q")
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if out != "one\ntwo\n" {
		t.Errorf("consumed %q", out)
	}
	if _, err := kcat("SCRAM-SHA-256", "looking-glass", "", "-L", "-m", "5"); err == nil {
		t.Error("metadata with a wrong password succeeded")
	}
}
