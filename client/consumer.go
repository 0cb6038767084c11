package weir

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// Handler processes one message.
//
// In group, ephemeral and position mode, returning an error stops the
// consumer: Wait and Close return that error, and the message is not
// committed, so a group consumer started again gets it again. Return nil
// for a message to skip.
//
// In shared mode (see Shared), returning nil acknowledges the message and
// returning an error nacks it: the server delivers it again after the
// subscription's backoff, and keeps the error's text for the dead-letter
// headers should the message run out of deliveries. The consumer goes on
// either way. A handler that settled the message itself (Message.Ack, Nack
// or Reject) is not settled again by its return.
//
// In every mode, a handler that returns its context's error while the
// consumer stops leaves the message unhandled without failing the
// consumer: a group's next member, or the shared subscription's next
// consumer, gets it.
type Handler func(ctx context.Context, m *Message) error

// Message is a record delivered to a Handler. It must not be copied.
type Message struct {
	Record
	// DeliveryCount is, in shared mode, how many times the record has been
	// delivered, this time included: 1 the first time. It is 0 in the
	// other modes.
	DeliveryCount int32

	sess    *session
	settled atomic.Bool // shared mode: acked, nacked or rejected
	gaveUp  atomic.Bool // shared mode: nacked or rejected by the handler (see Idempotent)
}

// Commit commits the message's position in its group now: the group
// resumes after this message. Consumers commit automatically by default
// (see AutoCommit); Commit is for those that do not. It fails with
// ErrNoGroup outside of a group.
func (m *Message) Commit(ctx context.Context) error {
	return m.sess.commitOne(ctx, m.Partition, m.Offset+1)
}

// Consumer strategies for partition assignment within a group.
const (
	StrategyRange      = "range"
	StrategyRoundRobin = "roundrobin"
)

type consumeMode int

const (
	modePositions consumeMode = iota
	modeGroup
	modeEphemeral
	modeShared
)

// ConsumeOption configures Consume.
type ConsumeOption func(*consumeConfig)

type consumeConfig struct {
	mode               consumeMode
	modeSet            bool
	conflict           error
	group              string
	positions          map[int32]int64
	start              StartPosition
	sessionTimeout     time.Duration
	strategy           string
	credits            int32
	autoCommit         *bool
	autoCommitInterval time.Duration
	onAssignment       func(AssignmentEvent)
	subscription       string // shared mode
	filter             string
	ackBatch           int
	ackInterval        time.Duration
	onAcked            func(*Message, error)
}

func (c *consumeConfig) setMode(m consumeMode) {
	if c.modeSet && c.mode != m {
		c.conflict = fmt.Errorf("%w: more than one of Group, Ephemeral, FromPositions and Shared", ErrInvalidArgument)
	}
	c.mode, c.modeSet = m, true
}

// Group makes the consumer a member of a consumer group: the stream's
// partitions are shared among the group's members, each read from the
// group's committed offset (or from Start when there is none), and
// positions are committed (see AutoCommit).
func Group(name string) ConsumeOption {
	return func(c *consumeConfig) { c.setMode(modeGroup); c.group = name }
}

// Ephemeral makes the consumer a live, non-durable subscriber: it gets the
// records published while it is subscribed, and misses those published
// while it is not (also while it reconnects).
func Ephemeral() ConsumeOption { return func(c *consumeConfig) { c.setMode(modeEphemeral) } }

// FromPositions reads the given partitions from the given offsets; with an
// empty map, every partition from Start. This is the default mode, for
// replay: such a consumer commits nothing and remembers its positions
// across reconnections only.
func FromPositions(offsets map[int32]int64) ConsumeOption {
	return func(c *consumeConfig) { c.setMode(modePositions); c.positions = maps.Clone(offsets) }
}

// Start is where reading starts: in group mode, in partitions the group has
// no committed offset for (default Latest); in position mode, in every
// partition when FromPositions gives none (default Latest).
func Start(p StartPosition) ConsumeOption { return func(c *consumeConfig) { c.start = p } }

