package amqp

// Consume byte-rate quotas (auth.ByteRate, per user; docs/SECURITY.md).
// AMQP has no throttle field, so a user past its consume quota is slowed:
// a consumer's goroutine, after sending a batch of basic.deliver, waits out
// the debt before it asks the broker for more (the records it holds stay
// within the prefetch, and nothing is buffered meanwhile); a basic.get
// answered on the connection's reader holds the reader.

import (
	"context"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// deliveredBytes is what deliveries count against a quota: their bodies,
// as the publisher's pace counts them.
func deliveredBytes(ds []broker.Delivery) int {
	n := 0
	for i := range ds {
		n += len(ds[i].Value)
	}
	return n
}

// paceConsumer holds a consumer's goroutine after it sent n body bytes
// while the user is past its consume quota, or until ctx ends.
func (c *conn) paceConsumer(ctx context.Context, n int) {
	c.login.Principal().ConsumeQuota().Pace(ctx, n)
}

// paceReader is paceConsumer on the connection's reader (basic.get).
func (c *conn) paceReader(ctx context.Context, n int) {
	c.holdReader(ctx, c.login.Principal().ConsumeQuota(), n)
}

// holdReader takes n bytes of q and holds the caller for the debt, or
// until ctx ends, telling the heartbeat monitor meanwhile that the
// reader's silence is the server's doing, as for a publish held for disk
// space (diskhold.go): for holds on the reader, or that stop it (a paced
// publisher whose queue filled).
func (c *conn) holdReader(ctx context.Context, q *auth.ByteRate, n int) {
	d := q.Take(n, time.Now())
	if d <= 0 {
		return
	}
	wait := time.NewTimer(d)
	defer wait.Stop()
	tick := time.NewTicker(max(c.heartbeat/2, time.Second))
	defer tick.Stop()
	for {
		c.lastRead.Store(time.Now().UnixNano())
		select {
		case <-wait.C:
			c.lastRead.Store(time.Now().UnixNano())
			return
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}
