package broker

import (
	"errors"
	"fmt"
	"time"
)

// Errors of shared subscriptions.
var (
	ErrSubscriptionNotFound = errors.New("subscription not found")
	ErrSubscriptionExists   = errors.New("subscription already exists")
	ErrNotInFlight          = errors.New("record is not in flight to this consumer")
	ErrQueueFull            = errors.New("queue is full")
)

// Headers a dead-lettered record carries, besides its own.
const (
	HeaderDeadLetterStream    = "x-dead-letter-stream"
	HeaderDeadLetterPartition = "x-dead-letter-partition"
	HeaderDeadLetterOffset    = "x-dead-letter-offset"
	HeaderDeadLetterReason    = "x-dead-letter-reason"
	HeaderDeliveryCount       = "x-delivery-count"
	HeaderLastError           = "x-last-error"
)

// Reasons a record is dead-lettered.
const (
	ReasonRejected      = "rejected"
	ReasonMaxDeliveries = "max-deliveries"
	ReasonExpired       = "expired"
	ReasonMaxLength     = "max-length"
)

// Defaults of SubscriptionConfig.
const (
	DefaultAckTimeout        = 30 * time.Second
	DefaultBackoffInitial    = 100 * time.Millisecond
	DefaultBackoffMax        = time.Minute
	DefaultBackoffMultiplier = 2.0
	MaxAckTimeout            = 12 * time.Hour
)

// SubscriptionConfig configures a shared subscription: queue semantics on a
// stream. Any member may get any record; each record is acknowledged,
// negatively acknowledged (redelivered after a backoff) or rejected
// (dead-lettered) on its own.
type SubscriptionConfig struct {
	Stream string
	Name   string
	// Filter is a CEL expression over the record (internal/filter); records
	// that do not match are skipped by this subscription only.
	Filter string
	// Start is where a new subscription begins (the zero value: latest;
	// queues start at the earliest record).
	Start StartPosition
	// AckTimeout is how long a delivered record may stay unacknowledged
	// before it is delivered again (0: 30 s).
	AckTimeout time.Duration
	// MaxDeliveries, when positive, dead-letters a record that was
	// delivered that many times without being acknowledged.
	MaxDeliveries int32
	// DeadLetterStream receives rejected, over-delivered and (with
	// ExpiredDeadLetter) expired records; empty: "<stream>.<name>.dlq", or
	// "<name>.dlq" for a queue. It is created as a queue when needed.
	DeadLetterStream string
	// DeadLetterExchange, when set, routes dead letters through an
	// exchange instead (deadletter.go).
	DeadLetterExchange DeadLetterExchange
	// Nack backoff: Initial × Multiplier^(deliveries-1), at most Max
	// (Multiplier 1: fixed). Zero values take the defaults.
	BackoffInitial    time.Duration
	BackoffMax        time.Duration
	BackoffMultiplier float64
	// KeyOrdered delivers at most one record per key at a time, in order;
	// records of different keys go out in parallel.
	KeyOrdered bool
	// MessageTTL drops (or dead-letters, with ExpiredDeadLetter) records
	// older than this that were not acknowledged; 0: no default TTL (a
	// record's expires-at header still applies).
	MessageTTL        time.Duration
	ExpiredDeadLetter bool
	// MaxLength, when positive, bounds the depth in records; Overflow says
	// what happens past it: OverflowDropOldest (the default) settles the
	// oldest records not in flight, OverflowDeadLetter moves them to the
	// dead-letter stream, OverflowRejectPublish refuses publishes that would
	// pass it (ErrQueueFull), OverflowBlock holds them until there is room.
	MaxLength int64
	Overflow  string
	// MaxLengthBytes, when positive, bounds the depth in bytes under the
	// same Overflow policy (both bounds apply when both are set). A
	// record's bytes are its key, value, header names and header values
	// (what MaxRecordBytes counts; RabbitMQ's x-max-length-bytes counts
	// bodies only), summed over the records MaxLength counts.
	MaxLengthBytes int64
}

// Overflow policies.
const (
	OverflowDropOldest    = "drop-oldest"
	OverflowRejectPublish = "reject-publish"
	OverflowDeadLetter    = "dead-letter"
	// OverflowBlock holds publishes while the subscription is at its max
	// length until consumers settle records, or the publisher's context
	// ends (Pulsar's producer_request_hold): backpressure instead of loss
	// or refusal. A publish is taken while the subscription is below the
	// bound, whatever its size, so one publish may pass it.
	OverflowBlock = "block"
)

// holdsPublishes says whether the overflow policy acts on publishes
// (refusing or holding them) rather than on the stored records.
func (c *SubscriptionConfig) holdsPublishes() bool {
	return c.Overflow == OverflowRejectPublish || c.Overflow == OverflowBlock
}

