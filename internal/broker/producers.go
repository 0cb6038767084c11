package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/storage"
)

// producerRegistry holds, in memory, the state of idempotent producers: per
// producer id and partition, the epoch, the last sequence stored and the
// offsets of the last few batches (so a retried batch is answered with its
// original offsets instead of being stored twice).
//
// Producer ids are unique across restarts without a durable counter: the
// first id of a run is the start time in milliseconds shifted left 16 bits,
// and ids count up from there. The per-partition state is rebuilt from the
// log: the first idempotent append to a partition after the node started
// reads the partition's tail (tailLoad) and takes each producer's epoch,
// last sequence and last batches from the stored batch headers, so a retry
// that crosses a restart is still answered with its original offsets. A
// producer not found in the tail is accepted at whatever sequence it sends.
type producerRegistry struct {
	mu     sync.Mutex
	next   int64
	parts  map[producerKey]*producerPartition
	loaded map[partitionKey]*tailLoad
}

type partitionKey struct {
	streamID  string
	partition int32
}

// tailLoad is the state of one partition's tail scan: done once it
// succeeded (a failed scan is tried again by the next append).
type tailLoad struct {
	mu   sync.Mutex
	done bool
}

// Tail scan bounds: the scan covers at least tailScanBatches batches (or
// the whole log), starting tailScanOffsets offsets before the end and
// widening four times at a time.
const (
	tailScanBatches = 64
	tailScanOffsets = 4096
)

type producerKey struct {
	id        int64
	streamID  string // the stream's ID, so a stream recreated under its name starts afresh
	partition int32
}

// recentBatches is how many batches per producer and partition are
// remembered for retries: Kafka clients keep at most five in flight.
const recentBatches = 5

type producerPartition struct {
	mu       sync.Mutex // held across the check and the submission, so one producer's batches to a partition are stored in order
	lastUsed time.Time  // guarded by producerRegistry.mu
	known    bool
	epoch    int16
	lastSeq  int32
	recent   []sequencedBatch
	// failures is the log's Failures before the first of the batches in
	// flight was submitted.
	failures uint64
}

type sequencedBatch struct {
	firstSeq, lastSeq int32
	res               AppendResult
	// pending is set while the batch is submitted but not yet stored:
	// a retry of it waits for its outcome.
	pending *pendingSeq
}

// pendingSeq is an idempotent batch submitted to storage, as its
// producer's state knows it until the append's outcome is known.
type pendingSeq struct {
	pp       *producerPartition
	finished chan struct{} // closed once res and err are set
	res      AppendResult
	err      error
}

// done records the outcome of the batch's append: a stored batch is
// remembered for retries; a failed one makes the producer's state unknown
// again, so that the retry, and the batches after it that were submitted
// behind it, are taken.
func (ps *pendingSeq) done(res AppendResult, err error) {
	ps.res, ps.err = res, err
	close(ps.finished)
	pp := ps.pp
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for i := range pp.recent {
		r := &pp.recent[i]
		if r.pending != ps {
			continue
		}
		if err != nil {
			pp.known = false
			pp.recent = pp.recent[:0]
			return
		}
		r.res, r.pending = res, nil
		return
	}
}

// wait returns the outcome of the batch a retry duplicates.
func (ps *pendingSeq) wait(ctx context.Context) (AppendResult, error) {
	select {
	case <-ps.finished:
	default:
		select {
		case <-ps.finished:
		case <-ctx.Done():
			return AppendResult{}, ctx.Err()
		}
	}
	res := ps.res
	res.Duplicate = true
	return res, ps.err
}

// InitProducerID returns a new producer id with epoch 0, or, given a
// producer's current id and epoch, the same id with the next epoch (which
// fences off older instances of the producer).
func (b *Broker) InitProducerID(currentID int64, currentEpoch int16) (int64, int16) {
	p := &b.producers
	p.mu.Lock()
	defer p.mu.Unlock()
	if currentID >= 0 && currentEpoch >= 0 && currentEpoch < math.MaxInt16-1 && currentID < p.next {
		return currentID, currentEpoch + 1
	}
	if p.next == 0 {
		p.next = b.now().UnixMilli() << 16
	}
	id := p.next
	p.next++
	return id, 0
}

// producerIdle is how long a producer's state on a partition is kept
// without use (Kafka's producer.id.expiration.ms default).
const producerIdle = 24 * time.Hour

func (p *producerRegistry) partition(key producerKey, now time.Time) *producerPartition {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.parts == nil {
		p.parts = make(map[producerKey]*producerPartition)
	}
	pp, ok := p.parts[key]
	if !ok {
		pp = &producerPartition{}
		p.parts[key] = pp
	}
	pp.lastUsed = now
	return pp
}

// prune forgets producer states idle for longer than producerIdle.
func (p *producerRegistry) prune(clock func() time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.parts) == 0 {
		return
	}
	now := clock()
	for k, pp := range p.parts {
		if now.Sub(pp.lastUsed) > producerIdle {
			delete(p.parts, k)
		}
	}
}

// nextSeq is the sequence after seq: sequences wrap from MaxInt32 to 0.
func nextSeq(seq int32, n int32) int32 {
	return int32((int64(seq) + int64(n)) % (math.MaxInt32 + 1))
}

