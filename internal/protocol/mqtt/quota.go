package mqtt

// Consume byte-rate quotas (auth.ByteRate, per user; docs/SECURITY.md).
// MQTT has no throttle field, so a user past its consume quota is slowed:
// a delivery loop, after sending a batch of PUBLISH packets, waits out the
// debt before it asks the broker for more. Its receive-maximum credits stay
// as they are and nothing is buffered meanwhile; the connection's reader
// goes on (PUBACKs, PINGREQs), so the client stays connected.

import (
	"context"
	"time"
)

// paceDeliveries holds a delivery loop after it sent n payload bytes while
// the user is past its consume quota, or until ctx ends.
func (c *conn) paceDeliveries(ctx context.Context, n int) {
	c.login.Principal().ConsumeQuota().Pace(ctx, n)
}

// countDelivered counts n payload bytes sent outside a delivery loop (a
// retained message sent to a new subscription) without holding the
// sender, the reader: the delivery loops wait out the debt.
func (c *conn) countDelivered(n int) {
	c.login.Principal().ConsumeQuota().Take(n, time.Now())
}