// SubscriptionInfo describes a shared subscription.
type SubscriptionInfo struct {
	Config SubscriptionConfig
	// Depth is the number of records not settled yet (acknowledged,
	// dead-lettered, expired or filtered out), in flight included.
	Depth int64
	// DepthBytes is the size of those records (as MaxLengthBytes counts
	// it): exact for the records the subscription has read or sized,
	// estimated from their average for a backlog it has not reached yet
	// (there is none with a MaxLengthBytes, but for a while after a
	// restart).
	DepthBytes int64
	// InFlight are delivered and awaiting acknowledgement; Waiting were
	// nacked or timed out and wait for their backoff; Delayed carry a
	// deliver-at in the future.
	InFlight, Waiting, Delayed int
	Consumers                  int
	DeadLettered               int64 // since the node started
	// Counters since the node started: deliveries to consumers (Redelivered
	// those of records delivered before), records acknowledged, nacked,
	// rejected, and taken back because their ack deadline passed.
	Delivered, Redelivered, Acked, Nacked, Rejected, TimedOut int64
}

// Delivery is a record handed to a consumer of a shared subscription.
type Delivery struct {
	Record
	DeliveryCount int32
	Deadline      time.Time
}

// DeliveryRef names a delivered record in an Ack, Nack, Reject or Extend.
type DeliveryRef struct {
	Partition int32
	Offset    int64
}

// QueueConfig creates a queue: a stream whose records are dropped once its
// default shared subscription (of the same name) acknowledged them.
type QueueConfig struct {
	Name       string
	Partitions int32
	// Subscription holds the queue's subscription settings; its Stream,
	// Name and Start are set by CreateQueue.
	Subscription SubscriptionConfig
	DedupWindow  time.Duration
}

func (c *SubscriptionConfig) defaults() {
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.BackoffInitial == 0 {
		c.BackoffInitial = DefaultBackoffInitial
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMultiplier == 0 {
		c.BackoffMultiplier = DefaultBackoffMultiplier
	}
	if (c.MaxLength > 0 || c.MaxLengthBytes > 0) && c.Overflow == "" {
		c.Overflow = OverflowDropOldest
	}
	if c.DeadLetterStream == "" {
		if c.Name == c.Stream {
			c.DeadLetterStream = c.Name + ".dlq"
		} else {
			c.DeadLetterStream = c.Stream + "." + c.Name + ".dlq"
		}
	}
}

func (c *SubscriptionConfig) validate() error {
	if err := ValidateStreamName(c.Stream); err != nil {
		return err
	}
	if err := validateName("subscription", c.Name); err != nil {
		return err
	}
	if c.AckTimeout < 0 || c.AckTimeout > MaxAckTimeout {
		return fmt.Errorf("%w: ack timeout must be between 0 and %v, got %v", ErrInvalidArgument, MaxAckTimeout, c.AckTimeout)
	}
	if c.MaxDeliveries < 0 {
		return fmt.Errorf("%w: max deliveries must not be negative, got %d", ErrInvalidArgument, c.MaxDeliveries)
	}
	if c.BackoffInitial < 0 || c.BackoffMax < 0 || c.BackoffMultiplier < 0 || (c.BackoffMultiplier != 0 && c.BackoffMultiplier < 1) {
		return fmt.Errorf("%w: backoff must be positive with a multiplier of at least 1", ErrInvalidArgument)
	}
	if c.MessageTTL < 0 {
		return fmt.Errorf("%w: message TTL must not be negative", ErrInvalidArgument)
	}
	if c.MaxLength < 0 {
		return fmt.Errorf("%w: max length must not be negative", ErrInvalidArgument)
	}
	if c.MaxLengthBytes < 0 {
		return fmt.Errorf("%w: max length in bytes must not be negative (0: no bound), got %d", ErrInvalidArgument, c.MaxLengthBytes)
	}
	switch c.Overflow {
	case "", OverflowDropOldest, OverflowRejectPublish, OverflowDeadLetter, OverflowBlock:
	default:
		return fmt.Errorf("%w: overflow %q: want %s, %s, %s or %s", ErrInvalidArgument, c.Overflow, OverflowDropOldest, OverflowRejectPublish, OverflowDeadLetter, OverflowBlock)
	}
	if err := c.DeadLetterExchange.validate(); err != nil {
		return err
	}
	if c.DeadLetterStream != "" {
		if err := ValidateStreamName(c.DeadLetterStream); err != nil {
			return fmt.Errorf("dead-letter stream: %w", err)
		}
		if c.DeadLetterStream == c.Stream {
			return fmt.Errorf("%w: a subscription cannot dead-letter into its own stream", ErrInvalidArgument)
		}
	}
	return nil
}

// backoff is the redelivery delay after the given number of deliveries.
func (c *SubscriptionConfig) backoff(deliveries int32) time.Duration {
	d := float64(c.BackoffInitial)
	for i := int32(1); i < deliveries && d < float64(c.BackoffMax); i++ {
		d *= c.BackoffMultiplier
	}
	return min(time.Duration(d), c.BackoffMax)
}
