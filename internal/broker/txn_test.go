package broker

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/record"
)

// txnBatch is a transactional batch of one record.
func txnBatch(t *testing.T, producerID int64, epoch int16, seq int32, value string) []byte {
	t.Helper()
	return producerBatch(t, producerID, epoch, seq, true, value)
}

// producerBatch is a batch of a producer's, one record per value.
func producerBatch(t *testing.T, producerID int64, epoch int16, seq int32, transactional bool, values ...string) []byte {
	t.Helper()
	opts := record.DefaultBatchOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = producerID, epoch, seq, transactional
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Offset: int64(i), Value: []byte(v)}
	}
	b, err := record.AppendBatch(nil, opts, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// controlBatches returns the control records (type: 0 abort, 1 commit)
// of a partition, in order.
func controlBatches(t *testing.T, b *Broker, stream string, partition int32) []byte {
	t.Helper()
	read, err := b.ReadBatches(stream, partition, 0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []byte
	for p := 0; p < len(read.Data); {
		h, err := record.ParseHeader(read.Data[p:])
		if err != nil {
			t.Fatal(err)
		}
		if h.IsControl() {
			recs, err := record.DecodeRecords(read.Data[p:p+h.Size()], nil)
			if err != nil || len(recs) != 1 || len(recs[0].Key) != 4 {
				t.Fatalf("control batch: %v %+v", err, recs)
			}
			kinds = append(kinds, recs[0].Key[3])
		}
		p += h.Size()
	}
	return kinds
}

// TestTxnCoordinator drives the broker's transactions directly: state
// checks, the last stable offset, the aborted list of read-committed
// reads, staged offsets applied on commit only, and a transaction
// prepared to commit before a crash completed by the next Open.
func TestTxnCoordinator(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 1})

	if _, _, err := b.InitTransactional(ctx, "t", 0, -1, -1); !errors.Is(err, ErrInvalidTxnTimeout) {
		t.Errorf("zero timeout: %v", err)
	}
	pid, epoch, err := b.InitTransactional(ctx, "t", time.Minute, -1, -1)
	if err != nil || epoch != 0 {
		t.Fatalf("init: %d %d %v", pid, epoch, err)
	}
	// Not in a transaction: the batch is refused.
	if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, pid, epoch, 0, "x")); !errors.Is(err, ErrInvalidTxnState) {
		t.Errorf("transactional batch outside a transaction: %v", err)
	}
	if err := b.EndTxn("t", pid, epoch, true); !errors.Is(err, ErrInvalidTxnState) {
		t.Errorf("commit without a transaction: %v", err)
	}
	// An aborted transaction.
	if errs, err := b.AddTxnPartitions("t", pid, epoch, []PartitionRef{{Stream: "s"}, {Stream: "nope"}}); err != nil || !errors.Is(errs[0], ErrOperationNotAttempted) || !errors.Is(errs[1], ErrStreamNotFound) {
		t.Errorf("add with an unknown topic: %v %v", errs, err)
	}
	if _, err := b.AddTxnPartitions("t", pid, epoch, []PartitionRef{{Stream: "s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, pid, epoch, 0, "aborted")); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "s", Record{Value: []byte("plain")})
	if lso, _ := b.LastStableOffset("s", 0); lso != 0 {
		t.Errorf("last stable offset with an open transaction at 0: %d", lso)
	}
	if read, _ := b.ReadCommitted("s", 0, 0, 1<<20, nil); len(read.Data) != 0 || read.LastStable != 0 || read.HighWater != 2 {
		t.Errorf("read committed with the transaction open: %d bytes, LSO %d, HW %d", len(read.Data), read.LastStable, read.HighWater)
	}
	if err := b.EndTxn("t", pid, epoch+1, false); !errors.Is(err, ErrProducerFenced) {
		t.Errorf("abort with a future epoch: %v", err)
	}
	if err := b.EndTxn("t", pid, epoch, false); err != nil {
		t.Fatal(err)
	}
	if err := b.EndTxn("t", pid, epoch, false); err != nil {
		t.Errorf("abort retried: %v", err)
	}
	read, err := b.ReadCommitted("s", 0, 0, 1<<20, nil)
	if err != nil || read.LastStable != 3 || len(read.Aborted) != 1 || read.Aborted[0] != (AbortedTxn{ProducerID: pid, First: 0}) {
		t.Fatalf("read committed after the abort: %v LSO %d aborted %+v", err, read.LastStable, read.Aborted)
	}
	// Into a buffer that holds bytes already: they stay, the batches follow.
	after, err := b.ReadCommitted("s", 0, 0, 1<<20, []byte("prefix"))
	if err != nil || string(after.Data[:6]) != "prefix" || !bytes.Equal(after.Data[6:], read.Data) || !slices.Equal(after.Aborted, read.Aborted) {
		t.Fatalf("read committed after a prefix: %v, %d bytes (%d without), aborted %+v", err, len(after.Data), len(read.Data), after.Aborted)
	}

	// A committed transaction with staged offsets.
	if err := b.AddTxnGroup("t", pid, epoch, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddTxnPartitions("t", pid, epoch, []PartitionRef{{Stream: "s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, pid, epoch, 1, "committed")); err != nil {
		t.Fatal(err)
	}
	if errs, err := b.TxnCommitOffsets("t", pid, epoch, "g", "", "", -1, []OffsetCommit{{Stream: "s", Offset: 2}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if _, _, found, _ := b.CommittedOffset("g", "s", 0); found {
		t.Errorf("a staged offset is visible before the commit")
	}
	if err := b.EndTxn("t", pid, epoch, true); err != nil {
		t.Fatal(err)
	}
	if off, _, found, _ := b.CommittedOffset("g", "s", 0); !found || off != 2 {
		t.Errorf("committed offset after the commit: %d %v", off, found)
	}

	// A third transaction, prepared to commit when the node stops: the
	// next Open finishes it.
	if _, err := b.AddTxnPartitions("t", pid, epoch, []PartitionRef{{Stream: "s"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, pid, epoch, 2, "prepared")); err != nil {
		t.Fatal(err)
	}
	te := b.txns.ids["t"]
	te.mu.Lock()
	te.meta.Status = txnPrepareCommit
	if err := b.txns.persist(te, nil); err != nil {
		t.Fatal(err)
	}
	te.mu.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	waitUntil(t, func() bool {
		lso, _ := b.LastStableOffset("s", 0)
		return lso == mustEndOffset(t, b, "s")
	})
	if kinds := controlBatches(t, b, "s", 0); string(kinds) != "\x00\x01\x01" {
		t.Errorf("markers %v, want abort, commit, commit", kinds)
	}
	// Native readers read uncommitted: every transactional record, aborted
	// or not, and no control record (docs/PROTOCOLS.md, Transactions).
	res, err := b.Fetch(ctx, "s", 0, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, r := range res.Records {
		values = append(values, string(r.Value))
	}
	if strings.Join(values, ",") != "aborted,plain,committed,prepared" || res.NextOffset != mustEndOffset(t, b, "s") {
		t.Errorf("native fetch: %q, next %d", values, res.NextOffset)
	}
	// The aborted transaction is still reported after the restart.
	if read, _ := b.ReadCommitted("s", 0, 0, 1<<20, nil); len(read.Aborted) != 1 {
		t.Errorf("aborted list after a restart: %+v", read.Aborted)
	}
	// The producer goes on at its epoch; a new instance fences it.
	if _, err := b.AddTxnPartitions("t", pid, epoch, []PartitionRef{{Stream: "s"}}); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	_, epoch2, err := b.InitTransactional(ctx, "t", time.Minute, -1, -1)
	if err != nil || epoch2 != epoch+1 {
		t.Fatalf("new instance: %d %v", epoch2, err)
	}
	if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, pid, epoch, 3, "zombie")); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Errorf("the fenced instance's batch: %v", err)
	}
	if kinds := controlBatches(t, b, "s", 0); string(kinds) != "\x00\x01\x01\x00" {
		t.Errorf("markers %v: the new instance aborts the open transaction", kinds)
	}
}

func mustEndOffset(t *testing.T, b *Broker, stream string) int64 {
	info, err := b.DescribeStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	return info.Partitions[0].EndOffset
}

// TestTxnConcurrentAborts: transactions of several ids aborting on one
// partition at once all end up in its aborted list, in memory and after a
// restart.
func TestTxnConcurrentAborts(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 1})
	const n = 8
	type producer struct {
		id    int64
		epoch int16
	}
	ps := make([]producer, n)
	for i := range n {
		name := "t" + string(rune('a'+i))
		id, epoch, err := b.InitTransactional(ctx, name, time.Minute, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = producer{id, epoch}
		if _, err := b.AddTxnPartitions(name, id, epoch, []PartitionRef{{Stream: "s"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AppendBatches(ctx, "s", 0, txnBatch(t, id, epoch, 0, name)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- b.EndTxn("t"+string(rune('a'+i)), ps[i].id, ps[i].epoch, false) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if read, _ := b.ReadCommitted("s", 0, 0, 1<<20, nil); len(read.Aborted) != n {
		t.Errorf("%d aborted transactions listed, want %d", len(read.Aborted), n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	if read, _ := b.ReadCommitted("s", 0, 0, 1<<20, nil); len(read.Aborted) != n {
		t.Errorf("after a restart: %d aborted transactions listed, want %d", len(read.Aborted), n)
	}
}
