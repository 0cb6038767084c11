package weir

// The idempotent consumer: a Handler wrapper that skips records whose
// message-id was processed already, with a pluggable store of the ids.

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// IdempotencyStore remembers which message ids were processed, for
// Idempotent. Its methods must be safe for concurrent use, by every
// consumer that shares the store.
//
// Each id goes through claims: Claim checks the id and claims it in one
// atomic step, so that one caller at a time processes it; Complete ends the
// claim and marks the id processed; Release ends it without marking it, so
// that the id can be claimed again (by the redelivery of a record whose
// handler failed). A store shared by several processes (a database table,
// Redis) should let a claim expire after a lease longer than any handler
// takes, so that an id claimed by a process that died is not blocked
// forever.
type IdempotencyStore interface {
	// Claim claims id for the caller and returns true, or returns false
	// if id was processed already. While another caller holds a claim on
	// id, Claim waits until that claim ends (and then claims id, or
	// returns false if it was completed), or until ctx is done (and
	// returns ctx's error).
	Claim(ctx context.Context, id string) (bool, error)
	// Complete marks the claimed id processed and ends the claim.
	Complete(ctx context.Context, id string) error
	// Release ends the claim on id without marking it processed.
	Release(ctx context.Context, id string) error
}

// ErrNotClaimed is returned by MemoryIdempotencyStore's Complete and
// Release of an id nobody claimed.
var ErrNotClaimed = errors.New("weir: message id not claimed")

// IdempotentOption configures Idempotent.
type IdempotentOption func(*idempotentConfig)

type idempotentConfig struct {
	key         func(*Message) (string, bool)
	onDuplicate func(context.Context, *Message)
}

// IdempotencyKey makes Idempotent identify a record by key's result in
// place of its message-id header; a record for which key returns false is
// handled as one without an id. For example, to keep the ids of each
// stream apart in a store that several consumers share:
//
//	weir.IdempotencyKey(func(m *weir.Message) (string, bool) {
//		id, ok := m.Header(weir.HeaderMessageID)
//		return m.Stream + "/" + string(id), ok && len(id) > 0
//	})
func IdempotencyKey(key func(m *Message) (string, bool)) IdempotentOption {
	return func(c *idempotentConfig) { c.key = key }
}

// OnDuplicate is called, with the handler's context, for each record that
// Idempotent skips: for logging or counting.
func OnDuplicate(fn func(ctx context.Context, m *Message)) IdempotentOption {
	return func(c *idempotentConfig) { c.onDuplicate = fn }
}

// messageID is the default key: the record's non-empty message-id header.
func messageID(m *Message) (string, bool) {
	id, ok := m.Header(HeaderMessageID)
	return string(id), ok && len(id) > 0
}

// Idempotent returns a Handler that runs handler once per message id: a
// record whose message-id header names an id that store says was processed
// is skipped, and its handler call returns nil (a group consumer commits
// past it, a shared one acknowledges it). It works with every consumer
// mode, and with anything else that takes a Handler.
//
// This catches the duplicates the stream's dedup window does not: a
// publisher that sent a record again after the window, redeliveries of a
// shared subscription whose ack was lost (the consumer died, or its
// connection broke, after the handler succeeded), and a group's records
// handled again after a rebalance or a restart before their commit.
//
//	store := weir.NewMemoryIdempotencyStore(100_000, time.Hour)
//	c.Consume(ctx, "payments", weir.Idempotent(store, charge), weir.Shared(""))
//
// An id is marked processed when handler returns nil (or acks the message
// itself), and only then: a handler that fails, or that nacks or rejects
// its message itself, leaves it unmarked, so that the redelivery is
// handled. While one handler call
// processes an id, another record with the same id waits for it, and is
// then skipped, or handled if the first failed: records of one id are
// never handled concurrently, across all the consumers sharing the store.
//
// Records without a message-id header (or with an empty one) are handled
// as they come, every time. A failure of the store is the handler's
// failure: the record is not handled, and the error returned.
func Idempotent(store IdempotencyStore, handler Handler, opts ...IdempotentOption) Handler {
	cfg := idempotentConfig{key: messageID}
	for _, opt := range opts {
		opt(&cfg)
	}
	return func(ctx context.Context, m *Message) error {
		id, ok := cfg.key(m)
		if !ok {
			return handler(ctx, m)
		}
		claimed, err := store.Claim(ctx, id)
		if err != nil {
			return fmt.Errorf("idempotent consumer: claim message id %q: %w", id, err)
		}
		if !claimed {
			span := trace.SpanFromContext(ctx)
			span.SetAttributes(attrDuplicate.Bool(true))
			if cfg.onDuplicate != nil {
				cfg.onDuplicate(ctx, m)
			}
			return nil
		}
		// The store's calls after the handler must not fail because the
		// consumer stops: a claim left behind would block the id.
		storeCtx := context.WithoutCancel(ctx)
		finished := false
		defer func() {
			if !finished { // the handler panicked
				_ = store.Release(storeCtx, id)
			}
		}()
		err = handler(ctx, m)
		finished = true
		// Processed: the handler returned nil, or acked the message
		// itself, and did not nack or reject it.
		if m.gaveUp.Load() || err != nil && !m.settled.Load() {
			if rerr := store.Release(storeCtx, id); rerr != nil {
				rerr = fmt.Errorf("idempotent consumer: release message id %q: %w", id, rerr)
				if err == nil {
					return rerr
				}
				return errors.Join(err, rerr)
			}
			return err
		}
		if err := store.Complete(storeCtx, id); err != nil {
			return fmt.Errorf("idempotent consumer: complete message id %q: %w", id, err)
		}
		return err // nil, or the error of a handler that acked first
	}
}

