package weir

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// Backoff is the delay before a nacked record is delivered again:
// Initial × Multiplier^(deliveries-1), at most Max. Zero fields take the
// server's defaults (100ms, 1m, ×2); a Multiplier of 1 makes the delay
// fixed.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// SubscriptionConfig configures a shared subscription: queue semantics on
// a stream. Its consumers compete for its records, and each record is
// acknowledged, nacked (delivered again after a backoff) or rejected
// (dead-lettered) on its own.
type SubscriptionConfig struct {
	Stream string
	Name   string
	// Filter is a CEL expression over the record (key, headers, value,
	// timestamp, partition, offset, stream); records for which it is false
	// are skipped by this subscription. Empty: every record.
	Filter string
	// Start is where a new subscription begins; unset: Latest. (A queue's
	// own subscription starts at its first record.)
	Start StartPosition
	// AckTimeout is how long a delivered record may stay unsettled before
	// it is delivered again; 0: the server's default, 30s. Message.Extend
	// moves a record's deadline.
	AckTimeout time.Duration
	// MaxDeliveries, when positive, dead-letters a record delivered that
	// many times without being acknowledged; 0: no limit.
	MaxDeliveries int32
	// DeadLetterStream receives rejected and over-delivered records (and
	// expired ones, with ExpiredDeadLetter); empty: "<stream>.<name>.dlq",
	// or "<name>.dlq" for a queue. The server creates it as a queue.
	DeadLetterStream string
	// Backoff is the redelivery delay after a Nack.
	Backoff Backoff
	// KeyOrdered delivers at most one record of a key at a time, in
	// order (as SQS FIFO message groups): records of different keys are
	// handled in parallel, those of one key one after the other.
	KeyOrdered bool
	// MessageTTL drops records older than this that were not acknowledged
	// (or dead-letters them, with ExpiredDeadLetter); 0: no TTL but a
	// record's own expires-at header (see ExpiresAfter).
	MessageTTL        time.Duration
	ExpiredDeadLetter bool
	// MaxLength, when positive, bounds the depth in records, and
	// MaxLengthBytes in bytes (a record's key, value, header names and
	// header values; as RabbitMQ's x-max-length-bytes, but that counts
	// bodies only); 0: no bound. Past either, Overflow applies.
	MaxLength      int64
	MaxLengthBytes int64
	// Overflow is what happens past MaxLength or MaxLengthBytes; empty:
	// OverflowDropOldest.
	Overflow Overflow
}

// Overflow is what a shared subscription does with records past its
// MaxLength or MaxLengthBytes.
type Overflow string

// Overflow policies.
const (
	// OverflowDropOldest drops the oldest records not in flight (as
	// RabbitMQ's drop-head).
	OverflowDropOldest Overflow = "drop-oldest"
	// OverflowRejectPublish refuses publishes while the subscription is
	// full, with ErrResourceExhausted (in bytes: once it holds
	// MaxLengthBytes or more, so the publish that crosses the bound is
	// taken).
	OverflowRejectPublish Overflow = "reject-publish"
	// OverflowDeadLetter moves the oldest records not in flight to the
	// dead-letter stream, with reason "max-length".
	OverflowDeadLetter Overflow = "dead-letter"
	// OverflowBlock holds publishes while the subscription is at its max
	// length until its consumers settle records, or the publish's context
	// ends (then ErrResourceExhausted): backpressure on the producers
	// instead of dropping or refusing. A publish is taken while the
	// subscription is below the bound, whatever its size, so one publish
	// may pass it.
	OverflowBlock Overflow = "block"
)

// SubscriptionInfo describes a shared subscription, or a queue (its own
// subscription), and how much work it has.
type SubscriptionInfo struct {
	Config SubscriptionConfig
	// Queue: the subscription is a queue's own (its stream and name are
	// the queue's name).
	Queue      bool
	Partitions int32
	// Depth is the number of records not settled yet, in flight included.
	Depth int64
	// DepthBytes is their size as MaxLengthBytes counts it; for records
	// the server has not read yet (a backlog of a subscription without
	// MaxLengthBytes), an estimate from the average size.
	DepthBytes int64
	// InFlight records are delivered and not settled yet.
	InFlight int32
	// Waiting records were nacked or timed out and wait for their backoff.
	Waiting int32
	// Delayed records carry a deliver-at in the future.
	Delayed int32
	// Consumers is the number of consumers subscribed now.
	Consumers int32
	// DeadLettered counts the records moved to the dead-letter stream
	// since the server started.
	DeadLettered int64
}

