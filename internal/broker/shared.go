package broker

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/filter"
	"github.com/weirmq/weir/internal/storage"
)

// A shared subscription is one mutex-guarded state machine per subscription:
//
//   - a fetcher goroutine reads ahead from the partition logs (outside the
//     lock) into a bounded buffer of records not delivered yet;
//   - Receive hands out records (redeliveries first) at once; their delivery
//     counts are written by the committer's next transaction, and a record
//     is not handed out again before the count of its previous delivery is
//     durable (see sharedSub.take);
//   - Ack, Nack, Reject and Extend settle or move delivered records; an ack
//     is confirmed once durable;
//   - a timer loop redelivers records whose ack deadline passed, and releases
//     nacked (backoff) and delayed (deliver-at) records when they are due;
//   - a committer goroutine group-commits acks, delivery counts and the
//     partitions' floors (every offset below is settled) to the state store,
//     one transaction at a time, so floors only grow and a later count never
//     goes to the store before an earlier one.
//
// Per partition only the records between the floor and the fetch position
// that are not settled are in memory, so a backlog of millions costs nothing
// until it is fetched (at most maxBuffered records ahead).

// maxBuffered bounds the records fetched but not yet delivered once
// (waiting to go out, parked behind their key, or delayed).
const maxBuffered = 4096

type pendingState uint8

const (
	stateFresh    pendingState = iota // fetched, not delivered yet
	stateReady                        // to be delivered again now
	stateInFlight                     // delivered, awaiting ack
	stateWaiting                      // nacked or timed out: due at p.due
	stateDelayed                      // deliver-at in the future: due at p.due
	stateParked                       // key-ordered: behind an earlier record of its key
	stateSettling                     // ack or dead-lettering under way
	stateSettled                      // done: forgotten
)

// pending is a fetched record that is not settled.
type pending struct {
	part       *sharedPart
	rec        Record
	bytes      int64 // recordSize(&rec): what counts against MaxLengthBytes
	count      int32 // deliveries so far
	durable    int32 // the count the state store holds (or is known to)
	dirty      bool  // count or lastError changed since last written: in sharedSub.dirty
	lastError  string
	state      pendingState
	consumer   *sharedConsumer
	deadline   time.Time // in flight: redelivered after this
	due        time.Time // waiting or delayed: deliverable from this
	expires    time.Time // zero: never
	key        string
	keyed      bool // key-ordered and the record has a key
	delivered  bool // delivered at least once
	deadLetter bool // settling by dead-lettering
	heapIndex  int  // in sharedSub.timed; -1: not there
	expIndex   int  // in sharedSub.expiring; -1: not there
	// flightIndex is p's index in sharedSub.inflight (-1: not in flight).
	flightIndex int
	// committing: p's ack is in the committer's transaction under way,
	// which stores the floor as if p were settled (sharedPart.floorPast).
	committing bool
}

// noKeys is sharedPart.keysFrom when the store holds no ack or delivery
// key of the partition.
const noKeys = math.MaxInt64

type sharedPart struct {
	id    int32
	log   *storage.Log
	fetch int64 // next offset the fetcher reads
	live  map[int64]*pending
	// unsettled holds the offsets of live records (and, lazily, of records
	// settled since: they are popped when found at the top).
	unsettled    offsetHeap
	durableFloor int64
	// keysFrom is the lowest offset at which the state store may hold an
	// ack or delivery key of this partition (noKeys: none): a floor moved
	// past it clears the keys below with a range deletion, one that is not
	// just rewrites the floor key (in-order acks write no keys, so a busy
	// queue's commits need no range deletions). Guarded by the committer:
	// only commitBatch reads and writes it.
	keysFrom int64
	// Records in [fetch, sized) were sized ahead of the fetcher (for
	// MaxLengthBytes): aheadBytes is the sum of their sizes, less those
	// acknowledged before a restart. Records at sized and later are not
	// sized yet.
	sized      int64
	aheadBytes int64
	// From the store, for records not fetched again since the node started.
	storedAcks       map[int64]struct{}
	storedDeliveries map[int64]deliveryState
}

