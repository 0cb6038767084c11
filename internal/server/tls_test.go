package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/tlstest"
)

// tlsSetup is a throwaway CA, a server certificate it signed for the
// loopback interface, and a configuration with every listener, plain and
// TLS, on a free loopback port serving that certificate.
type tlsSetup struct {
	dir    string
	ca     *tlstest.CA
	server tlstest.Pair
	cfg    Config
}

func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "weir-test")
	srv := ca.Server(t, dir, "server", "127.0.0.1", "localhost")
	cfg := testConfig(t)
	cfg.KafkaTLSAddr, cfg.AMQPTLSAddr, cfg.MQTTTLSAddr, cfg.HTTPSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = srv.CertFile, srv.KeyFile
	return &tlsSetup{dir: dir, ca: ca, server: srv, cfg: cfg}
}

// requireClientCerts makes the setup verify client certificates against
// its CA, with the given tls-client-auth.
func (ts *tlsSetup) requireClientCerts(mode string) {
	ts.cfg.TLSClientCAFile, ts.cfg.TLSClientAuth = ts.ca.CertFile, mode
}

func (ts *tlsSetup) start(t *testing.T) *Server {
	t.Helper()
	s := newTestServer(t, ts.cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// kafkaTLSRoundTrip produces a record over TLS with franz-go and consumes
// it back; extra are more client options (SASL).
func kafkaTLSRoundTrip(t *testing.T, addr, topic string, config *tls.Config, extra ...kgo.Opt) error {
	t.Helper()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: config}
	opts := append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.Dialer(dialer.DialContext), kgo.DefaultProduceTopic(topic),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation(),
		kgo.RequestRetries(1)}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// A refused client retries every few seconds; a served one is done in
	// well under a second.
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over tls")}).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "over tls" {
		return fmt.Errorf("fetched %d records", len(recs))
	}
	return nil
}

