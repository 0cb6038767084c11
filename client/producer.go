package weir

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ProducerOption configures a Producer.
type ProducerOption func(*producerConfig)

type producerConfig struct {
	linger          time.Duration
	maxBatchRecords int
	maxBatchBytes   int
	maxInFlight     int
	maxBuffered     int
	retries         int
}

// Linger is how long a batch waits for more records before it is sent
// (default 5ms). With zero a record goes at once when its partition has no
// publish under way and fewer than MaxInFlight are; the records that come
// while that is not so wait in one batch, which goes as soon as it is: the
// batches grow with the load instead of with a timer.
func Linger(d time.Duration) ProducerOption { return func(c *producerConfig) { c.linger = d } }

// MaxBatchRecords caps the records of one batch (default 1000).
func MaxBatchRecords(n int) ProducerOption { return func(c *producerConfig) { c.maxBatchRecords = n } }

// MaxBatchBytes caps the bytes of one batch (default 1 MiB); a record larger
// than that goes in a batch of its own.
func MaxBatchBytes(n int) ProducerOption { return func(c *producerConfig) { c.maxBatchBytes = n } }

// MaxInFlight caps the publish calls the producer has under way at once
// (default 8); there is at most one per partition.
func MaxInFlight(n int) ProducerOption { return func(c *producerConfig) { c.maxInFlight = n } }

// MaxBuffered caps the records sent but not yet acknowledged (default
// 10000); Send blocks while the producer holds that many.
func MaxBuffered(n int) ProducerOption { return func(c *producerConfig) { c.maxBuffered = n } }

// Retries is how often a batch is sent again after a failure the server may
// recover from, such as its restart (default 3, with backoff). A retried
// batch may be stored twice unless its records carry a message-id header,
// which the stream's dedup window recognizes.
func Retries(n int) ProducerOption { return func(c *producerConfig) { c.retries = n } }

// Producer publishes records asynchronously: Send queues a record and
// returns; records are gathered into batches per partition, which are sent
// when full or after the linger time, several partitions at once with
// concurrent Publish calls so that the server's group commit stays busy.
// A partition has one batch in flight at a time, so records of one key are
// stored in the order they were sent. Callbacks run in the order of the
// Send calls, one at a time, on a goroutine of the producer: they should
// return quickly. A batch the server refuses fails all of its records.
//
// A Producer is safe for concurrent use.
type Producer struct {
	c      *Client
	stream string
	cfg    producerConfig

	ctx    context.Context // publish calls; canceled when Close gives up
	cancel context.CancelFunc
	space  chan struct{} // a token per buffered record

	metaMu     sync.Mutex // serializes partition-count lookups
	mu         sync.Mutex
	partitions int32 // 0: unknown
	sticky     int32 // the partition of records without a key
	open       map[int32]*batch
	ready      map[int32][]*batch
	busy       map[int32]bool
	inFlight   int
	closed     bool
	queue      []*sendEntry  // in Send order, until their callback ran
	sent       uint64        // entries ever queued
	delivered  uint64        // entries whose callback ran
	progress   chan struct{} // closed and replaced when delivered grows
	// delivering is set while a goroutine runs callbacks (deliver); it
	// is started when a publish finishes and ends when no finished record
	// waits, so an idle producer holds no goroutine (a process with a
	// producer for each of 10,000 queues held 10,000).
	delivering bool
}

type sendEntry struct {
	record Record
	cb     func(PublishResult, error)
	res    PublishResult
	err    error
	done   bool
}

type batch struct {
	partition int32
	entries   []*sendEntry
	bytes     int
	timer     *time.Timer
}