// SessionTimeout is how long the server keeps a group member it does not
// hear from (default: the server's, 10s).
func SessionTimeout(d time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.sessionTimeout = d }
}

// Strategy chooses how a group assigns partitions: StrategyRange (the
// server's default) or StrategyRoundRobin.
func Strategy(name string) ConsumeOption { return func(c *consumeConfig) { c.strategy = name } }

// Credits is how many records the server may send ahead of the handler
// (default 1000; in shared mode, where it is the prefetch, 100): the
// consumer's buffer. Credits go back to the server as messages are
// handled.
func Credits(n int) ConsumeOption {
	return func(c *consumeConfig) { c.credits = int32(min(max(n, 0), 1<<30)) }
}

// AutoCommit turns automatic commits on or off; they are on by default in
// group mode. The consumer then records the position after each message its
// handler returned nil for, and commits those positions every
// AutoCommitInterval, when partitions are revoked and when it stops. Off,
// nothing is committed but with Message.Commit and Consumer.Commit.
func AutoCommit(enabled bool) ConsumeOption {
	return func(c *consumeConfig) { c.autoCommit = &enabled }
}

// AutoCommitInterval is the period of automatic commits (default 1s).
func AutoCommitInterval(d time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.autoCommitInterval = d }
}

// OnAssignment is called, in group mode, after each change of the
// consumer's partitions: revoked partitions have been finished and
// committed, assigned ones are about to be read.
func OnAssignment(fn func(AssignmentEvent)) ConsumeOption {
	return func(c *consumeConfig) { c.onAssignment = fn }
}

// AssignmentEvent is a change of a group consumer's partitions.
type AssignmentEvent struct {
	Generation int64
	// Assigned partitions start at Offset: the group's committed offset,
	// or Start.
	Assigned []PartitionOffset
	Revoked  []PartitionRef
}

// Consumer delivers the records of a stream to a Handler until it is
// closed, its context is canceled, its handler fails, or the server ends it
// for good (the stream is deleted). It reconnects by itself when the
// connection breaks or the server restarts, with an exponential, jittered
// backoff: a group consumer joins its group again and resumes from the
// committed offsets, a positional consumer from where it was, an ephemeral
// one from the live tail.
//
// Ordering: each partition has a goroutine of its own that runs the handler
// for that partition's messages one after the other, in offset order, so
// records of one key are handled in order while partitions are handled in
// parallel. The handler must therefore be safe for concurrent use across
// partitions.
//
// In shared mode there is no order: the consumer runs the handler for up
// to its prefetch of messages at once, as they come. A key-ordered
// subscription has the server deliver one record of a key at a time, so
// that records of a key are still handled one after the other, in order.
// A shared consumer that reconnects gets no record twice but those the
// server delivers again: the records it held unsettled when the connection
// broke go back to the subscription at once.
type Consumer struct {
	c       *Client
	stream  string
	handler Handler
	cfg     consumeConfig

	handlerCtx    context.Context // canceled with Consume's context, or when Close gives up
	handlerCancel context.CancelFunc
	stopCtx       context.Context // done: stop consuming
	stopCancel    context.CancelFunc
	stopWatch     func() bool
	done          chan struct{}
	err           error // set before done is closed

	mu        sync.Mutex
	sess      *session        // nil while reconnecting
	next      map[int32]int64 // position mode: where each partition resumes
	notBefore map[int32]time.Time
	failure   error // the handler's, which stops the consumer
}