type deliveryState struct {
	count     int32
	lastError string
}

// floor is the offset below which every record is settled.
func (p *sharedPart) floor() int64 {
	for len(p.unsettled) > 0 {
		off := p.unsettled[0]
		if _, ok := p.live[off]; ok {
			return off
		}
		p.unsettled.pop()
	}
	return p.fetch
}

// floorPast is the offset below which every record is settled or
// committing (its ack in the transaction under way). It takes the
// committing records' offsets off the heap, appending them to taken: the
// caller puts them back (restore) if the transaction fails.
func (p *sharedPart) floorPast(taken []int64) (int64, []int64) {
	for len(p.unsettled) > 0 {
		off := p.unsettled[0]
		if q, ok := p.live[off]; ok {
			if !q.committing {
				return off, taken
			}
			taken = append(taken, off)
		}
		p.unsettled.pop()
	}
	return p.fetch, taken
}

// restore puts back offsets floorPast took off the heap.
func (p *sharedPart) restore(taken []int64) {
	for _, off := range taken {
		p.unsettled.push(off)
	}
}

type sharedConsumer struct {
	id       string
	inflight int
}

type keyQueue struct{ parked []*pending }

type sharedSub struct {
	b      *Broker
	s      *stream
	cfg    SubscriptionConfig
	id     string // state key: random, so a re-created subscription starts clean
	filter *filter.Filter
	// temporary subscriptions (of a temporary queue) keep their state in
	// memory only: nothing is written to the state store (tempqueue.go).
	temporary bool

	mu    sync.Mutex
	parts []*sharedPart
	again []*pending // ready to go (redeliveries, released keys) before fresh ones
	fresh []*pending
	// unconfirmed are ready to go again but wait for the count of their
	// previous delivery to be durable (the committer puts them back).
	unconfirmed []*pending
	// dirty are records whose delivery state the committer writes next.
	dirty []*pending
	timed pendingHeap // waiting and delayed records, by due time
	// expiring holds the records with an expiry time that are not
	// settled, by that time: the timer loop expires them even when no
	// consumer asks for records (so that they leave the depth).
	expiring  pendingHeap
	inflight  pendingHeap // records with a consumer, by ack deadline
	keys      map[string]*keyQueue
	consumers map[string]*sharedConsumer
	buffered  int // live records never delivered (fresh, parked, delayed)
	settling  int // live records in stateSettling
	// Sizes (recordSize) of the live records, and of those in
	// stateSettling; seen counts the records admitted and their bytes (the
	// average size estimates records not sized yet).
	liveBytes, settlingBytes int64
	seenRecords, seenBytes   int64
	// sizeMu serializes sizing ahead of the fetcher (sizeAhead); it is
	// taken before mu.
	sizeMu       sync.Mutex
	deadLettered int64
	// Counters of SubscriptionInfo (metrics), guarded by mu.
	delivered, redelivered, acked, nacked, rejected, timedOut int64

	// waiters are the receivers waiting for records, oldest first, each
	// woken alone (wakeReceiver) rather than all at once: a queue with 125
	// consumers woke all of them for each record, and under the load
	// campaign a thousand goroutines stood in the run queue (MQTT
	// publishes took 200 ms).
	waiters []chan struct{}
	wake    chan struct{} // capacity 1: an earlier deadline or due time was set
	grown   chan struct{} // closed (and replaced) when partitions are added
	// arrived (capacity 1) is signalled by the partitions' logs when
	// records are appended (Log.Notify); unnotify stops those signals.
	arrived  chan struct{}
	unnotify []func()
	room     chan struct{} // closed (and replaced) when the buffer has room
	// space, when a publisher waits for room under the block overflow
	// policy, is closed (and cleared) when a settlement starts, as the
	// length the max length bounds then drops.
	space  chan struct{}
	closed bool

	commits chan *commitOp
	kick    chan struct{} // capacity 1: dirty delivery states wait for the committer
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// signal wakes a receiver, as records may be deliverable, and the fetcher
// when the buffer has room; s.mu is held. A receiver that takes as many
// records as it asked for wakes the next, so records that became
// deliverable together reach every waiting receiver that can take them.
func (ss *sharedSub) signal() {
	if ss.closed {
		for _, w := range ss.waiters {
			w <- struct{}{}
		}
		ss.waiters = nil
	}
	ss.wakeReceiver()
	ss.signalRoom()
}

// wakeReceiver wakes the receiver that has waited longest; s.mu is held.
func (ss *sharedSub) wakeReceiver() {
	if len(ss.waiters) == 0 {
		return
	}
	w := ss.waiters[0]
	ss.waiters[0] = nil
	ss.waiters = ss.waiters[1:]
	w <- struct{}{} // capacity 1, and each waiter is woken once
}

// signalRoom wakes the fetcher when the buffer has room; s.mu is held.
func (ss *sharedSub) signalRoom() {
	if ss.buffered < maxBuffered {
		close(ss.room)
		ss.room = make(chan struct{})
	}
}

// leave takes a receiver that stops waiting off the list; if it was woken
// meanwhile, the wake goes to the next.
func (ss *sharedSub) leave(w chan struct{}) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if i := slices.Index(ss.waiters, w); i >= 0 {
		ss.waiters = slices.Delete(ss.waiters, i, i+1)
		return
	}
	if len(w) > 0 {
		ss.wakeReceiver()
	}
}