// amqpTLSRoundTrip publishes to a queue over amqps with amqp091-go and
// gets the message back.
func amqpTLSRoundTrip(addr, queue string, config *tls.Config) error {
	conn, err := amqp091.DialTLS("amqps://guest:guest@"+addr+"/", config)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.Publish("", queue, false, false, amqp091.Publishing{Body: []byte("amqps")}); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msg, ok, err := ch.Get(queue, true)
		if err != nil {
			return err
		}
		if ok {
			if string(msg.Body) != "amqps" {
				return fmt.Errorf("got %q", msg.Body)
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no message")
}

// pahoConnect connects paho to broker ("ssl://…", "wss://…") with config
// and publishes one message at QoS 1.
func pahoConnect(broker, clientID string, config *tls.Config) error {
	return pahoPublish(pahoOptions(broker, clientID).SetTLSConfig(config))
}

// pahoOptions are paho's options for one attempt to connect to broker.
func pahoOptions(broker, clientID string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetConnectRetry(false).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
}

// pahoPublish connects paho with opts and publishes one message at QoS 1.
func pahoPublish(opts *paho.ClientOptions) error {
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	defer c.Disconnect(100)
	pub := c.Publish("sensors/1", 1, false, "21.5")
	if !pub.WaitTimeout(10 * time.Second) {
		return errors.New("publish timed out")
	}
	return pub.Error()
}

// sdkCall dials the HTTPS listener with the SDK over gRPC (HTTP/2) and
// lists the streams.
func sdkCall(ctx context.Context, addr string, config *tls.Config, opts ...weir.Option) error {
	c, err := weir.Dial(ctx, addr, append(opts, weir.WithTLS(config))...)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.ListStreams(ctx)
	return err
}

// runTool runs a client program (kcat, mosquitto_pub, mosquitto_sub) with
// stdin and returns its output; a missing program fails the test.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (.ci/run installs kcat and mosquitto-clients): %v", name, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return stdout.String(), nil
}

// pikaTLSScript publishes a message with pika over amqps to the host and
// port of its arguments, trusting the CA file of the third, and prints it
// as it gets it back.
const pikaTLSScript = `
import ssl, sys, time
import pika
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
params = pika.ConnectionParameters(host=host, port=port, ssl_options=pika.SSLOptions(context, host))
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.queue_declare("pika-tls", durable=True)
ch.confirm_delivery()
ch.basic_publish("", "pika-tls", b"via pika")
for _ in range(200):
    method, props, body = ch.basic_get("pika-tls", auto_ack=True)
    if body is not None:
        print(body.decode())
        break
    time.sleep(0.05)
conn.close()
`

// TestTLSListeners: real clients of every protocol over TLS, trusting the
// test CA: franz-go and kcat (security.protocol=ssl) on Kafka, amqp091-go
// and pika on amqps, mosquitto and paho on MQTT over TLS and over WSS on the HTTPS
// port, the SDK over gRPC (HTTP/2 by ALPN) and curl-like HTTP/1.1 on HTTPS.
// Plain-text clients at a TLS port are refused, and the plain listeners
// still serve beside the TLS ones.
func TestTLSListeners(t *testing.T) {
	ts := newTLSSetup(t)
	s := ts.start(t)
	trust := ts.ca.ClientConfig()

	t.Run("kafka franz-go", func(t *testing.T) {
		if err := kafkaTLSRoundTrip(t, s.Addr("kafka-tls"), "franz-tls", trust); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("kafka kcat", func(t *testing.T) {
		kcat := []string{"-b", s.Addr("kafka-tls"), "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + ts.ca.CertFile}
		if _, err := runTool(t, "one\ntwo\n", "kcat", append(kcat, "-P", "-t", "kcat-tls")...); err != nil {
			t.Fatal(err)
		}
		out, err := runTool(t, "", "kcat", append(kcat, "-C", "-t", "kcat-tls", "-o", "beginning", "-e", "-q")...)
		if err != nil || out != "one\ntwo\n" {
			t.Fatalf("consumed %q, %v", out, err)
		}
		// librdkafka checks the server's name against its certificate.
		if _, err := runTool(t, "", "kcat", "-b", s.Addr("kafka-tls"), "-X", "security.protocol=ssl", "-L", "-m", "5"); err == nil {
			t.Error("kcat without the CA trusted the server")
		}
	})
	t.Run("amqps", func(t *testing.T) {
		if err := amqpTLSRoundTrip(s.Addr("amqp-tls"), "q-tls", trust); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("amqps pika", func(t *testing.T) {
		// Debian's python3-pika (.ci/run installs it) with Python's ssl module.
		host, port := hostPort(t, s.Addr("amqp-tls"))
		out, err := runTool(t, "", "/usr/bin/python3", "-c", pikaTLSScript, host, port, ts.ca.CertFile)
		if err != nil || out != "via pika\n" {
			t.Fatalf("pika over TLS: %q, %v", out, err)
		}
	})
	t.Run("mqtt mosquitto", func(t *testing.T) {
		host, port := hostPort(t, s.Addr("mqtt-tls"))
		tlsArgs := []string{"-h", host, "-p", port, "--cafile", ts.ca.CertFile, "-q", "1"}
		sub := make(chan string, 1)
		go func() {
			out, err := runTool(t, "", "mosquitto_sub", append(tlsArgs, "-t", "tls/m", "-C", "1", "-W", "15")...)
			if err != nil {
				out = err.Error()
			}
			sub <- out
		}()
		waitRoute(t, s.Broker(), "tls.m", "mqtt")
		if _, err := runTool(t, "", "mosquitto_pub", append(tlsArgs, "-t", "tls/m", "-m", "over 8883")...); err != nil {
			t.Fatal(err)
		}
		if got := <-sub; got != "over 8883\n" {
			t.Errorf("mosquitto_sub got %q", got)
		}
	})
	t.Run("mqtt paho ssl and wss", func(t *testing.T) {
		for _, broker := range []string{"ssl://" + s.Addr("mqtt-tls"), "wss://" + s.Addr("https") + "/mqtt"} {
			if err := pahoConnect(broker, "paho-tls", trust); err != nil {
				t.Errorf("%s: %v", broker, err)
			}
		}
	})
	t.Run("https", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		for _, proto := range []weir.Protocol{weir.GRPC, weir.ConnectProto, weir.ConnectJSON} {
			if err := sdkCall(ctx, s.Addr("https"), trust, weir.WithProtocol(proto)); err != nil {
				t.Errorf("SDK %v over TLS: %v", proto, err)
			}
			if err := sdkCall(ctx, "https://"+s.Addr("https"), trust, weir.WithProtocol(proto)); err != nil {
				t.Errorf("SDK %v to an https:// URL: %v", proto, err)
			}
		}
		// HTTP/2 by ALPN, and HTTP/1.1 for clients that only speak it.
		for _, h2 := range []bool{true, false} {
			tr := &http.Transport{TLSClientConfig: trust.Clone(), ForceAttemptHTTP2: h2}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + s.Addr("https") + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != http.StatusOK || resp.ProtoMajor != want {
				t.Errorf("/healthz: %s %s, want HTTP/%d", resp.Status, resp.Proto, want)
			}
			tr.CloseIdleConnections()
		}
		// Without the CA the server is not trusted.
		if err := sdkCall(ctx, s.Addr("https"), &tls.Config{}); err == nil {
			t.Error("SDK trusted the server without its CA")
		}
	})
	t.Run("plain text at TLS ports", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka-tls")), kgo.RequestRetries(0), kgo.DialTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := cl.Ping(ctx); err == nil {
			t.Error("plain Kafka client served on the TLS port")
		}
		cl.Close()
		if conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp-tls") + "/"); err == nil {
			conn.Close()
			t.Error("plain AMQP client served on the amqps port")
		}
		if resp, _, err := get("http://" + s.Addr("https") + "/healthz"); err == nil && resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the HTTPS port")
		}
	})
	t.Run("plain listeners still serve", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := weir.Dial(ctx, s.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := amqpTLSRoundTrip(s.Addr("amqp-tls"), "q-both", trust); err != nil {
			t.Fatal(err)
		}
		conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
}

// TestTLSClientCertificates: with tls-client-auth require, clients with a
// certificate of the configured CA are served on every TLS listener, and
// clients without one, or with one of another CA, are refused during the
// handshake. A per-listener override (https=none) leaves HTTPS open to
// clients without certificates.
func TestTLSClientCertificates(t *testing.T) {
	ts := newTLSSetup(t)
	ts.requireClientCerts("require,https=request")
	s := ts.start(t)
	alice := ts.ca.Client(t, ts.dir, "alice")
	other := tlstest.NewCA(t, ts.dir, "other")
	mallory := other.Client(t, ts.dir, "mallory")
	// Go's client sends no certificate its server's CAs did not sign;
	// mallory's is sent anyway, as other clients would.
	forced := ts.ca.ClientConfig()
	forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &mallory.TLS, nil }
	clients := map[string]*tls.Config{
		"alice":              ts.ca.ClientConfig(alice),
		"no certificate":     ts.ca.ClientConfig(),
		"another CA's (mal)": forced,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for name, config := range clients {
		want := name == "alice"
		check := func(what string, err error) {
			t.Helper()
			if (err == nil) != want {
				t.Errorf("%s, client %s: err = %v, want success %v", what, name, err, want)
			}
		}
		check("kafka", kafkaTLSRoundTrip(t, s.Addr("kafka-tls"), "t-"+strings.Fields(name)[0], config))
		check("amqps", amqpTLSRoundTrip(s.Addr("amqp-tls"), "q-"+strings.Fields(name)[0], config))
		check("mqtt", pahoConnect("ssl://"+s.Addr("mqtt-tls"), "c-"+strings.Fields(name)[0], config))
		// https=request: no certificate is let in, a bad one is not.
		err := sdkCall(ctx, s.Addr("https"), config)
		if wantHTTPS := name != "another CA's (mal)"; (err == nil) != wantHTTPS {
			t.Errorf("https, client %s: err = %v, want success %v", name, err, wantHTTPS)
		}
	}

	// mosquitto and kcat present their certificates from files.
	host, port := hostPort(t, s.Addr("mqtt-tls"))
	mqttArgs := []string{"-h", host, "-p", port, "--cafile", ts.ca.CertFile, "-t", "c/1", "-m", "x", "-q", "1"}
	if _, err := runTool(t, "", "mosquitto_pub", append(mqttArgs, "--cert", alice.CertFile, "--key", alice.KeyFile)...); err != nil {
		t.Errorf("mosquitto_pub with a client certificate: %v", err)
	}
	if _, err := runTool(t, "", "mosquitto_pub", mqttArgs...); err == nil {
		t.Error("mosquitto_pub without a client certificate was served")
	}
	kcat := []string{"-b", s.Addr("kafka-tls"), "-X", "security.protocol=ssl", "-X", "ssl.ca.location=" + ts.ca.CertFile, "-L", "-m", "5"}
	if _, err := runTool(t, "", "kcat", append(kcat, "-X", "ssl.certificate.location="+alice.CertFile, "-X", "ssl.key.location="+alice.KeyFile)...); err != nil {
		t.Errorf("kcat with a client certificate: %v", err)
	}
	if _, err := runTool(t, "", "kcat", kcat...); err == nil {
		t.Error("kcat without a client certificate was served")
	}
}

// TestKafkaSASLOverTLS: SASL_SSL, SCRAM under TLS, with franz-go and kcat.
func TestKafkaSASLOverTLS(t *testing.T) {
	ts := newTLSSetup(t)
	ts.cfg.Users, _ = writeUsers(t)
	s := ts.start(t)
	trust := ts.ca.ClientConfig()
	mech := scram.Auth{User: "alice", Pass: "wonderland"}.AsSha512Mechanism()
	if err := kafkaTLSRoundTrip(t, s.Addr("kafka-tls"), "sasl-ssl", trust, kgo.SASL(mech)); err != nil {
		t.Fatalf("SCRAM over TLS: %v", err)
	}
	if err := kafkaTLSRoundTrip(t, s.Addr("kafka-tls"), "sasl-ssl", trust); err == nil {
		t.Error("TLS without SASL was served by a server with users")
	}
	kcat := []string{"-b", s.Addr("kafka-tls"), "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + ts.ca.CertFile,
		"-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=alice"}
	if out, err := runTool(t, "", "kcat", append(kcat, "-X", "sasl.password=wonderland", "-C", "-t", "sasl-ssl", "-o", "beginning", "-e", "-q")...); err != nil || out != "over tls\n" {
		t.Errorf("kcat SASL_SSL: %q, %v", out, err)
	}
	if _, err := runTool(t, "", "kcat", append(kcat, "-X", "sasl.password=looking-glass", "-L", "-m", "5")...); err == nil {
		t.Error("kcat SASL_SSL with a wrong password was served")
	}
}

// TestTLSConfigErrors: bad TLS options stop Validate, and bad files stop
// Start, with an error that names the option and the file.
func TestTLSConfigErrors(t *testing.T) {
	ts := newTLSSetup(t)
	for _, tt := range []struct {
		name   string
		modify func(c *Config)
		want   []string
	}{
		{"no certificate", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "", "" }, []string{"tls-cert-file", "kafka-tls-addr turns a TLS listener on"}},
		{"no key", func(c *Config) { c.TLSKeyFile = "" }, []string{"tls-key-file", "must be set with tls-cert-file"}},
		{"key without certificate", func(c *Config) {
			c.KafkaTLSAddr, c.AMQPTLSAddr, c.MQTTTLSAddr, c.HTTPSAddr, c.TLSCertFile = "", "", "", "", ""
		}, []string{"tls-cert-file", "must be set with tls-key-file"}},
		{"unknown mode", func(c *Config) { c.TLSClientAuth = "maybe" }, []string{"tls-client-auth", `"maybe"`, "want none, request or require"}},
		{"unknown listener", func(c *Config) { c.TLSClientAuth = "kafka=require" }, []string{"tls-client-auth", `unknown listener "kafka"`, "kafka-tls"}},
		{"listener twice", func(c *Config) { c.TLSClientAuth = "https=none,https=none" }, []string{"tls-client-auth", "given twice"}},
		{"require without CA", func(c *Config) { c.TLSClientAuth = "none,amqp-tls=require" }, []string{"tls-client-ca-file", "must be set"}},
		{"CA without verification", func(c *Config) { c.TLSClientCAFile = ts.ca.CertFile }, []string{"tls-client-ca-file", "tls-client-auth is none"}},
		{"old TLS", func(c *Config) { c.TLSMinVersion = "1.1" }, []string{"tls-min-version", "1.2 or 1.3"}},
		{"bad TLS address", func(c *Config) { c.MQTTTLSAddr = "8883" }, []string{"mqtt-tls-addr"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.cfg
			tt.modify(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to say %q", err, w)
				}
			}
		})
	}

	other := ts.ca.Server(t, ts.dir, "other", "127.0.0.1")
	garbage := ts.dir + "/garbage.pem"
	writeFile(t, garbage, "not PEM\n")
	for _, tt := range []struct {
		name   string
		modify func(c *Config)
		want   []string
	}{
		{"missing certificate", func(c *Config) { c.TLSCertFile = ts.dir + "/missing.pem" }, []string{"tls-cert-file", "missing.pem", "no such file"}},
		{"missing key", func(c *Config) { c.TLSKeyFile = ts.dir + "/missing-key.pem" }, []string{"tls-key-file", "missing-key.pem", "no such file"}},
		{"key of another certificate", func(c *Config) { c.TLSKeyFile = other.KeyFile }, []string{"tls-cert-file " + ts.server.CertFile, "tls-key-file " + other.KeyFile, "does not match"}},
		{"certificate not PEM", func(c *Config) { c.TLSCertFile = garbage }, []string{"tls-cert-file " + garbage, "PEM"}},
		{"client CA not PEM", func(c *Config) { c.TLSClientCAFile, c.TLSClientAuth = garbage, "require" }, []string{"tls-client-ca-file " + garbage, "no PEM certificate"}},
		{"missing client CA", func(c *Config) { c.TLSClientCAFile, c.TLSClientAuth = ts.dir+"/nope.pem", "request" }, []string{"tls-client-ca-file", "nope.pem"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.cfg
			tt.modify(&c)
			s := newTestServer(t, c)
			err := s.Start(t.Context())
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Start() = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start() = %v, want it to say %q", err, w)
				}
			}
			if eps := s.Endpoints(); len(eps) != 0 {
				t.Errorf("listening after a failed start: %v", eps)
			}
		})
	}

	// The options load from YAML, environment and flags like the others.
	cfg, _, err := loadConfig(t, "https-addr: 127.0.0.1:8443\ntls-cert-file: c.pem\ntls-key-file: k.pem\ntls-client-auth: require,https=none\ntls-client-ca-file: ca.pem\n",
		map[string]string{"WEIR_TLS_MIN_VERSION": "1.3"}, "--amqp-tls-addr=127.0.0.1:5671")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPSAddr != "127.0.0.1:8443" || cfg.AMQPTLSAddr != "127.0.0.1:5671" || cfg.TLSMinVersion != "1.3" ||
		cfg.clientAuth("https") != tls.NoClientCert || cfg.clientAuth("amqp-tls") != tls.RequireAndVerifyClientCert {
		t.Errorf("loaded %+v", cfg)
	}
}

