package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/storage"
)

// readChunk is how much readRaw reads at a time.
const readChunk = 1 << 20

// readRaw calls fn with every batch of l from offset from to the end of the
// log as it is now.
func readRaw(l *storage.Log, from int64, fn func(batch []byte) error) error {
	end := l.EndOffset()
	var buf []byte
	for off := from; off < end; {
		data, err := l.Read(buf[:0], off, readChunk)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
		buf = data
		for p := 0; p < len(data); {
			h, err := record.ParseHeader(data[p:])
			if err != nil {
				return err
			}
			if err := fn(data[p : p+h.Size()]); err != nil {
				return err
			}
			off = max(off, h.LastOffset()+1)
			p += h.Size()
		}
	}
	return nil
}

// Fetch reads records of one partition from offset, up to about maxBytes
// (at least one record when any is there). When nothing is there yet it
// waits up to maxWait for a record to arrive (a long poll).
func (b *Broker) Fetch(ctx context.Context, streamName string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (FetchResult, error) {
	if err := Authorize(ctx, auth.ResourceStream, streamName, auth.ActionConsume); err != nil {
		return FetchResult{}, err
	}
	s, err := b.stream(streamName)
	if err != nil {
		return FetchResult{}, err
	}
	l, err := s.partition(partition)
	if err != nil {
		return FetchResult{}, err
	}
	res, err := fetchLog(ctx, nil, l, partition, offset, maxBytes, maxWait)
	if errors.Is(err, ErrClosed) && b.ctx.Err() == nil {
		// The partition closed under a long poll while the broker runs:
		// the stream was deleted.
		return res, fmt.Errorf("%w: %q was deleted", ErrStreamNotFound, streamName)
	}
	return res, err
}

// fetchLog is Fetch on one log; the records are appended to dst.
func fetchLog(ctx context.Context, dst []Record, l *storage.Log, partition int32, offset int64, maxBytes int, maxWait time.Duration) (FetchResult, error) {
	if maxBytes <= 0 {
		maxBytes = readChunk
	}
	if offset >= l.EndOffset() && offset >= l.StartOffset() && maxWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, maxWait)
		err := l.Wait(wctx, offset)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return FetchResult{}, ctx.Err()
			}
			if errors.Is(err, storage.ErrClosed) {
				return FetchResult{}, ErrClosed
			}
			return FetchResult{}, err
		}
	}
	res := FetchResult{Records: dst, NextOffset: offset, HighWater: l.EndOffset(), StartOffset: l.StartOffset()}
	data, err := l.Read(nil, offset, maxBytes)
	if err != nil {
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			return res, fmt.Errorf("%w: partition %d holds offsets %d to %d, not %d", ErrOffsetOutOfRange, partition, res.StartOffset, res.HighWater, offset)
		}
		if errors.Is(err, storage.ErrClosed) {
			return res, ErrClosed
		}
		return res, err
	}
	res.Records, res.NextOffset, err = decodeRecords(res.Records, data, partition, offset)
	return res, err
}

// decodeRecords appends the records of batches at or after offset. Records
// alias data, except those of compressed batches, which are copied.
func decodeRecords(dst []Record, data []byte, partition int32, offset int64) ([]Record, int64, error) {
	// Grow dst once, by the record counts of the batch headers.
	n := 0
	for p := 0; p+record.HeaderSize <= len(data); {
		h, err := record.ParseHeader(data[p:])
		if err != nil || h.Size() <= 0 {
			break
		}
		n += int(max(h.RecordCount, 0))
		p += h.Size()
	}
	dst = slices.Grow(dst, n)
	var it record.Iterator
	var r record.Record
	next := offset
	for p := 0; p < len(data); {
		h, err := record.ParseHeader(data[p:])
		if err != nil {
			return dst, next, err
		}
		batch := data[p : p+h.Size()]
		p += h.Size()
		next = max(next, h.LastOffset()+1)
		if h.IsControl() {
			continue
		}
		if err := it.Reset(batch); err != nil {
			return dst, next, err
		}
		copyOut := h.Compression() != record.CompressionNone
		for it.Next(&r) {
			if r.Offset < offset {
				continue
			}
			out := Record{Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp), Partition: partition, Offset: r.Offset}
			if copyOut {
				out.Key, out.Value = cloneBytes(r.Key), cloneBytes(r.Value)
			}
			if len(r.Headers) > 0 {
				out.Headers = make([]Header, len(r.Headers))
				for i, hd := range r.Headers {
					v := hd.Value
					if copyOut {
						v = cloneBytes(v)
					}
					out.Headers[i] = Header{Key: hd.Key, Value: v}
				}
			}
			dst = append(dst, out)
		}
		if err := it.Err(); err != nil {
			return dst, next, err
		}
	}
	return dst, next, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// ResolveStart returns the offset a reader starting at pos reads first in
// one partition.
func (b *Broker) ResolveStart(streamName string, partition int32, pos StartPosition) (int64, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return 0, err
	}
	l, err := s.partition(partition)
	if err != nil {
		return 0, err
	}
	return resolveStart(l, pos)
}

func resolveStart(l *storage.Log, pos StartPosition) (int64, error) {
	start, end := l.StartOffset(), l.EndOffset()
	switch pos.Kind {
	case StartEarliest:
		return start, nil
	case StartLatest:
		return end, nil
	case StartOffset:
		return min(max(pos.Offset, start), end), nil
	case StartTime:
		off, found, err := l.OffsetForTime(pos.Time.UnixMilli())
		if err != nil {
			return 0, err
		}
		if !found {
			return end, nil
		}
		return off, nil
	}
	return 0, fmt.Errorf("%w: unknown start position %d", ErrInvalidArgument, pos.Kind)
}
