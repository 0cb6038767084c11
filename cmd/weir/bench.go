package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	weir "github.com/weirmq/weir/client"
	benchkit "github.com/weirmq/weir/internal/bench"
)

func printBenchUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir bench [--stream S] [--partitions N] [--records N | --duration D] [--size B]
             [--producers N] [--batch N] [--consumers N] [--json]
             [--shared [--prefetch N] [--ack-batch N] [--ack-interval D] [--ack-wait]]
             [--cpuprofile FILE]
  weir bench --workload FILE [--driver weir|kafka|amqp|nats] [--url URL]
             [--driver-opt K=V]... [--set FIELD=VALUE]... [--out DIR] [--json]

Measures a running server through the Go SDK. First the producers publish
--records records of --size bytes (or publish for --duration), each in
synchronous calls of --batch records, one partition after the other; then
the consumers, members of a new consumer group that starts where the
publishing started, read them back. It reports records/s and MB/s (10^6
bytes of values) of each phase and the latency percentiles of the publish
calls. The stream is created if missing, and deleted afterwards if the bench
created it (unless --keep).

With --shared the stream is a queue (created as one if missing) and the
consumers are its competing consumers, each holding up to --prefetch records
unacknowledged: a record counts once the server confirmed its ack stored.
The handler's nil return acks, and each ack counts when the SDK reports it
stored (weir.OnAcked); with --ack-wait the handler acks with Message.Ack and
waits for the confirmation, so each record also holds one of the
consumer's --prefetch handler slots until its ack is on disk.

Flags:
`)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bindClientFlags(fs)
	bindBenchFlags(fs)
	bindWorkloadFlags(fs)
	printFlags(w, fs)
	printWorkloadUsage(w)
}

type benchFlags struct {
	stream      string
	partitions  int
	records     int64
	size        int
	producers   int
	batch       int
	consumers   int
	duration    time.Duration
	json        bool
	keep        bool
	progress    string
	shared      bool
	prefetch    int
	ackBatch    int
	ackInterval time.Duration
	ackWait     bool
	cpuProfile  string
}

func bindBenchFlags(fs *flag.FlagSet) *benchFlags {
	f := &benchFlags{}
	fs.StringVar(&f.stream, "stream", "weir-bench", "stream to publish to")
	fs.IntVar(&f.partitions, "partitions", 8, "partitions of the stream, if the bench creates it")
	fs.Int64Var(&f.records, "records", 100000, "records to publish")
	fs.IntVar(&f.size, "size", 1024, "bytes of each record's value")
	fs.IntVar(&f.producers, "producers", 4, "concurrent publishers")
	fs.IntVar(&f.batch, "batch", 100, "records per publish call")
	fs.IntVar(&f.consumers, "consumers", 4, "consumers in the group that reads the records back (0: no consume phase)")
	fs.DurationVar(&f.duration, "duration", 0, "publish for this long instead of --records records")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON")
	fs.BoolVar(&f.keep, "keep", false, "keep a stream the bench created")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when a terminal), always or never")
	fs.BoolVar(&f.shared, "shared", false, "consume through the queue's shared subscription (the stream is a queue)")
	fs.IntVar(&f.prefetch, "prefetch", 100, "with --shared: records each consumer holds unacknowledged at most")
	fs.IntVar(&f.ackBatch, "ack-batch", 0, "with --shared: acks sent in one call without waiting (0: the SDK's default, a quarter of the prefetch)")
	fs.DurationVar(&f.ackInterval, "ack-interval", 5*time.Millisecond, "with --shared: how long an ack waits for others to share its call")
	fs.BoolVar(&f.ackWait, "ack-wait", false, "with --shared: handlers wait until their ack is stored before they return")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process's consume phase to this file (for go tool pprof)")
	return f
}

func (f *benchFlags) check() error {
	switch {
	case f.partitions < 1:
		return usagef("--partitions %d: want at least 1", f.partitions)
	case f.records < 1 && f.duration <= 0:
		return usagef("--records %d: want at least 1", f.records)
	case f.size < 0:
		return usagef("--size %d is negative", f.size)
	case f.producers < 1:
		return usagef("--producers %d: want at least 1", f.producers)
	case f.batch < 1:
		return usagef("--batch %d: want at least 1", f.batch)
	case f.consumers < 0:
		return usagef("--consumers %d is negative", f.consumers)
	case f.duration < 0:
		return usagef("--duration %v is negative", f.duration)
	case f.prefetch < 1:
		return usagef("--prefetch %d: want at least 1", f.prefetch)
	case f.ackBatch < 0 || f.ackInterval <= 0:
		return usagef("--ack-batch %d, --ack-interval %v: want a count and a positive duration", f.ackBatch, f.ackInterval)
	case f.progress != "auto" && f.progress != "always" && f.progress != "never":
		return usagef("--progress %q: want auto, always or never", f.progress)
	}
	return nil
}

// benchResult is what `weir bench --json` prints.
type benchResult struct {
	Stream      string        `json:"stream"`
	Partitions  int           `json:"partitions"`
	RecordBytes int           `json:"record_bytes"`
	Producers   int           `json:"producers"`
	Batch       int           `json:"batch"`
	Consumers   int           `json:"consumers"`
	Shared      bool          `json:"shared,omitempty"`
	Prefetch    int           `json:"prefetch,omitempty"`
	Publish     phaseResult   `json:"publish"`
	Latency     *latencyStats `json:"publish_latency_ms,omitempty"`
	Consume     *phaseResult  `json:"consume,omitempty"`
}

// phaseResult is one phase's throughput, as the workload runs report it.
type phaseResult = benchkit.Throughput

// latencyStats are percentiles of the publish calls, in milliseconds.
type latencyStats struct {
	Calls int     `json:"calls"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// percentiles sorts samples and returns their nearest-rank percentiles.
