package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a run; the zero value works.
type Options struct {
	// TopicPrefix names the topics: prefix + index. Empty: "bench-" and a
	// random suffix, so that runs never meet each other's topics.
	TopicPrefix string
	// Driver, URL and Label describe the system under test in the result
	// (see Result).
	Driver, URL, Label string
	// ServerPID, when set, is the server process whose resident memory and
	// CPU are sampled every second (Linux /proc).
	ServerPID int
	// CatchUp bounds the wait for consumers to receive what was published
	// after the producers stopped (default 30s), and a backlog's drain
	// (default 10 minutes).
	CatchUp time.Duration
	// Keep leaves the topics in place after the run.
	Keep bool
	// Phase, when set, is called as each phase starts (to draw a progress
	// bar): total records the phase waits for, or its duration (total < 0),
	// and a function that reads the records and bytes done so far. The
	// function it returns is called when the phase ends.
	Phase func(name string, total int64, d time.Duration, read func() (records, bytes int64)) (end func())
}

// run is the state of one run of a workload.
type run struct {
	w       *Workload
	d       Driver
	opts    Options
	topics  []Topic
	payload *payloads

	published, publishedBytes, publishErrors atomic.Int64
	consumed, consumedBytes                  atomic.Int64
	// measureFrom is the first intended send time (Unix ns) counted in
	// the latency histograms.
	measureFrom atomic.Int64
	pubLatency  *recorder
	e2eLatency  *recorder
	recordE2E   bool

	errOnce  sync.Once
	firstErr error
	failed   chan struct{}
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() {
		r.firstErr = err
		close(r.failed)
	})
}

// Run runs the workload w on the driver d and returns what it measured.
func Run(ctx context.Context, d Driver, w *Workload, opts Options) (res *Result, err error) {
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = "bench-" + strconv.FormatUint(mathrand.Uint64()%(36*36*36*36*36*36), 36) + "-"
	}
	r := &run{
		w: w, d: d, opts: opts,
		payload:    newPayloads(w.MessageSize, *w.RandomBytesRatio),
		pubLatency: newRecorder(),
		e2eLatency: newRecorder(),
		recordE2E:  w.BacklogRecords == 0,
		failed:     make(chan struct{}),
	}
	for t := range w.Topics {
		topic := Topic{Name: opts.TopicPrefix + strconv.Itoa(t), Partitions: w.PartitionsPerTopic, Shared: w.SubscriptionType == SubscriptionShared}
		for s := range w.SubscriptionsPerTopic {
			topic.Subscriptions = append(topic.Subscriptions, "sub-"+strconv.Itoa(s))
		}
		r.topics = append(r.topics, topic)
	}
	if !opts.Keep {
		// Deleted also when creating them failed half-way.
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if derr := d.Delete(dctx, r.topics); derr != nil && err == nil {
				err = fmt.Errorf("deleting the topics: %w", derr)
			}
		}()
	}
	if err := d.Create(ctx, r.topics); err != nil {
		return nil, fmt.Errorf("creating the topics: %w", err)
	}
	res = &Result{Workload: w, Driver: opts.Driver, URL: opts.URL, Label: opts.Label, Notes: d.Notes(), Started: time.Now().UTC()}
	sampler := r.startSampler(res)
	if w.BacklogRecords > 0 {
		err = r.runBacklog(ctx, res)
	} else {
		err = r.runTimed(ctx, res)
	}
	sampler.stop()
	if err != nil {
		return nil, err
	}
	res.PublishLatency = r.pubLatency.percentiles()
	if r.recordE2E {
		res.EndToEndLatency = r.e2eLatency.percentiles()
	}
	res.Publish.Errors = r.publishErrors.Load()
	res.Unconsumed = max(r.published.Load()*int64(w.SubscriptionsPerTopic)-r.consumed.Load(), 0)
	if w.ConsumerPerSubscription == 0 {
		res.Unconsumed = 0
	}
	return res, nil
}

