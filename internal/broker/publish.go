package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/storage"
)

// murmur2 is the 32-bit MurmurHash2 variant Kafka's clients use to choose a
// partition (seed 0x9747b28c, little-endian 4-byte blocks), so a key lands in
// the same partition whichever client or protocol wrote it.
func murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// KeyPartition returns the partition a key maps to among n: Kafka's
// toPositive(murmur2(key)) % n.
func KeyPartition(key []byte, n int32) int32 {
	return (murmur2(key) & 0x7fffffff) % n
}

// recordSize is what counts against MaxRecordBytes.
func recordSize(r *Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func messageID(r *Record) string {
	for _, h := range r.Headers {
		if h.Key == HeaderMessageID {
			return string(h.Value)
		}
	}
	return ""
}

// Publish appends records to a stream and returns, in the same order, where
// each landed. A record with a key goes to KeyPartition(key); one without, to
// the next partition in turn. The call returns once every record is
// committed under the broker's fsync policy (by default: on disk). A record
// whose message-id was published within the stream's dedup window is not
// stored again: its result is the original's, marked Duplicate.
func (b *Broker) Publish(ctx context.Context, streamName string, recs []Record) ([]PublishResult, error) {
	if err := Authorize(ctx, auth.ResourceStream, streamName, auth.ActionPublish); err != nil {
		return nil, err
	}
	if err := b.admitPublish(ctx); err != nil {
		return nil, err
	}
	return b.publish(ctx, streamName, -1, recs, true)
}

// PublishPartition is Publish into one given partition.
func (b *Broker) PublishPartition(ctx context.Context, streamName string, partition int32, recs []Record) ([]PublishResult, error) {
	if err := Authorize(ctx, auth.ResourceStream, streamName, auth.ActionPublish); err != nil {
		return nil, err
	}
	if partition < 0 {
		return nil, fmt.Errorf("%w: partition %d", ErrPartitionNotFound, partition)
	}
	if err := b.admitPublish(ctx); err != nil {
		return nil, err
	}
	return b.publish(ctx, streamName, partition, recs, true)
}

// publish is Publish; without dedup, message-ids are not looked at (a
// redriven record keeps the id of its first publication).
func (b *Broker) publish(ctx context.Context, streamName string, partition int32, recs []Record, dedup bool) ([]PublishResult, error) {
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: nothing to publish", ErrInvalidArgument)
	}
	s, err := b.stream(streamName)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if n := recordSize(&recs[i]); n > b.cfg.MaxRecordBytes {
			return nil, fmt.Errorf("%w: record %d is %d bytes, the limit is %d", ErrRecordTooLarge, i, n, b.cfg.MaxRecordBytes)
		}
	}
	if err := s.checkRoom(ctx, len(recs)); err != nil {
		return nil, err
	}
	parts := s.partitions()
	n := int32(len(parts))
	if partition >= n {
		return nil, fmt.Errorf("%w: stream %q has partitions 0 to %d, not %d", ErrPartitionNotFound, streamName, n-1, partition)
	}
	results := make([]PublishResult, len(recs))
	// Deduplicate first: a record whose id is known or being published by
	// someone else is answered from there.
	var claims []*dedupEntry
	pending := make([]bool, len(recs))
	var sameAs map[int]int // a repeated id within this call -> its first record
	var firstByID map[string]int
	for i := range recs {
		pending[i] = true
		if s.dedup == nil || !dedup {
			continue
		}
		id := messageID(&recs[i])
		if id == "" {
			continue
		}
		if first, ok := firstByID[id]; ok {
			if sameAs == nil {
				sameAs = make(map[int]int)
			}
			sameAs[i] = first
			pending[i] = false
			continue
		}
		if firstByID == nil {
			firstByID = make(map[string]int)
		}
		firstByID[id] = i
		entry, owner, err := s.dedup.claim(ctx, id, b.now())
		if err != nil {
			s.dedup.abandon(claims)
			return nil, err
		}
		if !owner {
			results[i] = PublishResult{Partition: entry.partition, Offset: entry.offset, Duplicate: true}
			pending[i] = false
			continue
		}
		entry.index = i
		claims = append(claims, entry)
	}
	// Group the rest by partition, keeping their order.
	byPartition := make(map[int32][]int)
	for i := range recs {
		if !pending[i] {
			continue
		}
		p := partition
		if p < 0 {
			if recs[i].Key != nil {
				p = KeyPartition(recs[i].Key, n)
			} else {
				p = int32(s.roundRobin.Add(1)-1) % n
			}
		}
		byPartition[p] = append(byPartition[p], i)
	}
	now := b.now().UnixMilli()
	type partErr struct {
		p   int32
		err error
	}
	errs := make(chan partErr, len(byPartition))
	var wg sync.WaitGroup
	for p, idx := range byPartition {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- partErr{p, b.appendPartition(ctx, parts[p], p, recs, idx, results, now)}
		}()
	}
	wg.Wait()
	close(errs)
	var firstErr error
	var failed map[int32]bool // partitions whose append failed
	for pe := range errs {
		if pe.err == nil {
			continue
		}
		if firstErr == nil {
			firstErr = pe.err
			failed = make(map[int32]bool)
		}
		failed[pe.p] = true
	}
	if s.dedup != nil {
		// The ids of records stored in a partition whose append succeeded
		// are committed even when another partition failed: a retry of
		// the whole call must find them, not store them twice.
		stored, lost := claims, []*dedupEntry(nil)
		if firstErr != nil {
			stored = nil
			partOf := make(map[int]int32, len(claims))
			for p, idx := range byPartition {
				for _, i := range idx {
					partOf[i] = p
				}
			}
			for _, c := range claims {
				if failed[partOf[c.index]] {
					lost = append(lost, c)
				} else {
					stored = append(stored, c)
				}
			}
		}
		s.dedup.abandon(lost)
		s.dedup.commit(stored, results, b.now())
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for i, first := range sameAs {
		results[i] = results[first]
		results[i].Duplicate = true
	}
	s.afterPublish()
	return results, nil
}

