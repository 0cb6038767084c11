package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL mechanisms the Kafka front end implements.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// ErrAuthenticationFailed is what an Authenticator returns for unknown
// users and wrong passwords (one error for both, so a client cannot tell
// which users exist).
var ErrAuthenticationFailed = errors.New("kafka: authentication failed")

// Authenticator checks the credentials of SASL clients. When Config has
// one, every connection must authenticate (SaslHandshake v1, then
// SaslAuthenticate) before any request other than ApiVersions; without one,
// SASL is off and a SaslHandshake gets UNSUPPORTED_SASL_MECHANISM with no
// mechanisms. The security issue backs it with a users file; tests use
// their own.
type Authenticator interface {
	// Mechanisms lists the mechanisms offered, of MechanismPlain,
	// MechanismSCRAMSHA256 and MechanismSCRAMSHA512.
	Mechanisms() []string
	// Plain checks a PLAIN user name and password.
	Plain(user, password string) error
	// SCRAM returns a user's stored credentials for a SCRAM mechanism
	// (NewSCRAMCredentials derives them from a password), so that the
	// password itself need not be stored. Unknown users:
	// ErrAuthenticationFailed.
	SCRAM(mechanism, user string) (SCRAMCredentials, error)
}

// saslState is a connection's progress through SASL.
type saslState struct {
	mechanism     string // chosen by SaslHandshake; "" before
	scram         *scramExchange
	authenticated bool
	user          string
}

// preAuthAPIs are the requests a connection may send before it
// authenticated.
var preAuthAPIs = []int16{int16(kmsg.ApiVersions), int16(kmsg.SASLHandshake), int16(kmsg.SASLAuthenticate)}

// ErrNotAuthenticated closes a connection that sent a request before
// authenticating.
var ErrNotAuthenticated = errors.New("kafka: request before SASL authentication")

// checkAuthenticated refuses requests before authentication when SASL is on.
func (c *conn) checkAuthenticated(key int16) error {
	if c.s.cfg.Authenticator == nil || c.sasl.authenticated || slices.Contains(preAuthAPIs, key) || c.certificateLogin() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotAuthenticated, kmsg.NameForKey(key))
}

// handleSASLHandshake answers SaslHandshake (key 17): it chooses the
// mechanism of the SaslAuthenticate exchange that follows (v1; v0's
// unframed tokens are not supported). With SASL off it answers
// UNSUPPORTED_SASL_MECHANISM and no mechanisms.
func handleSASLHandshake(c *conn, req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	a := c.s.cfg.Authenticator
	if a == nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		resp.SupportedMechanisms = []string{}
		return resp, nil
	}
	resp.SupportedMechanisms = a.Mechanisms()
	if req.Version < 1 {
		// v0 is advertised only because librdkafka (kcat, confluent-kafka)
		// turns SASL on only when ApiVersions lists SaslHandshake v0; it
		// then sends v1. A v0 exchange (unframed tokens) is refused.
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		c.closeAfterResponse = true
		return resp, nil
	}
	switch {
	case c.sasl.authenticated || c.sasl.mechanism != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !slices.Contains(resp.SupportedMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	default:
		c.sasl.mechanism = req.Mechanism
	}
	return resp, nil
}

// handleSASLAuthenticate answers SaslAuthenticate (key 36): one step of the
// chosen mechanism. A failure answers SASL_AUTHENTICATION_FAILED and then
// closes the connection, as Kafka does.
func handleSASLAuthenticate(c *conn, req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	a := c.s.cfg.Authenticator
	if a == nil || c.sasl.mechanism == "" || c.sasl.authenticated {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = errorMessage(errors.New("SaslAuthenticate needs a SaslHandshake first"))
		c.closeAfterResponse = true
		return resp, nil
	}
	fail := func(err error) (kmsg.Response, error) {
		c.log.Info("kafka: SASL authentication failed", "mechanism", c.sasl.mechanism, "err", err)
		c.saslRefused(req)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := fmt.Sprintf("authentication failed with %s", c.sasl.mechanism)
		resp.ErrorMessage = &msg
		c.closeAfterResponse = true
		return resp, nil
	}
	switch c.sasl.mechanism {
	case MechanismPlain:
		// authzid NUL authcid NUL passwd (RFC 4616)
		parts := bytes.Split(req.SASLAuthBytes, []byte{0})
		if len(parts) != 3 {
			return fail(errors.New("malformed PLAIN message"))
		}
		user, password := string(parts[1]), string(parts[2])
		if len(parts[0]) > 0 && string(parts[0]) != user {
			return fail(errors.New("PLAIN authorization identity differs from the user"))
		}
		if err := a.Plain(user, password); err != nil {
			return fail(err)
		}
		c.sasl.authenticated, c.sasl.user = true, user
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.sasl.scram == nil {
			c.sasl.scram = &scramExchange{mechanism: c.sasl.mechanism, lookup: a.SCRAM}
		}
		out, done, err := c.sasl.scram.step(req.SASLAuthBytes)
		if err != nil {
			return fail(err)
		}
		resp.SASLAuthBytes = out
		if done {
			c.sasl.authenticated, c.sasl.user = true, c.sasl.scram.user
			c.sasl.scram = nil
		}
	default:
		return fail(fmt.Errorf("mechanism %q", c.sasl.mechanism))
	}
	if c.sasl.authenticated {
		if err := c.login.LoggedIn(c.sasl.user); err != nil {
			c.sasl.authenticated = false
			out, _ := fail(err)
			msg := err.Error()
			resp.ErrorMessage = &msg
			return out, nil
		}
		c.log.Debug("kafka: SASL authenticated", "user", c.sasl.user, "mechanism", c.sasl.mechanism)
	}
	return resp, nil
}
