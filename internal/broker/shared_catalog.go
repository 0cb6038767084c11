package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/filter"
	"github.com/weirmq/weir/internal/state"
)

// subscriptionMeta is a shared subscription's catalog entry (JSON; the
// field names are part of the on-disk format). Its catalog name is
// "<stream>/<name>": '/' cannot occur in either.
type subscriptionMeta struct {
	Version            int                 `json:"v"`
	ID                 string              `json:"id"`
	Stream             string              `json:"stream"`
	Name               string              `json:"name"`
	Filter             string              `json:"filter,omitempty"`
	AckTimeoutMs       int64               `json:"ack_timeout_ms"`
	MaxDeliveries      int32               `json:"max_deliveries,omitempty"`
	DeadLetterStream   string              `json:"dead_letter_stream"`
	DeadLetterExchange *DeadLetterExchange `json:"dead_letter_exchange,omitempty"`
	BackoffInitialMs   int64               `json:"backoff_initial_ms"`
	BackoffMaxMs       int64               `json:"backoff_max_ms"`
	BackoffMultiplier  float64             `json:"backoff_multiplier"`
	KeyOrdered         bool                `json:"key_ordered,omitempty"`
	MessageTTLMs       int64               `json:"message_ttl_ms,omitempty"`
	ExpiredDeadLetter  bool                `json:"expired_dead_letter,omitempty"`
	MaxLength          int64               `json:"max_length,omitempty"`
	Overflow           string              `json:"overflow,omitempty"`
	MaxLengthBytes     int64               `json:"max_length_bytes,omitempty"`
	CreatedAt          time.Time           `json:"created_at"`
}

func subCatalogName(stream, name string) string { return stream + "/" + name }

func newSubscriptionMeta(cfg SubscriptionConfig, now time.Time) subscriptionMeta {
	var id [16]byte
	rand.Read(id[:])
	return subscriptionMeta{
		Version: metaVersion, ID: hex.EncodeToString(id[:]), Stream: cfg.Stream, Name: cfg.Name, Filter: cfg.Filter,
		AckTimeoutMs: cfg.AckTimeout.Milliseconds(), MaxDeliveries: cfg.MaxDeliveries, DeadLetterStream: cfg.DeadLetterStream, DeadLetterExchange: cfg.DeadLetterExchange.meta(),
		BackoffInitialMs: cfg.BackoffInitial.Milliseconds(), BackoffMaxMs: cfg.BackoffMax.Milliseconds(), BackoffMultiplier: cfg.BackoffMultiplier,
		KeyOrdered: cfg.KeyOrdered, MessageTTLMs: cfg.MessageTTL.Milliseconds(), ExpiredDeadLetter: cfg.ExpiredDeadLetter,
		MaxLength: cfg.MaxLength, Overflow: cfg.Overflow, MaxLengthBytes: cfg.MaxLengthBytes, CreatedAt: now.UTC(),
	}
}

func (m *subscriptionMeta) config() SubscriptionConfig {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	return SubscriptionConfig{
		Stream: m.Stream, Name: m.Name, Filter: m.Filter, AckTimeout: ms(m.AckTimeoutMs), MaxDeliveries: m.MaxDeliveries,
		DeadLetterStream: m.DeadLetterStream, DeadLetterExchange: m.DeadLetterExchange.config(), BackoffInitial: ms(m.BackoffInitialMs), BackoffMax: ms(m.BackoffMaxMs),
		BackoffMultiplier: m.BackoffMultiplier, KeyOrdered: m.KeyOrdered, MessageTTL: ms(m.MessageTTLMs), ExpiredDeadLetter: m.ExpiredDeadLetter,
		MaxLength: m.MaxLength, Overflow: m.Overflow, MaxLengthBytes: m.MaxLengthBytes,
	}
}

// CompileFilter checks a filter expression as a subscription would.
func CompileFilter(expr string) (*filter.Filter, error) {
	if expr == "" {
		return nil, nil
	}
	f, err := filter.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return f, nil
}