func (ss *sharedSub) consumer(id string) *sharedConsumer {
	c, ok := ss.consumers[id]
	if !ok {
		c = &sharedConsumer{id: id}
		ss.consumers[id] = c
	}
	return c
}

// take removes the next deliverable record; s.mu is held.
func (ss *sharedSub) take(now time.Time) *pending {
	for {
		var p *pending
		switch {
		case len(ss.again) > 0:
			p, ss.again = ss.again[0], ss.again[1:]
		case len(ss.fresh) > 0:
			p, ss.fresh = ss.fresh[0], ss.fresh[1:]
		default:
			return nil
		}
		if p.state != stateReady && p.state != stateFresh {
			continue // settled or moved since it was queued
		}
		if !p.expires.IsZero() && !now.Before(p.expires) {
			ss.expire(p)
			continue
		}
		if p.count > p.durable {
			// The count of its previous delivery is not durable yet:
			// handing it out again now could leave two deliveries
			// uncounted after a crash. It waits for the committer to
			// write that count.
			ss.markDirty(p)
			ss.unconfirmed = append(ss.unconfirmed, p)
			continue
		}
		return p
	}
}

// Receive hands consumerID up to max records, waiting up to wait for the
// first. Their delivery counts are counted at once and written to the state
// store by the subscription's next commit, which nothing waits for: after a
// crash, a record's stored count lacks at most its last delivery, and only
// if that delivery was handed out within one commit of the crash (a record
// is not handed out again before the count of its previous delivery is
// durable, and Close writes the counts not yet written).
func (b *Broker) Receive(ctx context.Context, streamName, sub, consumerID string, max int, wait time.Duration) ([]Delivery, error) {
	if err := AuthorizeSubscription(ctx, streamName, sub, auth.ActionConsume); err != nil {
		return nil, err
	}
	ss, err := b.sharedSub(streamName, sub)
	if err != nil {
		return nil, err
	}
	if consumerID == "" || max <= 0 {
		return nil, fmt.Errorf("%w: a consumer id and a positive count are needed", ErrInvalidArgument)
	}
	return ss.receive(ctx, consumerID, max, wait)
}

