package broker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
)

// eventStore is the event log and its index. The log is the truth: an
// append is done once its batch is durable in the log. The index (the
// state store's events table) is written after, by one committer goroutine
// that group-commits what appends queued; until an entry is committed it is
// in the overlay (pendingVersion, pendingIDs), which lookups consult first,
// so an aggregate's version and an event id are known from the moment the
// log holds them. The stored checkpoint says below which position every
// event is indexed; Open indexes the log from there to its end, which is
// what a crash between a log append and its index commit leaves.
type eventStore struct {
	b   *Broker
	log *storage.Log

	mu sync.Mutex // a leaf: nothing is called while it is held
	// locks serializes the appends of one aggregate.
	locks map[string]*aggregateLock
	// claimed holds the ids of appends under way.
	claimed map[string]bool
	// The overlay: what is in the log but not yet in the index.
	pendingVersion map[string]int64
	pendingIDs     map[string]state.EventRef
	queue          []indexItem
	queued         int // events in queue
	// checkpoint: every position below is indexed (committed); done holds
	// the committed ranges above it (start -> end, exclusive).
	checkpoint int64
	done       map[int64]int64
	indexed    chan struct{} // closed when checkpoint advances
	room       chan struct{} // closed when the queue shrinks

	// holdIndex, set by tests, fails every index write: what a crash
	// between the log append and the index commit leaves.
	holdIndex atomic.Bool
	// filterCategories, set by benchmarks, reads categories by filtering
	// the whole log as before the category index, for a comparison.
	filterCategories atomic.Bool

	wake     chan struct{}
	quit     chan struct{}
	stopped  chan struct{}
	closeErr error
}

type aggregateLock struct {
	ch   chan struct{}
	refs int
}

// indexItem is one append's index entries, in version order.
type indexItem struct {
	ids  []string
	refs []state.EventRef
}

// maxQueuedIndex bounds the events waiting for the index; appends wait for
// room beyond it (the overlay is memory).
const maxQueuedIndex = 1 << 16

var errIndexHeld = errors.New("broker: event index writes are held (test)")

// recoveryBatch is how many events one recovery transaction indexes.
const recoveryBatch = 4096

// eventsDir is the event log's directory (beside streams/, so that stream
// cleanup never sees it).
func (b *Broker) eventsDir() string { return filepath.Join(b.cfg.DataDir, "events") }

// openEventStore opens the event log and brings the index up to its end.
// The log is always fsynced, whatever the broker's policy: a version or
// position handed out must never be handed out again after a crash.
func openEventStore(b *Broker) (*eventStore, error) {
	opts := b.logOptions(&streamMeta{})
	opts.FSync = storage.FSyncAlways
	l, err := storage.Open(b.eventsDir(), opts)
	if err != nil {
		return nil, fmt.Errorf("broker: open the event log: %w", err)
	}
	es := &eventStore{
		b: b, log: l,
		locks: make(map[string]*aggregateLock), claimed: make(map[string]bool),
		pendingVersion: make(map[string]int64), pendingIDs: make(map[string]state.EventRef),
		done: make(map[int64]int64), indexed: make(chan struct{}), room: make(chan struct{}),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{}),
	}
	if err := es.recover(); err != nil {
		l.Close()
		return nil, err
	}
	go es.commitLoop()
	return es, nil
}

// recover indexes the events of the log from the stored checkpoint to the
// end. Putting an entry again is harmless, so a crash during recovery only
// repeats some of it.
func (es *eventStore) recover() error {
	st := es.b.state
	checkpoint, err := st.EventCheckpoint()
	if err != nil {
		return err
	}
	// The category index has its own checkpoint: a store written before it
	// existed has it at 0, and is indexed by category from the start.
	categories, err := st.CategoryCheckpoint()
	if err != nil {
		return err
	}
	end := es.log.EndOffset()
	if checkpoint > end || categories > end {
		return fmt.Errorf("broker: the event index covers positions up to %d (categories %d) but the event log ends at %d: events were lost from the log", checkpoint, categories, end)
	}
	from := min(checkpoint, categories)
	if from < end {
		es.b.cfg.Logger.Info("indexing the event log's tail", "from", checkpoint, "categories_from", categories, "to", end)
	}
	for pos := from; pos < end; {
		data, err := es.log.Read(nil, pos, readChunk)
		if err != nil {
			return fmt.Errorf("broker: read the event log at %d: %w", pos, err)
		}
		recs, next, err := decodeRecords(nil, data, 0, pos)
		if err != nil {
			return fmt.Errorf("broker: read the event log at %d: %w", pos, err)
		}
		if next <= pos {
			return fmt.Errorf("broker: the event log does not advance at position %d", pos)
		}
		for first := true; first || len(recs) > 0; first = false {
			n := min(len(recs), recoveryBatch)
			chunk := recs[:n]
			recs = recs[n:]
			upTo := next
			if len(recs) > 0 {
				upTo = recs[0].Offset
			}
			err := st.Update(func(tx *state.Tx) error {
				for i := range chunk {
					ev, err := eventOf(&chunk[i])
					if err != nil {
						return err
					}
					ref := state.EventRef{Aggregate: ev.Aggregate, Version: ev.Version, Position: ev.Position}
					if err := putEventIndex(tx, ev.ID, ref, ev.Position >= checkpoint, ev.Position >= categories); err != nil {
						return err
					}
				}
				if err := tx.SetEventCheckpoint(max(checkpoint, upTo)); err != nil {
					return err
				}
				return tx.SetCategoryCheckpoint(upTo)
			})
			if err != nil {
				return fmt.Errorf("broker: index the event log: %w", err)
			}
		}
		pos = next
	}
	es.checkpoint = end
	return nil
}