// runTimed runs the producers (and consumers) for the warm-up and the
// duration, then waits for the consumers to catch up.
func (r *run) runTimed(ctx context.Context, res *Result) error {
	w := r.w
	consumers, err := r.startConsumers(ctx)
	defer closeAll(consumers)
	if err != nil {
		return err
	}
	start := time.Now()
	warmEnd := start.Add(time.Duration(w.Warmup))
	end := warmEnd.Add(time.Duration(w.Duration))
	r.measureFrom.Store(warmEnd.UnixNano())
	endPhase := r.phase("run", -1, time.Duration(w.Warmup+w.Duration), r.published.Load, r.publishedBytes.Load)

	// The counters at the end of the warm-up.
	var snapPub, snapPubBytes, snapCons, snapConsBytes int64
	take := func() {
		snapPub, snapPubBytes = r.published.Load(), r.publishedBytes.Load()
		snapCons, snapConsBytes = r.consumed.Load(), r.consumedBytes.Load()
	}
	// A goroutine with a timer rather than time.AfterFunc: under the race
	// detector, Go 1.26 can crash when a timer starts a goroutine inside a
	// synctest bubble, as the tests run this.
	taken, produced := make(chan bool), make(chan struct{})
	go func() {
		t := time.NewTimer(time.Until(warmEnd))
		defer t.Stop()
		select {
		case <-t.C:
			take()
			taken <- true
		case <-produced:
			taken <- false
		}
	}()
	perr := r.produce(ctx, start, end, 0)
	endPhase()
	close(produced)
	if !<-taken {
		take() // the run ended within the warm-up (it failed)
	}
	pubEnd := time.Now()
	if perr != nil {
		return perr
	}
	measured := pubEnd.Sub(warmEnd)
	res.MeasuredSeconds = measured.Seconds()
	// Publishing counts the acknowledgements from the end of the warm-up
	// until the producers' last one (a system slower than the producers'
	// windows acknowledges records sent during the warm-up, and after the
	// end time those sent before it); consumption counts what arrived
	// during the same time: what arrives after the producers stopped is the
	// catch-up, not throughput.
	res.Publish = NewThroughput(r.published.Load()-snapPub, r.publishedBytes.Load()-snapPubBytes, measured)
	res.Consume = NewThroughput(r.consumed.Load()-snapCons, r.consumedBytes.Load()-snapConsBytes, measured)
	if w.ConsumerPerSubscription > 0 {
		want := r.published.Load() * int64(w.SubscriptionsPerTopic)
		r.waitConsumed(ctx, want, r.catchUp(30*time.Second))
	}
	return r.err()
}

// runBacklog fills a backlog with no consumer, then drains it.
func (r *run) runBacklog(ctx context.Context, res *Result) error {
	w := r.w
	r.measureFrom.Store(0)
	start := time.Now()
	endPhase := r.phase("fill", w.BacklogRecords, 0, r.published.Load, r.publishedBytes.Load)
	err := r.produce(ctx, start, time.Time{}, w.BacklogRecords)
	endPhase()
	if err != nil {
		return err
	}
	filled := time.Since(start)
	published := r.published.Load()
	want := published * int64(w.SubscriptionsPerTopic)
	drainStart := time.Now()
	endPhase = r.phase("drain", want, 0, r.consumed.Load, r.consumedBytes.Load)
	consumers, err := r.startConsumers(ctx)
	defer closeAll(consumers)
	if err != nil {
		endPhase()
		return err
	}
	complete := r.waitConsumed(ctx, want, r.catchUp(10*time.Minute))
	endPhase()
	drained := time.Since(drainStart)
	res.MeasuredSeconds = drained.Seconds()
	res.Publish = NewThroughput(published, r.publishedBytes.Load(), filled)
	res.Consume = NewThroughput(r.consumed.Load(), r.consumedBytes.Load(), drained)
	res.Backlog = &BacklogResult{
		Records: published, FillSeconds: filled.Seconds(), FillRate: res.Publish.RecordsPerSec,
		DrainSeconds: drained.Seconds(), DrainRate: res.Consume.RecordsPerSec, DrainedComplete: complete,
	}
	return r.err()
}