func (ss *sharedSub) receive(ctx context.Context, consumerID string, max int, wait time.Duration) ([]Delivery, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		ss.mu.Lock()
		if ss.closed {
			ss.mu.Unlock()
			return nil, fmt.Errorf("%w: subscription %q", ErrSubscriptionNotFound, ss.cfg.Name)
		}
		now := ss.b.now()
		c := ss.consumer(consumerID)
		var picked []*pending
		for len(picked) < max {
			p := ss.take(now)
			if p == nil {
				break
			}
			if !p.delivered {
				p.delivered = true
				ss.buffered--
			}
			p.count++
			ss.delivered++
			if p.count > 1 {
				ss.redelivered++
			}
			p.state, p.consumer, p.deadline = stateInFlight, c, now.Add(ss.cfg.AckTimeout)
			heap.Push(&ss.inflight, p)
			c.inflight++
			picked = append(picked, p)
		}
		if len(picked) > 0 {
			ss.signalRoom() // the buffer has room again
			if len(picked) == max {
				ss.wakeReceiver() // there may be more, for the next
			}
			ss.wakeTimer()
			out := make([]Delivery, len(picked))
			for i, p := range picked {
				if p.count > 1 {
					// A first delivery's count is written only if the
					// record comes back unacknowledged (see returned):
					// most are acked first, and then it needs no key.
					ss.markDirty(p)
				}
				out[i] = Delivery{Record: p.rec, DeliveryCount: p.count, Deadline: p.deadline}
			}
			ss.mu.Unlock()
			return out, nil
		}
		w := make(chan struct{}, 1)
		ss.waiters = append(ss.waiters, w)
		ss.mu.Unlock()

		select {
		case <-w:
		case <-timeout:
			ss.leave(w)
			return nil, nil
		case <-ctx.Done():
			ss.leave(w)
			return nil, ctx.Err()
		case <-ss.ctx.Done():
			ss.leave(w)
			return nil, ErrClosed
		}
	}
}

// markSettling notes that p's settlement is under way; s.mu is held.
func (ss *sharedSub) markSettling(p *pending) {
	if p.state != stateSettling {
		p.state = stateSettling
		ss.settling++
		ss.settlingBytes += p.bytes
		ss.freeSpace()
	}
}

// freeSpace wakes the publishers waiting for room (OverflowBlock), as the
// length dropped; s.mu is held.
func (ss *sharedSub) freeSpace() {
	if ss.space != nil {
		close(ss.space)
		ss.space = nil
	}
}

// unsettle returns a record whose settlement failed to state st; s.mu is
// held. Its delivery state, skipped by the committer while it was
// settling, is written again.
func (ss *sharedSub) unsettle(p *pending, st pendingState) {
	if p.state == stateSettling {
		ss.settling--
		ss.settlingBytes -= p.bytes
	}
	p.state = st
	if p.count > p.durable {
		ss.markDirty(p)
	}
}

// markDirty queues p's delivery state (count, last error) for the
// committer's next transaction; s.mu is held.
func (ss *sharedSub) markDirty(p *pending) {
	if !p.dirty {
		p.dirty = true
		ss.dirty = append(ss.dirty, p)
	}
	select {
	case ss.kick <- struct{}{}:
	default:
	}
}

// release takes an in-flight record back from its consumer and makes it
// deliverable again at once; s.mu is held.
func (ss *sharedSub) release(p *pending) {
	ss.takeFromConsumer(p)
	ss.returned(p)
	p.state = stateReady
	ss.again = append(ss.again, p)
}

// returned writes the delivery state of a record that came back from a
// consumer unacknowledged, if the store lacks it (a first delivery's count
// is not written at the hand-out); s.mu is held.
func (ss *sharedSub) returned(p *pending) {
	if p.count > p.durable {
		ss.markDirty(p)
	}
}

func (ss *sharedSub) takeFromConsumer(p *pending) {
	if p.flightIndex >= 0 {
		heap.Remove(&ss.inflight, p.flightIndex)
	}
	if p.state == stateInFlight {
		p.consumer.inflight--
		p.consumer = nil
	}
}

