package amqp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// optsStream keeps x-expires and x-single-active-consumer of durable
// queues across restarts: a compacted one-partition stream, one record per
// queue (key: the broker name; value: queueOptsRecord as JSON; a tombstone
// when the queue goes). The front end reads it when it starts and writes it
// when a durable queue is declared with one of them or deleted. Its name
// starts with ReservedPrefix, so no AMQP queue can have it.
const optsStream = ReservedPrefix + "-queue-options"

// queueOptsRecord is one queue's record in optsStream. StreamID ties it to
// the stream it was declared for: a queue deleted and created again by
// another protocol does not inherit the options.
type queueOptsRecord struct {
	StreamID     string `json:"stream_id"`
	ExpiresMs    int64  `json:"expires_ms,omitempty"`
	SingleActive bool   `json:"single_active,omitempty"`
}

// loadQueueOpts restores the options of durable queues; an x-expires
// queue's lease starts again now, as RabbitMQ's does when it recovers a
// queue. Records of queues that are gone are removed.
func (s *Server) loadQueueOpts(ctx context.Context) error {
	_, err := s.b.CreateStream(ctx, broker.StreamConfig{Name: optsStream, Partitions: 1, Compacted: true, DedupWindow: -1})
	if err != nil && !errors.Is(err, broker.ErrStreamExists) {
		return fmt.Errorf("amqp: create %s: %w", optsStream, err)
	}
	info, err := s.b.DescribeStream(optsStream)
	if err != nil {
		return err
	}
	p := info.Partitions[0]
	r, err := s.b.NewReader(optsStream, map[int32]int64{0: p.StartOffset})
	if err != nil {
		return err
	}
	latest := map[string][]byte{}
	for r.Positions()[0] < p.EndOffset {
		recs, err := r.Read(ctx, 1<<20, 0)
		if err != nil {
			return fmt.Errorf("amqp: read %s: %w", optsStream, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			latest[string(rec.Key)] = rec.Value
		}
	}
	for name, value := range latest {
		if len(value) == 0 {
			continue // a tombstone compaction has not removed yet
		}
		var rec queueOptsRecord
		qi, serr := s.b.DescribeStream(name)
		if json.Unmarshal(value, &rec) != nil || serr != nil || rec.StreamID != hex.EncodeToString(qi.ID[:]) {
			s.writeQueueOpts(name, nil) // stale: the queue is gone
			continue
		}
		q := &queueState{streamID: qi.ID, persisted: true,
			opts: queueOpts{expires: time.Duration(rec.ExpiresMs) * time.Millisecond, singleActive: rec.SingleActive}}
		s.mu.Lock()
		s.queues[name] = q
		s.used(name, q)
		s.mu.Unlock()
	}
	return nil
}

// persistOpts writes the options a durable queue was declared with (not
// under s.mu: it waits for the write).
func (s *Server) persistOpts(name string, opts queueOpts) {
	tmp, err := s.b.IsTemporary(name)
	info, derr := s.b.DescribeStream(name)
	s.mu.Lock()
	q := s.queues[name]
	if q != nil {
		q.streamID = info.ID
		q.persisted = err == nil && derr == nil && !tmp
	}
	s.mu.Unlock()
	if q == nil || !q.persisted {
		return // temporary queues end with this run; or deleted meanwhile
	}
	s.writeQueueOpts(name, &queueOptsRecord{StreamID: hex.EncodeToString(info.ID[:]),
		ExpiresMs: opts.expires.Milliseconds(), SingleActive: opts.singleActive})
}

// writeQueueOpts stores a queue's record, or its tombstone (nil).
func (s *Server) writeQueueOpts(name string, rec *queueOptsRecord) {
	var value []byte
	if rec != nil {
		value, _ = json.Marshal(rec)
	}
	if _, err := s.b.Publish(broker.Bookkeeping(context.Background()), optsStream, []broker.Record{{Key: []byte(name), Value: value}}); err != nil && !errors.Is(err, broker.ErrClosed) {
		s.log.Warn("could not store queue options", "queue", name, "err", err)
	}
}
