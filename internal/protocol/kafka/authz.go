package kafka

// Authorization: a connection authenticated by SASL carries its user's
// principal in its context, so every broker call it makes is checked
// (internal/broker/authz.go); this file attaches it and maps refusals to
// Kafka's codes. See "Authorization" in docs/SECURITY.md.

import (
	"bytes"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// forbiddenCode is the Kafka code of a broker refusal, by resource.
func forbiddenCode(err error) (int16, bool) {
	var f *broker.ForbiddenError
	if !errors.As(err, &f) {
		return 0, false
	}
	switch f.Resource {
	case auth.ResourceGroup, auth.ResourceSubscription:
		return kerr.GroupAuthorizationFailed.Code, true
	case auth.ResourceAny:
		return kerr.ClusterAuthorizationFailed.Code, true
	}
	return kerr.TopicAuthorizationFailed.Code, true
}

// topicVisible reports whether the connection may see a topic (Metadata
// and ListOffsets hide the others, as Kafka hides topics without DESCRIBE).
func (c *conn) topicVisible(name string) bool {
	return broker.Visible(c.ctx, auth.ResourceStream, name)
}

// describeTopic is nil when the connection may see topic, else the
// refusal (TOPIC_AUTHORIZATION_FAILED), for ListOffsets and DescribeConfigs.
func (c *conn) describeTopic(topic string) error {
	return broker.AuthorizeDescribe(c.ctx, auth.ResourceStream, topic)
}

// groupVisible reports whether the connection may see a group (any action
// on it): ListGroups hides the others, and DescribeGroups and OffsetFetch
// answer GROUP_AUTHORIZATION_FAILED, as Kafka does without DESCRIBE.
func (c *conn) groupVisible(name string) bool {
	return broker.Visible(c.ctx, auth.ResourceGroup, name)
}

// authorizeRead checks consuming a topic (Fetch reads without a context).
func (c *conn) authorizeRead(topic string) int16 {
	return errorCode(broker.Authorize(c.ctx, auth.ResourceStream, topic, auth.ActionConsume))
}

// Byte-rate quotas (auth.ByteRate, per user): a produce or fetch response
// past the user's quota carries throttle_time_ms, and the connection reads
// no further request until that time has passed (Kafka's KIP-219: respond
// at once, then mute the channel).

// throttleProduce counts a produce request's record bytes against the
// user's produce quota and returns the throttle time in milliseconds.
func (c *conn) throttleProduce(req *kmsg.ProduceRequest) int32 {
	q := c.login.Principal().ProduceQuota()
	if q == nil {
		return 0
	}
	n := 0
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			n += len(p.Records)
		}
	}
	return c.throttle(q.Take(n, time.Now()))
}

// throttleFetch counts a fetch response's record bytes against the user's
// consume quota.
func (c *conn) throttleFetch(bytes int) int32 {
	q := c.login.Principal().ConsumeQuota()
	if q == nil {
		return 0
	}
	return c.throttle(q.Take(bytes, time.Now()))
}

func (c *conn) throttle(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	c.throttleFor = d
	return int32(min(d.Milliseconds()+1, 1<<31-1))
}

// mute holds the connection after a throttled response, until the
// throttle time passed or the connection closes.
func (c *conn) mute() {
	d := c.throttleFor
	if d <= 0 {
		return
	}
	c.throttleFor = 0
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}

// certificateLogin logs the connection in by its verified client
// certificate, when the authenticator takes certificates as users
// (tls-client-cert-user, auth.CertificateLogin), as Kafka's SSL principal.
func (c *conn) certificateLogin() bool {
	user, ok, err := c.login.CertificateUser(c.nc)
	if !ok || err != nil {
		return false
	}
	if err := c.login.LoggedIn(user); err != nil {
		c.login.AuthenticationRefused(user)
		c.log.Info("kafka: client certificate login refused", "user", user, "err", err)
		return false
	}
	c.sasl.authenticated, c.sasl.user, c.sasl.mechanism = true, user, "certificate"
	c.log.Debug("kafka: authenticated by client certificate", "user", user)
	return true
}

// saslRefused counts a refused SASL exchange against the user it named
// (PLAIN's authentication identity, SCRAM's user name), if any.
func (c *conn) saslRefused(req *kmsg.SASLAuthenticateRequest) {
	user := c.sasl.user
	switch {
	case c.sasl.scram != nil:
		user = c.sasl.scram.user
	case c.sasl.mechanism == MechanismPlain:
		if parts := bytes.Split(req.SASLAuthBytes, []byte{0}); len(parts) == 3 {
			user = string(parts[1])
		}
	}
	c.login.AuthenticationRefused(user)
}
