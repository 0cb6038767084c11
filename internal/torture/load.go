package torture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	weir "github.com/weirmq/weir/client"
)

// LoadConfig configures a load campaign (`weir torture load`): a server
// holding Idle idle connections over Kafka, AMQP, MQTT and the native API
// while Active producers and consumers run for Duration, its memory
// sampled once a second.
type LoadConfig struct {
	// Binary is the weir executable run as `weir serve`; Dir holds its
	// data directory and log.
	Binary, Dir string
	// Idle connections held open for the whole run, spread evenly over
	// the four protocols.
	Idle int
	// Active clients: half producers, half consumers, each half spread
	// evenly over the four protocols.
	Active int
	// Duration of the active phase (after the idle connections are open).
	Duration time.Duration
	// Rate is each producer's records per second.
	Rate int
	// Warmup is the start of the active phase left out of the memory
	// slope (0: a fifth of Duration, at most a minute).
	Warmup time.Duration
	// StartTimeout bounds the server's start; OpenTimeout the opening of
	// every connection.
	StartTimeout, OpenTimeout time.Duration
	// ServerArgs are more arguments of `weir serve` (a later flag wins),
	// for example --pprof-addr to profile the server under the load.
	ServerArgs []string
	// Progress, if not nil, gets a line every ProgressEvery (default 10 s).
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c *LoadConfig) defaults() error {
	if c.Binary == "" || c.Dir == "" {
		return fmt.Errorf("%w: Binary and Dir are required", ErrConfig)
	}
	if c.Idle < 0 || c.Active < 0 {
		return fmt.Errorf("%w: %d idle and %d active connections: want none or more", ErrConfig, c.Idle, c.Active)
	}
	if c.Active > 0 && c.Active < 2 {
		return fmt.Errorf("%w: %d active clients: want 0, or at least 2 (a producer and a consumer)", ErrConfig, c.Active)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("%w: duration %v: want more than 0", ErrConfig, c.Duration)
	}
	if c.Rate <= 0 {
		return fmt.Errorf("%w: rate %d: want at least 1 record per second", ErrConfig, c.Rate)
	}
	if c.Warmup <= 0 {
		c.Warmup = min(c.Duration/5, time.Minute)
	}
	if c.Warmup >= c.Duration {
		return fmt.Errorf("%w: warm-up %v: want less than the duration %v", ErrConfig, c.Warmup, c.Duration)
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = time.Minute
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 10 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 10 * time.Second
	}
	return nil
}

// The protocols of the load campaign, in the order idle connections and
// active clients are spread over.
var loadProtocols = []string{"kafka", "amqp", "mqtt", "native"}

// Names of what the load campaign creates on the server.
const (
	loadTopic     = "load-kafka"  // Kafka producers write, Kafka consumers read by partition
	loadAMQPQueue = "load-amqp"   // AMQP publishers with confirms, AMQP consumers acking
	loadMQTTTopic = "load/mqtt"   // MQTT QoS 1 publishers, a shared subscription of MQTT consumers
	loadSDKQueue  = "load-native" // SDK producers, SDK shared consumers
	loadIdle      = "load-idle"   // idle native connections hold an ephemeral subscription of it
	openParallel  = 32            // connections opened at once
)

