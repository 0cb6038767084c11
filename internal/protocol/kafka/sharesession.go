package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/weirmq/weir/internal/broker"
)

// sessionStep validates the share session epoch of a ShareFetch (fetch
// set) or ShareAcknowledge and moves the session on: epoch 0 opens a
// session (ShareFetch only, replacing the member's previous one), -1
// closes it (returned as closed, released by the caller once the request's
// acknowledgements are applied), any other epoch must be the one the
// session expects and advances it. add and forget change the partitions a
// ShareFetch session fetches. It returns the session's partitions after
// the step, and an error code for the whole request.
func (sc *shareCoordinator) sessionStep(c *conn, key shareSessionKey, epoch int32, fetch bool, add, forget []topicPartitionID) (parts []topicPartitionID, replaced, closed *shareSession, code int16, err error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sess := sc.sessions[key]
	if epoch != shareFinalEpoch {
		g := sc.groups[key.group]
		if g == nil || g.members[key.member] == nil {
			return nil, nil, nil, kerr.UnknownMemberID.Code, fmt.Errorf("member %q is not in share group %q: heartbeat first", key.member, key.group)
		}
	}
	switch {
	case epoch == shareInitialEpoch:
		if !fetch {
			return nil, nil, nil, kerr.InvalidShareSessionEpoch.Code, errors.New("ShareAcknowledge cannot open a share session")
		}
		replaced = sess
		sess = &shareSession{conn: c, epoch: 1, parts: make(map[topicPartitionID]struct{})}
		sc.sessions[key] = sess
	case sess == nil:
		return nil, nil, nil, kerr.ShareSessionNotFound.Code, fmt.Errorf("no share session for member %q of group %q", key.member, key.group)
	case epoch == shareFinalEpoch:
		delete(sc.sessions, key)
		closed = sess
	case epoch != sess.epoch:
		return nil, nil, nil, kerr.InvalidShareSessionEpoch.Code, fmt.Errorf("share session epoch %d, expected %d", epoch, sess.epoch)
	default:
		sess.epoch = nextShareEpoch(sess.epoch)
	}
	for _, tp := range add {
		sess.parts[tp] = struct{}{}
	}
	for _, tp := range forget {
		delete(sess.parts, tp)
	}
	for tp := range sess.parts {
		parts = append(parts, tp)
	}
	return parts, replaced, closed, 0, nil
}

// ackBatch is one acknowledgement batch of a request: offsets first to
// last, one type for all or one per offset.
type ackBatch struct {
	first, last int64
	types       []int8
}

// applyShareAcks applies a partition's acknowledgements for a member:
// ACCEPT acknowledges, RELEASE gives the record back for delivery at once
// (its delivery count stays), REJECT dead-letters it, RENEW (when allowed)
// extends its acquisition lock, and a GAP (an offset without a record) is
// ignored. It returns the partition's error code: INVALID_REQUEST for
// malformed batches, INVALID_RECORD_STATE for records the member does not
// hold.
func (c *conn) applyShareAcks(ctx context.Context, group, memberID, stream string, partition int32, batches []ackBatch, renew bool, budget *int) (int16, *string) {
	var accept, release, reject, extend []broker.DeliveryRef
	prev := int64(-1)
	for _, ab := range batches {
		n := ab.last - ab.first + 1
		switch {
		case ab.first < 0 || n <= 0:
			return kerr.InvalidRequest.Code, errorMessage(fmt.Errorf("acknowledgement batch %d to %d", ab.first, ab.last))
		case ab.first <= prev:
			return kerr.InvalidRequest.Code, errorMessage(errors.New("acknowledgement batches must be in ascending offset order and not overlap"))
		case n > int64(*budget):
			return kerr.InvalidRequest.Code, errorMessage(fmt.Errorf("more than %d offsets acknowledged in one request", shareMaxAckOffsets))
		case len(ab.types) != 1 && int64(len(ab.types)) != n:
			return kerr.InvalidRequest.Code, errorMessage(fmt.Errorf("%d acknowledge types for %d offsets", len(ab.types), n))
		}
		*budget -= int(n)
		prev = ab.last
		for i := range n {
			t := ab.types[0]
			if len(ab.types) > 1 {
				t = ab.types[i]
			}
			ref := broker.DeliveryRef{Partition: partition, Offset: ab.first + i}
			switch {
			case t == ackGap:
			case t == ackAccept:
				accept = append(accept, ref)
			case t == ackRelease:
				release = append(release, ref)
			case t == ackReject:
				reject = append(reject, ref)
			case t == ackRenew && renew:
				extend = append(extend, ref)
			default:
				return kerr.InvalidRequest.Code, errorMessage(fmt.Errorf("acknowledge type %d", t))
			}
		}
	}
	b := c.s.cfg.Broker
	consumer := shareConsumerID(memberID)
	var err error
	if len(accept) > 0 {
		err = errors.Join(err, b.Ack(ctx, stream, group, consumer, accept))
	}
	if len(release) > 0 {
		// A released record is available again at once (Kafka's RELEASE),
		// not after the subscription's nack backoff.
		err = errors.Join(err, b.Nack(ctx, stream, group, consumer, release, "released by the Kafka share consumer", time.Nanosecond))
	}
	if len(reject) > 0 {
		err = errors.Join(err, b.Reject(ctx, stream, group, consumer, reject, "rejected by the Kafka share consumer"))
	}
	if len(extend) > 0 {
		if info, ierr := b.DescribeSubscription(stream, group); ierr != nil {
			err = errors.Join(err, ierr)
		} else {
			err = errors.Join(err, b.Extend(ctx, stream, group, consumer, extend, info.Config.AckTimeout))
		}
	}
	if err == nil {
		return 0, nil
	}
	if errors.Is(err, broker.ErrSubscriptionNotFound) {
		return kerr.InvalidRecordState.Code, errorMessage(err)
	}
	return errorCode(err), errorMessage(err)
}
