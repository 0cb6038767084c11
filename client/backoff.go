package weir

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is an exponential delay with full jitter: attempt n waits a
// random time up to min·2ⁿ, capped at max, and at least min/2.
type backoff struct {
	min, max time.Duration
}

var defaultBackoff = backoff{min: 100 * time.Millisecond, max: 5 * time.Second}

func (b backoff) delay(attempt int) time.Duration {
	ceiling := b.max
	if attempt < 32 {
		if d := b.min << attempt; d > 0 && d < b.max {
			ceiling = d
		}
	}
	floor := b.min / 2
	if ceiling <= floor {
		return ceiling
	}
	return floor + rand.N(ceiling-floor)
}

// wait sleeps for attempt's delay; false when ctx or stop ended first.
func (b backoff) wait(ctx context.Context, stop <-chan struct{}, attempt int) bool {
	t := time.NewTimer(b.delay(attempt))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}