// Consume subscribes to stream and returns a Consumer that runs handler for
// each record, in the background, until ctx is canceled or Close is called.
// The subscription is made before Consume returns, so that a missing stream
// or a bad option is reported by Consume itself.
func (c *Client) Consume(ctx context.Context, stream string, handler Handler, opts ...ConsumeOption) (*Consumer, error) {
	cfg := consumeConfig{autoCommitInterval: time.Second, ackInterval: defaultAckInterval}
	for _, opt := range opts {
		opt(&cfg)
	}
	op := "consume " + quote(stream)
	switch {
	case cfg.conflict != nil:
		return nil, fmt.Errorf("%s: %w", op, cfg.conflict)
	case handler == nil:
		return nil, fmt.Errorf("%s: %w: nil handler", op, ErrInvalidArgument)
	case cfg.mode == modeGroup && cfg.group == "":
		return nil, fmt.Errorf("%s: %w: empty group name", op, ErrInvalidArgument)
	case cfg.autoCommitInterval <= 0:
		return nil, fmt.Errorf("%s: %w: auto-commit interval %v", op, ErrInvalidArgument, cfg.autoCommitInterval)
	case cfg.mode != modeGroup && cfg.autoCommit != nil && *cfg.autoCommit:
		return nil, fmt.Errorf("%s: %w: AutoCommit needs a Group", op, ErrInvalidArgument)
	case cfg.mode == modeShared && cfg.filter != "":
		return nil, fmt.Errorf("%s: %w: a shared subscription has its own filter (SubscriptionConfig.Filter)", op, ErrInvalidArgument)
	case cfg.mode == modeShared && !cfg.start.IsZero():
		return nil, fmt.Errorf("%s: %w: a shared subscription starts where it was created to (SubscriptionConfig.Start)", op, ErrInvalidArgument)
	case cfg.ackBatch < 0 || cfg.ackInterval <= 0:
		return nil, fmt.Errorf("%s: %w: ack batches of %d records or %v", op, ErrInvalidArgument, cfg.ackBatch, cfg.ackInterval)
	case c.isClosed():
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if cfg.credits == 0 {
		cfg.credits = 1000
		if cfg.mode == modeShared {
			cfg.credits = defaultPrefetch
		}
	}
	if cfg.ackBatch == 0 {
		cfg.ackBatch = defaultAckBatch(cfg.credits)
	}
	if cfg.autoCommit == nil {
		auto := cfg.mode == modeGroup
		cfg.autoCommit = &auto
	}
	handler = c.tracing.processHandler(stream, &cfg, handler)
	cons := &Consumer{c: c, stream: stream, handler: handler, cfg: cfg, done: make(chan struct{})}
	cons.handlerCtx, cons.handlerCancel = context.WithCancel(ctx)
	cons.stopCtx, cons.stopCancel = context.WithCancel(context.Background())
	if cfg.mode == modePositions {
		if err := cons.resolvePositions(ctx); err != nil {
			cons.handlerCancel()
			return nil, err
		}
	}
	sess, err := cons.subscribe(ctx)
	if err != nil {
		cons.handlerCancel()
		cons.stopCancel()
		return nil, err
	}
	cons.stopWatch = context.AfterFunc(ctx, cons.stopCancel)
	go cons.run(sess)
	return cons, nil
}

// Close stops the consumer: no new message is started, the handler calls
// under way finish, positions are committed, and the subscription ends (a
// group's partitions move to its other members at once). If ctx ends first,
// the handlers' context is canceled and Close returns ctx's error. Close
// returns the error that stopped the consumer, if one did.
func (cons *Consumer) Close(ctx context.Context) error {
	cons.stopCancel()
	select {
	case <-cons.done:
		return cons.err
	case <-ctx.Done():
		cons.handlerCancel()
		return ctx.Err()
	}
}

// Done is closed when the consumer has stopped.
func (cons *Consumer) Done() <-chan struct{} { return cons.done }

// Wait blocks until the consumer stops and returns why: nil after Close or
// the cancellation of Consume's context, the handler's error, or the
// server's refusal to go on (ErrNotFound when the stream was deleted).
func (cons *Consumer) Wait() error {
	<-cons.done
	return cons.err
}

// Commit commits, in group mode, the position after the last message of
// each partition the handler returned nil for.
func (cons *Consumer) Commit(ctx context.Context) error {
	if cons.cfg.mode != modeGroup {
		return ErrNoGroup
	}
	cons.mu.Lock()
	s := cons.sess
	cons.mu.Unlock()
	if s == nil {
		return fmt.Errorf("commit: %w: reconnecting to the server", ErrUnavailable)
	}
	return s.commit(ctx, nil, s.generation.Load())
}

// MemberID is the consumer's id in its group ("" outside of a group or
// while reconnecting).
func (cons *Consumer) MemberID() string {
	cons.mu.Lock()
	defer cons.mu.Unlock()
	if cons.sess == nil {
		return ""
	}
	return cons.sess.memberID
}

// Assigned lists the partitions the consumer reads now.
func (cons *Consumer) Assigned() []int32 {
	cons.mu.Lock()
	s := cons.sess
	cons.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.partitions()
}

func (cons *Consumer) stopping() bool { return cons.stopCtx.Err() != nil }

// fail records the handler's error and stops the consumer.
func (cons *Consumer) fail(err error) {
	cons.mu.Lock()
	if cons.failure == nil {
		cons.failure = err
	}
	cons.mu.Unlock()
	cons.stopCancel()
}

// run serves sessions until the consumer stops, reconnecting when a
// session's stream breaks.
func (cons *Consumer) run(sess *session) {
	var err error
	defer func() {
		cons.mu.Lock()
		cons.sess = nil
		if cons.failure != nil {
			err = cons.failure
		}
		cons.mu.Unlock()
		cons.err = err
		cons.stopWatch()
		cons.handlerCancel()
		close(cons.done)
	}()
	for {
		err = sess.serve()
		cons.mu.Lock()
		cons.sess = nil
		cons.mu.Unlock()
		if cons.stopping() {
			err = nil
			return
		}
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("the server ended the subscription"))
		}
		err = wrapError("consume "+quote(cons.stream), err)
		// A group member the server let go (its session expired while
		// the server was stalled, say) joins again, as Kafka's do.
		rejoin := cons.cfg.mode == modeGroup && connect.CodeOf(err) == connect.CodeFailedPrecondition
		if !retryable(err) && !rejoin {
			return
		}
		cons.c.logger.Warn("weir: subscription broken, reconnecting", "stream", cons.stream, "err", err)
		for attempt := 0; ; attempt++ {
			if !cons.c.backoff.wait(cons.stopCtx, nil, attempt) {
				err = nil
				return
			}
			sess, err = cons.subscribe(cons.stopCtx)
			if err == nil {
				cons.c.logger.Info("weir: subscription resumed", "stream", cons.stream, "attempts", attempt+1)
				break
			}
			if cons.stopping() {
				err = nil
				return
			}
			if !retryable(err) {
				return
			}
			cons.c.logger.Debug("weir: reconnect failed", "stream", cons.stream, "attempt", attempt+1, "err", err)
		}
	}
}

