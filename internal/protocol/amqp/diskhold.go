package amqp

import (
	"context"
	"sync"

	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// diskBlockReason is the reason of connection.blocked, RabbitMQ's words for
// its disk alarm, which client libraries and operators recognise.
const diskBlockReason = "low on disk"

// diskBlock is a connection's state while the broker's disk is below its
// watermark (broker.ErrDiskFull). As RabbitMQ does under its disk alarm, a
// connection that publishes is blocked: its channels' publishers hold their
// messages (nothing is lost or nacked), the reader stops reading once a
// channel's publish queue is full, a client that announced the
// connection.blocked capability is sent connection.blocked, and
// connection.unblocked when space returns. Deliveries and acks of the
// connection's consumers go on while the reader reads.
type diskBlock struct {
	mu      sync.Mutex
	holders int  // publishers waiting for space
	sent    bool // connection.blocked went out
}

// holdForDisk blocks a publisher until the broker admits publishes again,
// telling the client when it announced the capability. It returns false
// when ctx ended or the broker closed first.
func (c *conn) holdForDisk(ctx context.Context) bool {
	d := &c.disk
	d.mu.Lock()
	d.holders++
	if d.holders == 1 && c.clientCapable("connection.blocked") {
		c.sendMethod(0, &wire.ConnectionBlocked{Reason: diskBlockReason})
		d.sent = true
	}
	d.mu.Unlock()
	c.log.Debug("disk below the watermark: publishes held", "notified", c.clientCapable("connection.blocked"))

	err := c.s.b.WaitDiskSpace(ctx)

	d.mu.Lock()
	d.holders--
	if d.holders == 0 {
		if d.sent {
			c.sendMethod(0, &wire.ConnectionUnblocked{})
			d.sent = false
		}
	}
	d.mu.Unlock()
	return err == nil
}
