package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/state"
)

// Transactions (Kafka's transactional producers). A transactional id names
// a producer across its restarts: InitTransactional gives it a producer id
// and a new epoch, fencing older instances. A transaction adds partitions
// (AddTxnPartitions) and groups (AddTxnGroup), writes transactional
// batches (AppendBatches checks them here), stages group offsets
// (TxnCommitOffsets), and ends with EndTxn: a control batch with a COMMIT
// or ABORT marker is written into each of its partitions, and on commit the
// staged offsets become the groups' committed offsets. A transaction open
// longer than its timeout is aborted, and its producer's epoch bumped.
//
// Durable state: each transactional id's entry (kind transaction, name
// "txn/<id>": producer id, epoch, timeout, state, partitions with the
// offset each was at when added, staged offsets), and, per partition, the
// aborted transactions ("aborted/<stream id>/<partition>": producer id,
// first offset, marker offset) that read-committed fetches report. An
// entry is written before anything it describes happens: a transaction is
// Ongoing before its partitions take batches, and PrepareCommit or
// PrepareAbort before the first marker; a restart finishes a prepared
// transaction (markers written twice are harmless: the second closes
// nothing) and keeps an ongoing one open until its timeout.

// Errors of transactions.
var (
	ErrProducerFenced           = errors.New("producer fenced: a newer instance has the transactional id")
	ErrInvalidTxnState          = errors.New("invalid transaction state")
	ErrConcurrentTransactions   = errors.New("the transaction is completing")
	ErrInvalidProducerIDMapping = errors.New("producer id does not match the transactional id")
	ErrInvalidTxnTimeout        = errors.New("invalid transaction timeout")
	ErrOperationNotAttempted    = errors.New("not attempted: another part of the request failed")
)

// MaxTxnTimeout bounds a transaction's timeout (Kafka's
// transaction.max.timeout.ms default).
const MaxTxnTimeout = 15 * time.Minute

type txnStatus string

const (
	txnEmpty          txnStatus = "empty"
	txnOngoing        txnStatus = "ongoing"
	txnPrepareCommit  txnStatus = "prepare-commit"
	txnPrepareAbort   txnStatus = "prepare-abort"
	txnCompleteCommit txnStatus = "complete-commit"
	txnCompleteAbort  txnStatus = "complete-abort"
)

// txnPartition is a partition in a transaction and the partition's end
// offset when it was added: a lower bound of the transaction's first
// offset there.
type txnPartition struct {
	Stream    string `json:"stream"`
	StreamID  string `json:"stream_id"`
	Partition int32  `json:"partition"`
	First     int64  `json:"first"`
}

