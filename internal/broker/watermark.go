package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrDiskFull refuses a client's publish while the free space of the data
// directory's disk is below the configured watermark (Config.DiskFreeMin),
// or shortly after a write failed with ENOSPC. It is temporary: publishing
// resumes by itself when space returns. Reads, acks and offset commits are
// never refused by it.
var ErrDiskFull = errors.New("disk free space below the watermark")

// FreeSpace reports the free space, in bytes, available to Weir where its
// data lives. DirFreeSpace is the real one; tests pass their own to
// simulate a full disk without filling one.
type FreeSpace interface {
	FreeBytes() (uint64, error)
}

// DirFreeSpace is the space available to an unprivileged user (statfs
// f_bavail × f_bsize) on the filesystem that holds the directory.
type DirFreeSpace string

// FreeBytes statfs's the directory.
func (d DirFreeSpace) FreeBytes() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(string(d), &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", string(d), err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// Defaults of the watermark's timing (Config.DiskCheckInterval,
// Config.DiskFullHold).
const (
	DefaultDiskCheckInterval = 250 * time.Millisecond
	DefaultDiskFullHold      = 10 * time.Second
)

// diskGrowth is how much the free space must grow after an ENOSPC before
// publishes are tried again ahead of DiskFullHold.
const diskGrowth = 1 << 20

// DiskStatus is the watermark's current view of the disk.
type DiskStatus struct {
	// Enabled is false when the broker runs without a watermark (no
	// DiskFreeMin and no FreeSpace configured).
	Enabled bool
	// Full is true while client publishes are refused with ErrDiskFull.
	Full bool
	// Free is the last sample of the free space, in bytes; Min the floor.
	Free, Min uint64
	// ENOSPC is true while the refusal comes from a write that failed
	// with ENOSPC (the hold after it) rather than from the floor.
	ENOSPC bool
	// Sampled is when Free was measured; SampleErr, when not nil, is why
	// the last sample failed (the previous state is then kept).
	Sampled   time.Time
	SampleErr error
	// Refused counts the client publishes refused with ErrDiskFull since
	// the broker opened.
	Refused uint64
}

// diskWatermark samples the free space and says whether client publishes
// may go on. Its state changes only on the monitor goroutine (loop) and in
// noteWriteError; waiters watch the changed channel.
type diskWatermark struct {
	enabled  bool
	min      uint64
	source   FreeSpace
	interval time.Duration
	hold     time.Duration
	logger   *slog.Logger
	now      func() time.Time
	kick     chan struct{} // a write saw ENOSPC: sample now
	refused  atomic.Uint64

	mu          sync.Mutex
	status      DiskStatus
	enospcUntil time.Time // the hold after ENOSPC ends here...
	enospcFree  uint64    // ...or when free grows diskGrowth past this
	changed     chan struct{}
}

func newDiskWatermark(cfg *Config) *diskWatermark {
	w := &diskWatermark{
		enabled:  cfg.DiskFreeMin > 0 || cfg.FreeSpace != nil,
		min:      cfg.DiskFreeMin,
		source:   cfg.FreeSpace,
		interval: cfg.DiskCheckInterval,
		hold:     cfg.DiskFullHold,
		logger:   cfg.Logger,
		now:      cfg.Now,
		kick:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
	}
	if w.source == nil {
		w.source = DirFreeSpace(cfg.DataDir)
	}
	if w.interval <= 0 {
		w.interval = DefaultDiskCheckInterval
	}
	if w.hold <= 0 {
		w.hold = DefaultDiskFullHold
	}
	w.status = DiskStatus{Enabled: w.enabled, Min: w.min}
	if w.enabled {
		w.sample()
	}
	return w
}

// loop samples every interval, and at once after an ENOSPC, until ctx ends.
func (w *diskWatermark) loop(ctx context.Context) {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.kick:
		}
		w.sample()
	}
}

// sample measures the free space and updates the state.
func (w *diskWatermark) sample() {
	free, err := w.source.FreeBytes()
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.status
	st.Sampled, st.SampleErr = now, err
	if err != nil {
		// Keep the previous state: a monitor that cannot measure neither
		// blocks publishing nor lifts a block it cannot confirm; ENOSPC
		// from the writes still blocks.
		if w.status.SampleErr == nil {
			w.logger.Warn("cannot measure the free disk space; the disk watermark keeps its state", "err", err)
		}
		w.status = st
		return
	}
	st.Free = free
	if w.status.ENOSPC && (now.After(w.enospcUntil) || free >= w.enospcFree+diskGrowth) {
		st.ENOSPC = false
	}
	w.setFull(st, st.ENOSPC || free < w.min)
}