// lookup finds the records refs name that consumerID holds in flight; a
// record already settled is skipped (acks are idempotent).
func (ss *sharedSub) lookup(consumerID string, refs []DeliveryRef, allowWaiting bool) ([]*pending, error) {
	var out []*pending
	for _, r := range refs {
		if r.Partition < 0 || int(r.Partition) >= len(ss.parts) {
			return nil, fmt.Errorf("%w: partition %d", ErrPartitionNotFound, r.Partition)
		}
		p, ok := ss.parts[r.Partition].live[r.Offset]
		if !ok || p.state == stateSettling {
			continue
		}
		switch {
		case p.state == stateInFlight && p.consumer.id == consumerID:
		case allowWaiting && (p.state == stateWaiting || p.state == stateReady):
			// Late, after its deadline, but before it went to someone else.
		default:
			return nil, fmt.Errorf("%w: %d/%d is not held by %q", ErrNotInFlight, r.Partition, r.Offset, consumerID)
		}
		out = append(out, p)
	}
	return out, nil
}

// withHeld runs fn, under the subscription's lock, on the records refs name
// that consumerID holds (with late, also those whose deadline passed and
// that nobody else holds yet); settled ones are left out.
func (b *Broker) withHeld(streamName, sub, consumerID string, refs []DeliveryRef, late bool, fn func(ss *sharedSub, ps []*pending)) (*sharedSub, error) {
	ss, err := b.sharedSub(streamName, sub)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ps, err := ss.lookup(consumerID, refs, late)
	if err != nil {
		return nil, err
	}
	fn(ss, ps)
	return ss, nil
}

// Ack settles delivered records. It returns once the acks are durable.
func (b *Broker) Ack(ctx context.Context, streamName, sub, consumerID string, refs []DeliveryRef) error {
	return b.AckThen(ctx, streamName, sub, consumerID, refs, nil)
}

// AckThen is Ack that calls taken (unless nil) as soon as the records are
// taken from the consumer, before their acks are durable: they no longer
// count as in flight to it, and if their acks then fail to be stored they
// are delivered again (to any consumer). taken is not called when the ack
// is refused (a record is not held by the consumer: ErrNotInFlight, or
// the names are wrong); it is called with the subscription's lock held,
// so it must not call the broker.
func (b *Broker) AckThen(ctx context.Context, streamName, sub, consumerID string, refs []DeliveryRef, taken func()) error {
	var held []*pending
	ss, err := b.withHeld(streamName, sub, consumerID, refs, true, func(ss *sharedSub, ps []*pending) {
		for _, p := range ps {
			ss.takeFromConsumer(p)
			ss.markSettling(p)
		}
		ss.acked += int64(len(ps))
		held = ps
		if taken != nil {
			taken()
		}
	})
	if err != nil || len(held) == 0 {
		return err
	}
	return ss.commit(ctx, &commitOp{acks: held, done: make(chan error, 1)})
}

// Nack gives delivered records back for redelivery after the backoff (or
// after delay, when positive), keeping errText for the dead-letter headers;
// past MaxDeliveries they are dead-lettered instead.
func (b *Broker) Nack(ctx context.Context, streamName, sub, consumerID string, refs []DeliveryRef, errText string, delay time.Duration) error {
	_, err := b.withHeld(streamName, sub, consumerID, refs, false, func(ss *sharedSub, ps []*pending) {
		now := b.now()
		ss.nacked += int64(len(ps))
		for _, p := range ps {
			ss.takeFromConsumer(p)
			p.lastError = errText
			if ss.cfg.MaxDeliveries > 0 && p.count >= ss.cfg.MaxDeliveries {
				ss.deadLetter(p, ReasonMaxDeliveries)
				continue
			}
			d := delay
			if d <= 0 {
				d = ss.cfg.backoff(p.count)
			}
			ss.wait(p, stateWaiting, now.Add(d))
			// Keep the error text for the dead-letter headers across
			// restarts; nothing waits for it.
			ss.markDirty(p)
		}
		ss.signal()
	})
	return err
}

// Reject dead-letters delivered records now.
func (b *Broker) Reject(ctx context.Context, streamName, sub, consumerID string, refs []DeliveryRef, reason string) error {
	_, err := b.withHeld(streamName, sub, consumerID, refs, true, func(ss *sharedSub, ps []*pending) {
		ss.rejected += int64(len(ps))
		for _, p := range ps {
			ss.takeFromConsumer(p)
			if reason != "" {
				p.lastError = reason
			}
			ss.deadLetter(p, ReasonRejected)
		}
		ss.signal()
	})
	return err
}