// putEventIndex writes one event's entries: those of the version index
// (aggregate version, position, id) when versions is set, its category's
// when categories is set. An aggregate id starting with '-' has an empty
// category, which no category read names: it is not in the category index.
func putEventIndex(tx *state.Tx, id string, ref state.EventRef, versions, categories bool) error {
	if versions {
		if err := tx.PutEvent(id, ref); err != nil {
			return err
		}
	}
	if category := Category(ref.Aggregate); categories && category != "" {
		return tx.PutCategoryEvent(category, ref.Position, ref.Version)
	}
	return nil
}

// eventStore returns the open event store.
func (b *Broker) eventStore() (*eventStore, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed || b.events == nil {
		return nil, ErrClosed
	}
	return b.events, nil
}

// lockAggregate waits for the aggregate's lock (or ctx) and returns its
// release.
func (es *eventStore) lockAggregate(ctx context.Context, aggregate string) (func(), error) {
	es.mu.Lock()
	l := es.locks[aggregate]
	if l == nil {
		l = &aggregateLock{ch: make(chan struct{}, 1)}
		es.locks[aggregate] = l
	}
	l.refs++
	es.mu.Unlock()
	release := func() {
		es.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(es.locks, aggregate)
		}
		es.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	return func() {
		<-l.ch
		release()
	}, nil
}

// claimIDs marks ids as being appended; an id already claimed belongs to a
// concurrent append to another aggregate (the same aggregate's wait for its
// lock).
func (es *eventStore) claimIDs(ids []string) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, id := range ids {
		if es.claimed[id] {
			return fmt.Errorf("%w: event id %q is being appended to another aggregate by a concurrent call", ErrEventIDExists, id)
		}
	}
	for _, id := range ids {
		es.claimed[id] = true
	}
	return nil
}

func (es *eventStore) releaseIDs(ids []string) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, id := range ids {
		delete(es.claimed, id)
	}
}

// lookupID finds a stored event by id: in the overlay, then the index (an
// entry leaves the overlay only after the index holds it).
func (es *eventStore) lookupID(id string) (state.EventRef, bool, error) {
	es.mu.Lock()
	ref, ok := es.pendingIDs[id]
	es.mu.Unlock()
	if ok {
		return ref, true, nil
	}
	return es.b.state.EventByID(id)
}

// version is an aggregate's current version (its lock is held).
func (es *eventStore) version(aggregate string) (int64, error) {
	es.mu.Lock()
	v, ok := es.pendingVersion[aggregate]
	es.mu.Unlock()
	if ok {
		return v, nil
	}
	return es.b.state.AggregateVersion(aggregate)
}

// retried reports whether ids are a stored append's (then with its result),
// and fails if some of them are stored otherwise.
func (es *eventStore) retried(aggregate string, ids []string) (EventsAppended, bool, error) {
	refs := make([]state.EventRef, len(ids))
	found := 0
	first := -1
	for i, id := range ids {
		ref, ok, err := es.lookupID(id)
		if err != nil {
			return EventsAppended{}, false, err
		}
		if ok {
			refs[i] = ref
			found++
			if first < 0 {
				first = i
			}
		}
	}
	if found == 0 {
		return EventsAppended{}, false, nil
	}
	same := found == len(ids)
	for i := 0; same && i < len(refs); i++ {
		same = refs[i].Aggregate == aggregate && refs[i].Version == refs[0].Version+int64(i) && refs[i].Position == refs[0].Position+int64(i)
	}
	if !same {
		r := refs[first]
		return EventsAppended{}, false, fmt.Errorf("%w: event %d's id %q is version %d of aggregate %q (a retry repeats the whole append: the same ids, in the same order, to the same aggregate)", ErrEventIDExists, first, ids[first], r.Version, r.Aggregate)
	}
	last := refs[len(refs)-1]
	return EventsAppended{
		FirstVersion: refs[0].Version, LastVersion: last.Version,
		FirstPosition: refs[0].Position, LastPosition: last.Position,
		Duplicate: true,
	}, true, nil
}