func percentiles(samples []time.Duration) *latencyStats {
	if len(samples) == 0 {
		return nil
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := int(q*float64(len(samples))+0.999999) - 1
		return ms(samples[min(max(i, 0), len(samples)-1)])
	}
	return &latencyStats{Calls: len(samples), P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: ms(samples[len(samples)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runBench(args []string, stdout, stderr io.Writer) int {
	return report("bench", bench(args, stdout, stderr), printBenchUsage, stdout, stderr)
}

func bench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	bf := bindBenchFlags(fs)
	wf := bindWorkloadFlags(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	if wf.workload != "" {
		explicit := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
		return benchWorkload(cf, bf, wf, explicit, stdout, stderr)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		info, created, err := benchStream(ctx, c, bf)
		if err != nil {
			return err
		}
		if created && !bf.keep {
			defer func() {
				dctx, dcancel := context.WithTimeout(context.Background(), callTimeout)
				defer dcancel()
				if err := c.DeleteStream(dctx, bf.stream); err != nil {
					fmt.Fprintf(stderr, "weir bench: deleting stream %s: %v\n", bf.stream, err)
				}
			}()
		}
		res := benchResult{Stream: bf.stream, Partitions: len(info.Partitions), RecordBytes: bf.size,
			Producers: bf.producers, Batch: bf.batch, Consumers: bf.consumers}
		if bf.shared {
			res.Shared, res.Prefetch = true, bf.prefetch
		}
		bar := newProgressBar(stderr, bf.progress)

		published, latencies, err := benchPublish(ctx, c, bf, info, bar)
		if err != nil {
			return err
		}
		res.Publish = benchkit.NewThroughput(published.records, published.bytes, published.elapsed)
		res.Latency = percentiles(latencies)

		if bf.consumers > 0 && published.records > 0 {
			consume := benchConsume
			if bf.shared {
				consume = benchConsumeShared
			}
			stopProfile, err := startCPUProfile(bf.cpuProfile)
			if err != nil {
				return err
			}
			consumed, err := consume(ctx, c, bf, info, published.records, bar)
			if perr := stopProfile(); err == nil {
				err = perr
			}
			if err != nil {
				return err
			}
			r := benchkit.NewThroughput(consumed.records, consumed.bytes, consumed.elapsed)
			res.Consume = &r
		}
		if bf.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		printBenchResult(stdout, &res)
		return nil
	})
}

// startCPUProfile starts profiling this process's CPU into file, if one is
// named, and returns what stops it and closes the file.
func startCPUProfile(file string) (stop func() error, err error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// benchStream describes the bench's stream, or creates it (as a queue with
// --shared), and says whether it created it.
func benchStream(ctx context.Context, c *weir.Client, bf *benchFlags) (*weir.StreamInfo, bool, error) {
	info, err := c.DescribeStream(ctx, bf.stream)
	if errors.Is(err, weir.ErrNotFound) {
		if bf.shared {
			_, err = c.CreateQueue(ctx, weir.QueueConfig{Name: bf.stream, Partitions: int32(bf.partitions)})
		} else {
			_, err = c.CreateStream(ctx, weir.StreamConfig{Name: bf.stream, Partitions: int32(bf.partitions)})
		}
		if err != nil {
			return nil, false, err
		}
		info, err = c.DescribeStream(ctx, bf.stream)
		return info, err == nil, err
	}
	if err == nil && bf.shared {
		_, err = c.DescribeQueue(ctx, bf.stream)
	}
	return info, false, err
}

type phaseTotals struct {
	records, bytes int64
	elapsed        time.Duration
}

// benchPublish runs the producers. Each publishes batches synchronously,
// to one partition after the other, and times each call.
func benchPublish(ctx context.Context, c *weir.Client, bf *benchFlags, info *weir.StreamInfo, bar *progressBar) (phaseTotals, []time.Duration, error) {
	value := make([]byte, bf.size)
	rand.Read(value)
	batch := make([]weir.Record, bf.batch)
	for i := range batch {
		batch[i] = weir.Record{Value: value}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// With --duration, the time stops new calls; a call in flight finishes
	// and counts (a deadline on the calls themselves would fail them).
	var deadline time.Time
	var claimed, done atomic.Int64 // records claimed by a producer, and stored
	total := bf.records
	if bf.duration > 0 {
		total = -1
	}
	partitions := int64(len(info.Partitions))
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	if bf.duration > 0 {
		deadline = start.Add(bf.duration)
	}
	stopBar := bar.run("publish", total, bf.duration, start, func() (int64, int64) { n := done.Load(); return n, n * int64(bf.size) })
	for p := range bf.producers {
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			}()
			for i := int64(p); ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)); i++ {
				n := int64(bf.batch)
				if total > 0 {
					n = min(n, total-(claimed.Add(n)-n))
					if n <= 0 {
						return
					}
				}
				t := time.Now()
				_, err := c.PublishPartition(ctx, bf.stream, int32(i%partitions), batch[:n]...)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				mine = append(mine, time.Since(t))
				done.Add(n)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopBar()
	if firstErr != nil {
		return phaseTotals{}, nil, firstErr
	}
	n := done.Load()
	return phaseTotals{records: n, bytes: n * int64(bf.size), elapsed: elapsed}, latencies, nil
}

// benchConsume reads the published records back with a new consumer group
// whose offsets start where the publishing started.
func benchConsume(ctx context.Context, c *weir.Client, bf *benchFlags, before *weir.StreamInfo, want int64, bar *progressBar) (phaseTotals, error) {
	group := bf.stream + "-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var start []weir.PartitionOffset
	for _, p := range before.Partitions {
		start = append(start, weir.PartitionOffset{Stream: bf.stream, Partition: p.Partition, Offset: p.EndOffset})
	}
	if err := c.CommitOffsets(ctx, group, start...); err != nil {
		return phaseTotals{}, err
	}
	return consumePhase(ctx, c, bf, want, bar, nil, false, weir.Group(group), weir.Credits(4*bf.batch+1000))
}

// settleFunc settles a message (the shared bench's explicit ack) and calls
// done with the outcome once the server confirmed it, now or later.
type settleFunc func(ctx context.Context, m *weir.Message, done func(error))

// consumePhase runs bf.consumers consumers with opts until want records
// were counted. settle, when set, runs on each message, which counts once
// settle reports it done; with onAck instead, the handler's nil return
// acks and a message counts once weir.OnAcked reports its ack stored. The
// first error ends the phase.
func consumePhase(ctx context.Context, c *weir.Client, bf *benchFlags, want int64, bar *progressBar, settle settleFunc, onAck bool, opts ...weir.ConsumeOption) (phaseTotals, error) {
	var got, bytes atomic.Int64
	finished := make(chan struct{})
	var once sync.Once
	var settleErr atomic.Pointer[error]
	count := func(m *weir.Message) {
		bytes.Add(int64(len(m.Value)))
		if got.Add(1) >= want {
			once.Do(func() { close(finished) })
		}
	}
	settled := func(m *weir.Message, err error) {
		if err == nil {
			count(m)
		} else if ctx.Err() == nil {
			settleErr.CompareAndSwap(nil, &err)
			once.Do(func() { close(finished) })
		}
	}
	handler := func(hctx context.Context, m *weir.Message) error {
		switch {
		case onAck:
		case settle == nil:
			count(m)
		default:
			settle(hctx, m, func(err error) { settled(m, err) })
		}
		return nil
	}
	if onAck {
		opts = append(opts, weir.OnAcked(settled))
	}
	began := time.Now()
	stopBar := bar.run("consume", want, 0, began, func() (int64, int64) { return got.Load(), bytes.Load() })
	var consumers []*weir.Consumer
	defer func() {
		for _, cons := range consumers {
			cons.Close(context.Background())
		}
	}()
	for range bf.consumers {
		cons, err := c.Consume(ctx, bf.stream, handler, opts...)
		if err != nil {
			stopBar()
			return phaseTotals{}, err
		}
		consumers = append(consumers, cons)
	}
	var err error
	select {
	case <-finished:
		if p := settleErr.Load(); p != nil {
			err = *p
		}
	case <-ctx.Done():
		err = ctx.Err()
	}
	elapsed := time.Since(began)
	stopBar()
	if err != nil {
		return phaseTotals{}, err
	}
	return phaseTotals{records: got.Load(), bytes: bytes.Load(), elapsed: elapsed}, nil
}

func printBenchResult(w io.Writer, r *benchResult) {
	fmt.Fprintf(w, "stream %s: %d partitions, records of %d bytes, %d producers publishing batches of %d, %d consumers\n",
		r.Stream, r.Partitions, r.RecordBytes, r.Producers, r.Batch, r.Consumers)
	p := r.Publish
	fmt.Fprintf(w, "publish: %d records in %.2fs: %.0f records/s, %.1f MB/s\n", p.Records, p.Seconds, p.RecordsPerSec, p.MBPerSec)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "publish latency per batch (%d calls): p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms\n",
			l.Calls, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	if c := r.Consume; c != nil && r.Shared {
		fmt.Fprintf(w, "consume (shared, prefetch %d, acks stored): %d records in %.2fs: %.0f records/s, %.1f MB/s\n",
			r.Prefetch, c.Records, c.Seconds, c.RecordsPerSec, c.MBPerSec)
	} else if c != nil {
		fmt.Fprintf(w, "consume: %d records in %.2fs: %.0f records/s, %.1f MB/s\n", c.Records, c.Seconds, c.RecordsPerSec, c.MBPerSec)
	}
}

// benchConsumeShared reads the published records back as the competing
// consumers of the queue. A record counts once the server confirmed its ack
// stored; the handler waits for that only with --ack-wait.
func benchConsumeShared(ctx context.Context, c *weir.Client, bf *benchFlags, _ *weir.StreamInfo, want int64, bar *progressBar) (phaseTotals, error) {
	opts := []weir.ConsumeOption{weir.Shared(""), weir.Prefetch(bf.prefetch), weir.AckBatching(bf.ackBatch, bf.ackInterval)}
	if !bf.ackWait {
		// The handler's nil return acks; OnAcked counts each ack stored.
		return consumePhase(ctx, c, bf, want, bar, nil, true, opts...)
	}
	ack := func(hctx context.Context, m *weir.Message, done func(error)) { done(m.Ack(hctx)) }
	return consumePhase(ctx, c, bf, want, bar, ack, false, opts...)
}