// QueueConfig is what a queue is created with. A queue is a stream whose
// records are dropped once its shared subscription of the same name
// settled them.
type QueueConfig struct {
	Name string
	// Partitions is the number of partitions; 0 means 1. More partitions
	// spread the work of storing and delivering; consumers get records of
	// every partition.
	Partitions int32
	// Subscription holds the settings of the queue's subscription; its
	// Stream, Name and Start are set by the server.
	Subscription SubscriptionConfig
	// DedupWindow is how long message-ids are remembered: 0 is the
	// server's default (2 minutes), a negative value turns dedup off.
	DedupWindow time.Duration
}

// CreateQueue creates a queue: its stream and its subscription. It fails
// with ErrAlreadyExists when a stream of that name exists and with
// ErrInvalidArgument for a bad name or setting (a filter that does not
// compile, with the server's message).
func (c *Client) CreateQueue(ctx context.Context, cfg QueueConfig) (*SubscriptionInfo, error) {
	req := &weirpb.CreateQueueRequest{Name: cfg.Name, Partitions: cfg.Partitions, Subscription: toPBSubscriptionConfig(cfg.Subscription)}
	if cfg.DedupWindow != 0 {
		req.DedupWindow = durationpb.New(cfg.DedupWindow)
	}
	resp, err := call(ctx, c, "create queue "+quote(cfg.Name), c.api.CreateQueue, req)
	if err != nil {
		return nil, err
	}
	return fromPBSubscriptionInfo(resp), nil
}

// ListQueues describes every queue.
func (c *Client) ListQueues(ctx context.Context) ([]SubscriptionInfo, error) {
	resp, err := call(ctx, c, "list queues", c.api.ListQueues, &weirpb.ListQueuesRequest{})
	if err != nil {
		return nil, err
	}
	return fromPBSubscriptionInfos(resp.GetQueues()), nil
}

// DescribeQueue describes a queue; ErrNotFound when there is none of that
// name.
func (c *Client) DescribeQueue(ctx context.Context, name string) (*SubscriptionInfo, error) {
	return c.queue(ctx, "describe queue", name)
}

// DeleteQueue deletes a queue: its stream, its records and its
// subscriptions (not its dead-letter queue). It fails with ErrNotFound,
// and deletes nothing, when name is a stream that is not a queue.
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	if _, err := c.queue(ctx, "delete queue", name); err != nil {
		return err
	}
	_, err := call(ctx, c, "delete queue "+quote(name), c.api.DeleteStream, &weirpb.DeleteStreamRequest{Name: name})
	return err
}

// queue describes the queue name for op, with ErrNotFound and a word of
// explanation for a stream that is not a queue.
func (c *Client) queue(ctx context.Context, op, name string) (*SubscriptionInfo, error) {
	op += " " + quote(name)
	info, err := c.DescribeSubscription(ctx, name, name)
	if err == nil && info.Queue {
		return info, nil
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", op, unwrapOp(err))
	}
	if _, serr := c.DescribeStream(ctx, name); serr != nil {
		if errors.Is(serr, ErrNotFound) {
			return nil, fmt.Errorf("%s: %w: no queue or stream of that name", op, ErrNotFound)
		}
		return nil, fmt.Errorf("%s: %w", op, unwrapOp(serr))
	}
	return nil, fmt.Errorf("%s: %w: %s is a stream, not a queue", op, ErrNotFound, name)
}

// PurgeQueue drops every record of a queue that was not acknowledged yet,
// in flight included, and returns how many.
func (c *Client) PurgeQueue(ctx context.Context, queue string) (int64, error) {
	return c.PurgeSubscription(ctx, queue, queue)
}