// subscribe opens a subscription and waits for its first event.
func (cons *Consumer) subscribe(ctx context.Context) (*session, error) {
	op := "subscribe to " + quote(cons.stream)
	req, err := cons.subscribeRequest(ctx)
	if err != nil {
		return nil, err
	}
	streamCtx, cancel := context.WithCancel(context.Background())
	stopHandshake := context.AfterFunc(ctx, cancel)
	defer stopHandshake()
	stream, err := cons.c.api.Subscribe(streamCtx, connect.NewRequest(req))
	if err != nil {
		cancel()
		return nil, wrapError(op, err)
	}
	if !stream.Receive() {
		err := stream.Err()
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("the server ended the subscription before confirming it"))
		}
		cancel()
		stream.Close()
		return nil, wrapError(op, err)
	}
	sub := stream.Msg().GetSubscribed()
	if sub == nil {
		cancel()
		stream.Close()
		return nil, fmt.Errorf("%s: %w: the first event is not Subscribed", op, ErrInternal)
	}
	s := newSession(cons, stream, streamCtx, cancel, sub.GetSubscriptionId(), sub.GetMemberId())
	cons.mu.Lock()
	cons.sess = s
	cons.mu.Unlock()
	return s, nil
}

func (cons *Consumer) subscribeRequest(ctx context.Context) (*weirpb.SubscribeRequest, error) {
	req := &weirpb.SubscribeRequest{Stream: cons.stream, Credits: cons.cfg.credits, ClientId: cons.c.clientID, Filter: cons.cfg.filter}
	switch cons.cfg.mode {
	case modeShared:
		req.Mode = &weirpb.SubscribeRequest_Shared{Shared: &weirpb.SharedMode{Subscription: cons.cfg.subscription}}
	case modeGroup:
		g := &weirpb.GroupMode{Group: cons.cfg.group, Start: toPBStart(cons.cfg.start), Strategy: cons.cfg.strategy}
		if cons.cfg.sessionTimeout > 0 {
			g.SessionTimeout = durationpb.New(cons.cfg.sessionTimeout)
		}
		req.Mode = &weirpb.SubscribeRequest_Group{Group: g}
	case modeEphemeral:
		req.Mode = &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}
	case modePositions:
		cons.mu.Lock()
		next := maps.Clone(cons.next)
		cons.mu.Unlock()
		if len(next) == 0 {
			// Only a time start is left to the server, on the first
			// subscription; see resolvePositions.
			req.Mode = &weirpb.SubscribeRequest_Positions{Positions: &weirpb.PositionsMode{Start: toPBStart(cons.cfg.start)}}
			return req, nil
		}
		if cons.cfg.start.kind == startTime && len(cons.cfg.positions) == 0 {
			if err := cons.fillFromTime(ctx, next); err != nil {
				return nil, err
			}
		}
		req.Mode = &weirpb.SubscribeRequest_Positions{Positions: &weirpb.PositionsMode{Offsets: next}}
	}
	return req, nil
}

