package weir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// ErrNoRoute is returned by Request and ScatterGather when an exchange
// routed the request nowhere: nobody can answer it.
var ErrNoRoute = errors.New("weir: the exchange routed the request to no stream")

// ErrInboxLost is returned by Request and ScatterGather when the client's
// reply inbox went away while they waited (the connection to the server
// broke, or the server restarted): a reply can no longer arrive. The
// request may have been processed.
var ErrInboxLost = errors.New("weir: the reply inbox was lost")

// gatherBuffer is how many replies to one request may wait for the
// gathering call; later ones are dropped while it is full.
const gatherBuffer = 256

// Request sends rec to dest with a reply-to header naming this client's
// inbox and a fresh correlation-id header, and returns the first reply with
// that correlation id. Without a deadline on ctx, the client's timeout
// (WithTimeout) applies; when it passes Request returns an error that wraps
// context.DeadlineExceeded. The request carries that deadline in an
// expires-at header (unless rec has one), so that a queue drops it rather
// than have it answered when nobody waits. Responders answer with Reply, or
// serve with Respond.
//
// The inbox is a temporary stream the client opens at its first request and
// keeps until Close; the server deletes it when the client goes away.
func (c *Client) Request(ctx context.Context, dest Destination, rec Record) (Record, error) {
	op := "request to " + dest.String()
	ctx, cancel := c.unaryContext(ctx)
	defer cancel()
	deadline, _ := ctx.Deadline()
	w, err := c.sendRequest(ctx, dest, rec, deadline, 1)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", op, err)
	}
	defer c.replies.forget(w)
	select {
	case reply := <-w.ch:
		return reply, nil
	case <-w.lost:
		return Record{}, fmt.Errorf("%s: %w", op, ErrInboxLost)
	case <-ctx.Done():
		return Record{}, fmt.Errorf("%s: no reply: %w", op, context.Cause(ctx))
	}
}

// GatherOptions says when ScatterGather stops gathering.
type GatherOptions struct {
	// Replies: stop once this many replies arrived (0: gather until the
	// deadline).
	Replies int
	// Timeout: stop this long after the request was sent (0: when ctx
	// ends). Reaching it is not an error: the replies that arrived are
	// aggregated.
	Timeout time.Duration
}

// ScatterGather sends req to dest (typically an exchange that fans it out
// to several responders), gathers the replies until opts.Replies arrived or
// the deadline passed, and returns what aggregate makes of them, in arrival
// order; aggregate is called even with no replies, and decides whether
// that is an error. There must be a deadline: opts.Timeout, or ctx's.
func ScatterGather[T any](ctx context.Context, c *Client, dest Destination, req Record, opts GatherOptions, aggregate func([]Record) (T, error)) (T, error) {
	var zero T
	op := "scatter-gather to " + dest.String()
	_, hasDeadline := ctx.Deadline()
	switch {
	case aggregate == nil:
		return zero, fmt.Errorf("%s: %w: nil aggregator", op, ErrInvalidArgument)
	case opts.Replies < 0 || opts.Timeout < 0:
		return zero, fmt.Errorf("%s: %w: %d replies within %v", op, ErrInvalidArgument, opts.Replies, opts.Timeout)
	case opts.Timeout == 0 && !hasDeadline:
		return zero, fmt.Errorf("%s: %w: no deadline: set GatherOptions.Timeout or a deadline on ctx", op, ErrInvalidArgument)
	}
	buffer := gatherBuffer
	if opts.Replies > 0 {
		buffer = opts.Replies
	}
	expires, _ := ctx.Deadline()
	if opts.Timeout > 0 {
		expires = time.Now().Add(opts.Timeout)
	}
	w, err := c.sendRequest(ctx, dest, req, expires, buffer)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	defer c.replies.forget(w)
	var deadline <-chan time.Time
	if opts.Timeout > 0 {
		t := time.NewTimer(opts.Timeout)
		defer t.Stop()
		deadline = t.C
	}
	var replies []Record
gather:
	for opts.Replies == 0 || len(replies) < opts.Replies {
		select {
		case r := <-w.ch:
			replies = append(replies, r)
		case <-w.lost:
			return zero, fmt.Errorf("%s: %w after %d replies", op, ErrInboxLost, len(replies))
		case <-deadline:
			break gather
		case <-ctx.Done():
			if opts.Timeout == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				break gather // ctx's deadline is the gathering deadline
			}
			return zero, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
	}
	return aggregate(replies)
}

