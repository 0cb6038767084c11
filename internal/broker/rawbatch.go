package broker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/storage"
)

// Errors of the raw-batch path (AppendBatches, idempotent producers).
var (
	ErrCorruptBatch           = errors.New("corrupt record batch")
	ErrInvalidBatch           = errors.New("invalid record batch")
	ErrOutOfOrderSequence     = errors.New("out of order producer sequence number")
	ErrInvalidProducerEpoch   = errors.New("producer epoch is older than the current one")
	ErrUnsupportedTransaction = errors.New("control batches are written by the transaction coordinator only")
	// ErrEarlierBatchFailed: the batch was not stored because one its
	// producer sent before it, still in flight, failed (retriable).
	ErrEarlierBatchFailed = errors.New("an earlier batch of the producer on this partition failed")
)

// batchOverhead is what a batch may hold beyond MaxRecordBytes of record
// data: its header and the records' framing.
const batchOverhead = 1 << 10

// AppendResult says where a raw append landed.
type AppendResult struct {
	BaseOffset  int64 // offset of the first record of the first batch
	LastOffset  int64
	StartOffset int64 // the partition's log start offset after the append
	// Duplicate is set when an idempotent producer's batch was a retry of
	// one already stored: BaseOffset is the original's.
	Duplicate bool
}

// AppendBatches appends data, one or more RecordBatch v2 batches encoded by
// a client, to one partition of a stream. The batches are stored as they
// arrived (compressed or not); only their base offsets are rewritten. A
// batch from an idempotent producer (producer id >= 0 and a base sequence)
// is checked against the producer's epoch and sequence on this partition: a
// retry of one of its last five batches returns the original offsets, a gap
// fails with ErrOutOfOrderSequence.
//
// When the stream deduplicates and a record carries a message-id, the
// records are decoded and published through Publish instead, so that dedup
// holds for every protocol; the client's batch framing is then not kept.
func (b *Broker) AppendBatches(ctx context.Context, streamName string, partition int32, data []byte) (AppendResult, error) {
	return b.SubmitBatches(ctx, streamName, partition, data).Wait(ctx)
}

// SubmitBatches is the first half of AppendBatches: it checks data and hands
// it to the partition, and PendingAppend.Wait is the second. Data submitted
// one after another to a partition is stored in that order, and a
// submission need not wait for the one before it to be flushed: a Kafka
// connection's pipelined produce requests share flushes this way. Only
// transactional batches and those of a deduplicating stream are appended
// whole before SubmitBatches returns.
func (b *Broker) SubmitBatches(ctx context.Context, streamName string, partition int32, data []byte) PendingAppend {
	if err := Authorize(ctx, auth.ResourceStream, streamName, auth.ActionPublish); err != nil {
		return appended(AppendResult{}, err)
	}
	if err := b.admitPublish(ctx); err != nil {
		return appended(AppendResult{}, err)
	}
	s, err := b.stream(streamName)
	if err != nil {
		return appended(AppendResult{}, err)
	}
	l, err := s.partition(partition)
	if err != nil {
		return appended(AppendResult{}, err)
	}
	var first record.Header
	count, batches := 0, 0
	for p := 0; p < len(data); {
		size, err := record.BatchSize(data[p:])
		if err != nil || p+size > len(data) {
			return appended(AppendResult{}, fmt.Errorf("%w: truncated batch at byte %d", ErrCorruptBatch, p))
		}
		h, err := record.Validate(data[p : p+size])
		if err != nil {
			if errors.Is(err, record.ErrCorrupt) || errors.Is(err, record.ErrShort) {
				return appended(AppendResult{}, fmt.Errorf("%w: %w", ErrCorruptBatch, err))
			}
			return appended(AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidBatch, err))
		}
		if size > b.cfg.MaxRecordBytes+batchOverhead {
			return appended(AppendResult{}, fmt.Errorf("%w: a batch of %d bytes, the limit is %d", ErrRecordTooLarge, size, b.cfg.MaxRecordBytes+batchOverhead))
		}
		if h.IsControl() {
			// Only the transaction coordinator writes control batches.
			return appended(AppendResult{}, ErrUnsupportedTransaction)
		}
		if h.Attributes&record.TransactionalFlag != 0 && (h.ProducerID < 0 || h.BaseSequence < 0) {
			return appended(AppendResult{}, fmt.Errorf("%w: a transactional batch without a producer id and sequence", ErrInvalidBatch))
		}
		if batches == 0 {
			first = h
		}
		batches++
		count += int(h.RecordCount)
		p += size
	}
	if batches == 0 {
		return appended(AppendResult{}, fmt.Errorf("%w: no batch", ErrInvalidBatch))
	}
	if err := s.checkRoom(ctx, count); err != nil {
		return appended(AppendResult{}, err)
	}
	if first.ProducerID >= 0 && first.BaseSequence >= 0 {
		if batches != 1 {
			return appended(AppendResult{}, fmt.Errorf("%w: an idempotent producer sends one batch per partition and request", ErrInvalidBatch))
		}
		submit := func() PendingAppend {
			return b.producers.append(b.now(), s, l, partition, first, func(after bool, failures uint64) PendingAppend {
				return b.submitBatches(ctx, s, streamName, l, partition, data, after, failures)
			})
		}
		if first.Attributes&record.TransactionalFlag != 0 {
			s.mu.RLock()
			streamID := s.meta.ID
			s.mu.RUnlock()
			// Whole: the transaction's end must not overtake the append.
			return appended(b.txns.transactionalAppend(streamID, partition, first.ProducerID, first.ProducerEpoch, func() (AppendResult, error) {
				return submit().Wait(ctx)
			}))
		}
		return submit()
	}
	return b.submitBatches(ctx, s, streamName, l, partition, data, false, 0)
}