// DefaultIdempotencyMaxEntries is the bound of a MemoryIdempotencyStore
// made without a bound of size or age.
const DefaultIdempotencyMaxEntries = 100_000

// MemoryIdempotencyStore is an IdempotencyStore in memory: for consumers of
// one process. It forgets the oldest processed ids when it holds more than
// its maximum, and ids processed longer ago than its TTL; ids claimed but
// not yet completed are never forgotten. A record redelivered after its id
// was forgotten is handled again, so the bounds should cover the time in
// which duplicates come: the ack timeout and redelivery backoff of a
// shared subscription, how far a group may fall back, how long publishers
// retry.
type MemoryIdempotencyStore struct {
	maxEntries int
	ttl        time.Duration

	mu      sync.Mutex
	entries map[string]*idempotencyEntry
	done    list.List // of *idempotencyEntry, processed ones, oldest first
}

type idempotencyEntry struct {
	id      string
	claim   chan struct{} // while claimed: closed when the claim ends
	doneAt  time.Time
	element *list.Element // in done, once processed
}

// NewMemoryIdempotencyStore returns a store that remembers at most
// maxEntries processed ids (0 or less: no limit) for ttl each (0 or less:
// until the limit pushes them out). With neither bound, it remembers
// DefaultIdempotencyMaxEntries.
func NewMemoryIdempotencyStore(maxEntries int, ttl time.Duration) *MemoryIdempotencyStore {
	if maxEntries <= 0 && ttl <= 0 {
		maxEntries = DefaultIdempotencyMaxEntries
	}
	return &MemoryIdempotencyStore{maxEntries: maxEntries, ttl: ttl, entries: make(map[string]*idempotencyEntry)}
}

// Claim implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Claim(ctx context.Context, id string) (bool, error) {
	for {
		s.mu.Lock()
		s.expire(time.Now())
		e := s.entries[id]
		if e == nil {
			s.entries[id] = &idempotencyEntry{id: id, claim: make(chan struct{})}
			s.mu.Unlock()
			return true, nil
		}
		if e.element != nil {
			s.mu.Unlock()
			return false, nil
		}
		claim := e.claim
		s.mu.Unlock()
		select {
		case <-claim:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// Complete implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Complete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || e.element != nil {
		return fmt.Errorf("complete %q: %w", id, ErrNotClaimed)
	}
	now := time.Now()
	e.doneAt = now
	e.element = s.done.PushBack(e)
	close(e.claim)
	e.claim = nil
	s.expire(now)
	for s.maxEntries > 0 && s.done.Len() > s.maxEntries {
		s.forget(s.done.Front())
	}
	return nil
}

// Release implements IdempotencyStore.
func (s *MemoryIdempotencyStore) Release(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || e.element != nil {
		return fmt.Errorf("release %q: %w", id, ErrNotClaimed)
	}
	delete(s.entries, id)
	close(e.claim)
	return nil
}

// Len returns the number of processed ids the store remembers.
func (s *MemoryIdempotencyStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(time.Now())
	return s.done.Len()
}

// expire forgets the ids processed ttl or longer ago. s.mu is held.
func (s *MemoryIdempotencyStore) expire(now time.Time) {
	if s.ttl <= 0 {
		return
	}
	for el := s.done.Front(); el != nil && now.Sub(el.Value.(*idempotencyEntry).doneAt) >= s.ttl; el = s.done.Front() {
		s.forget(el)
	}
}

// forget drops a processed id. s.mu is held.
func (s *MemoryIdempotencyStore) forget(el *list.Element) {
	e := s.done.Remove(el).(*idempotencyEntry)
	delete(s.entries, e.id)
}