// Extend moves the ack deadline of records the consumer still works on to
// d from now.
func (b *Broker) Extend(ctx context.Context, streamName, sub, consumerID string, refs []DeliveryRef, d time.Duration) error {
	if d <= 0 || d > MaxAckTimeout {
		return fmt.Errorf("%w: extension must be between 0 and %v, got %v", ErrInvalidArgument, MaxAckTimeout, d)
	}
	_, err := b.withHeld(streamName, sub, consumerID, refs, false, func(ss *sharedSub, ps []*pending) {
		deadline := b.now().Add(d)
		for _, p := range ps {
			p.deadline = deadline
			if p.flightIndex >= 0 {
				heap.Fix(&ss.inflight, p.flightIndex)
			}
		}
		ss.wakeTimer()
	})
	return err
}

// CloseConsumer ends a consumer: the records it held in flight are
// delivered again at once (their delivery count stays).
func (b *Broker) CloseConsumer(streamName, sub, consumerID string) {
	ss, err := b.sharedSub(streamName, sub)
	if err != nil {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	c, ok := ss.consumers[consumerID]
	if !ok {
		return
	}
	var held []*pending
	for _, p := range ss.inflight.items {
		if p.consumer == c {
			held = append(held, p)
		}
	}
	for _, p := range held {
		ss.release(p)
	}
	delete(ss.consumers, consumerID)
	ss.signal()
}

// wait parks p until due; s.mu is held.
func (ss *sharedSub) wait(p *pending, st pendingState, due time.Time) {
	p.state, p.due = st, due
	heap.Push(&ss.timed, p)
	ss.wakeTimer()
}

// tick redelivers records whose deadline passed and releases due ones.
func (ss *sharedSub) tick() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.b.now()
	moved := false
	for ss.inflight.Len() > 0 && !now.Before(ss.inflight.items[0].deadline) {
		p := ss.inflight.items[0]
		ss.takeFromConsumer(p)
		p.lastError = "ack deadline passed"
		ss.timedOut++
		ss.markDirty(p) // the count, if a first delivery, and the error
		if ss.cfg.MaxDeliveries > 0 && p.count >= ss.cfg.MaxDeliveries {
			ss.deadLetter(p, ReasonMaxDeliveries)
		} else {
			p.state = stateReady
			ss.again = append(ss.again, p)
		}
		moved = true
	}
	for ss.expiring.Len() > 0 && !now.Before(ss.expiring.items[0].expires) {
		p := heap.Pop(&ss.expiring).(*pending)
		switch p.state {
		case stateFresh, stateReady, stateDelayed, stateWaiting:
			// Not with a consumer (which may still ack it), not parked
			// behind its key (expired when its turn comes).
			ss.expire(p)
			moved = true
		}
	}
	for ss.timed.Len() > 0 && !now.Before(ss.timed.items[0].due) {
		p := heap.Pop(&ss.timed).(*pending)
		switch p.state {
		case stateWaiting:
			p.state = stateReady
			ss.again = append(ss.again, p)
		case stateDelayed:
			p.state = stateFresh
			ss.fresh = append(ss.fresh, p)
		default:
			continue
		}
		moved = true
	}
	if moved {
		ss.signal()
	}
}

// timerLoop runs tick when the earliest deadline or due time comes, or
// when an earlier one was set (wakeTimer).
func (ss *sharedSub) timerLoop() {
	defer ss.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(ss.nextTimer())
		select {
		case <-ss.ctx.Done():
			return
		case <-ss.wake:
		case <-t.C:
		}
		ss.tick()
	}
}

// maxTimerSleep bounds the timer loop's sleep (deadlines are checked at
// least this often even if a wake-up were missed).
const maxTimerSleep = time.Minute

