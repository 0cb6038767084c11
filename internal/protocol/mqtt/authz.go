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
	return !c.login.Authorizing() || c.login.Principal().Allowed(auth.ResourceTopic, topic, act)
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
