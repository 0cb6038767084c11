package connector

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Store keeps a connector's progress (what a source must remember across
// restarts besides what its source database remembers) in Weir's state.
// Load returns found=false when nothing was saved.
type Store interface {
	LoadProgress(ctx context.Context, connector string) (value []byte, found bool, err error)
	SaveProgress(ctx context.Context, connector string, value []byte) error
}

// LoadJSON loads a connector's progress into v; found is false when none
// was saved (v is then left alone).
func LoadJSON(ctx context.Context, s Store, connector string, v any) (found bool, err error) {
	raw, found, err := s.LoadProgress(ctx, connector)
	if err != nil || !found {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, errors.New("connector " + connector + ": stored progress is not valid: " + err.Error())
	}
	return true, nil
}

// SaveJSON saves v as a connector's progress.
func SaveJSON(ctx context.Context, s Store, connector string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.SaveProgress(ctx, connector, raw)
}

// Backoff bounds the delay between restarts of a failed connector.
type Backoff struct {
	Min, Max time.Duration
	// Reset: a run that lasted this long starts the next delay from Min
	// again.
	Reset time.Duration
}

// DefaultBackoff is 1 s doubling to 1 min, reset after a run of 1 min.
var DefaultBackoff = Backoff{Min: time.Second, Max: time.Minute, Reset: time.Minute}

// Supervise runs run until ctx is done. When run returns an error (or
// returns at all) before ctx is done, it logs it and calls run again after
// a delay that doubles from b.Min to b.Max. onError, if not nil, is told of
// each failure and the delay before the next attempt.
func Supervise(ctx context.Context, logger *slog.Logger, b Backoff, run func(ctx context.Context) error, onError func(err error, retryIn time.Duration)) {
	if b.Min <= 0 {
		b = DefaultBackoff
	}
	delay := b.Min
	for attempt := 1; ; attempt++ {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped without an error")
		}
		if b.Reset > 0 && time.Since(started) >= b.Reset {
			delay = b.Min
		}
		logger.Error("connector failed; restarting", "err", err, "attempt", attempt, "retry_in", delay)
		if onError != nil {
			onError(err, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, b.Max)
	}
}
