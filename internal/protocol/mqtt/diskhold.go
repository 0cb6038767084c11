package mqtt

import (
	"errors"

	"github.com/weirmq/weir/internal/broker"
)

// retryWhenDiskFree decides what happens to publishes the broker refused
// because the disk is below its watermark (broker.ErrDiskFull). MQTT 5
// QoS 1 and 2 publishes are answered with reason 0x97 (quota exceeded)
// and the client decides. Publishes MQTT cannot refuse — every publish of
// 3.1.1, which has no reason codes, and QoS 0 — are held: this waits until
// space returns (publishLoop, and then the connection's reader once the
// pubs channel is full, wait with it) and returns true to store them
// again. It returns false when nothing is to be retried, or when the
// connection ended while waiting.
func (c *conn) retryWhenDiskFree(pps []*pendingPublish) bool {
	full := false
	for _, pp := range pps {
		if errors.Is(pp.err, broker.ErrDiskFull) {
			full = true
			break
		}
	}
	if !full || !c.holdsOnDiskFull(pps) {
		return false
	}
	c.log.Debug("disk below the watermark: holding the connection's publishes", "client", c.clientID)
	if err := c.s.b.WaitDiskSpace(c.ctx); err != nil {
		return false
	}
	for _, pp := range pps {
		pp.err, pp.reached = nil, false
	}
	return true
}

// holdsOnDiskFull reports whether publishes refused for disk space must be
// held rather than answered: always in MQTT 3.1.1, and in MQTT 5 when one
// of them is QoS 0 (publishes of one topic are stored together, in order).
func (c *conn) holdsOnDiskFull(pps []*pendingPublish) bool {
	if c.version() != Version5 {
		return true
	}
	for _, pp := range pps {
		if pp.p.QoS == 0 {
			return true
		}
	}
	return false
}
