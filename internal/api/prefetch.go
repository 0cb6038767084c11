package api

import (
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// prefetch is the credit window of a shared-mode subscription. Its limit is
// SubscribeRequest.credits (0: DefaultCredits), and the records in flight to
// the client hold it: the subscription receives at most limit minus the
// records it holds. A record delivered on the subscription holds one credit
// until
//
//   - an Ack naming it on this subscription id is taken by the broker (the
//     credit comes back then, before the ack is durable; the Ack answers
//     once it is, and if storing it fails the broker redelivers the
//     record), or a Nack or Reject naming it succeeds; or
//   - its ack deadline passes (the broker then takes it back and delivers
//     it again, maybe to this subscription); Extend moves the deadline.
//     The credit comes back deadlineGrace after the deadline, once the
//     broker has taken the record back, so that its redelivery goes out
//     before records never delivered, as the broker means it to.
//
// So a client that loses track of records (or whose records were purged)
// gets its credits back at their deadlines, never later. Redelivering a
// record it still holds (its deadline passed just now) holds one credit, not
// two: records are held by partition and offset. AddCredits does not apply.
//
// It is safe for concurrent use: the subscription's loop holds and takes
// credits, the settling RPCs return them.
// deadlineGrace is how long after a record's ack deadline its credit comes
// back: more than the broker's timer takes to notice the deadline.
const deadlineGrace = 50 * time.Millisecond

type prefetch struct {
	limit int

	mu   sync.Mutex
	held map[broker.DeliveryRef]time.Time // by record: when its credit comes back
	// earliest is at most every deadline in held (a bound, maybe stale), so
	// that expired records are looked for only when one may have expired.
	earliest time.Time
}

func newPrefetch(limit int) *prefetch {
	return &prefetch{limit: limit, held: make(map[broker.DeliveryRef]time.Time)}
}

// available drops the records whose credit is due back by now and returns
// how many more records the subscription may receive, and when the next
// credit is due back (zero: none held).
func (f *prefetch) available(now time.Time) (int, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) > 0 && !now.Before(f.earliest) {
		f.earliest = time.Time{}
		for ref, deadline := range f.held {
			switch {
			case !now.Before(deadline):
				delete(f.held, ref)
			case f.earliest.IsZero() || deadline.Before(f.earliest):
				f.earliest = deadline
			}
		}
	}
	if len(f.held) == 0 {
		f.earliest = time.Time{}
	}
	return max(f.limit-len(f.held), 0), f.earliest
}

// hold takes a credit for each record received.
func (f *prefetch) hold(ds []broker.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range ds {
		until := d.Deadline.Add(deadlineGrace)
		f.held[broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}] = until
		if f.earliest.IsZero() || until.Before(f.earliest) {
			f.earliest = until
		}
	}
}

// release returns the credits of settled records and says how many it
// returned (records not held are ignored: settled twice, or expired).
func (f *prefetch) release(refs []broker.DeliveryRef) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ref := range refs {
		if _, ok := f.held[ref]; ok {
			delete(f.held, ref)
			n++
		}
	}
	return n
}

// extend moves the deadline of the records still held. Records no longer
// held stay so: adding them back could hold a credit for a record already
// settled until the new deadline.
func (f *prefetch) extend(refs []broker.DeliveryRef, deadline time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	until := deadline.Add(deadlineGrace)
	for _, ref := range refs {
		if _, ok := f.held[ref]; ok {
			f.held[ref] = until
			if until.Before(f.earliest) {
				f.earliest = until
			}
		}
	}
}