// sendRequest registers a waiter for replies and publishes rec to dest
// with the reply-to and correlation-id headers set, and an expires-at
// header at expires (when not zero and rec has none).
func (c *Client) sendRequest(ctx context.Context, dest Destination, rec Record, expires time.Time, buffer int) (*waiter, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	if (dest.Stream == "") == (dest.Exchange == "") {
		return nil, fmt.Errorf("%w: a destination names a stream or an exchange", ErrInvalidArgument)
	}
	var id [16]byte
	rand.Read(id[:])
	corr := hex.EncodeToString(id[:])
	inbox, w, err := c.replies.register(ctx, c, corr, buffer)
	if err != nil {
		return nil, err
	}
	rec.Headers = setHeader(setHeader(rec.Headers, HeaderReplyTo, []byte(inbox)), HeaderCorrelationID, []byte(corr))
	if _, ok := rec.Header(HeaderExpiresAt); !ok && !expires.IsZero() {
		// Nobody waits for the answer after that: queues drop the request.
		rec.Headers = append(rec.Headers, ExpiresAt(expires))
	}
	if dest.Exchange != "" {
		_, unroutable, err := c.PublishExchange(ctx, dest.Exchange, dest.RoutingKey, true, rec)
		if err == nil && unroutable {
			err = ErrNoRoute
		}
		if err != nil {
			c.replies.forget(w)
			return nil, err
		}
		return w, nil
	}
	if _, err := c.Publish(ctx, dest.Stream, rec); err != nil {
		c.replies.forget(w)
		return nil, err
	}
	return w, nil
}

// setHeader returns headers (copied, the caller's are not changed) with
// every header named key replaced by one key=value at the end.
func setHeader(headers []Header, key string, value []byte) []Header {
	out := make([]Header, 0, len(headers)+1)
	for _, h := range headers {
		if h.Key != key {
			out = append(out, h)
		}
	}
	return append(out, Header{Key: key, Value: value})
}

// Reply publishes reply to the stream named by req's reply-to header (an
// inbox of the requester, or any stream), with req's correlation-id. It
// fails with ErrInvalidArgument when req has no reply-to, and with
// ErrNotFound when the requester's inbox is gone.
func (c *Client) Reply(ctx context.Context, req *Record, reply Record) error {
	to, ok := req.Header(HeaderReplyTo)
	if !ok || len(to) == 0 {
		return fmt.Errorf("reply: %w: the request has no %s header", ErrInvalidArgument, HeaderReplyTo)
	}
	if corr, ok := req.Header(HeaderCorrelationID); ok {
		reply.Headers = setHeader(reply.Headers, HeaderCorrelationID, corr)
	}
	_, err := c.Publish(ctx, string(to), reply)
	return err
}

// Responder answers one request; its error is the handler's (see Handler:
// in shared mode the request is nacked and redelivered).
type Responder func(ctx context.Context, req *Message) (Record, error)

// Respond serves requests arriving in stream: it consumes them (by default
// as a competing consumer of the shared subscription named after the
// stream, which is what a queue has; opts may choose another mode), calls
// respond for each and sends what it returns with Reply. A request without
// reply-to is processed and its answer dropped; one whose requester has
// gone (its inbox no longer exists) is settled all the same.
func (c *Client) Respond(ctx context.Context, stream string, respond Responder, opts ...ConsumeOption) (*Consumer, error) {
	if respond == nil {
		return nil, fmt.Errorf("respond to %q: %w: nil responder", stream, ErrInvalidArgument)
	}
	var probe consumeConfig
	for _, opt := range opts {
		opt(&probe)
	}
	if !probe.modeSet {
		opts = append([]ConsumeOption{Shared(stream)}, opts...)
	}
	return c.Consume(ctx, stream, func(ctx context.Context, m *Message) error {
		reply, err := respond(ctx, m)
		if err != nil {
			return err
		}
		if _, ok := m.Header(HeaderReplyTo); !ok {
			c.logger.Debug("request without reply-to: answer dropped", "stream", stream, "partition", m.Partition, "offset", m.Offset)
			return nil
		}
		if err := c.Reply(ctx, &m.Record, reply); err != nil {
			if errors.Is(err, ErrNotFound) {
				c.logger.Info("requester gone: answer dropped", "stream", stream, "partition", m.Partition, "offset", m.Offset, "err", err)
				return nil
			}
			return err
		}
		return nil
	}, opts...)
}

