package state

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// A commit that fails in Pebble's write-ahead log (the write or the fsync of
// the log file: EIO, ENOSPC, EROFS) is not something Pebble can go on from:
// the batch is already applied to the memtable and visible to readers, the
// log writer keeps the error for good, a later commit that writes a record
// after the writer took the error panics inside Pebble's commit pipeline
// with the pipeline's mutex held, and a commit whose log write or memtable
// step fails (a new log file that cannot be created) makes Pebble call
// Logger.Fatalf ("fatal commit error") on the committing goroutine.
//
// So Weir commits in two steps (Store.commit): under prepareMu, a failure
// check and DB.ApplyNoSyncWait (log write, memtable, publish: one commit at
// a time, as Pebble's pipeline writes the log anyway); then, outside it,
// Batch.SyncWait (concurrent commits still share an fsync). walGuardFS
// records a failed write or sync of a log file before Pebble sees it, and
// Pebble's writer only takes the error inside a log write — under
// prepareMu, after the record — so no commit reaches a writer that failed.
// The Fatalf of a failed log write or memtable step panics with a
// *fatalError, which apply recovers: Pebble holds none of its locks then
// (the pipeline mutex is released; the failed batch stays in its pending
// queue, which would hold back later commits, but none comes: the store is
// failed). The error comes back wrapped in ErrFailed, and every later
// Update returns it before reaching Pebble, while reads go on. Reopening
// the store (restarting the process) is the way back: Pebble replays the
// log from the disk, which holds every commit that was reported durable.
//
// What a failure leaves, and what it cannot undo, is described in
// docs/RELIABILITY.md ("The state store's faults").

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct {
	msg string
	// cause is the first error among Fatalf's arguments, if any, so that
	// callers can test the failure with errors.Is (syscall.ENOSPC, ...).
	cause error
}

func newFatalError(msg string, args []any) *fatalError {
	f := &fatalError{msg: msg}
	for _, arg := range args {
		if err, ok := arg.(error); ok {
			f.cause = err
			break
		}
	}
	return f
}

func (f *fatalError) Error() string {
	if strings.HasPrefix(f.msg, "pebble") {
		return f.msg
	}
	return "pebble: " + f.msg
}
func (f *fatalError) Unwrap() error { return f.cause }

// Err returns nil while the store works, and the ErrFailed error that
// stopped its writes once a commit failed. Health checks report it.
func (s *Store) Err() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the store's failure unless one is recorded already,
// and returns the recorded one.
func (s *Store) fail(err error) error {
	failed := fmt.Errorf("%w: %w", ErrFailed, err)
	if s.failure.CompareAndSwap(nil, &failed) {
		s.logger.Error("state store failed: it takes no more writes until the process restarts", "err", err)
	}
	return s.Err()
}

// commit commits batch with the store's write options and, unless NoSync,
// waits until it is synced. A failed store refuses at once; a commit that
// fails fails the store.
//
// The batch is written to the log and applied under prepareMu, one commit
// at a time (Pebble's commit pipeline writes the log one batch at a time
// too); the wait for the sync is outside it, so concurrent commits still
// share an fsync. The failure check and the log write under one mutex are
// what keeps a commit from reaching a log writer that failed: the only
// path by which Pebble's writer learns of a failed write or sync (and
// would make the next log write panic) runs inside a log write, so under
// prepareMu, and walGuardFS records the failure before Pebble sees it.
func (s *Store) commit(batch *pebble.Batch) error {
	s.prepareMu.Lock()
	if err := s.Err(); err != nil {
		s.prepareMu.Unlock()
		return err
	}
	err := s.apply(batch)
	s.prepareMu.Unlock()
	if err == nil && s.writeOpts.Sync {
		err = batch.SyncWait()
	}
	if err != nil {
		return s.fail(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// apply writes batch to the log and the memtable without waiting for the
// sync, turning the fatal-commit panic of pebbleLogger.Fatalf into an
// error. Any other panic goes on.
func (s *Store) apply(batch *pebble.Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fatal, ok := r.(*fatalError)
			if !ok {
				panic(r)
			}
			err = fatal
		}
	}()
	if !s.writeOpts.Sync {
		return batch.Commit(s.writeOpts)
	}
	return s.db.ApplyNoSyncWait(batch, s.writeOpts)
}