// peerSerial dials the TLS listener at addr and returns the serial number
// of the certificate it presents.
func peerSerial(t *testing.T, addr string, config *tls.Config) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, config)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSReload: a new certificate written over the files is served to
// new connections after ReloadTLS (SIGHUP) and, with tls-reload-interval,
// without it; files that do not make a good pair are refused and the
// listeners keep the certificate they had.
func TestTLSReload(t *testing.T) {
	ts := newTLSSetup(t)
	ts.cfg.TLSReloadInterval = 0
	s := ts.start(t)
	trust := ts.ca.ClientConfig()
	first := ts.server.TLS.Leaf.SerialNumber.String()
	for _, name := range tlsListenerNames {
		if got := peerSerial(t, s.Addr(name), trust); got != first {
			t.Errorf("%s serves %s, want %s", name, got, first)
		}
	}
	second := ts.ca.Server(t, ts.dir, "server", "127.0.0.1").TLS.Leaf.SerialNumber.String()
	if got := peerSerial(t, s.Addr("kafka-tls"), trust); got != first {
		t.Errorf("before the reload: serves %s, want the first certificate", got)
	}
	if err := s.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	for _, name := range tlsListenerNames {
		if got := peerSerial(t, s.Addr(name), trust); got != second {
			t.Errorf("after the reload, %s serves %s, want %s", name, got, second)
		}
	}
	// A key that is not the certificate's: refused, the second stays.
	other := ts.ca.Server(t, ts.dir, "other", "127.0.0.1")
	tlstest.WriteFile(t, ts.server.KeyFile, mustRead(t, other.KeyFile))
	if err := s.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("ReloadTLS with a mismatched key = %v", err)
	}
	if got := peerSerial(t, s.Addr("https"), trust); got != second {
		t.Errorf("after a failed reload: serves %s, want %s", got, second)
	}

	// With tls-reload-interval, a change is picked up by itself.
	ts = newTLSSetup(t)
	ts.cfg.TLSReloadInterval = 20 * time.Millisecond
	s, trust = ts.start(t), ts.ca.ClientConfig()
	third := ts.ca.Server(t, ts.dir, "server", "127.0.0.1").TLS.Leaf.SerialNumber.String()
	deadline := time.Now().Add(10 * time.Second)
	for peerSerial(t, s.Addr("mqtt-tls"), trust) != third {
		if time.Now().After(deadline) {
			t.Fatal("the changed certificate was not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestTLSClientCertsAreAuthentication: without a users file, a TLS
// listener that requires client certificates may listen beyond loopback;
// the others stay on loopback.
func TestTLSClientCertsAreAuthentication(t *testing.T) {
	ts := newTLSSetup(t)
	ts.requireClientCerts("require,amqp-tls=request")
	ts.cfg.KafkaAddr, ts.cfg.AMQPAddr, ts.cfg.MQTTAddr, ts.cfg.HTTPAddr = "", "", "", ":0"
	ts.cfg.KafkaTLSAddr, ts.cfg.AMQPTLSAddr, ts.cfg.MQTTTLSAddr, ts.cfg.HTTPSAddr = "", ":0", "", ":0"
	s := ts.start(t)
	for name, wantAny := range map[string]bool{"http": false, "amqp-tls": false, "https": true} {
		host, _, _ := net.SplitHostPort(s.Addr(name))
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() != wantAny {
			t.Errorf("%s bound %s, want every interface: %v", name, s.Addr(name), wantAny)
		}
	}
	c := ts.cfg
	c.HTTPAddr, c.HTTPSAddr = "", "192.0.2.1:8443"
	if err := c.Validate(); err != nil {
		t.Errorf("https on another host with client certificates required: %v", err)
	}
	c.AMQPTLSAddr = "192.0.2.1:5671"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "amqp-tls-addr") {
		t.Errorf("amqps with client certificates only requested, on another host: %v", err)
	}
}