// nextTimer is how long until the earliest ack deadline, due time or
// expiry.
func (ss *sharedSub) nextTimer() time.Duration {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var next time.Time
	if ss.timed.Len() > 0 {
		next = ss.timed.items[0].due
	}
	if ss.expiring.Len() > 0 && (next.IsZero() || ss.expiring.items[0].expires.Before(next)) {
		next = ss.expiring.items[0].expires
	}
	if ss.inflight.Len() > 0 && (next.IsZero() || ss.inflight.items[0].deadline.Before(next)) {
		next = ss.inflight.items[0].deadline
	}
	if next.IsZero() {
		return maxTimerSleep
	}
	return min(max(next.Sub(ss.b.now()), 0), maxTimerSleep)
}

// wakeTimer makes the timer loop recompute its sleep (a new deadline or due
// time may be earlier).
func (ss *sharedSub) wakeTimer() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// offsetHeap is a min-heap of offsets. Its push and pop take and return
// int64, not any as container/heap's do: boxing an offset allocates, and a
// busy queue pushes and pops one per record.
type offsetHeap []int64

func (h *offsetHeap) push(off int64) {
	*h = append(*h, off)
	x := *h
	for i := len(x) - 1; i > 0; {
		parent := (i - 1) / 2
		if x[parent] <= x[i] {
			break
		}
		x[parent], x[i] = x[i], x[parent]
		i = parent
	}
}

// pop removes the least offset; the heap must not be empty.
func (h *offsetHeap) pop() int64 {
	x := *h
	top, n := x[0], len(x)-1
	x[0] = x[n]
	x = x[:n]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && x[l] < x[least] {
			least = l
		}
		if r < n && x[r] < x[least] {
			least = r
		}
		if least == i {
			break
		}
		x[i], x[least] = x[least], x[i]
		i = least
	}
	*h = x
	return top
}

// pendingHeap is a min-heap of records by one of their times (order);
// each record knows its index in it, so that it can be moved or removed.
type pendingHeap struct {
	items []*pending
	order heapOrder
}

type heapOrder int

const (
	byDue      heapOrder = iota // waiting and delayed records: p.due, p.heapIndex
	byExpiry                    // records that expire: p.expires, p.expIndex
	byDeadline                  // records in flight: p.deadline, p.flightIndex
)

func (h *pendingHeap) index(p *pending) *int {
	switch h.order {
	case byExpiry:
		return &p.expIndex
	case byDeadline:
		return &p.flightIndex
	}
	return &p.heapIndex
}

func (h *pendingHeap) time(i int) time.Time {
	switch h.order {
	case byExpiry:
		return h.items[i].expires
	case byDeadline:
		return h.items[i].deadline
	}
	return h.items[i].due
}

func (h *pendingHeap) Len() int           { return len(h.items) }
func (h *pendingHeap) Less(i, j int) bool { return h.time(i).Before(h.time(j)) }
func (h *pendingHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.index(h.items[i]), *h.index(h.items[j]) = i, j
}
func (h *pendingHeap) Push(x any) {
	p := x.(*pending)
	*h.index(p) = len(h.items)
	h.items = append(h.items, p)
}
func (h *pendingHeap) Pop() any {
	p := h.items[len(h.items)-1]
	h.items[len(h.items)-1] = nil
	h.items = h.items[:len(h.items)-1]
	*h.index(p) = -1
	return p
}

// addPartitions follows a stream that grew: new partitions are read from
// their start. The stream's mu is held.
func (ss *sharedSub) addPartitions(b *Broker, logs []*storage.Log) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	parts := slices.Clip(ss.parts) // the fetcher may hold the old slice
	for p := len(parts); p < len(logs); p++ {
		parts = append(parts, &sharedPart{id: int32(p), log: logs[p], live: make(map[int64]*pending),
			storedAcks: map[int64]struct{}{}, storedDeliveries: map[int64]deliveryState{}})
		ss.unnotify = append(ss.unnotify, logs[p].Notify(ss.arrived))
	}
	ss.parts = parts
	close(ss.grown)
	ss.grown = make(chan struct{})
}