// A PendingAppend is a raw append submitted to its partition
// (SubmitBatches) whose result may not be known yet.
type PendingAppend struct {
	res AppendResult
	err error
	// When storage holds the data, the rest of the append: the result
	// comes from pending, and seq is told of it.
	b          *Broker
	s          *stream
	l          *storage.Log
	pending    storage.PendingAppend
	streamName string
	partition  int32
	seq        *pendingSeq
}

// appended is a PendingAppend whose result is known.
func appended(res AppendResult, err error) PendingAppend { return PendingAppend{res: res, err: err} }

// Wait returns the append's result once it is committed under the log's
// fsync policy. If ctx ends first, Wait returns ctx.Err() and the batches
// may or may not be stored. Wait is called once.
func (p PendingAppend) Wait(ctx context.Context) (AppendResult, error) {
	if p.b == nil {
		if p.seq != nil {
			return p.seq.wait(ctx)
		}
		return p.res, p.err
	}
	res, err := p.pending.Wait(ctx)
	if err != nil && ctx.Err() != nil && p.seq != nil {
		// The producer's state learns the outcome once storage has it.
		go func() { p.seq.done(p.finish(p.pending.Wait(context.Background()))) }()
		return AppendResult{}, err
	}
	out, err := p.finish(res, err)
	if p.seq != nil {
		p.seq.done(out, err)
	}
	return out, err
}

// finish turns storage's result into the broker's.
func (p PendingAppend) finish(res storage.AppendResult, err error) (AppendResult, error) {
	switch {
	case errors.Is(err, storage.ErrBatchTooLarge):
		return AppendResult{}, fmt.Errorf("%w: %w", ErrRecordTooLarge, err)
	case errors.Is(err, storage.ErrInvalidBatch):
		return AppendResult{}, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	case errors.Is(err, storage.ErrClosed):
		return AppendResult{}, fmt.Errorf("%w: %q was deleted", ErrStreamNotFound, p.streamName)
	case errors.Is(err, storage.ErrEarlierFailed):
		return AppendResult{}, fmt.Errorf("%w: partition %d", ErrEarlierBatchFailed, p.partition)
	case err != nil:
		p.b.disk.noteWriteError(err)
		return AppendResult{}, fmt.Errorf("broker: append to partition %d: %w", p.partition, err)
	}
	p.s.afterPublish()
	return AppendResult{BaseOffset: res.BaseOffset, LastOffset: res.LastOffset, StartOffset: p.l.StartOffset()}, nil
}

// submitBatches hands data to l, or, when the stream deduplicates and a
// record carries a message-id, publishes its records whole. With after,
// data is not stored if an append of l failed after l.Failures() was
// failures (storage.Log.SubmitAfter).
func (b *Broker) submitBatches(ctx context.Context, s *stream, streamName string, l *storage.Log, partition int32, data []byte, after bool, failures uint64) PendingAppend {
	// A transactional batch is stored as sent: its producer fields are
	// what commits or aborts it (its message-ids are not deduplicated).
	if s.dedup != nil && !isTransactional(data) {
		recs, hasID, err := decodeForDedup(data, partition)
		if err != nil {
			return appended(AppendResult{}, fmt.Errorf("%w: %w", ErrCorruptBatch, err))
		}
		if hasID {
			res, err := b.publish(ctx, streamName, partition, recs, true)
			if err != nil {
				return appended(AppendResult{}, err)
			}
			out := AppendResult{BaseOffset: -1, StartOffset: l.StartOffset(), Duplicate: true}
			for _, r := range res {
				if out.BaseOffset < 0 || r.Offset < out.BaseOffset {
					out.BaseOffset = r.Offset
				}
				out.LastOffset = max(out.LastOffset, r.Offset)
				out.Duplicate = out.Duplicate && r.Duplicate
			}
			return appended(out, nil)
		}
	}
	p := PendingAppend{b: b, s: s, l: l, streamName: streamName, partition: partition}
	var err error
	if after {
		p.pending, err = l.SubmitAfter(ctx, data, failures)
	} else {
		p.pending, err = l.Submit(ctx, data)
	}
	if err != nil {
		return appended(p.finish(storage.AppendResult{}, err))
	}
	return p
}

// isTransactional reports whether data's first batch is transactional.
func isTransactional(data []byte) bool {
	h, err := record.ParseHeader(data)
	return err == nil && h.Attributes&record.TransactionalFlag != 0
}

