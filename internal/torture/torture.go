// Package torture is Weir's crash campaign (`weir torture`): it runs
// `weir serve` as a child process, drives it with real, unmodified clients —
// a franz-go idempotent producer with acks=all, an amqp091-go publisher
// with publisher confirms into a durable queue, the Weir SDK's Producer
// into a stream, and SDK shared consumers acking the queue's records —
// kills it with SIGKILL at random moments, restarts it on the same data
// directory, and checks after every restart what the broker promised:
//
//   - every acknowledged record is present (acks=all answer, publisher
//     confirm, SDK publish result);
//   - each partition holds each producer's records in the order sent;
//   - no record is stored twice (the Kafka idempotent producer's in-doubt
//     records included);
//   - no queue record whose ack was confirmed stored is delivered again;
//   - no unacknowledged queue record is lost: at the end a final drain
//     must deliver every confirmed queue record whose ack was never sent.
//
// The clients are started anew in each cycle. A record whose outcome the
// client had not learnt when the server died is in doubt: it may be
// present or absent, but not twice.
package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	weir "github.com/weirmq/weir/client"
)

// Config configures a campaign.
type Config struct {
	// Binary is the weir executable run as `weir serve`.
	Binary string
	// Dir holds the server's data directory (data/) and its log
	// (server.log).
	Dir string
	// Cycles is how many times the server is killed.
	Cycles int
	// KillMin and KillMax bound the random time between the server
	// listening (and the clients starting) and its SIGKILL.
	KillMin, KillMax time.Duration
	// FSync is the server's fsync policy: always, interval or never.
	FSync string
	// Rate bounds each producing client's records per second (0: as fast
	// as it can); it keeps the ledger and the checks, which read every
	// stream whole after each restart, within bounds over many cycles.
	Rate int
	// Partitions of each stream and of the queue.
	Partitions int32
	// Seed of the kill delays; 0: random.
	Seed uint64
	// StartTimeout bounds a server start (recovery included);
	// DrainTimeout the final drain of the queue.
	StartTimeout, DrainTimeout time.Duration
	// Progress, if not nil, gets a line per cycle.
	Progress io.Writer
}

// ErrConfig is the error of a Config that cannot run.
var ErrConfig = errors.New("torture: bad configuration")

func (c *Config) defaults() error {
	if c.Binary == "" || c.Dir == "" {
		return fmt.Errorf("%w: Binary and Dir are required", ErrConfig)
	}
	if c.Cycles < 1 {
		return fmt.Errorf("%w: %d cycles: want at least 1", ErrConfig, c.Cycles)
	}
	if c.KillMin < 0 || c.KillMax < c.KillMin {
		return fmt.Errorf("%w: kill delay range %v..%v is empty", ErrConfig, c.KillMin, c.KillMax)
	}
	switch c.FSync {
	case "":
		c.FSync = "always"
	case "always", "interval", "never":
	default:
		return fmt.Errorf("%w: fsync %q: want always, interval or never", ErrConfig, c.FSync)
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = time.Minute
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// campaign is one run of Run.
type campaign struct {
	cfg    Config
	rng    *rand.Rand
	l      *ledger
	srv    *server
	report *Report
}

// Run runs the campaign. It returns an error when the campaign itself could
// not run (the server did not start, a client could not connect while the
// server was up); broken promises are in the report, not the error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &campaign{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		l:   newLedger(),
		report: &Report{FSync: cfg.FSync, Seed: cfg.Seed, Partitions: cfg.Partitions, Rate: cfg.Rate,
			KillMin: cfg.KillMin.String(), KillMax: cfg.KillMax.String()},
	}
	start := time.Now()
	err := c.run(ctx)
	if c.srv != nil {
		c.srv.kill()
	}
	c.report.finish(c.l, time.Since(start))
	return c.report, err
}

func (c *campaign) start(ctx context.Context) error {
	srv, err := c.startServer(ctx, 0)
	if err != nil {
		return err
	}
	c.srv = srv
	return nil
}

func (c *campaign) startServer(ctx context.Context, killAfter time.Duration) (*server, error) {
	return startServer(ctx, c.cfg.Binary, filepath.Join(c.cfg.Dir, "data"), c.cfg.FSync,
		filepath.Join(c.cfg.Dir, "server.log"), c.cfg.StartTimeout, killAfter)
}

// publishOnlyOdds: one cycle in this many runs no queue consumers.
const publishOnlyOdds = 3

// startupKillOdds: one restart in this many is first killed during its
// recovery (at a random moment of its first startupKillWindow).
const (
	startupKillOdds   = 4
	startupKillWindow = 300 * time.Millisecond
)

// restart starts the server after a kill; now and then it kills it first
// in the middle of its startup, so that recovery itself is interrupted.
func (c *campaign) restart(ctx context.Context) error {
	if c.rng.IntN(startupKillOdds) == 0 {
		delay := time.Duration(1 + c.rng.Int64N(int64(startupKillWindow)))
		if _, err := c.startServer(ctx, delay); err != nil {
			return err
		}
		c.report.Kills++
		c.report.StartupKills++
	}
	return c.start(ctx)
}

