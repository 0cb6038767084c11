package auth

import (
	"context"
	"sync"
	"time"
)

// ByteRate is a user's byte-rate quota: a token bucket of Rate bytes a
// second holding at most one second of them. Take never blocks: it takes
// the bytes (the bucket may go into debt) and says how long the caller
// should hold the connection for the rate to come back within the quota,
// as Kafka's quotas do (throttle_time_ms, then the channel is muted). All
// the connections of a user share its buckets. A nil *ByteRate is no
// quota.
type ByteRate struct {
	rate float64 // bytes a second

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewByteRate returns a quota of rate bytes a second (nil for 0: none).
func NewByteRate(rate int64) *ByteRate {
	if rate <= 0 {
		return nil
	}
	return &ByteRate{rate: float64(rate), tokens: float64(rate)}
}

// Rate is the quota in bytes a second (0 for none).
func (q *ByteRate) Rate() int64 {
	if q == nil {
		return 0
	}
	return int64(q.rate)
}

// Take counts n bytes at now and returns how long to hold the connection
// (0 while within the quota).
func (q *ByteRate) Take(n int, now time.Time) time.Duration {
	if q == nil || n <= 0 {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.last.IsZero() {
		q.tokens = min(q.rate, q.tokens+q.rate*now.Sub(q.last).Seconds())
	}
	q.last = now
	q.tokens -= float64(n)
	if q.tokens >= 0 {
		return 0
	}
	return time.Duration(-q.tokens / q.rate * float64(time.Second))
}

// Pace takes n bytes and holds the caller for as long as Take says, or
// until ctx ends: for protocols without a throttle field (AMQP, MQTT),
// whose connections are just slowed.
func (q *ByteRate) Pace(ctx context.Context, n int) {
	d := q.Take(n, time.Now())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ProduceQuota and ConsumeQuota are the principal's byte-rate quotas (nil:
// none), shared by every connection of the user.
func (p *Principal) ProduceQuota() *ByteRate {
	if p == nil {
		return nil
	}
	return p.produce
}

func (p *Principal) ConsumeQuota() *ByteRate {
	if p == nil {
		return nil
	}
	return p.consume
}
