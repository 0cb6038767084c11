package mqtt

// Authorization: MQTT topics are checked in the front end, since under the
// broker they are routing keys of one exchange and session queues that
// the server manages itself. A user's rules of resource "topic" (or "*")
// name topics: PUBLISH needs publish on the topic name, SUBSCRIBE consume
// on the filter as written (a rule "sensors/*" covers "sensors/+/temp" and
// "sensors/#"). Refusals: MQTT 5 CONNACK/SUBACK/PUBACK 0x87 not
// authorized; 3.1.1 SUBACK 0x80 and a publish dropped (as Mosquitto).

import (
	"context"
	"fmt"
	"net"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// returnNotAuthorized is the MQTT 3.1.1 CONNACK return code 5.
const returnNotAuthorized = 0x05

// newLogin is a connection's login. Its context is not kept: MQTT checks
// topics here, and the broker calls it makes on them are the server's.
func newLogin(s *Server) *broker.Login {
	l, _ := broker.NewLogin(context.Background(), s.cfg.Authenticator)
	return l
}

// allowed reports whether the connection may act on a topic or filter.
func (c *conn) allowed(topic string, act auth.Action) bool {
	if !c.login.Authorizing() || c.login.Principal().Allowed(auth.ResourceTopic, topic, act) {
		return true
	}
	c.login.AuthorizationRefused()
	return false
}

// authenticate checks a CONNECT's credentials and logs the connection in:
// by its verified TLS client certificate when the server takes
// certificates as users (tls-client-cert-user, as Mosquitto's
// use_identity_as_username: the CONNECT's user name is not used and no
// password is needed), else by the CONNECT's user name and password. It
// returns the user, and which refusal an error is: a bad login, or a
// place refused in the user's connection limit.
func (c *conn) authenticate(p *Connect) (user string, limited bool, err error) {
	certUser, byCert, err := c.login.CertificateUser(c.nc)
	switch {
	case byCert && err != nil:
		return "", false, fmt.Errorf("client certificate: %w", err)
	case byCert:
		user = certUser
	default:
		if err := c.s.cfg.Authenticator.Authenticate(c.clientID, p.Username, p.Password); err != nil {
			name := ""
			if p.Username != nil {
				name = *p.Username
			}
			c.login.AuthenticationRefused(name)
			return "", false, err
		}
		if p.Username == nil {
			return "", false, nil
		}
		user = *p.Username
	}
	if err := c.login.LoggedIn(user); err != nil {
		return user, true, err
	}
	return user, false, nil
}

// pace holds the publish loop after a batch while the user is past its
// produce byte-rate quota (auth.ByteRate): the connection's reads back up
// behind it, which slows the client down.
func (c *conn) pace(batch []*pendingPublish) {
	q := c.login.Principal().ProduceQuota()
	if q == nil {
		return
	}
	n := 0
	for _, pp := range batch {
		n += len(pp.p.Payload)
	}
	q.Pace(c.ctx, n)
}

// NetConn is the connection countingConn counts, so that the TLS state of
// a TLS connection can be read through it (auth.ConnectionState).
func (c countingConn) NetConn() net.Conn { return c.Conn }