// waiter waits for the replies with one correlation id.
type waiter struct {
	corr string
	ch   chan Record   // buffered; replies that find it full are dropped
	lost chan struct{} // closed when the inbox it waits in is gone
}

// replyInbox is a client's inbox: one OpenInbox call, kept open (and
// opened again when it breaks) from the first request until Close, whose
// records are handed to the waiters by correlation id.
type replyInbox struct {
	start   sync.Once
	mu      sync.Mutex
	name    string        // "" while (re)connecting
	ready   chan struct{} // closed when name is set
	lastErr error         // why the last attempt to open the inbox failed
	waiters map[string]*waiter
}

// register waits until the inbox is open and adds a waiter to it.
func (r *replyInbox) register(ctx context.Context, c *Client, corr string, buffer int) (string, *waiter, error) {
	r.start.Do(func() {
		r.ready = make(chan struct{})
		r.waiters = make(map[string]*waiter)
		go r.run(c)
	})
	for {
		r.mu.Lock()
		if r.name != "" {
			w := &waiter{corr: corr, ch: make(chan Record, buffer), lost: make(chan struct{})}
			r.waiters[corr] = w
			name := r.name
			r.mu.Unlock()
			return name, w, nil
		}
		ready, lastErr := r.ready, r.lastErr
		r.mu.Unlock()
		select {
		case <-ready:
		case <-c.closed:
			return "", nil, ErrClosed
		case <-ctx.Done():
			if lastErr != nil {
				return "", nil, fmt.Errorf("opening the reply inbox: %w", lastErr)
			}
			return "", nil, context.Cause(ctx)
		}
	}
}

func (r *replyInbox) forget(w *waiter) {
	r.mu.Lock()
	if r.waiters[w.corr] == w {
		delete(r.waiters, w.corr)
	}
	r.mu.Unlock()
}

// run keeps the inbox open until the client closes.
func (r *replyInbox) run(c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.closed
		cancel()
	}()
	for attempt := 0; ; attempt++ {
		opened, err := r.serve(ctx, c)
		if opened {
			attempt = 0
		}
		r.lose(err)
		if ctx.Err() != nil {
			return
		}
		c.logger.Warn("reply inbox lost; opening another", "err", err)
		if !c.backoff.wait(ctx, c.closed, attempt) {
			return
		}
	}
}

// serve runs one OpenInbox call; opened says whether it got an inbox.
func (r *replyInbox) serve(ctx context.Context, c *Client) (opened bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.OpenInbox(ctx, connect.NewRequest(&weirpb.OpenInboxRequest{}))
	if err != nil {
		return false, wrapError("open reply inbox", err)
	}
	defer stream.Close()
	for stream.Receive() {
		switch msg := stream.Msg().GetMsg().(type) {
		case *weirpb.InboxResponse_Inbox:
			r.mu.Lock()
			r.name, r.lastErr = msg.Inbox, nil
			close(r.ready)
			r.mu.Unlock()
			opened = true
		case *weirpb.InboxResponse_Records:
			for _, pb := range msg.Records.GetRecords() {
				r.dispatch(fromPBRecord(pb, pb.GetStream()))
			}
		}
	}
	if err := stream.Err(); err != nil {
		return opened, wrapError("reply inbox", err)
	}
	return opened, fmt.Errorf("%w: the server ended the reply inbox", ErrUnavailable)
}

// dispatch hands a reply to the waiter of its correlation id, if any: a
// late reply (its request gave up) or a stray record is dropped.
func (r *replyInbox) dispatch(rec Record) {
	corr, _ := rec.Header(HeaderCorrelationID)
	r.mu.Lock()
	w := r.waiters[string(corr)]
	r.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.ch <- rec:
	default:
	}
}

// lose marks the inbox gone: its waiters are told, and requests wait for
// the next one.
func (r *replyInbox) lose(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.name != "" {
		r.name = ""
		r.ready = make(chan struct{})
	}
	r.lastErr = err
	for corr, w := range r.waiters {
		close(w.lost)
		delete(r.waiters, corr)
	}
}
