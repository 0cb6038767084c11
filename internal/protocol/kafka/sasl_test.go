package kafka_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weirmq/weir/internal/protocol/kafka"
	"github.com/weirmq/weir/internal/server"
)

// testAuthenticator knows users with passwords (PLAIN) and SCRAM
// credentials derived from the same passwords.
type testAuthenticator struct {
	passwords map[string]string
	scram     map[string]map[string]kafka.SCRAMCredentials // mechanism → user
}

func newTestAuthenticator(t *testing.T, users map[string]string) *testAuthenticator {
	a := &testAuthenticator{passwords: users, scram: make(map[string]map[string]kafka.SCRAMCredentials)}
	for _, mech := range []string{kafka.MechanismSCRAMSHA256, kafka.MechanismSCRAMSHA512} {
		a.scram[mech] = make(map[string]kafka.SCRAMCredentials)
		for u, p := range users {
			c, err := kafka.NewSCRAMCredentials(mech, p, nil, 4096)
			if err != nil {
				t.Fatal(err)
			}
			a.scram[mech][u] = c
		}
	}
	return a
}

func (a *testAuthenticator) Mechanisms() []string {
	return []string{kafka.MechanismPlain, kafka.MechanismSCRAMSHA256, kafka.MechanismSCRAMSHA512}
}

func (a *testAuthenticator) Plain(user, password string) error {
	if p, ok := a.passwords[user]; !ok || p != password {
		return kafka.ErrAuthenticationFailed
	}
	return nil
}

func (a *testAuthenticator) SCRAM(mechanism, user string) (kafka.SCRAMCredentials, error) {
	c, ok := a.scram[mechanism][user]
	if !ok {
		return kafka.SCRAMCredentials{}, kafka.ErrAuthenticationFailed
	}
	return c, nil
}

// TestSASL authenticates franz-go clients with PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 against an authenticator, and checks that wrong passwords,
// unknown users and unauthenticated requests are refused.
func TestSASL(t *testing.T) {
	auth := newTestAuthenticator(t, map[string]string{"alice": "wonderland", "bob,=x": "builder"})
	w := startWeir(t, func(c *server.Config) { c.KafkaAuthenticator = auth })
	ctx := testContext(t)
	mechs := map[string]func(user, pass string) sasl.Mechanism{
		"PLAIN":         func(u, p string) sasl.Mechanism { return plain.Auth{User: u, Pass: p}.AsMechanism() },
		"SCRAM-SHA-256": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha256Mechanism() },
		"SCRAM-SHA-512": func(u, p string) sasl.Mechanism { return scram.Auth{User: u, Pass: p}.AsSha512Mechanism() },
	}
	for name, mech := range mechs {
		t.Run(name, func(t *testing.T) {
			for _, u := range []struct{ user, pass string }{{"alice", "wonderland"}, {"bob,=x", "builder"}} {
				cl := w.client(t, kgo.SASL(mech(u.user, u.pass)), kgo.DefaultProduceTopic("secure"), kgo.AllowAutoTopicCreation())
				if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(name)}).FirstErr(); err != nil {
					t.Fatalf("%s: produce as %q: %v", name, u.user, err)
				}
			}
			for _, u := range []struct{ user, pass string }{{"alice", "wrong"}, {"mallory", "wonderland"}} {
				cl := w.client(t, kgo.SASL(mech(u.user, u.pass)), kgo.RequestRetries(0))
				cctx, cancel := context.WithTimeout(ctx, 5e9)
				err := cl.Ping(cctx)
				cancel()
				if !errors.Is(err, kerr.SaslAuthenticationFailed) {
					t.Errorf("%s as %q with a bad password: %v, want SASL_AUTHENTICATION_FAILED", name, u.user, err)
				}
			}
		})
	}

	// Without SASL, a request other than ApiVersions closes the connection.
	c := dial(t, w.addr)
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 4
	writeFrame(t, c, requestFrame(3, 4, 1, "raw", md.AppendTo(nil)))
	var b [1]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Errorf("an unauthenticated Metadata request was answered (%d bytes)", n)
	}
}

// TestSASLOff asks for SASL of a node without an authenticator:
// UNSUPPORTED_SASL_MECHANISM with an empty mechanism list.
func TestSASLOff(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version = 1
	req.Mechanism = "PLAIN"
	resp, err := req.RequestWith(ctx, w.client(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(resp.SupportedMechanisms) != 0 {
		t.Errorf("handshake with SASL off: error %d, mechanisms %v", resp.ErrorCode, resp.SupportedMechanisms)
	}
	cl := w.client(t, kgo.SASL(plain.Auth{User: "a", Pass: "b"}.AsMechanism()), kgo.RequestRetries(0))
	if err := cl.Ping(ctx); !errors.Is(err, kerr.UnsupportedSaslMechanism) {
		t.Errorf("a SASL client against a node without SASL: %v", err)
	}
}
