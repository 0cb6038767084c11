package state

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Tx collects the writes of one Update. Its methods may only be called from
// the function passed to Update, on that function's goroutine. Reads made
// during the transaction (the Store getters) do not see its own writes.
type Tx struct {
	store *Store
	batch *pebble.Batch
	// exclusive records that the transaction holds store.commitMu
	// exclusively (taken by DeleteStreamOffsets).
	exclusive bool
	done      bool
	// rangeDels counts the range deletions the transaction wrote.
	rangeDels int64
}

// Update runs fn and atomically commits everything it wrote. If fn returns an
// error, nothing is written and Update returns that error unchanged. Unless
// the store was opened with NoSync, the writes are synced to stable storage
// before Update returns. Concurrent Updates are group-committed.
//
// fn must not call Update, and should be short: see the package
// documentation on DeleteStreamOffsets.
func (s *Store) Update(fn func(tx *Tx) error) error {
	if err := s.life.enter(); err != nil {
		return err
	}
	defer s.life.leave()

	tx := &Tx{store: s, batch: s.db.NewBatch()}
	defer tx.finish()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.batch.Empty() {
		return nil
	}
	if !tx.exclusive {
		s.commitMu.RLock()
		defer s.commitMu.RUnlock()
	}
	if err := s.commit(tx.batch); err != nil {
		return err
	}
	s.rangeDels.Add(tx.rangeDels)
	s.unflushedRangeDels.Add(tx.rangeDels)
	return nil
}

// maxUnflushedRangeDels is how many range deletions a read lets gather in
// the memtable before it asks for a flush.
const maxUnflushedRangeDels = 256

// beforeRead is called before each new iterator or Get. Pebble fragments
// every range deletion of the memtable again for the first read after one
// was added, so a read costs time in proportion to the deletions since the
// last flush: deleting 4,000 queues one after another (two range deletions
// and a read each) spent three quarters of its CPU fragmenting. Past
// maxUnflushedRangeDels the memtable is flushed in the background (a
// flushed table's deletions are fragmented once, when it is written).
// Writers that never read, such as a busy queue raising its floors, cause
// no flushes.
func (s *Store) beforeRead() {
	n := s.unflushedRangeDels.Load()
	if n < maxUnflushedRangeDels || !s.unflushedRangeDels.CompareAndSwap(n, 0) {
		return // few, or another read asks for this flush
	}
	if _, err := s.db.AsyncFlush(); err != nil {
		s.logger.Warn("state: flushing the memtable's range deletions", "err", err)
	}
}

// finish releases the batch and the exclusive commit lock, if held.
func (tx *Tx) finish() {
	tx.done = true
	_ = tx.batch.Close()
	if tx.exclusive {
		tx.exclusive = false
		tx.store.commitMu.Unlock()
	}
}

// check fails if the transaction is over.
func (tx *Tx) check() error {
	if tx.done {
		return ErrTxDone
	}
	return nil
}

// lockExclusive takes the commit lock exclusively until the transaction ends,
// so that what it reads stays current until it commits.
func (tx *Tx) lockExclusive() {
	if !tx.exclusive {
		tx.store.commitMu.Lock()
		tx.exclusive = true
	}
}

func (tx *Tx) set(key, value []byte) error {
	if err := tx.batch.Set(key, value, nil); err != nil {
		return fmt.Errorf("state: write: %w", err)
	}
	return nil
}

func (tx *Tx) delete(key []byte) error {
	if err := tx.batch.Delete(key, nil); err != nil {
		return fmt.Errorf("state: write: %w", err)
	}
	return nil
}

// deletePrefix deletes every key that starts with prefix, with one range
// tombstone.
func (tx *Tx) deletePrefix(prefix []byte) error {
	return tx.deleteRange(prefix, prefixEnd(prefix))
}

// deleteRange deletes the keys in [from, to) with one range tombstone.
func (tx *Tx) deleteRange(from, to []byte) error {
	if err := tx.batch.DeleteRange(from, to, nil); err != nil {
		return fmt.Errorf("state: write: %w", err)
	}
	tx.rangeDels++
	return nil
}