// CreateSubscription creates a shared subscription on a stream, starting at
// cfg.Start in every partition.
func (b *Broker) CreateSubscription(ctx context.Context, cfg SubscriptionConfig) (SubscriptionInfo, error) {
	if err := Authorize(ctx, auth.ResourceSubscription, cfg.Name, auth.ActionManage); err != nil {
		return SubscriptionInfo{}, err
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return SubscriptionInfo{}, err
	}
	f, err := CompileFilter(cfg.Filter)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	if IsInbox(cfg.Stream) {
		return SubscriptionInfo{}, errInboxTarget("a shared subscription", cfg.Stream)
	}
	s, err := b.stream(cfg.Stream)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	if (cfg.MaxDeliveries > 0 || cfg.ExpiredDeadLetter || cfg.Overflow == OverflowDeadLetter) && cfg.DeadLetterExchange.Name == "" {
		// Dead-lettering is configured: the dead-letter queue exists from
		// the start, so its consumers can be set up before anything fails.
		if err := b.ensureDeadLetterQueue(ctx, cfg.DeadLetterStream); err != nil {
			return SubscriptionInfo{}, err
		}
	}
	meta := newSubscriptionMeta(cfg, b.now())
	s.mu.Lock()
	if s.deleting {
		s.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: %q", ErrStreamNotFound, cfg.Stream)
	}
	if s.meta.Temporary {
		// A catalog entry would outlive the stream (a temporary queue).
		s.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: a shared subscription cannot name temporary stream %q", ErrInvalidArgument, cfg.Stream)
	}
	if _, ok := s.subs[cfg.Name]; ok {
		s.mu.Unlock()
		return SubscriptionInfo{}, fmt.Errorf("%w: %q on stream %q", ErrSubscriptionExists, cfg.Name, cfg.Stream)
	}
	floors := make([]int64, len(s.parts))
	for p, l := range s.parts {
		if floors[p], err = resolveStart(l, cfg.Start); err != nil {
			s.mu.Unlock()
			return SubscriptionInfo{}, err
		}
	}
	value, _ := json.Marshal(meta)
	err = b.state.Update(func(tx *state.Tx) error {
		if err := tx.PutCatalog(state.KindSubscription, subCatalogName(cfg.Stream, cfg.Name), value); err != nil {
			return err
		}
		for p, f := range floors {
			// A new subscription ID: no keys of it are stored.
			if err := tx.MoveCursorFloor(meta.ID, int32(p), f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.mu.Unlock()
		return SubscriptionInfo{}, err
	}
	ss, err := b.openSubscription(s, meta, f)
	if err != nil {
		s.mu.Unlock()
		return SubscriptionInfo{}, err
	}
	s.subs[cfg.Name] = ss
	s.mu.Unlock()
	return ss.info(), nil
}

// openSubscription starts the engine of a subscription from its stored
// state; s.mu is held.
func (b *Broker) openSubscription(s *stream, meta subscriptionMeta, f *filter.Filter) (*sharedSub, error) {
	cfg := meta.config()
	cfg.defaults()
	ctx, cancel := context.WithCancel(b.ctx)
	ss := &sharedSub{
		b: b, s: s, cfg: cfg, id: meta.ID, filter: f, temporary: s.meta.Temporary, expiring: pendingHeap{order: byExpiry}, inflight: pendingHeap{order: byDeadline},
		keys: make(map[string]*keyQueue), consumers: make(map[string]*sharedConsumer),
		room: make(chan struct{}), wake: make(chan struct{}, 1), grown: make(chan struct{}), arrived: make(chan struct{}, 1), commits: make(chan *commitOp, 256), kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}
	for p, l := range s.parts {
		part, err := b.loadPart(meta.ID, int32(p))
		if err != nil {
			cancel()
			return nil, err
		}
		part.log = l
		ss.parts = append(ss.parts, part)
	}
	for _, part := range ss.parts {
		ss.unnotify = append(ss.unnotify, part.log.Notify(ss.arrived))
	}
	ss.wg.Add(3)
	go ss.fetchLoop()
	go ss.timerLoop()
	go ss.commitLoop()
	return ss, nil
}

func (b *Broker) loadPart(subID string, p int32) (*sharedPart, error) {
	st, err := b.state.LoadCursor(subID, p)
	if err != nil {
		return nil, err
	}
	// LoadCursor read every key of the partition, so keysFrom is exact.
	part := &sharedPart{id: p, fetch: st.Floor, durableFloor: st.Floor, keysFrom: noKeys, live: make(map[int64]*pending),
		storedAcks: make(map[int64]struct{}, len(st.Acked)), storedDeliveries: make(map[int64]deliveryState, len(st.Deliveries))}
	for _, off := range st.Acked {
		part.storedAcks[off] = struct{}{}
		part.keysFrom = min(part.keysFrom, off)
	}
	for off, d := range st.Deliveries {
		part.storedDeliveries[off] = deliveryState{count: d.Count, lastError: d.LastError}
		part.keysFrom = min(part.keysFrom, off)
	}
	return part, nil
}

// loadSubscriptions opens every subscription of the catalog (after the
// streams).
func (b *Broker) loadSubscriptions() error {
	entries, err := b.state.ListCatalog(state.KindSubscription)
	if err != nil {
		return err
	}
	for _, e := range entries {
		var meta subscriptionMeta
		if err := json.Unmarshal(e.Value, &meta); err != nil || meta.Version != metaVersion {
			return fmt.Errorf("broker: catalog entry of subscription %q is malformed", e.Name)
		}
		s, ok := b.streams[meta.Stream]
		if !ok {
			return fmt.Errorf("broker: subscription %q names a missing stream", e.Name)
		}
		f, err := CompileFilter(meta.Filter)
		if err != nil {
			return fmt.Errorf("broker: subscription %q: %w", e.Name, err)
		}
		s.mu.Lock()
		ss, err := b.openSubscription(s, meta, f)
		if err == nil {
			s.subs[meta.Name] = ss
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// stop ends the subscription's engine. When the broker closes (rather than
// the subscription or its stream being deleted), the delivery states not
// written yet are written first, so a clean shutdown keeps every count.
func (ss *sharedSub) stop() {
	ss.cancel()
	ss.mu.Lock()
	ss.closed = true
	ss.signal()
	ss.mu.Unlock()
	ss.wg.Wait()
	ss.mu.Lock()
	for _, stop := range ss.unnotify {
		stop()
	}
	ss.unnotify = nil
	ss.mu.Unlock()
	if ss.b.ctx.Err() == nil || ss.temporary {
		return // deleted (its state is gone), or nothing to keep
	}
	ss.mu.Lock()
	for _, part := range ss.parts {
		for _, p := range part.live {
			// First deliveries still with their consumers: their counts
			// are written only when they come back, which is now.
			ss.returned(p)
		}
	}
	notes := ss.takeDirty()
	ss.mu.Unlock()
	if len(notes) == 0 {
		return
	}
	err := ss.b.state.Update(func(tx *state.Tx) error {
		for _, n := range notes {
			if err := tx.SetDelivery(ss.id, n.p.part.id, n.p.rec.Offset, state.Delivery{Count: n.d.count, LastError: n.d.lastError}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		ss.b.cfg.Logger.Error("shared subscription: delivery counts not written at close", "stream", ss.cfg.Stream, "subscription", ss.cfg.Name, "records", len(notes), "err", err)
	}
}

// sharedSub finds a subscription's engine.
func (b *Broker) sharedSub(streamName, name string) (*sharedSub, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ss, ok := s.subs[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q on stream %q", ErrSubscriptionNotFound, name, streamName)
	}
	return ss, nil
}

// DeleteSubscription deletes a shared subscription and its state.
func (b *Broker) DeleteSubscription(ctx context.Context, streamName, name string) error {
	if err := Authorize(ctx, auth.ResourceSubscription, name, auth.ActionManage); err != nil {
		return err
	}
	s, err := b.stream(streamName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	ss, ok := s.subs[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q on stream %q", ErrSubscriptionNotFound, name, streamName)
	}
	err = b.state.Update(func(tx *state.Tx) error {
		if err := tx.DeleteCatalog(state.KindSubscription, subCatalogName(streamName, name)); err != nil {
			return err
		}
		return tx.DeleteCursors(ss.id)
	})
	if err == nil {
		delete(s.subs, name)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ss.stop()
	return nil
}

// ListSubscriptions describes the shared subscriptions of a stream.
func (b *Broker) ListSubscriptions(streamName string) ([]SubscriptionInfo, error) {
	s, err := b.stream(streamName)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	subs := make([]*sharedSub, 0, len(s.subs))
	for _, ss := range s.subs {
		subs = append(subs, ss)
	}
	s.mu.RUnlock()
	out := make([]SubscriptionInfo, len(subs))
	for i, ss := range subs {
		out[i] = ss.info()
	}
	slices.SortFunc(out, func(a, b SubscriptionInfo) int { return strings.Compare(a.Config.Name, b.Config.Name) })
	return out, nil
}

// DescribeSubscription describes one shared subscription.
func (b *Broker) DescribeSubscription(streamName, name string) (SubscriptionInfo, error) {
	ss, err := b.sharedSub(streamName, name)
	if err != nil {
		return SubscriptionInfo{}, err
	}
	return ss.info(), nil
}

// depth counts the records not settled (durably); s.mu is held.
func (ss *sharedSub) depth() int64 {
	var d int64
	for _, part := range ss.parts {
		// Not fetched yet, less those acknowledged before a restart, plus
		// those fetched and not settled.
		d += max(part.log.EndOffset()-part.fetch-int64(len(part.storedAcks)), 0) + int64(len(part.live))
	}
	return d
}

// lengthForLimit is the depth less the records whose settlement is under
// way: what max length is enforced on; s.mu is held.
func (ss *sharedSub) lengthForLimit() int64 { return ss.depth() - int64(ss.settling) }

func (ss *sharedSub) info() SubscriptionInfo {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	info := SubscriptionInfo{Config: ss.cfg, Consumers: len(ss.consumers), InFlight: ss.inflight.Len(), DeadLettered: ss.deadLettered, Depth: ss.depth(), DepthBytes: ss.depthBytes(),
		Delivered: ss.delivered, Redelivered: ss.redelivered, Acked: ss.acked, Nacked: ss.nacked, Rejected: ss.rejected, TimedOut: ss.timedOut}
	for _, part := range ss.parts {
		for _, p := range part.live {
			switch p.state {
			case stateWaiting:
				info.Waiting++
			case stateDelayed:
				info.Delayed++
			}
		}
	}
	return info
}

// CreateQueue creates a queue: a stream with until-acked retention and a
// shared subscription of the same name that starts at its first record.
func (b *Broker) CreateQueue(ctx context.Context, cfg QueueConfig) (SubscriptionInfo, error) {
	if err := Authorize(ctx, auth.ResourceQueue, cfg.Name, auth.ActionManage); err != nil {
		return SubscriptionInfo{}, err
	}
	sub := cfg.Subscription
	sub.Stream, sub.Name, sub.Start = cfg.Name, cfg.Name, StartPosition{Kind: StartEarliest}
	sub.defaults()
	if err := sub.validate(); err != nil {
		return SubscriptionInfo{}, err
	}
	if _, err := CompileFilter(sub.Filter); err != nil {
		return SubscriptionInfo{}, err
	}
	if _, err := b.createStream(ctx, StreamConfig{Name: cfg.Name, Partitions: cfg.Partitions, DedupWindow: cfg.DedupWindow}, true); err != nil {
		return SubscriptionInfo{}, err
	}
	info, err := b.CreateSubscription(ctx, sub)
	if err != nil {
		b.DeleteStream(ctx, cfg.Name)
		return SubscriptionInfo{}, err
	}
	return info, nil
}

// ListQueues describes every queue's subscription, by name.
func (b *Broker) ListQueues() []SubscriptionInfo {
	var out []SubscriptionInfo
	for _, s := range b.ListStreams() {
		if !s.Queue {
			continue
		}
		if info, err := b.DescribeSubscription(s.Config.Name, s.Config.Name); err == nil {
			out = append(out, info)
		}
	}
	return out
}

// trimUntilAcked drops, from a queue's partitions, the segments every shared
// subscription has settled.
func (b *Broker) trimUntilAcked(s *stream) {
	if !s.meta.UntilAcked {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for p, l := range s.parts {
		floor := int64(-1)
		for _, ss := range s.subs {
			ss.mu.Lock()
			if p < len(ss.parts) {
				f := ss.parts[p].durableFloor
				if floor < 0 || f < floor {
					floor = f
				}
			}
			ss.mu.Unlock()
		}
		if floor > l.StartOffset() {
			if _, err := l.DeleteBefore(floor); err != nil && !errors.Is(err, ErrClosed) {
				b.cfg.Logger.Warn("until-acked retention failed", "stream", s.meta.Name, "partition", p, "err", err)
			}
		}
	}
}
