package amqp

// Authorization: a connection's context carries the principal of the user
// it logged in as, so every broker call it makes is checked
// (internal/broker/authz.go); a refusal closes the channel with 403
// ACCESS_REFUSED (brokerException), as RabbitMQ does.

import (
	"errors"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// authorizeConsume checks a basic.consume before it is accepted (its
// reads come later, in the consumer's goroutine): a queue needs consume on
// its stream and subscription, a stream consume on the stream.
func (ch *channel) authorizeConsume(bname string, isStream bool) error {
	if isStream {
		return broker.Authorize(ch.ctx(), auth.ResourceStream, bname, auth.ActionConsume)
	}
	return broker.AuthorizeSubscription(ch.ctx(), bname, bname, auth.ActionConsume)
}

// pace holds the publisher after a batch while the user is past its
// produce byte-rate quota (auth.ByteRate): AMQP has no throttle field, so
// the connection is just slowed, as a token bucket.
func (p *publisher) pace(batch []*pubJob) {
	c := p.ch.c
	q := c.login.Principal().ProduceQuota()
	if q == nil {
		return
	}
	n := 0
	for _, j := range batch {
		n += len(j.body)
	}
	// The publisher's queue may fill and stop the reader meanwhile.
	c.holdReader(c.ctx, q, n)
}

// mechanismExternal is SASL EXTERNAL (RFC 4422 appendix A): the user is
// the one the TLS client certificate names, as RabbitMQ's
// rabbitmq_auth_mechanism_ssl takes its subject's CN by default.
const mechanismExternal = "EXTERNAL"

// mechanisms are the SASL mechanisms connection.start offers: EXTERNAL
// too on a TLS connection with a verified client certificate when the
// server takes certificates as users (RabbitMQ offers it only when the
// client sent a certificate).
func (c *conn) mechanisms() string {
	if c.login.TakesCertificates() {
		if st, ok := auth.ConnectionState(c.nc); ok && len(st.VerifiedChains) > 0 {
			return mechanismExternal + " PLAIN AMQPLAIN"
		}
	}
	return "PLAIN AMQPLAIN"
}

// authenticate checks connection.start-ok's credentials and returns the
// user: EXTERNAL's from the client certificate, PLAIN's and AMQPLAIN's
// from the response. A refusal is counted against the user it named.
func (c *conn) authenticate(m *wire.ConnectionStartOk) (string, error) {
	if m.Mechanism == mechanismExternal {
		user, ok, err := c.login.CertificateUser(c.nc)
		if !ok {
			c.login.AuthenticationRefused("")
			return "", errors.New("EXTERNAL needs a TLS connection with a verified client certificate, and the server taking certificates as users (tls-client-cert-user)")
		}
		return user, err
	}
	user, password, err := parseCredentials(m.Mechanism, m.Response)
	if err == nil {
		err = c.s.cfg.Authenticator.Authenticate(m.Mechanism, user, password)
	}
	if err != nil {
		c.login.AuthenticationRefused(user)
	}
	return user, err
}

// authorizePassive checks a passive declare: the user must see the queue
// or exchange (any action on it), checked before its existence so that a
// refusal tells nothing of it. RabbitMQ asks no permission for a passive
// declare; Weir asks what a describe asks on every other protocol (see
// "Authorization" in docs/SECURITY.md).
func (ch *channel) authorizePassive(m wire.Method, kind, bname string) *amqpError {
	res := auth.ResourceExchange
	if kind == "queue" {
		res = auth.ResourceStream // a queue rule covers its stream
	}
	if err := broker.AuthorizeDescribe(ch.ctx(), res, bname); err != nil {
		return brokerException(err, m)
	}
	return nil
}