// NewProducer returns a Producer for stream. Close it to send what it holds.
func (c *Client) NewProducer(stream string, opts ...ProducerOption) *Producer {
	cfg := producerConfig{
		linger:          5 * time.Millisecond,
		maxBatchRecords: 1000,
		maxBatchBytes:   1 << 20,
		maxInFlight:     8,
		maxBuffered:     10000,
		retries:         3,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	cfg.maxBatchRecords = max(cfg.maxBatchRecords, 1)
	cfg.maxBatchBytes = max(cfg.maxBatchBytes, 1)
	cfg.maxInFlight = max(cfg.maxInFlight, 1)
	cfg.maxBuffered = max(cfg.maxBuffered, cfg.maxBatchRecords)
	cfg.retries = max(cfg.retries, 0)
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{
		c: c, stream: stream, cfg: cfg, ctx: ctx, cancel: cancel,
		space:    make(chan struct{}, cfg.maxBuffered),
		open:     make(map[int32]*batch),
		ready:    make(map[int32][]*batch),
		busy:     make(map[int32]bool),
		progress: make(chan struct{}),
	}
	return p
}

// Send queues rec for publishing and returns; cb, if not nil, is called
// with the result once the record is stored or has failed. Send blocks
// while the producer holds MaxBuffered records, until ctx is done: then cb
// gets ctx's error.
func (p *Producer) Send(ctx context.Context, rec Record, cb func(PublishResult, error)) {
	if cb == nil {
		cb = func(PublishResult, error) {}
	}
	ctx, rec, cb = p.c.tracing.startSend(ctx, p.stream, rec, cb)
	fail := func(err error) { cb(PublishResult{}, fmt.Errorf("send to %q: %w", p.stream, err)) }
	if p.isClosed() {
		fail(ErrClosed)
		return
	}
	select {
	case p.space <- struct{}{}:
	case <-ctx.Done():
		fail(ctx.Err())
		return
	}
	n, err := p.partitionCount(ctx)
	if err != nil {
		<-p.space
		cb(PublishResult{}, err)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.space
		fail(ErrClosed)
		return
	}
	partition := p.sticky % n
	if rec.Key != nil {
		partition = keyPartition(rec.Key, n)
	}
	e := &sendEntry{record: rec, cb: cb}
	p.queue = append(p.queue, e)
	p.sent++
	size := recordBytes(&rec)
	b := p.open[partition]
	if b != nil && b.bytes+size > p.cfg.maxBatchBytes {
		p.seal(b)
		b = nil
	}
	if b == nil {
		b = &batch{partition: partition}
		p.open[partition] = b
		if p.cfg.linger > 0 {
			b.timer = time.AfterFunc(p.cfg.linger, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.open[b.partition] == b {
					p.seal(b)
					p.dispatch()
				}
			})
		}
	}
	b.entries = append(b.entries, e)
	b.bytes += size
	if len(b.entries) >= p.cfg.maxBatchRecords || b.bytes >= p.cfg.maxBatchBytes {
		p.seal(b)
	}
	p.dispatch()
	p.mu.Unlock()
}

// SendFuture is Send with a Future in place of a callback.
func (p *Producer) SendFuture(ctx context.Context, rec Record) *Future {
	f := &Future{done: make(chan struct{})}
	p.Send(ctx, rec, func(res PublishResult, err error) {
		f.res, f.err = res, err
		close(f.done)
	})
	return f
}

// Future is the result of a record sent with SendFuture.
type Future struct {
	done chan struct{}
	res  PublishResult
	err  error
}

// Done is closed once the result is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait returns the record's result once it is known, or ctx's error.
func (f *Future) Wait(ctx context.Context) (PublishResult, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return PublishResult{}, ctx.Err()
	}
}

// Flush sends every batch at once and waits until each record sent before
// the call has its result (and its callback has run), or until ctx is done.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.sent
	for _, b := range p.open {
		p.seal(b)
	}
	p.dispatch()
	p.mu.Unlock()
	for {
		p.mu.Lock()
		done, progress := p.delivered >= target, p.progress
		p.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close refuses further records, sends those it holds and waits for their
// results. If ctx ends first, the publish calls under way are canceled and
// their records fail.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if already {
		// As the first Close: once every record has its result.
		return p.Flush(context.Background())
	}
	err := p.Flush(ctx)
	// Fails what is left quickly (the publish calls under way are
	// canceled; their records get the error).
	p.cancel()
	return err
}

