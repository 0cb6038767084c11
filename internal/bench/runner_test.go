package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// memDriver is an in-memory system: each subscription is a channel, a
// record is acknowledged ackDelay after it is sent, and the stallAt-th Send
// blocks for stall (a server that stops answering for a while).
type memDriver struct {
	ackDelay time.Duration
	stallAt  int64
	stall    time.Duration

	mu    sync.Mutex
	subs  map[string]map[string]chan []byte
	sends atomic.Int64
}

func newMemDriver() *memDriver { return &memDriver{subs: map[string]map[string]chan []byte{}} }

func (d *memDriver) Create(_ context.Context, topics []Topic) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range topics {
		d.subs[t.Name] = map[string]chan []byte{}
		for _, s := range t.Subscriptions {
			d.subs[t.Name][s] = make(chan []byte, 100_000)
		}
	}
	return nil
}

func (d *memDriver) Delete(_ context.Context, topics []Topic) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range topics {
		delete(d.subs, t.Name)
	}
	return nil
}

func (d *memDriver) Notes() []string { return []string{"in memory"} }
func (d *memDriver) Close() error    { return nil }

func (d *memDriver) NewProducer(context.Context) (Producer, error) { return memProducer{d}, nil }

type memProducer struct{ d *memDriver }

func (p memProducer) Send(_ context.Context, topic string, _, value []byte, done func(error)) {
	if p.d.sends.Add(1) == p.d.stallAt {
		time.Sleep(p.d.stall)
	}
	p.d.mu.Lock()
	for _, ch := range p.d.subs[topic] {
		ch <- value
	}
	p.d.mu.Unlock()
	// A goroutine rather than time.AfterFunc: with the race detector, Go
	// 1.26 can crash (SIGSEGV in racegostart) when a timer starts a
	// goroutine inside a synctest bubble.
	go func() {
		if p.d.ackDelay > 0 {
			time.Sleep(p.d.ackDelay)
		}
		done(nil)
	}()
}

func (memProducer) Close(context.Context) error { return nil }

func (d *memDriver) NewConsumer(_ context.Context, t Topic, sub string, _ int, handle func([]byte)) (Consumer, error) {
	d.mu.Lock()
	ch := d.subs[t.Name][sub]
	d.mu.Unlock()
	c := &memConsumer{stop: make(chan struct{})}
	c.wg.Go(func() {
		for {
			select {
			case v := <-ch:
				handle(v)
			case <-c.stop:
				return
			}
		}
	})
	return c, nil
}

type memConsumer struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func (c *memConsumer) Close(context.Context) error {
	close(c.stop)
	c.wg.Wait()
	return nil
}

func mustWorkload(t *testing.T, yaml string, overrides ...string) *Workload {
	t.Helper()
	w, err := ParseWorkload([]byte(yaml), overrides...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

const smallWorkload = `
name: small
topics: 2
partitionsPerTopic: 2
messageSize: 64
producersPerTopic: 2
producerRate: 1000
subscriptionsPerTopic: 2
consumerPerSubscription: 2
warmup: 1s
duration: 2s
`

// TestConstantRate checks the producers' schedule on a fake clock: a rate
// of 1,000 records/s for a 1 s warm-up and 2 s sends exactly 3,000 records,
// 2,000 of them measured, every one delivered to both subscriptions.
func TestConstantRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newMemDriver()
		d.ackDelay = 2 * time.Millisecond
		res, err := Run(t.Context(), d, mustWorkload(t, smallWorkload), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := d.sends.Load(); got != 3000 {
			t.Errorf("sent %d records, want 3000", got)
		}
		// Acknowledged after the warm-up: 2,000 records, give or take the
		// two sent in its last 2 ms.
		if p := res.Publish; p.Records < 1998 || p.Records > 2002 || p.RecordsPerSec < 995 || p.RecordsPerSec > 1001 {
			t.Errorf("measured publish %d records at %.1f/s, want 2000 at 1000/s", p.Records, p.RecordsPerSec)
		}
		if res.Unconsumed != 0 {
			t.Errorf("unconsumed %d, want 0", res.Unconsumed)
		}
		if l := res.PublishLatency; l == nil || l.Count != 2000 || l.P50 < 2 || l.Max > 3 {
			t.Errorf("publish latency %+v: want 2000 samples of 2 ms", l)
		}
		if l := res.EndToEndLatency; l == nil || l.Count != 4000 {
			t.Errorf("end-to-end latency %+v: want 4000 samples (2 subscriptions)", l)
		}
		if len(res.Series) < 3 {
			t.Fatalf("%d samples, want one a second", len(res.Series))
		}
		if !res.Series[0].Warmup || res.Series[len(res.Series)-1].Warmup {
			t.Errorf("warm-up flags: first %v, last %v", res.Series[0].Warmup, res.Series[len(res.Series)-1].Warmup)
		}
		if r := res.Series[1].PublishRate; r < 998 || r > 1002 {
			t.Errorf("second 2: %v records/s, want 1000", r)
		}
		if len(d.subs) != 0 {
			t.Errorf("topics left after the run: %d", len(d.subs))
		}
	})
}