// maxBatchBytes bounds one stored batch; a publish larger than that for one
// partition is stored as several batches, in order.
const maxBatchBytes = 16 << 20

// appendPartition writes the records recs[idx...] to one partition, as one
// batch when they fit in maxBatchBytes (and half a segment), and fills in
// their results. If a later batch fails, the earlier ones stay stored, as
// with a Kafka producer's separate batches.
func (b *Broker) appendPartition(ctx context.Context, log *storage.Log, p int32, recs []Record, idx []int, results []PublishResult, now int64) error {
	limit := maxBatchBytes
	if seg := log.SegmentBytes() / 2; seg < int64(limit) {
		limit = int(seg)
	}
	for len(idx) > 0 {
		n, size := 0, 0
		for n < len(idx) && (n == 0 || size+recordSize(&recs[idx[n]])+64 <= limit) {
			size += recordSize(&recs[idx[n]]) + 64
			n++
		}
		batch, err := encodeBatch(nil, recs, idx[:n], now)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
		res, err := log.Append(ctx, batch)
		if errors.Is(err, storage.ErrBatchTooLarge) {
			return fmt.Errorf("%w: a record does not fit in a segment of %d bytes", ErrRecordTooLarge, log.SegmentBytes())
		}
		if err != nil {
			b.disk.noteWriteError(err)
			return fmt.Errorf("broker: append to partition %d: %w", p, err)
		}
		for j, i := range idx[:n] {
			results[i] = PublishResult{Partition: p, Offset: res.BaseOffset + int64(j)}
		}
		idx = idx[n:]
	}
	return nil
}

// encodeBatch builds one uncompressed batch of the given records.
func encodeBatch(dst []byte, recs []Record, idx []int, now int64) ([]byte, error) {
	rs := make([]record.Record, len(idx))
	for j, i := range idx {
		r := &recs[i]
		ts := now
		if !r.Timestamp.IsZero() {
			ts = r.Timestamp.UnixMilli()
		}
		rs[j] = record.Record{Offset: int64(j), Timestamp: ts, Key: r.Key, Value: r.Value}
		if len(r.Headers) > 0 {
			hs := make([]record.RecordHeader, len(r.Headers))
			for k, h := range r.Headers {
				hs[k] = record.RecordHeader{Key: h.Key, Value: h.Value}
			}
			rs[j].Headers = hs
		}
	}
	return record.AppendBatch(dst, record.DefaultBatchOptions(), rs)
}