// decodeForDedup decodes the records of data and reports whether any
// carries a message-id header.
func decodeForDedup(data []byte, partition int32) ([]Record, bool, error) {
	var it record.Iterator
	var r record.Record
	hasID := false
	for p := 0; p < len(data); {
		size, err := record.BatchSize(data[p:])
		if err != nil {
			return nil, false, err
		}
		if err := it.Reset(data[p : p+size]); err != nil {
			return nil, false, err
		}
		for it.Next(&r) {
			for _, h := range r.Headers {
				if h.Key == HeaderMessageID {
					hasID = true
				}
			}
		}
		if err := it.Err(); err != nil {
			return nil, false, err
		}
		p += size
	}
	if !hasID {
		return nil, false, nil
	}
	recs, _, err := decodeRecords(nil, data, partition, 0)
	if err != nil {
		return nil, false, err
	}
	// The records alias data; Publish re-encodes them.
	for i := range recs {
		recs[i].Offset = 0
	}
	return recs, true, nil
}

// PartitionRead is what ReadBatches returns for one partition.
type PartitionRead struct {
	// Data holds whole stored batches; the first may start before the
	// offset asked for.
	Data        []byte
	HighWater   int64
	StartOffset int64
	// LastStable is the last stable offset: HighWater unless a
	// transaction is open on the partition (txn_index.go).
	LastStable int64
	// Aborted lists the aborted transactions of Data (ReadCommitted only).
	Aborted []AbortedTxn
}

// ReadBatches appends to dst the stored batches of one partition from
// offset, up to maxBytes (the first batch whole even if larger), without
// decoding them. It does not wait.
func (b *Broker) ReadBatches(streamName string, partition int32, offset int64, maxBytes int, dst []byte) (PartitionRead, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return PartitionRead{}, err
	}
	l, err := s.partition(partition)
	if err != nil {
		return PartitionRead{}, err
	}
	out := PartitionRead{HighWater: l.EndOffset(), StartOffset: l.StartOffset()}
	out.LastStable = out.HighWater
	if b.txns.index.used.Load() {
		s.mu.RLock()
		key := partitionKey{s.meta.ID, partition}
		s.mu.RUnlock()
		out.LastStable = b.txns.index.lastStable(key, out.HighWater)
	}
	data, err := l.Read(dst, offset, maxBytes)
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return out, fmt.Errorf("%w: partition %d holds offsets %d to %d, not %d", ErrOffsetOutOfRange, partition, out.StartOffset, out.HighWater, offset)
	case errors.Is(err, storage.ErrClosed):
		return out, fmt.Errorf("%w: %q was deleted", ErrStreamNotFound, streamName)
	case err != nil:
		return out, err
	}
	out.Data = data
	return out, nil
}

// PartitionPosition is a partition and the offset a reader waits beyond.
type PartitionPosition struct {
	Stream    string
	Partition int32
	Offset    int64
}

// WaitAny blocks until one of the partitions has a record at or after its
// offset, maxWait passes, or ctx ends. It reports whether data arrived.
// Unknown partitions are ignored.
func (b *Broker) WaitAny(ctx context.Context, positions []PartitionPosition, maxWait time.Duration) bool {
	if maxWait <= 0 || len(positions) == 0 {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	woke := make(chan struct{}, 1)
	waiting := 0
	for _, pos := range positions {
		s, err := b.stream(pos.Stream)
		if err != nil {
			continue
		}
		l, err := s.partition(pos.Partition)
		if err != nil {
			continue
		}
		if l.EndOffset() > pos.Offset {
			return true
		}
		waiting++
		go func() {
			if l.Wait(wctx, pos.Offset) == nil {
				select {
				case woke <- struct{}{}:
				default:
				}
				cancel()
			}
		}()
	}
	if waiting == 0 {
		<-wctx.Done()
		return false
	}
	select {
	case <-woke:
		return true
	case <-wctx.Done():
		select {
		case <-woke:
			return true
		default:
			return false
		}
	}
}

// StreamNameByID returns the name of the stream whose ID is id (Kafka
// requests that name topics by ID).
func (b *Broker) StreamNameByID(id [16]byte) (string, error) {
	b.mu.RLock()
	name, ok := b.byID[id]
	b.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("%w: no stream has id %s", ErrStreamNotFound, hex.EncodeToString(id[:]))
	}
	return name, nil
}

// registerStream makes s known by its name and ID; b.mu is held (or b is not
// shared yet).
func (b *Broker) registerStream(s *stream) {
	b.streams[s.meta.Name] = s
	if id, ok := streamID(s.meta.ID); ok {
		b.byID[id] = s.meta.Name
	}
}

// removeStream forgets the stream called name; b.mu is held.
func (b *Broker) removeStream(name string) {
	if s := b.streams[name]; s != nil {
		if id, ok := streamID(s.meta.ID); ok {
			delete(b.byID, id)
		}
	}
	delete(b.streams, name)
}

// streamID decodes a stream's hex ID; ok is false for a stream stored
// without one.
func streamID(hexID string) (id [16]byte, ok bool) {
	n, err := hex.Decode(id[:], []byte(hexID))
	return id, err == nil && n == len(id)
}
