package kafka

import (
	"github.com/twmb/franz-go/pkg/kerr"
)

// topicName resolves a request's topic: by name before the version that
// names topics by id (Produce v13, Fetch v13), by id from it. It returns
// the error code for a topic id no stream has.
func (c *conn) topicName(name string, id [16]byte, byID bool) (string, int16) {
	if !byID {
		return name, 0
	}
	n, err := c.s.cfg.Broker.StreamNameByID(id)
	if err != nil {
		return "", kerr.UnknownTopicID.Code
	}
	return n, 0
}
