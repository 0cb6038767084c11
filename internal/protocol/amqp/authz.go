package amqp

// Authorization: a connection's context carries the principal of the user
// it logged in as, so every broker call it makes is checked
// (internal/broker/authz.go); a refusal closes the channel with 403
// ACCESS_REFUSED (brokerException), as RabbitMQ does.

import (
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
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
	q.Pace(c.ctx, n)
}