// noteWriteError blocks client publishes when a storage write failed with
// ENOSPC, for DiskFullHold or until the free space grows, whichever comes
// first (and still until the free space is above the floor).
func (w *diskWatermark) noteWriteError(err error) {
	if !w.enabled || err == nil || !errors.Is(err, syscall.ENOSPC) {
		return
	}
	w.mu.Lock()
	st := w.status
	if !st.ENOSPC {
		w.logger.Warn("a write failed: no space left on the device; client publishes are refused until space returns", "err", err)
	}
	st.ENOSPC = true
	w.enospcUntil = w.now().Add(w.hold)
	w.enospcFree = st.Free
	w.setFull(st, true)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// setFull stores st with Full set to full and wakes the watchers when Full
// changed. The caller holds w.mu.
func (w *diskWatermark) setFull(st DiskStatus, full bool) {
	was := w.status.Full
	st.Full = full
	w.status = st
	if was == full {
		return
	}
	if full {
		w.logger.Warn("disk free space below the watermark: client publishes are refused", "free", formatBytes(st.Free), "min", formatBytes(w.min), "enospc", st.ENOSPC)
	} else {
		w.logger.Info("disk free space back above the watermark: publishing resumes", "free", formatBytes(st.Free), "min", formatBytes(w.min))
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// watch returns the state and a channel closed when Full next changes.
func (w *diskWatermark) watch() (DiskStatus, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.status
	st.Refused = w.refused.Load()
	return st, w.changed
}

// admit returns nil when client publishes may go on, else ErrDiskFull
// saying how much is free and how much is required.
func (w *diskWatermark) admit() error {
	if !w.enabled {
		return nil
	}
	st, _ := w.watch()
	if !st.Full {
		return nil
	}
	w.refused.Add(1)
	if st.ENOSPC {
		return fmt.Errorf("%w (the disk reported no space left; %s free, %s required)", ErrDiskFull, formatBytes(st.Free), formatBytes(max(st.Min, 1)))
	}
	return fmt.Errorf("%w (%s free, %s required)", ErrDiskFull, formatBytes(st.Free), formatBytes(st.Min))
}

// formatBytes writes a size with a binary unit: 1.5 GiB, 200.0 MiB, 512 B.
func formatBytes(n uint64) string {
	if n < 1<<10 {
		return strconv.FormatUint(n, 10) + " B"
	}
	v := float64(n) / 1024
	unit := "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v /= 1024
		unit = u
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
}

// bookkeepingKey marks a context whose publishes are a front end's own
// bookkeeping, which the watermark does not refuse.
type bookkeepingKey struct{}

// Bookkeeping returns ctx marked so that Publish does not refuse its
// records with ErrDiskFull: for the small records front ends keep in
// streams of their own (MQTT sessions and QoS 2 state, AMQP queue
// options), without which a client could not connect, subscribe or
// finish a QoS 2 handshake while the disk is low. A write that actually
// fails (ENOSPC) still fails.
func Bookkeeping(ctx context.Context) context.Context {
	return context.WithValue(ctx, bookkeepingKey{}, true)
}

// admitPublish is the watermark's check of a client publish.
func (b *Broker) admitPublish(ctx context.Context) error {
	if ctx.Value(bookkeepingKey{}) != nil {
		return nil
	}
	return b.disk.admit()
}

// DiskStatus returns the watermark's current view of the disk.
func (b *Broker) DiskStatus() DiskStatus {
	st, _ := b.disk.watch()
	return st
}

// DiskWatch returns the watermark's state and a channel that is closed when
// Full next changes, for front ends that tell their clients (AMQP
// connection.blocked) or hold their publishes.
func (b *Broker) DiskWatch() (DiskStatus, <-chan struct{}) { return b.disk.watch() }

// WaitDiskSpace returns nil at once when client publishes are admitted,
// else waits until they are, or until ctx ends or the broker closes (then
// it returns that error).
func (b *Broker) WaitDiskSpace(ctx context.Context) error {
	for {
		st, changed := b.disk.watch()
		if !st.Full {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.ctx.Done():
			return ErrClosed
		}
	}
}
