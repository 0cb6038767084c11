package broker

import (
	"context"
	"fmt"
	"slices"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/state"
)

// Temporary queues are queues that end with their owner and never outlive
// the broker's run: AMQP's exclusive and auto-delete queues. Underneath, a
// temporary queue is a temporary stream (as an inbox: no catalog entry, no
// fsync, its directory removed when the broker closes and, after a crash,
// when it opens) with until-acked retention and a shared subscription of
// the same name whose state — acks, floors, delivery counts — lives in
// memory only (sharedSub.temporary: the committer settles records without
// writing the state store). Bindings to a temporary queue are kept by the
// exchange in memory (exchange.temp), never in its catalog entry. So the
// catalog and the state store never name a temporary queue, and a restart,
// clean or not, leaves nothing of it behind.

// CreateTemporaryQueue creates a temporary queue named cfg.Name (the names
// of durable streams: a temporary queue and a durable stream cannot share a
// name while both exist). The owner deletes it with DeleteStream; Close
// removes what is left.
func (b *Broker) CreateTemporaryQueue(ctx context.Context, cfg QueueConfig) (SubscriptionInfo, error) {
	if err := Authorize(ctx, auth.ResourceQueue, cfg.Name, auth.ActionManage); err != nil {
		return SubscriptionInfo{}, err
	}
	sub := cfg.Subscription
	sub.Stream, sub.Name, sub.Start = cfg.Name, cfg.Name, StartPosition{Kind: StartEarliest}
	sub.defaults()
	if err := sub.validate(); err != nil {
		return SubscriptionInfo{}, err
	}
	f, err := CompileFilter(sub.Filter)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	scfg := StreamConfig{Name: cfg.Name, Partitions: cfg.Partitions, DedupWindow: cfg.DedupWindow}
	if err := validateConfig(&scfg); err != nil {
		return SubscriptionInfo{}, err
	}
	if (sub.MaxDeliveries > 0 || sub.ExpiredDeadLetter || sub.Overflow == OverflowDeadLetter) && sub.DeadLetterExchange.Name == "" {
		if err := b.ensureDeadLetterQueue(ctx, sub.DeadLetterStream); err != nil {
			return SubscriptionInfo{}, err
		}
	}
	meta := b.newStreamMeta(scfg)
	meta.Temporary, meta.UntilAcked = true, true
	if _, err := b.addStream(meta); err != nil {
		return SubscriptionInfo{}, err
	}
	s, err := b.stream(cfg.Name)
	if err != nil {
		return SubscriptionInfo{}, err // deleted at once by someone else
	}
	s.mu.Lock()
	if s.meta.ID != meta.ID || len(s.subs) > 0 {
		s.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: %q", ErrStreamExists, cfg.Name)
	}
	// A new stream: every partition starts at offset 0, which is also what
	// the state store answers for the subscription's fresh ID.
	ss, err := b.openSubscription(s, newSubscriptionMeta(sub, b.now()), f)
	if err == nil {
		s.subs[sub.Name] = ss
	}
	s.mu.Unlock()
	if err != nil {
		b.DeleteStream(ctx, cfg.Name)
		return SubscriptionInfo{}, err
	}
	return ss.info(), nil
}

// IsTemporary reports whether the stream name is temporary (an inbox or a
// temporary queue).
func (b *Broker) IsTemporary(name string) (bool, error) {
	s, err := b.stream(name)
	if err != nil {
		return false, err
	}
	return s.isTemporary(), nil
}

func (s *stream) isTemporary() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.meta.Temporary
}

// writeState writes a subscription's state changes, unless it is
// temporary: then they are kept in memory only and "written" at once.
func (ss *sharedSub) writeState(fn func(*state.Tx) error) error {
	if ss.temporary {
		return nil
	}
	if err := ss.b.stateFault.Load(); err != nil {
		return *err
	}
	return ss.b.state.Update(fn)
}

// bindTemporary adds a binding to a temporary stream to x's in-memory
// bindings; b.ex.mu is held.
func (b *Broker) bindTemporary(x *exchange, bm bindingMeta) error {
	if slices.ContainsFunc(x.temp, func(o bindingMeta) bool { return sameBindingMeta(o, bm) }) {
		return nil
	}
	return b.setTemporaryBindings(x, append(slices.Clone(x.temp), bm))
}

// unbindTemporary removes the in-memory bindings of x that match; b.ex.mu
// is held.
func (b *Broker) unbindTemporary(x *exchange, match func(bindingMeta) bool) error {
	temp := slices.DeleteFunc(slices.Clone(x.temp), match)
	if len(temp) == len(x.temp) {
		return nil
	}
	return b.setTemporaryBindings(x, temp)
}

// setTemporaryBindings installs x with new in-memory bindings; nothing is
// written. b.ex.mu is held.
func (b *Broker) setTemporaryBindings(x *exchange, temp []bindingMeta) error {
	t, err := buildTable(&x.meta, temp)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	b.ex.byName[x.meta.Name] = &exchange{meta: x.meta, temp: temp, table: t, unroutable: x.unroutable}
	return nil
}
