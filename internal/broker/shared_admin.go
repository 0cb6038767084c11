package broker

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/auth"
)

// Purge settles every record of a shared subscription that is not
// acknowledged yet, in flight included (as SQS's PurgeQueue): acknowledging
// one of those afterwards is harmless. It returns how many were purged.
func (b *Broker) Purge(ctx context.Context, streamName, sub string) (int64, error) {
	if err := AuthorizeSubscription(ctx, streamName, sub, auth.ActionManage); err != nil {
		return 0, err
	}
	ss, err := b.sharedSub(streamName, sub)
	if err != nil {
		return 0, err
	}
	ss.mu.Lock()
	var n int64
	for _, part := range ss.parts {
		if end := part.log.EndOffset(); end > part.fetch {
			n += end - part.fetch - int64(len(part.storedAcks))
			part.fetch = end
			part.sized, part.aheadBytes = max(part.sized, end), 0
			// What the store knew of the purged records no longer counts.
			clear(part.storedAcks)
			clear(part.storedDeliveries)
		}
		for off, p := range part.live {
			if p.state == stateSettling {
				continue // an ack or dead-lettering under way finishes
			}
			ss.takeFromConsumer(p)
			ss.leaveBuffer(p)
			p.state = stateSettled
			delete(part.live, off)
			ss.liveBytes -= p.bytes
			n++
		}
	}
	ss.again, ss.fresh, ss.unconfirmed = nil, nil, nil
	ss.keys = make(map[string]*keyQueue)
	for _, part := range ss.parts {
		for _, p := range part.live {
			if p.keyed {
				ss.keys[p.key] = &keyQueue{}
			}
		}
	}
	ss.freeSpace()
	ss.signal()
	ss.mu.Unlock()
	// An empty op makes the committer store the new floors.
	return n, ss.commit(ctx, &commitOp{done: make(chan error, 1)})
}

// Redrive moves up to max records (0: all) from a subscription's
// dead-letter stream back to the stream they came from, without the
// dead-letter headers, and returns how many it moved.
func (b *Broker) Redrive(ctx context.Context, streamName, sub string, max int64) (int64, error) {
	if err := AuthorizeSubscription(ctx, streamName, sub, auth.ActionManage); err != nil {
		return 0, err
	}
	ss, err := b.sharedSub(streamName, sub)
	if err != nil {
		return 0, err
	}
	dlq := ss.cfg.DeadLetterStream
	if _, err := b.sharedSub(dlq, dlq); err != nil {
		return 0, err
	}
	const consumer = "weir-redrive"
	defer b.CloseConsumer(dlq, dlq, consumer)
	var moved int64
	for max <= 0 || moved < max {
		n := int64(256)
		if max > 0 {
			n = min(n, max-moved)
		}
		ds, err := b.Receive(serverWork(ctx), dlq, dlq, consumer, int(n), 100*time.Millisecond)
		if err != nil {
			return moved, err
		}
		if len(ds) == 0 {
			info, err := b.DescribeSubscription(dlq, dlq)
			if err != nil || info.Depth-int64(info.InFlight) <= 0 {
				return moved, err
			}
			continue
		}
		refs := make([]DeliveryRef, len(ds))
		for i, d := range ds {
			target, partition, rec := undeadLetter(d.Record, ss.cfg.Stream)
			if _, err = b.publish(ctx, target, partition, []Record{rec}, false); err != nil {
				return moved, err
			}
			refs[i] = DeliveryRef{Partition: d.Partition, Offset: d.Offset}
		}
		if err := b.Ack(ctx, dlq, dlq, consumer, refs); err != nil {
			return moved, err
		}
		moved += int64(len(ds))
	}
	return moved, nil
}

// undeadLetter strips the dead-letter headers of a record and says where it
// goes back to: the stream and, for a record without a key, the partition
// it came from (-1: by key).
func undeadLetter(rec Record, defaultStream string) (string, int32, Record) {
	target, partition := defaultStream, int32(-1)
	var hs []Header
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderDeadLetterStream:
			target = string(h.Value)
		case HeaderDeadLetterPartition:
			if p, err := strconv.ParseInt(string(h.Value), 10, 32); err == nil && rec.Key == nil {
				partition = int32(p)
			}
		case HeaderDeadLetterOffset, HeaderDeadLetterReason, HeaderDeliveryCount, HeaderLastError:
		default:
			if !strings.HasPrefix(h.Key, "x-dead-letter-") {
				hs = append(hs, h)
			}
		}
	}
	out := Record{Key: rec.Key, Value: rec.Value, Headers: hs}
	return target, partition, out
}