// waitRoom waits while the index lags by more than maxQueuedIndex events.
func (es *eventStore) waitRoom(ctx context.Context) error {
	for {
		es.mu.Lock()
		queued, room := es.queued, es.room
		es.mu.Unlock()
		if queued < maxQueuedIndex {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-es.quit:
			return ErrClosed
		}
	}
}

// indexLater puts an append's entries in the overlay and queues them for
// the committer.
func (es *eventStore) indexLater(ids []string, refs []state.EventRef) {
	es.mu.Lock()
	for i, id := range ids {
		es.pendingIDs[id] = refs[i]
	}
	es.pendingVersion[refs[0].Aggregate] = refs[len(refs)-1].Version
	es.queue = append(es.queue, indexItem{ids: ids, refs: refs})
	es.queued += len(ids)
	es.mu.Unlock()
	select {
	case es.wake <- struct{}{}:
	default:
	}
}

// commitLoop writes queued entries to the index, as many per transaction
// as are queued, until the store closes (then it writes what is left once).
// A failed transaction is retried (the entries stay in the overlay, so
// appends and reads stay right meanwhile; a crash leaves them to Open).
func (es *eventStore) commitLoop() {
	defer close(es.stopped)
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-es.wake:
		case <-es.quit:
			es.closeErr = es.commitQueued()
			return
		}
		for {
			err := es.commitQueued()
			if err == nil {
				backoff = 10 * time.Millisecond
				break
			}
			es.b.cfg.Logger.Error("event index write failed; retrying (the events are stored in the log)", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-es.quit:
				es.closeErr = es.commitQueued()
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// commitQueued commits the queue as it is now, in one transaction.
func (es *eventStore) commitQueued() error {
	es.mu.Lock()
	items := es.queue[:len(es.queue):len(es.queue)]
	checkpoint := es.checkpoint
	ranges := make(map[int64]int64, len(es.done)+len(items))
	for s, e := range es.done {
		ranges[s] = e
	}
	es.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	if es.holdIndex.Load() {
		return errIndexHeld
	}
	for _, it := range items {
		ranges[it.refs[0].Position] = it.refs[len(it.refs)-1].Position + 1
	}
	for {
		e, ok := ranges[checkpoint]
		if !ok {
			break
		}
		delete(ranges, checkpoint)
		checkpoint = e
	}
	err := es.b.state.Update(func(tx *state.Tx) error {
		for _, it := range items {
			for i, id := range it.ids {
				if err := putEventIndex(tx, id, it.refs[i], true, true); err != nil {
					return err
				}
			}
		}
		if err := tx.SetEventCheckpoint(checkpoint); err != nil {
			return err
		}
		return tx.SetCategoryCheckpoint(checkpoint)
	})
	if err != nil {
		return err
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	es.queue = es.queue[len(items):]
	for _, it := range items {
		es.queued -= len(it.ids)
		for _, id := range it.ids {
			delete(es.pendingIDs, id)
		}
		last := it.refs[len(it.refs)-1]
		if es.pendingVersion[last.Aggregate] == last.Version {
			delete(es.pendingVersion, last.Aggregate)
		}
	}
	es.done = ranges
	if checkpoint != es.checkpoint {
		es.checkpoint = checkpoint
		close(es.indexed)
		es.indexed = make(chan struct{})
	}
	close(es.room)
	es.room = make(chan struct{})
	return nil
}

// waitIndexed waits until every event below position is indexed.
func (es *eventStore) waitIndexed(ctx context.Context, position int64) error {
	for {
		es.mu.Lock()
		checkpoint, ch := es.checkpoint, es.indexed
		es.mu.Unlock()
		if checkpoint >= position {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-es.stopped:
			return ErrClosed
		}
	}
}

// close stops the committer (which writes what is queued) and closes the
// log. Appends still under way fail, or leave their entries to Open.
func (es *eventStore) close() error {
	close(es.quit)
	<-es.stopped
	err := es.log.Close()
	if errors.Is(err, storage.ErrClosed) {
		err = nil
	}
	return errors.Join(es.closeErr, err)
}

// closeEvents closes the event store, if it was opened.
func (b *Broker) closeEvents() error {
	if b.events == nil {
		return nil
	}
	return b.events.close()
}