// RunLoad runs the load campaign. Its error says why the campaign could not
// run (the server did not start or died, no connection could be opened);
// whether memory stayed flat is in the report.
func RunLoad(ctx context.Context, cfg LoadConfig) (*LoadReport, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	// Each connection is a descriptor here and one in the server, which
	// inherits this process's limit. A franz-go client (a quarter of the
	// clients) can hold two connections to the one broker, and the server
	// holds a segment file of each MQTT client's session queue (another
	// quarter).
	clients := cfg.Idle + cfg.Active
	limit, err := raiseFileLimit(uint64(clients+clients/4+clients/4) + 512)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(cfg.Dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, cfg.Binary, dataDir, "always", filepath.Join(cfg.Dir, "server.log"), cfg.StartTimeout, 0,
		append([]string{"--mqtt-addr", "127.0.0.1:0"}, cfg.ServerArgs...)...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if srv != nil {
			srv.kill()
		}
	}()
	if srv.mqtt == "" {
		return nil, errors.New("torture: the server did not report its MQTT listener")
	}
	r := &LoadReport{Idle: cfg.Idle, Active: cfg.Active, Rate: cfg.Rate, Duration: cfg.Duration.Seconds(),
		FileLimit: limit, ServerPID: srv.cmd.Process.Pid}
	counters := map[string]*protocolCounters{}
	for _, p := range loadProtocols {
		counters[p] = &protocolCounters{}
	}
	kafkaPartitions := int32(max(1, countFor(cfg.Active-cfg.Active/2, 0)))
	if err := loadSetup(ctx, srv.http, kafkaPartitions); err != nil {
		return nil, fmt.Errorf("torture: setup: %w", err)
	}
	l := &loadRun{cfg: cfg, srv: srv, report: r, counters: counters, partitions: kafkaPartitions}
	defer l.summarizeCounts()
	defer l.closeAll()

	sampler := newMemorySampler(srv.http, srv.cmd.Process.Pid, r)
	sampler.start()
	fmt.Fprintf(cfg.Progress, "opening %d idle connections (file limit %d)\n", cfg.Idle, limit)
	openStart := time.Now()
	if err := l.openIdle(ctx); err != nil {
		sampler.stop()
		return r, err
	}
	r.OpenSeconds = time.Since(openStart).Seconds()
	fmt.Fprintf(cfg.Progress, "%d idle connections open in %.1f s; starting %d active clients for %v\n",
		l.total(func(p *protocolCounters) int64 { return p.IdleOpen.Load() }), r.OpenSeconds, cfg.Active, cfg.Duration)

	runCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	sampler.markActive()
	l.startActive(runCtx)
	progress := time.NewTicker(cfg.ProgressEvery)
	defer progress.Stop()
wait:
	for {
		select {
		case <-runCtx.Done():
			break wait
		case <-srv.exited:
			sampler.stop()
			srv = nil
			return r, errors.New("torture: the server exited during the load")
		case <-progress.C:
			last := sampler.last()
			fmt.Fprintf(cfg.Progress, "%4.0fs  connections %d  rss %s  heap %s  produced %d  consumed %d  errors %d\n",
				last.Second, last.Connections, mib(last.RSSBytes), mib(last.HeapBytes),
				l.total(func(p *protocolCounters) int64 { return p.Produced.Load() }),
				l.total(func(p *protocolCounters) int64 { return p.Consumed.Load() }),
				l.total(func(p *protocolCounters) int64 { return p.Errors.Load() }))
		}
	}
	sampler.stop()
	l.stopActive()
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.summarize(cfg.Warmup)
	l.closeAll()
	err = srv.stop(time.Minute)
	srv = nil
	if err != nil {
		return r, fmt.Errorf("torture: %w", err)
	}
	return r, nil
}

// raiseFileLimit raises this process's soft limit of open files to its
// hard limit and fails if that is below need.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("torture: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("torture: setrlimit: %w", err)
		}
	}
	if lim.Cur < need {
		return lim.Cur, fmt.Errorf("%w: %d open files needed, the hard limit is %d (raise it: ulimit -Hn, or LimitNOFILE in systemd)", ErrConfig, need, lim.Cur)
	}
	return lim.Cur, nil
}

// countFor is how many of n clients spread round-robin over the protocols
// are of protocol index p.
func countFor(n, p int) int {
	k := len(loadProtocols)
	c := n / k
	if p < n%k {
		c++
	}
	return c
}

