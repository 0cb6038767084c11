package auth

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestPaceDeliveryLoop: a delivery loop that sends 500-byte batches and
// paces after each, under a quota of 1,000 bytes a second, has sent 5,000
// bytes after exactly 4 s of (fake) time: the first second's worth goes at
// once, the rest at the rate.
func TestPaceDeliveryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewByteRate(1000)
		start := time.Now()
		for range 10 {
			q.Pace(t.Context(), 500)
		}
		if got := time.Since(start); got != 4*time.Second {
			t.Errorf("5,000 bytes at 1,000 B/s: %v, want 4s", got)
		}
	})
}

// TestPaceShared: two connections of one user share its bucket: together
// they take as long as one sending both their bytes.
func TestPaceShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewByteRate(1000)
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for range 5 {
					q.Pace(t.Context(), 500)
				}
			})
		}
		wg.Wait()
		if got := time.Since(start); got != 4*time.Second {
			t.Errorf("2 × 2,500 bytes at 1,000 B/s: %v, want 4s", got)
		}
	})
}

// TestPaceNoQuota: without a quota nothing is held, however much is sent.
func TestPaceNoQuota(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var q *ByteRate
		start := time.Now()
		for range 100 {
			q.Pace(t.Context(), 1<<20)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("no quota held the caller %v", got)
		}
	})
}

// TestPaceCancel: a held caller returns when its context ends (the
// connection closed), not when the debt is paid.
func TestPaceCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := NewByteRate(1000)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		q.Pace(ctx, 11_000) // 10 s of debt
		if got := time.Since(start); got != time.Second {
			t.Errorf("held %v after the context ended at 1s", got)
		}
	})
}