// append checks the batch h against its producer's state on the partition,
// submits it if it is the next batch, and records it as the producer's
// last. The producer's next batch may be checked and submitted before this
// one is stored: pipelined requests share flushes.
func (p *producerRegistry) append(now time.Time, s *stream, l *storage.Log, partition int32, h record.Header, submit func(after bool, failures uint64) PendingAppend) PendingAppend {
	s.mu.RLock() // meta is replaced when partitions are added
	streamID := s.meta.ID
	s.mu.RUnlock()
	if err := p.loadTail(s, streamID, partition, now); err != nil {
		return appended(AppendResult{}, err)
	}
	pp := p.partition(producerKey{id: h.ProducerID, streamID: streamID, partition: partition}, now)
	pp.mu.Lock()
	defer pp.mu.Unlock()
	first := h.BaseSequence
	last := nextSeq(first, h.LastOffsetDelta)
	switch {
	case !pp.known:
		// A producer this run has not seen on this partition: accept it.
	case h.ProducerEpoch < pp.epoch:
		return appended(AppendResult{}, fmt.Errorf("%w: producer %d sent epoch %d, the current epoch is %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, pp.epoch))
	case h.ProducerEpoch > pp.epoch:
		if first != 0 {
			return appended(AppendResult{}, fmt.Errorf("%w: producer %d starts epoch %d at sequence %d, not 0", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first))
		}
	default:
		for _, r := range pp.recent {
			if r.firstSeq == first && r.lastSeq == last {
				if r.pending != nil {
					return PendingAppend{seq: r.pending}
				}
				res := r.res
				res.Duplicate = true
				return appended(res, nil)
			}
		}
		if want := nextSeq(pp.lastSeq, 1); first != want {
			return appended(AppendResult{}, fmt.Errorf("%w: producer %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, first, want))
		}
	}
	// A batch submitted while the one before it is still in flight must
	// not be stored if that one fails: the batches in flight together
	// are stored only if no append of the log failed since the first of
	// them was submitted (storage.Log.SubmitAfter).
	inFlight := pp.known && h.ProducerEpoch == pp.epoch && len(pp.recent) > 0 && pp.recent[len(pp.recent)-1].pending != nil
	if !inFlight {
		pp.failures = l.Failures()
	}
	pa := submit(inFlight, pp.failures)
	if pa.b == nil && pa.seq == nil {
		// Refused, or appended whole: its outcome is known.
		if pa.err != nil {
			return pa
		}
		remember(pp, h.ProducerEpoch, sequencedBatch{firstSeq: first, lastSeq: last, res: pa.res})
		return pa
	}
	pa.seq = &pendingSeq{pp: pp, finished: make(chan struct{})}
	remember(pp, h.ProducerEpoch, sequencedBatch{firstSeq: first, lastSeq: last, pending: pa.seq})
	return pa
}

// remember makes b the producer's last batch on the partition. pp.mu is
// held.
func remember(pp *producerPartition, epoch int16, b sequencedBatch) {
	if !pp.known || epoch != pp.epoch {
		pp.recent = pp.recent[:0]
	}
	pp.known, pp.epoch, pp.lastSeq = true, epoch, b.lastSeq
	if len(pp.recent) == recentBatches {
		copy(pp.recent, pp.recent[1:])
		pp.recent = pp.recent[:recentBatches-1]
	}
	pp.recent = append(pp.recent, b)
}

// loadTail rebuilds, once per partition and run, the state of the
// idempotent producers whose batches are in the partition's tail.
func (p *producerRegistry) loadTail(s *stream, streamID string, partition int32, now time.Time) error {
	key := partitionKey{streamID, partition}
	p.mu.Lock()
	if p.loaded == nil {
		p.loaded = make(map[partitionKey]*tailLoad)
	}
	tl, ok := p.loaded[key]
	if !ok {
		tl = &tailLoad{}
		p.loaded[key] = tl
	}
	p.mu.Unlock()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.done {
		return nil
	}
	l, err := s.partition(partition)
	if err != nil {
		return err
	}
	states, err := scanProducerTail(l)
	if err != nil {
		return fmt.Errorf("broker: reading the producer state of partition %d: %w", partition, err)
	}
	p.mu.Lock()
	if p.parts == nil {
		p.parts = make(map[producerKey]*producerPartition)
	}
	for id, st := range states {
		k := producerKey{id: id, streamID: streamID, partition: partition}
		if _, ok := p.parts[k]; !ok { // a producer seen since the start is newer
			st.lastUsed = now
			p.parts[k] = st
		}
	}
	p.mu.Unlock()
	tl.done = true
	return nil
}

// scanProducerTail reads the batch headers of a partition's tail and
// returns, per producer id, the state its batches there leave: as if they
// had been appended by this run.
func scanProducerTail(l *storage.Log) (map[int64]*producerPartition, error) {
	for window := int64(tailScanOffsets); ; window *= 4 {
		start, end := l.StartOffset(), l.EndOffset()
		from := max(start, end-window)
		states := make(map[int64]*producerPartition)
		batches := 0
		err := readRaw(l, from, func(batch []byte) error {
			h, err := record.ParseHeader(batch)
			if err != nil {
				return err
			}
			batches++
			if h.ProducerID < 0 || h.BaseSequence < 0 {
				return nil
			}
			pp := states[h.ProducerID]
			if pp == nil {
				pp = &producerPartition{}
				states[h.ProducerID] = pp
			}
			if !pp.known || h.ProducerEpoch != pp.epoch {
				pp.recent = pp.recent[:0]
			}
			last := nextSeq(h.BaseSequence, h.LastOffsetDelta)
			pp.known, pp.epoch, pp.lastSeq = true, h.ProducerEpoch, last
			if len(pp.recent) == recentBatches {
				copy(pp.recent, pp.recent[1:])
				pp.recent = pp.recent[:recentBatches-1]
			}
			pp.recent = append(pp.recent, sequencedBatch{firstSeq: h.BaseSequence, lastSeq: last,
				res: AppendResult{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), StartOffset: start}})
			return nil
		})
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			continue // retention moved the start meanwhile: read again
		}
		if err != nil {
			return nil, err
		}
		if batches >= tailScanBatches || from <= start {
			return states, nil
		}
	}
}