// resolvePositions turns a position-mode start into offsets per partition
// before the first subscription, so that a reconnection resumes every
// partition where it was, including those that had no record yet. A time
// is left to the server, which alone can look it up.
func (cons *Consumer) resolvePositions(ctx context.Context) error {
	if len(cons.cfg.positions) > 0 {
		cons.next = maps.Clone(cons.cfg.positions)
		return nil
	}
	if cons.cfg.start.kind == startTime {
		return nil
	}
	info, err := cons.c.DescribeStream(ctx, cons.stream)
	if err != nil {
		return fmt.Errorf("consume %q: %w", cons.stream, err)
	}
	cons.next = make(map[int32]int64, len(info.Partitions))
	for _, p := range info.Partitions {
		switch cons.cfg.start.kind {
		case startEarliest:
			cons.next[p.Partition] = p.StartOffset
		case startOffset:
			cons.next[p.Partition] = min(max(cons.cfg.start.offset, p.StartOffset), p.EndOffset)
		default: // latest
			cons.next[p.Partition] = p.EndOffset
		}
	}
	return nil
}

// fillFromTime completes the positions of a consumer that started at a
// time and reconnects before every partition had a record: the others are
// read from their start, and records before the time are skipped.
func (cons *Consumer) fillFromTime(ctx context.Context, next map[int32]int64) error {
	info, err := cons.c.DescribeStream(ctx, cons.stream)
	if err != nil {
		return err
	}
	cons.mu.Lock()
	defer cons.mu.Unlock()
	for _, p := range info.Partitions {
		if _, ok := next[p.Partition]; !ok {
			next[p.Partition] = p.StartOffset
			if cons.notBefore == nil {
				cons.notBefore = make(map[int32]time.Time)
			}
			cons.notBefore[p.Partition] = cons.cfg.start.time
		}
	}
	return nil
}

// skip reports whether a record read after a reconnection precedes a time
// start; the first one that does not ends the skipping of its partition.
func (cons *Consumer) skip(m *Message) bool {
	cons.mu.Lock()
	defer cons.mu.Unlock()
	t, ok := cons.notBefore[m.Partition]
	if !ok {
		return false
	}
	if m.Timestamp.Before(t) {
		return true
	}
	delete(cons.notBefore, m.Partition)
	return false
}

// advance records, in position mode, where a partition resumes.
func (cons *Consumer) advance(partition int32, next int64) {
	if cons.cfg.mode != modePositions {
		return
	}
	cons.mu.Lock()
	if cons.next == nil {
		cons.next = make(map[int32]int64)
	}
	cons.next[partition] = next
	cons.mu.Unlock()
}