func (p *Producer) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// partitionCount returns the stream's partition count, asking the server
// the first time and after a publish failed.
func (p *Producer) partitionCount(ctx context.Context) (int32, error) {
	p.mu.Lock()
	n := p.partitions
	p.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	p.metaMu.Lock()
	defer p.metaMu.Unlock()
	p.mu.Lock()
	n = p.partitions
	p.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	info, err := p.c.DescribeStream(ctx, p.stream)
	if err != nil {
		return 0, err
	}
	n = int32(len(info.Partitions))
	if n == 0 {
		return 0, fmt.Errorf("describe stream %q: %w: no partitions", p.stream, ErrInternal)
	}
	p.mu.Lock()
	p.partitions = n
	p.mu.Unlock()
	return n, nil
}

// seal moves an open batch to its partition's ready list. p.mu is held.
func (p *Producer) seal(b *batch) {
	if b.timer != nil {
		b.timer.Stop()
	}
	delete(p.open, b.partition)
	p.ready[b.partition] = append(p.ready[b.partition], b)
	if p.partitions > 0 && b.partition == p.sticky%p.partitions {
		p.sticky = (p.sticky + 1) % p.partitions
	}
}

// dispatch starts the publish of ready batches whose partition has none in
// flight, up to MaxInFlight; without linger, then of open batches too.
// p.mu is held.
func (p *Producer) dispatch() {
	for part := range p.ready {
		if p.inFlight >= p.cfg.maxInFlight {
			return
		}
		if !p.busy[part] {
			p.start(part)
		}
	}
	if p.cfg.linger > 0 {
		return
	}
	for part, b := range p.open {
		if p.inFlight >= p.cfg.maxInFlight {
			return
		}
		if !p.busy[part] && len(p.ready[part]) == 0 {
			p.seal(b)
			p.start(part)
		}
	}
}

// start publishes the first ready batch of partition part. p.mu is held.
func (p *Producer) start(part int32) {
	batches := p.ready[part]
	b := batches[0]
	if len(batches) == 1 {
		delete(p.ready, part)
	} else {
		p.ready[part] = batches[1:]
	}
	p.busy[part] = true
	p.inFlight++
	go p.publish(b)
}

func (p *Producer) publish(b *batch) {
	records := make([]Record, len(b.entries))
	for i, e := range b.entries {
		records[i] = e.record
	}
	var results []PublishResult
	var err error
	for attempt := 0; ; attempt++ {
		// Not PublishPartition: each record has its span, from Send.
		results, err = p.c.publish(p.ctx, p.stream, &b.partition, records)
		if err == nil || attempt >= p.cfg.retries || !retryable(err) || p.ctx.Err() != nil {
			break
		}
		p.c.logger.Warn("weir: publish failed, retrying", "stream", p.stream, "partition", b.partition, "attempt", attempt+1, "err", err)
		if !p.c.backoff.wait(p.ctx, nil, attempt) {
			break
		}
	}
	p.mu.Lock()
	for i, e := range b.entries {
		e.done = true
		if err != nil {
			e.err = err
		} else {
			e.res = results[i]
		}
		e.record = Record{} // let the payload go
	}
	if err != nil && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidArgument)) {
		p.partitions = 0 // the stream may have changed: ask again
	}
	p.busy[b.partition] = false
	p.inFlight--
	p.dispatch()
	if !p.delivering {
		p.delivering = true
		go p.deliver()
	}
	p.mu.Unlock()
}

// deliver runs the callbacks of finished records in Send order, one at a
// time, until no finished record waits for its turn.
func (p *Producer) deliver() {
	for {
		p.mu.Lock()
		var ready []*sendEntry
		for len(p.queue) > 0 && p.queue[0].done {
			ready = append(ready, p.queue[0])
			p.queue[0] = nil
			p.queue = p.queue[1:]
		}
		if len(ready) == 0 {
			p.delivering = false // a publish that finishes now starts another
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, e := range ready {
			e.cb(e.res, e.err)
			<-p.space
		}
		p.mu.Lock()
		p.delivered += uint64(len(ready))
		close(p.progress)
		p.progress = make(chan struct{})
		p.mu.Unlock()
	}
}

// recordBytes approximates a record's size in a batch.
func recordBytes(r *Record) int {
	n := len(r.Key) + len(r.Value) + 16
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}