type txnOffset struct {
	Stream    string `json:"stream"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
}

// txnMeta is a transactional id's durable entry (JSON: the field names are
// part of the on-disk format).
type txnMeta struct {
	Version    int                    `json:"v"`
	ID         string                 `json:"id"`
	ProducerID int64                  `json:"producer_id"`
	Epoch      int16                  `json:"epoch"`
	TimeoutMs  int64                  `json:"timeout_ms"`
	Status     txnStatus              `json:"status"`
	Partitions []txnPartition         `json:"partitions,omitempty"`
	Groups     []string               `json:"groups,omitempty"`
	Offsets    map[string][]txnOffset `json:"offsets,omitempty"` // staged, by group
}

// txnEntry is one transactional id. mu is held shared by a transactional
// append (so no marker is written while a batch of the transaction is
// being stored) and exclusively by every change of the entry.
type txnEntry struct {
	mu      sync.RWMutex
	meta    txnMeta
	started time.Time // when the open transaction began (this run)
}

type txnCoordinator struct {
	b     *Broker
	mu    sync.Mutex // guards ids and byPID; a leaf
	ids   map[string]*txnEntry
	byPID map[int64]*txnEntry
	index txnIndex
	// abortMu serializes the read-modify-write of partitions' aborted
	// lists (from reading the list to storing and setting it), which
	// transactions of different ids may do on one partition at once.
	abortMu sync.Mutex
}

func txnCatalogName(id string) string { return "txn/" + id }

// load reads the transactional ids and aborted transactions at Open.
func (tc *txnCoordinator) load(b *Broker) error {
	tc.b = b
	tc.ids = make(map[string]*txnEntry)
	tc.byPID = make(map[int64]*txnEntry)
	entries, err := b.state.ListCatalog(state.KindTransaction)
	if err != nil {
		return err
	}
	now := b.now()
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name, "txn/"):
			var m txnMeta
			if err := json.Unmarshal(e.Value, &m); err != nil || m.Version != 1 {
				return fmt.Errorf("broker: transaction entry %q is malformed", e.Name)
			}
			te := &txnEntry{meta: m, started: now}
			tc.ids[m.ID] = te
			tc.byPID[m.ProducerID] = te
			if m.Status == txnOngoing || m.Status == txnPrepareCommit || m.Status == txnPrepareAbort {
				for _, p := range m.Partitions {
					tc.index.open(partitionKey{p.StreamID, p.Partition}, m.ProducerID, p.First)
				}
			}
			// Producer ids handed out before the restart stay taken.
			b.producers.reserve(m.ProducerID, now)
		case strings.HasPrefix(e.Name, "aborted/"):
			if err := tc.index.loadAborted(e.Name, e.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// loop aborts transactions past their timeout and finishes prepared ones.
func (tc *txnCoordinator) loop() {
	defer tc.b.bg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-tc.b.ctx.Done():
			return
		case <-t.C:
		}
		tc.tick()
	}
}

func (tc *txnCoordinator) tick() {
	tc.mu.Lock()
	if len(tc.ids) == 0 {
		tc.mu.Unlock()
		return
	}
	var due []*txnEntry
	now := tc.b.now()
	for _, te := range tc.ids {
		due = append(due, te)
	}
	tc.mu.Unlock()
	for _, te := range due {
		if !te.mu.TryLock() {
			continue // busy: looked at next time
		}
		m := &te.meta
		var err error
		switch {
		case m.Status == txnPrepareCommit:
			err = tc.complete(te, true)
		case m.Status == txnPrepareAbort:
			err = tc.complete(te, false)
		case m.Status == txnOngoing && now.Sub(te.started) > time.Duration(m.TimeoutMs)*time.Millisecond:
			tc.b.cfg.Logger.Info("kafka transaction timed out: aborting", "transactional_id", m.ID, "producer_id", m.ProducerID, "epoch", m.Epoch)
			// The producer's epoch moves on, fencing the instance that
			// let it time out.
			err = tc.abortAndBump(te)
		}
		if err != nil && tc.b.ctx.Err() == nil {
			tc.b.cfg.Logger.Warn("kafka transaction: could not complete", "transactional_id", m.ID, "err", err)
		}
		te.mu.Unlock()
	}
}

// persist writes the entry (te.mu held).
func (tc *txnCoordinator) persist(te *txnEntry, extra func(tx *state.Tx) error) error {
	v, err := json.Marshal(te.meta)
	if err != nil {
		return err
	}
	return tc.b.state.Update(func(tx *state.Tx) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return tx.PutCatalog(state.KindTransaction, txnCatalogName(te.meta.ID), v)
	})
}

// InitTransactional gives the producer of a transactional id its producer
// id and a new epoch, fencing older instances: an open transaction of the
// id is aborted first. With currentID and currentEpoch >= 0 (KIP-360) they
// must be the id's current ones.
func (b *Broker) InitTransactional(ctx context.Context, txnID string, timeout time.Duration, currentID int64, currentEpoch int16) (int64, int16, error) {
	if txnID == "" {
		return -1, -1, fmt.Errorf("%w: empty transactional id", ErrInvalidArgument)
	}
	if timeout <= 0 || timeout > MaxTxnTimeout {
		return -1, -1, fmt.Errorf("%w: %v is outside (0, %v]", ErrInvalidTxnTimeout, timeout, MaxTxnTimeout)
	}
	tc := &b.txns
	tc.mu.Lock()
	te, ok := tc.ids[txnID]
	if !ok {
		id, _ := b.InitProducerID(-1, -1)
		te = &txnEntry{meta: txnMeta{Version: 1, ID: txnID, ProducerID: id, Epoch: -1, Status: txnEmpty}}
		tc.ids[txnID] = te
		tc.byPID[id] = te
	}
	tc.mu.Unlock()
	te.mu.Lock()
	defer te.mu.Unlock()
	m := &te.meta
	if currentID >= 0 && (currentID != m.ProducerID || currentEpoch != m.Epoch) {
		return -1, -1, fmt.Errorf("%w: producer %d epoch %d, the transactional id has producer %d epoch %d", ErrProducerFenced, currentID, currentEpoch, m.ProducerID, m.Epoch)
	}
	switch m.Status {
	case txnOngoing, txnPrepareAbort:
		if err := tc.complete(te, false); err != nil {
			return -1, -1, err
		}
	case txnPrepareCommit:
		if err := tc.complete(te, true); err != nil {
			return -1, -1, err
		}
	}
	tc.bumpEpoch(te)
	m.TimeoutMs = timeout.Milliseconds()
	m.Status = txnEmpty
	if err := tc.persist(te, nil); err != nil {
		return -1, -1, err
	}
	return m.ProducerID, m.Epoch, nil
}

// bumpEpoch moves the entry to its next epoch, or to a new producer id at
// epoch 0 once the epoch is exhausted (te.mu held).
func (tc *txnCoordinator) bumpEpoch(te *txnEntry) {
	m := &te.meta
	if m.Epoch < math.MaxInt16-1 {
		m.Epoch++
		return
	}
	id, _ := tc.b.InitProducerID(-1, -1)
	tc.mu.Lock()
	delete(tc.byPID, m.ProducerID)
	tc.byPID[id] = te
	tc.mu.Unlock()
	m.ProducerID, m.Epoch = id, 0
}

// entry returns a transactional id's entry, locked, after checking the
// producer id and epoch; the caller unlocks it.
func (tc *txnCoordinator) entry(txnID string, producerID int64, epoch int16) (*txnEntry, error) {
	tc.mu.Lock()
	te, ok := tc.ids[txnID]
	tc.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: unknown transactional id %q", ErrInvalidProducerIDMapping, txnID)
	}
	te.mu.Lock()
	m := &te.meta
	switch {
	case producerID != m.ProducerID:
		te.mu.Unlock()
		return nil, fmt.Errorf("%w: %q has producer %d, not %d", ErrInvalidProducerIDMapping, txnID, m.ProducerID, producerID)
	case epoch != m.Epoch:
		te.mu.Unlock()
		return nil, fmt.Errorf("%w: epoch %d, the current one is %d", ErrProducerFenced, epoch, m.Epoch)
	}
	return te, nil
}

// begin makes the entry's transaction ongoing if it is not (te.mu held).
func (tc *txnCoordinator) begin(te *txnEntry) error {
	switch te.meta.Status {
	case txnOngoing:
		return nil
	case txnPrepareCommit, txnPrepareAbort:
		return ErrConcurrentTransactions
	}
	te.meta.Status = txnOngoing
	te.meta.Partitions, te.meta.Groups, te.meta.Offsets = nil, nil, nil
	te.started = tc.b.now()
	return nil
}

// AddTxnPartitions adds partitions to the producer's transaction (starting
// it if needed). The result holds one error per partition; when one fails,
// the others get ErrOperationNotAttempted.
func (b *Broker) AddTxnPartitions(txnID string, producerID int64, epoch int16, parts []PartitionRef) ([]error, error) {
	tc := &b.txns
	te, err := tc.entry(txnID, producerID, epoch)
	if err != nil {
		return nil, err
	}
	defer te.mu.Unlock()
	errs := make([]error, len(parts))
	added := make([]txnPartition, len(parts))
	failed := false
	for i, p := range parts {
		s, err := b.stream(p.Stream)
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		l, err := s.partition(p.Partition)
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		s.mu.RLock()
		added[i] = txnPartition{Stream: p.Stream, StreamID: s.meta.ID, Partition: p.Partition, First: l.EndOffset()}
		s.mu.RUnlock()
	}
	if failed {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = ErrOperationNotAttempted
			}
		}
		return errs, nil
	}
	if err := tc.begin(te); err != nil {
		return nil, err
	}
	m := &te.meta
	var fresh []txnPartition
	for _, p := range added {
		known := false
		for _, q := range m.Partitions {
			known = known || q.StreamID == p.StreamID && q.Partition == p.Partition
		}
		if !known {
			fresh = append(fresh, p)
			m.Partitions = append(m.Partitions, p)
		}
	}
	if len(fresh) == 0 && len(m.Partitions) > 0 {
		return errs, nil
	}
	// Open in the index before the entry is durable: a batch can only
	// follow this call's answer.
	for _, p := range fresh {
		tc.index.open(partitionKey{p.StreamID, p.Partition}, m.ProducerID, p.First)
	}
	if err := tc.persist(te, nil); err != nil {
		m.Partitions = m.Partitions[:len(m.Partitions)-len(fresh)]
		for _, p := range fresh {
			tc.index.close(partitionKey{p.StreamID, p.Partition}, m.ProducerID)
		}
		return nil, err
	}
	return errs, nil
}

// AddTxnGroup adds a group's offsets to the producer's transaction.
func (b *Broker) AddTxnGroup(txnID string, producerID int64, epoch int16, group string) error {
	if err := ValidateGroupName(group); err != nil {
		return err
	}
	tc := &b.txns
	te, err := tc.entry(txnID, producerID, epoch)
	if err != nil {
		return err
	}
	defer te.mu.Unlock()
	if err := tc.begin(te); err != nil {
		return err
	}
	for _, g := range te.meta.Groups {
		if g == group {
			return nil
		}
	}
	te.meta.Groups = append(te.meta.Groups, group)
	return tc.persist(te, nil)
}

// TxnCommitOffsets stages a group's offsets in the producer's transaction:
// they become the group's committed offsets when it commits, and are
// dropped if it aborts. A member (memberID not "") is checked as for
// ClassicCommit. The result holds one error per offset.
func (b *Broker) TxnCommitOffsets(txnID string, producerID int64, epoch int16, group, memberID, instanceID string, generation int32, offsets []OffsetCommit) ([]error, error) {
	if err := ValidateGroupName(group); err != nil {
		return nil, err
	}
	if memberID != "" || generation >= 0 {
		if err := b.checkClassicMember(group, memberID, instanceID, generation); err != nil {
			return nil, err
		}
	}
	tc := &b.txns
	te, err := tc.entry(txnID, producerID, epoch)
	if err != nil {
		return nil, err
	}
	defer te.mu.Unlock()
	m := &te.meta
	if m.Status != txnOngoing || !containsGroup(m.Groups, group) {
		return nil, fmt.Errorf("%w: group %q was not added to the transaction", ErrInvalidTxnState, group)
	}
	errs := b.checkOffsets(offsets)
	previous := m.Offsets[group]
	staged := slices.Clone(previous)
	for i, o := range offsets {
		if errs[i] != nil {
			continue
		}
		replaced := false
		for j := range staged {
			if staged[j].Stream == o.Stream && staged[j].Partition == o.Partition {
				staged[j].Offset, staged[j].Metadata, replaced = o.Offset, o.Metadata, true
			}
		}
		if !replaced {
			staged = append(staged, txnOffset{Stream: o.Stream, Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata})
		}
	}
	if m.Offsets == nil {
		m.Offsets = make(map[string][]txnOffset)
	}
	m.Offsets[group] = staged
	if err := tc.persist(te, nil); err != nil {
		m.Offsets[group] = previous
		return nil, err
	}
	return errs, nil
}

func containsGroup(groups []string, g string) bool {
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

// EndTxn commits or aborts the producer's transaction. Ending a
// transaction that already ended the same way answers nil (a retry).
func (b *Broker) EndTxn(txnID string, producerID int64, epoch int16, commit bool) error {
	tc := &b.txns
	te, err := tc.entry(txnID, producerID, epoch)
	if err != nil {
		return err
	}
	defer te.mu.Unlock()
	switch st := te.meta.Status; {
	case st == txnOngoing:
		return tc.complete(te, commit)
	case st == txnCompleteCommit && commit, st == txnCompleteAbort && !commit:
		return nil
	case st == txnPrepareCommit && commit, st == txnPrepareAbort && !commit:
		return tc.complete(te, commit)
	case st == txnPrepareCommit, st == txnPrepareAbort:
		return ErrConcurrentTransactions
	default:
		return fmt.Errorf("%w: transaction of %q is %s, cannot %s", ErrInvalidTxnState, txnID, st, map[bool]string{true: "commit", false: "abort"}[commit])
	}
}

// abortAndBump aborts an open transaction that timed out and bumps the
// epoch (te.mu held).
func (tc *txnCoordinator) abortAndBump(te *txnEntry) error {
	if err := tc.complete(te, false); err != nil {
		return err
	}
	tc.bumpEpoch(te)
	return tc.persist(te, nil)
}

// complete ends the entry's transaction (te.mu held): prepare durably,
// write a marker into each partition, then, in one state transaction,
// apply the staged offsets (commit) or record the aborted ranges (abort)
// and mark the transaction complete.
func (tc *txnCoordinator) complete(te *txnEntry, commit bool) error {
	m := &te.meta
	b := tc.b
	prepared, done := txnPrepareAbort, txnCompleteAbort
	if commit {
		prepared, done = txnPrepareCommit, txnCompleteCommit
	}
	if m.Status != prepared {
		m.Status = prepared
		if err := tc.persist(te, nil); err != nil {
			m.Status = txnOngoing
			return err
		}
	}
	type aborted struct {
		key  partitionKey
		list []abortedTxn
	}
	// The markers are written in parallel (each waits for its partition's
	// group commit).
	offs, starts, errs := make([]int64, len(m.Partitions)), make([]int64, len(m.Partitions)), make([]error, len(m.Partitions))
	var wg sync.WaitGroup
	for i, p := range m.Partitions {
		wg.Go(func() { offs[i], starts[i], errs[i] = b.writeMarker(p, m.ProducerID, m.Epoch, commit) })
	}
	wg.Wait()
	if !commit {
		tc.abortMu.Lock()
		defer tc.abortMu.Unlock()
	}
	var abortedParts []aborted
	for i, p := range m.Partitions {
		err := errs[i]
		if errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrPartitionNotFound) {
			continue // deleted since: nothing to close
		}
		if err != nil {
			return fmt.Errorf("broker: writing the transaction marker of %s/%d: %w", p.Stream, p.Partition, err)
		}
		if !commit {
			key := partitionKey{p.StreamID, p.Partition}
			t := abortedTxn{ProducerID: m.ProducerID, First: p.First, Last: offs[i]}
			abortedParts = append(abortedParts, aborted{key: key, list: tc.index.withAborted(key, t, starts[i])})
		}
	}
	m.Status = done
	staged := m.Offsets
	parts := m.Partitions
	m.Partitions, m.Groups, m.Offsets = nil, nil, nil
	now := b.now()
	err := tc.persist(te, func(tx *state.Tx) error {
		if commit {
			for group, offsets := range staged {
				for _, o := range offsets {
					if err := tx.CommitOffset(state.OffsetKey{Group: group, Stream: o.Stream, Partition: o.Partition},
						state.CommittedOffset{Offset: o.Offset, LeaderEpoch: -1, Metadata: o.Metadata, CommitTime: now}); err != nil {
						return err
					}
				}
			}
		}
		for _, a := range abortedParts {
			v, _ := json.Marshal(a.list)
			if err := tx.PutCatalog(state.KindTransaction, abortedCatalogName(a.key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.Status, m.Partitions, m.Offsets = prepared, parts, staged
		return err
	}
	for _, a := range abortedParts {
		tc.index.setAborted(a.key, a.list)
	}
	for _, p := range parts {
		tc.index.close(partitionKey{p.StreamID, p.Partition}, m.ProducerID)
	}
	return nil
}

// Control record types (the key of a control batch's one record).
const (
	controlAbort  = 0
	controlCommit = 1
)

// writeMarker appends a control batch ending the producer's transaction on
// one partition and returns the marker's offset and the log start offset.
func (b *Broker) writeMarker(p txnPartition, producerID int64, epoch int16, commit bool) (int64, int64, error) {
	s, err := b.stream(p.Stream)
	if err != nil {
		return 0, 0, err
	}
	s.mu.RLock()
	sameStream := s.meta.ID == p.StreamID
	s.mu.RUnlock()
	if !sameStream {
		return 0, 0, fmt.Errorf("%w: %q was re-created", ErrStreamNotFound, p.Stream)
	}
	l, err := s.partition(p.Partition)
	if err != nil {
		return 0, 0, err
	}
	kind := byte(controlAbort)
	if commit {
		kind = controlCommit
	}
	opts := record.DefaultBatchOptions()
	opts.ProducerID, opts.ProducerEpoch = producerID, epoch
	opts.Transactional, opts.Control = true, true
	batch, err := record.AppendBatch(nil, opts, []record.Record{{
		Timestamp: b.now().UnixMilli(),
		Key:       []byte{0, 0, 0, kind},    // version 0, type
		Value:     []byte{0, 0, 0, 0, 0, 0}, // version 0, coordinator epoch 0
	}})
	if err != nil {
		return 0, 0, err
	}
	res, err := l.Append(b.ctx, batch)
	if err != nil {
		return 0, 0, err
	}
	return res.BaseOffset, l.StartOffset(), nil
}

// transactionalAppend checks a transactional batch against its producer's
// transaction and runs store while no marker can be written for it.
func (tc *txnCoordinator) transactionalAppend(streamID string, partition int32, producerID int64, epoch int16, store func() (AppendResult, error)) (AppendResult, error) {
	tc.mu.Lock()
	te, ok := tc.byPID[producerID]
	tc.mu.Unlock()
	if !ok {
		return AppendResult{}, fmt.Errorf("%w: producer %d has no transactional id", ErrInvalidProducerIDMapping, producerID)
	}
	te.mu.RLock()
	defer te.mu.RUnlock()
	m := &te.meta
	switch {
	case m.ProducerID != producerID:
		return AppendResult{}, fmt.Errorf("%w: producer %d has no transactional id", ErrInvalidProducerIDMapping, producerID)
	case epoch < m.Epoch:
		return AppendResult{}, fmt.Errorf("%w: producer %d sent epoch %d, the current epoch is %d", ErrInvalidProducerEpoch, producerID, epoch, m.Epoch)
	case epoch > m.Epoch || m.Status != txnOngoing:
		return AppendResult{}, fmt.Errorf("%w: producer %d epoch %d has no open transaction", ErrInvalidTxnState, producerID, epoch)
	}
	for _, p := range m.Partitions {
		if p.StreamID == streamID && p.Partition == partition {
			return store()
		}
	}
	return AppendResult{}, fmt.Errorf("%w: partition %d was not added to the transaction", ErrInvalidTxnState, partition)
}