// PurgeSubscription settles every record of a shared subscription that was
// not settled yet, in flight included, and returns how many. Acks of
// purged records that were in flight are harmless.
func (c *Client) PurgeSubscription(ctx context.Context, stream, subscription string) (int64, error) {
	resp, err := call(ctx, c, "purge "+subscriptionName(stream, subscription), c.api.PurgeQueue,
		&weirpb.PurgeRequest{Stream: stream, Subscription: subscription})
	if err != nil {
		return 0, err
	}
	return resp.GetPurged(), nil
}

// Redrive moves up to max records (0: all) of a queue's dead-letter stream
// back to the queue, without their dead-letter headers, and returns how
// many it moved.
func (c *Client) Redrive(ctx context.Context, queue string, max int64) (int64, error) {
	return c.RedriveSubscription(ctx, queue, queue, max)
}

// RedriveSubscription is Redrive for a shared subscription of a stream:
// the records go back to the stream they were dead-lettered from.
func (c *Client) RedriveSubscription(ctx context.Context, stream, subscription string, max int64) (int64, error) {
	if max < 0 {
		return 0, fmt.Errorf("redrive %s: %w: max %d is negative", subscriptionName(stream, subscription), ErrInvalidArgument, max)
	}
	resp, err := call(ctx, c, "redrive "+subscriptionName(stream, subscription), c.api.Redrive,
		&weirpb.RedriveRequest{Stream: stream, Subscription: subscription, Max: max})
	if err != nil {
		return 0, err
	}
	return resp.GetMoved(), nil
}

// CreateSubscription creates a shared subscription on a stream. It fails
// with ErrAlreadyExists when the stream has one of that name, ErrNotFound
// without the stream, and ErrInvalidArgument for a bad name or setting (a
// filter that does not compile, with the server's message).
func (c *Client) CreateSubscription(ctx context.Context, cfg SubscriptionConfig) (*SubscriptionInfo, error) {
	resp, err := call(ctx, c, "create subscription "+subscriptionName(cfg.Stream, cfg.Name), c.api.CreateSubscription,
		&weirpb.CreateSubscriptionRequest{Config: toPBSubscriptionConfig(cfg)})
	if err != nil {
		return nil, err
	}
	return fromPBSubscriptionInfo(resp), nil
}

// DescribeSubscription describes a shared subscription of a stream (for a
// queue: stream and subscription are both the queue's name).
func (c *Client) DescribeSubscription(ctx context.Context, stream, subscription string) (*SubscriptionInfo, error) {
	resp, err := call(ctx, c, "describe subscription "+subscriptionName(stream, subscription), c.api.DescribeSubscription,
		&weirpb.DescribeSubscriptionRequest{Stream: stream, Subscription: subscription})
	if err != nil {
		return nil, err
	}
	return fromPBSubscriptionInfo(resp), nil
}

// ListSubscriptions describes the shared subscriptions of a stream.
func (c *Client) ListSubscriptions(ctx context.Context, stream string) ([]SubscriptionInfo, error) {
	resp, err := call(ctx, c, "list subscriptions of "+quote(stream), c.api.ListSubscriptions,
		&weirpb.ListSubscriptionsRequest{Stream: stream})
	if err != nil {
		return nil, err
	}
	return fromPBSubscriptionInfos(resp.GetSubscriptions()), nil
}

// DeleteSubscription deletes a shared subscription; its consumers are
// ended with ErrNotFound.
func (c *Client) DeleteSubscription(ctx context.Context, stream, subscription string) error {
	_, err := call(ctx, c, "delete subscription "+subscriptionName(stream, subscription), c.api.DeleteSubscription,
		&weirpb.DeleteSubscriptionRequest{Stream: stream, Subscription: subscription})
	return err
}

// subscriptionName names a subscription in errors: "orders/billing", or
// the queue's name.
func subscriptionName(stream, subscription string) string {
	if subscription == "" || subscription == stream {
		return quote(stream)
	}
	return quote(stream + "/" + subscription)
}

// unwrapOp drops the operation of an *Error, for an error reported under
// another operation.
func unwrapOp(err error) error {
	if e, ok := err.(*Error); ok {
		c := *e
		c.Op = ""
		return &c
	}
	return err
}