// TestNoCoordinatedOmission stalls one send for 300 ms at a rate of 1,000
// records/s with a window of one record: the ~300 records that should have
// been sent during the stall count their wait, so the 90th percentile is
// far above the 0.1 ms the other records take. Timing each call instead
// would show a single slow record.
func TestNoCoordinatedOmission(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newMemDriver()
		d.ackDelay = 100 * time.Microsecond
		d.stallAt, d.stall = 500, 300*time.Millisecond
		w := mustWorkload(t, smallWorkload, "topics=1", "producersPerTopic=1", "maxOutstanding=1", "warmup=0", "duration=2s", "consumerPerSubscription=0", "subscriptionsPerTopic=0")
		res, err := Run(t.Context(), d, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		l := res.PublishLatency
		if l.Max < 300 {
			t.Errorf("max %.1f ms, want at least the 300 ms stall", l.Max)
		}
		if l.P95 < 100 || l.P50 > 1 {
			t.Errorf("p50 %.1f ms, p95 %.1f ms: want the stalled records' wait in the tail (p95 ≥ 100 ms) and 0.1 ms at the median", l.P50, l.P95)
		}
		if res.Publish.Records != 2000 || l.Count != 2000 {
			t.Errorf("published %d, latencies %d, want 2000: the producer catches up after the stall", res.Publish.Records, l.Count)
		}
	})
}

// TestBacklogDrain fills a backlog, then drains it.
func TestBacklogDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newMemDriver()
		w := mustWorkload(t, smallWorkload, "backlogRecords=5000", "duration=0")
		res, err := Run(t.Context(), d, w, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := res.Backlog
		if b == nil || b.Records != 5000 || !b.DrainedComplete {
			t.Fatalf("backlog %+v: want 5000 records drained", b)
		}
		if res.Consume.Records != 10000 {
			t.Errorf("consumed %d, want 10000 (2 subscriptions)", res.Consume.Records)
		}
		if res.EndToEndLatency != nil {
			t.Errorf("a drain reports no end-to-end latency (it would be the backlog's age)")
		}
	})
}

// TestPayload checks the record values: the send time first, then the
// random share.
func TestPayload(t *testing.T) {
	p := newPayloads(108, 0.5)
	sent := time.Unix(1700000000, 123)
	v := p.make(3, sent)
	if len(v) != 108 {
		t.Fatalf("len %d", len(v))
	}
	var zeros int
	for _, b := range v[TimestampBytes:] {
		if b == 0 {
			zeros++
		}
	}
	if zeros < 50 || zeros > 60 { // 50 zero bytes, plus random bytes that happen to be 0
		t.Errorf("%d zero bytes after the timestamp, want about 50", zeros)
	}
	var got int64
	for _, b := range v[:TimestampBytes] {
		got = got<<8 | int64(b)
	}
	if got != sent.UnixNano() {
		t.Errorf("timestamp %d, want %d", got, sent.UnixNano())
	}
}