func (r *run) catchUp(def time.Duration) time.Duration {
	if r.opts.CatchUp > 0 {
		return r.opts.CatchUp
	}
	return def
}

func (r *run) err() error {
	select {
	case <-r.failed:
		return r.firstErr
	default:
		return nil
	}
}

func (r *run) phase(name string, total int64, d time.Duration, records, bytes func() int64) func() {
	if r.opts.Phase == nil {
		return func() {}
	}
	return r.opts.Phase(name, total, d, func() (int64, int64) { return records(), bytes() })
}

// waitConsumed waits until want records were consumed, the timeout passed
// or the run failed, and says whether all arrived.
func (r *run) waitConsumed(ctx context.Context, want int64, timeout time.Duration) bool {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for r.consumed.Load() < want {
		select {
		case <-ctx.Done():
			r.fail(ctx.Err())
			return false
		case <-r.failed:
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
	return true
}

// startConsumers starts every consumer of every subscription, a few at a
// time (a workload of 10,000 queues has 10,000 of them).
func (r *run) startConsumers(ctx context.Context) ([]Consumer, error) {
	type job struct {
		topic Topic
		sub   string
	}
	var jobs []job
	for _, t := range r.topics {
		for _, s := range t.Subscriptions {
			for range r.w.ConsumerPerSubscription {
				jobs = append(jobs, job{t, s})
			}
		}
	}
	consumers := make([]Consumer, len(jobs))
	// The consumers live as long as the run's context, not forEach's.
	runCtx := ctx
	err := forEach(ctx, len(jobs), 16, func(_ context.Context, i int) error {
		c, err := r.d.NewConsumer(runCtx, jobs[i].topic, jobs[i].sub, r.w.Prefetch, r.handle)
		if err != nil {
			return fmt.Errorf("consumer of %s/%s: %w", jobs[i].topic.Name, jobs[i].sub, err)
		}
		consumers[i] = c
		return nil
	})
	var started []Consumer
	for _, c := range consumers {
		if c != nil {
			started = append(started, c)
		}
	}
	return started, err
}

// handle is every consumer's callback.
func (r *run) handle(value []byte) {
	now := time.Now()
	if r.recordE2E && len(value) >= TimestampBytes {
		sent := int64(binary.BigEndian.Uint64(value))
		r.e2eLatency.record(time.Duration(now.UnixNano()-sent), sent >= r.measureFrom.Load())
	}
	r.consumedBytes.Add(int64(len(value)))
	r.consumed.Add(1)
}

func closeAll(cs []Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = forEach(ctx, len(cs), 16, func(ctx context.Context, i int) error {
		return cs[i].Close(ctx)
	})
}

// forEach calls fn for 0..n-1 with at most limit calls at once, and
// returns the first error (the others stop being started).
func forEach(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(n, limit) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return first
}

// produce runs every producer until end (when set) or until total records
// were sent in all (when positive), then waits for their acknowledgements.
func (r *run) produce(ctx context.Context, start, end time.Time, total int64) error {
	w := r.w
	n := w.ProducerCount()
	var claimed atomic.Int64
	var perProducer time.Duration // interval between two intended sends
	if !w.ProducerRate.Max() && total == 0 {
		perProducer = time.Duration(float64(time.Second) * float64(n) / float64(w.ProducerRate))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.failed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return forEach(ctx, n, n, func(ctx context.Context, p int) error {
		prod, err := r.d.NewProducer(ctx)
		if err != nil {
			return fmt.Errorf("producer %d: %w", p, err)
		}
		var topics []string
		for _, t := range w.producerTopics(p) {
			topics = append(topics, r.topics[t].Name)
		}
		keys := newKeys(w.KeyDistributor, p)
		window := make(chan struct{}, w.MaxOutstanding)
		// The first intended send of each producer is spread over one
		// interval, so that the producers do not send in lockstep.
		intended := start.Add(time.Duration(float64(perProducer) * float64(p) / float64(n)))
		for i := 0; ctx.Err() == nil; i++ {
			if total > 0 && claimed.Add(1) > total {
				break
			}
			if perProducer > 0 {
				if wait := time.Until(intended); wait > 0 {
					sleep(ctx, wait)
				}
			}
			// A constant-rate record waits for room in the window after
			// its intended send time, and that wait counts in its latency.
			// At full speed a record is due when there is room.
			acquired := false
			select {
			case window <- struct{}{}:
				acquired = true
			case <-ctx.Done():
			}
			if perProducer == 0 {
				intended = time.Now()
			}
			// The run ends at its end time even for a producer that is
			// behind its schedule (the system could not keep up): it does
			// not send the rest late.
			if !acquired || ctx.Err() != nil || !end.IsZero() && (!intended.Before(end) || !time.Now().Before(end)) {
				if acquired {
					<-window
				}
				break
			}
			sent := intended
			value := r.payload.make(i, sent)
			prod.Send(ctx, topics[i%len(topics)], keys.next(), value, func(err error) {
				// The slot goes back last: a free window means every
				// callback before has counted its record (see below).
				defer func() { <-window }()
				if err != nil {
					r.publishErrors.Add(1)
					if ctx.Err() == nil {
						r.fail(fmt.Errorf("publish: %w", err))
					}
					return
				}
				r.pubLatency.record(time.Since(sent), sent.UnixNano() >= r.measureFrom.Load())
				r.publishedBytes.Add(int64(len(value)))
				r.published.Add(1)
			})
			intended = intended.Add(perProducer)
		}
		// The records in flight get two minutes to be acknowledged (a few
		// seconds when the run failed).
		grace := 2 * time.Minute
		if ctx.Err() != nil {
			grace = 5 * time.Second
		}
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer ccancel()
		if err := prod.Close(cctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("producer %d: %w", p, err)
		}
		// Every callback has run once the whole window is free again.
		for range cap(window) {
			select {
			case window <- struct{}{}:
			case <-cctx.Done():
				return fmt.Errorf("producer %d: records not acknowledged: %w", p, cctx.Err())
			}
		}
		if err := r.err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// payloads makes record values: the intended send time, then bytes of
// which the workload's share is random and the rest zeros. A few templates
// are made once; each record copies one.
type payloads struct {
	templates [][]byte
}

func newPayloads(size int, randomShare float64) *payloads {
	p := &payloads{}
	random := int(float64(size-TimestampBytes) * randomShare)
	for range 16 {
		b := make([]byte, size)
		rand.Read(b[TimestampBytes : TimestampBytes+random])
		p.templates = append(p.templates, b)
	}
	return p
}

func (p *payloads) make(i int, sent time.Time) []byte {
	t := p.templates[i%len(p.templates)]
	b := make([]byte, len(t))
	copy(b, t)
	binary.BigEndian.PutUint64(b, uint64(sent.UnixNano()))
	return b
}

// keys makes record keys as the workload's key distributor says.
type keys struct {
	kind string
	n    int
	pool [][]byte
}

const roundRobinKeys = 1000

func newKeys(kind string, producer int) *keys {
	k := &keys{kind: kind, n: producer}
	if kind == KeyRoundRobin {
		for i := range roundRobinKeys {
			k.pool = append(k.pool, []byte("key-"+strconv.Itoa(i)))
		}
	}
	return k
}

func (k *keys) next() []byte {
	switch k.kind {
	case KeyRoundRobin:
		k.n++
		return k.pool[k.n%len(k.pool)]
	case KeyRandomNano:
		return strconv.AppendUint(nil, mathrand.Uint64N(1e9), 10)
	}
	return nil
}