// loadSetup creates the topic, the queues and the idle stream.
func loadSetup(ctx context.Context, addr string, kafkaPartitions int32) error {
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range []weir.StreamConfig{{Name: loadTopic, Partitions: kafkaPartitions}, {Name: loadIdle, Partitions: 1}} {
		if _, err := c.CreateStream(ctx, s); err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
			return fmt.Errorf("create stream %s: %w", s.Name, err)
		}
	}
	for _, q := range []string{loadAMQPQueue, loadSDKQueue} {
		if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: q, Partitions: 4}); err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
			return fmt.Errorf("create queue %s: %w", q, err)
		}
	}
	return nil
}

// loadRun is one run of RunLoad: its clients.
type loadRun struct {
	cfg        LoadConfig
	srv        *server
	report     *LoadReport
	counters   map[string]*protocolCounters
	partitions int32

	mu      sync.Mutex
	closers []func() // every client opened, idle or active
	active  sync.WaitGroup
	closed  bool
}

func (l *loadRun) addCloser(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closers = append(l.closers, f)
}

// openIdle opens the idle connections, openParallel at a time. A
// connection that fails to open is counted; the run fails only when none
// of a protocol's opened.
func (l *loadRun) openIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.OpenTimeout)
	defer cancel()
	sem := make(chan struct{}, openParallel)
	var wg sync.WaitGroup
	for i := range l.cfg.Idle {
		proto := loadProtocols[i%len(loadProtocols)]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("torture: opening idle connections: %w", ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			pl := l.counters[proto]
			closer, err := openIdleConn(ctx, proto, l.srv, i)
			if err != nil {
				pl.noteError(err)
				pl.IdleFailed.Add(1)
				return
			}
			pl.IdleOpen.Add(1)
			l.addCloser(closer)
		})
	}
	wg.Wait()
	for i, p := range loadProtocols {
		if pl := l.counters[p]; countFor(l.cfg.Idle, i) > 0 && pl.IdleOpen.Load() == 0 {
			return fmt.Errorf("torture: no idle %s connection could be opened: %s", p, pl.firstError())
		}
	}
	return nil
}

// startActive starts the producers and consumers; they run until ctx ends.
func (l *loadRun) startActive(ctx context.Context) {
	producers := l.cfg.Active / 2
	consumers := l.cfg.Active - producers
	for i := range producers {
		proto := loadProtocols[i%len(loadProtocols)]
		l.counters[proto].Producers++
		l.active.Go(func() { l.runWorker(ctx, proto, true, i/len(loadProtocols)) })
	}
	for i := range consumers {
		proto := loadProtocols[i%len(loadProtocols)]
		l.counters[proto].Consumers++
		l.active.Go(func() { l.runWorker(ctx, proto, false, i/len(loadProtocols)) })
	}
}

// runWorker runs one active client until ctx ends; a client whose
// connection broke is counted and started again.
func (l *loadRun) runWorker(ctx context.Context, proto string, producer bool, index int) {
	pl := l.counters[proto]
	for ctx.Err() == nil {
		var err error
		if producer {
			err = runLoadProducer(ctx, proto, l, index, pl)
		} else {
			err = runLoadConsumer(ctx, proto, l, index, pl)
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		pl.noteError(err)
		pl.Reconnects.Add(1)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

func (l *loadRun) stopActive() { l.active.Wait() }

// closeAll closes every client, openParallel at a time.
func (l *loadRun) closeAll() {
	l.mu.Lock()
	closers := l.closers
	l.closers = nil
	l.mu.Unlock()
	sem := make(chan struct{}, openParallel)
	var wg sync.WaitGroup
	for _, f := range closers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f()
		})
	}
	wg.Wait()
}

// protocolCounters are the counts of one protocol during a run.
type protocolCounters struct {
	IdleOpen, IdleFailed             atomic.Int64
	Producers, Consumers             int
	Produced, Acknowledged, Consumed atomic.Int64
	Errors, Reconnects               atomic.Int64
	mu                               sync.Mutex
	FirstError                       string
}

func (p *protocolCounters) noteError(err error) {
	p.Errors.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.FirstError == "" {
		p.FirstError = err.Error()
	}
}

func (p *protocolCounters) firstError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.FirstError
}