func (c *campaign) run(ctx context.Context) error {
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := setup(ctx, c.srv.http, c.cfg.Partitions); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	for cycle := 1; cycle <= c.cfg.Cycles; cycle++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		delay, err := c.loadAndKill(ctx, cycle)
		if err != nil {
			return fmt.Errorf("cycle %d: %w", cycle, err)
		}
		c.report.Cycles++
		if err := c.restart(ctx); err != nil {
			return fmt.Errorf("cycle %d: restart: %w", cycle, err)
		}
		if err := c.check(ctx, cycle); err != nil {
			return fmt.Errorf("cycle %d: check: %w", cycle, err)
		}
		fmt.Fprintf(c.cfg.Progress, "cycle %d/%d: killed after %v; acknowledged so far: %s; violations: %d\n",
			cycle, c.cfg.Cycles, delay.Round(time.Millisecond), c.l.ackedSummary(), c.l.violationCount())
	}
	if err := c.drain(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return c.finalRestart(ctx)
}

// loadAndKill starts the clients, kills the server after a random delay,
// and stops the clients. A client that fails before the kill fails the
// campaign: the server was up, so the failure is the campaign's own.
func (c *campaign) loadAndKill(ctx context.Context, cycle int) (time.Duration, error) {
	c.l.setCycle(cycle)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var killed atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	kafka, amqpAddr, http := c.srv.kafka, c.srv.amqp, c.srv.http
	workers := []func(context.Context) error{
		func(ctx context.Context) error { return runKafka(ctx, kafka, cycle, c.cfg.Rate, c.l) },
		func(ctx context.Context) error { return runAMQP(ctx, amqpAddr, cycle, c.cfg.Rate, c.l) },
		func(ctx context.Context) error { return runSDK(ctx, http, cycle, c.cfg.Rate, c.l) },
	}
	// One cycle in publishOnlyOdds, and always the last, runs without the
	// queue's consumers: the queue then holds a backlog across kills, and
	// the final drain has confirmed, never-acked records to deliver.
	if cycle < c.cfg.Cycles && c.rng.IntN(publishOnlyOdds) != 0 {
		workers = append(workers, func(ctx context.Context) error { return runConsumers(ctx, http, c.l) })
	} else {
		c.report.Queue.PublishOnlyCycles++
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w(wctx); err != nil && !killed.Load() && wctx.Err() == nil {
				errs <- err
			}
		}()
	}
	delay := c.cfg.KillMin
	if span := c.cfg.KillMax - c.cfg.KillMin; span > 0 {
		delay += time.Duration(c.rng.Int64N(int64(span)))
	}
	var failed error
	select {
	case <-time.After(delay):
	case failed = <-errs:
	case <-ctx.Done():
		failed = ctx.Err()
	}
	killed.Store(true)
	c.srv.kill()
	c.srv = nil
	c.report.Kills++
	cancel()
	wg.Wait()
	return delay, failed
}

// check verifies the three streams after a restart.
func (c *campaign) check(ctx context.Context, cycle int) error {
	cl, err := weir.Dial(ctx, c.srv.http)
	if err != nil {
		return err
	}
	defer cl.Close()
	targets := []struct {
		client    Client
		stream    string
		allowGone func(recordID) bool
	}{
		{ClientKafka, kafkaTopic, nil},
		{ClientAMQP, queueName, c.l.isConfirmedAck},
		{ClientSDK, sdkStream, nil},
	}
	for _, t := range targets {
		parts, err := readStream(ctx, cl, t.stream)
		if err != nil {
			return err
		}
		res := c.l.checkStream(cycle, t.client, t.stream, parts, t.allowGone)
		c.report.noteCheck(t.client, res)
	}
	c.report.Checks++
	return nil
}

// drain consumes the queue until every confirmed record whose ack was
// never sent has been delivered and acked, or the queue is empty.
func (c *campaign) drain(ctx context.Context) error {
	c.l.setCycle(c.cfg.Cycles + 1)
	want := c.l.queueExpected()
	c.report.Queue.DrainExpected = len(want)
	cl, err := weir.Dial(ctx, c.srv.http)
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runConsumers(wctx, c.srv.http, c.l) }()
	deadline := time.Now().Add(c.cfg.DrainTimeout)
	emptySince := time.Time{}
	for {
		missing := c.l.drained(want)
		info, err := cl.DescribeQueue(ctx, queueName)
		if err != nil {
			cancel()
			<-done
			return err
		}
		if missing == 0 && info.Depth == 0 {
			break
		}
		// An empty queue with records missing: give acks under way a
		// moment, then call them lost.
		if info.Depth == 0 && info.InFlight == 0 {
			if emptySince.IsZero() {
				emptySince = time.Now()
			} else if time.Since(emptySince) > 2*time.Second {
				break
			}
		} else {
			emptySince = time.Time{}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	c.report.Queue.Drained = len(want) - c.l.drained(want)
	for id := range want {
		if !c.l.isConfirmedAck(id) {
			c.l.violate(Violation{Kind: ViolationQueueLost, Client: ClientAMQP, Record: id.String(),
				Detail: fmt.Sprintf("confirmed, never acked, not delivered and acked by the final drain (%d deliveries in all)", c.l.deliveriesOf(id))})
		}
	}
	return nil
}

// finalRestart shuts the server down cleanly, starts it once more, checks
// the streams, and consumes for a moment: nothing acked may come back.
func (c *campaign) finalRestart(ctx context.Context) error {
	srv := c.srv
	c.srv = nil
	if err := srv.stop(30 * time.Second); err != nil {
		return err
	}
	if err := c.start(ctx); err != nil {
		return err
	}
	if err := c.check(ctx, c.cfg.Cycles+1); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := runConsumers(wctx, c.srv.http, c.l); err != nil {
		return err
	}
	srv = c.srv
	c.srv = nil
	return srv.stop(30 * time.Second)
}
