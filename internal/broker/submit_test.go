package broker

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// idemBatch is an idempotent producer's batch of n records from seq.
func idemBatch(t *testing.T, producerID int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprint(int(seq) + i)
	}
	return producerBatch(t, producerID, epoch, seq, false, values...)
}

// TestSubmitIdempotentPipelined submits an idempotent producer's batches
// one after another without waiting for any, as a Kafka connection's
// pipelined requests are: each is checked against the one submitted before
// it, they are stored in order, and a retry of a batch still being stored
// gets its outcome.
func TestSubmitIdempotentPipelined(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 1})
	ctx := context.Background()
	const pid, epoch = 7, 0
	var pending []PendingAppend
	for i := range 5 {
		pending = append(pending, b.SubmitBatches(ctx, "s", 0, idemBatch(t, pid, epoch, int32(3*i), 3)))
	}
	// A retry of the last one, submitted before it is known to be stored.
	retry := b.SubmitBatches(ctx, "s", 0, idemBatch(t, pid, epoch, 12, 3))
	// A gap is refused whatever is in flight.
	gap := b.SubmitBatches(ctx, "s", 0, idemBatch(t, pid, epoch, 16, 1))
	for i, p := range pending {
		res, err := p.Wait(ctx)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if res.BaseOffset != int64(3*i) || res.LastOffset != int64(3*i+2) || res.Duplicate {
			t.Fatalf("batch %d: %+v, want offsets %d..%d", i, res, 3*i, 3*i+2)
		}
	}
	res, err := retry.Wait(ctx)
	if err != nil || !res.Duplicate || res.BaseOffset != 12 {
		t.Fatalf("the retry of a batch in flight: %+v, %v; want a duplicate at 12", res, err)
	}
	if _, err := gap.Wait(ctx); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("a gap: %v, want ErrOutOfOrderSequence", err)
	}
	// A retry once it is stored, and the next batch.
	if res, err := b.AppendBatches(ctx, "s", 0, idemBatch(t, pid, epoch, 9, 3)); err != nil || !res.Duplicate || res.BaseOffset != 9 {
		t.Fatalf("the retry of a stored batch: %+v, %v; want a duplicate at 9", res, err)
	}
	if res, err := b.AppendBatches(ctx, "s", 0, idemBatch(t, pid, epoch, 15, 1)); err != nil || res.Duplicate || res.BaseOffset != 15 {
		t.Fatalf("the next batch: %+v, %v; want it at 15", res, err)
	}
	if end := mustEndOffset(t, b, "s"); end != 16 {
		t.Fatalf("end offset %d, want 16: a retry was stored twice", end)
	}
}

// faultStreamWithBatch opens a broker over a vfs.ErrorFS with stream "s"
// of one partition holding producer pid's first batch (sequences 0 and 1).
func faultStreamWithBatch(t *testing.T, pid int64) (*Broker, *vfs.ErrorFS) {
	t.Helper()
	efs := vfs.NewErrorFS(vfs.Default)
	b := openFaultBroker(t, t.TempDir(), efs)
	t.Cleanup(func() { b.Close() })
	createStream(t, b, StreamConfig{Name: "s", Partitions: 1})
	if _, err := b.AppendBatches(context.Background(), "s", 0, idemBatch(t, pid, 0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	return b, efs
}

// TestSubmitFailedForgetsSequence: batches whose append fails (the fsync
// fails) leave the producer's state unknown, so that their retry is taken
// once the disk works again; a wait that ends before storage answers does
// not lose the outcome, and the retry is then a duplicate.
func TestSubmitFailedForgetsSequence(t *testing.T) {
	b, efs := faultStreamWithBatch(t, 9)
	ctx := context.Background()
	efs.FailSync(fmt.Errorf("%w: fdatasync: %w", vfs.ErrInjected, syscall.EIO))
	p1 := b.SubmitBatches(ctx, "s", 0, idemBatch(t, 9, 0, 2, 2))
	p2 := b.SubmitBatches(ctx, "s", 0, idemBatch(t, 9, 0, 4, 2))
	if res, err := p1.Wait(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("the first batch during the fault: %+v, %v; want the fault's error", res, err)
	}
	// The second fails with the first when they were written together, or
	// is refused as behind a failed batch when it came in the next group.
	if res, err := p2.Wait(ctx); !errors.Is(err, syscall.EIO) && !errors.Is(err, ErrEarlierBatchFailed) {
		t.Fatalf("the second batch during the fault: %+v, %v; want the fault's error or ErrEarlierBatchFailed", res, err)
	}
	efs.Reset()
	res, err := b.AppendBatches(ctx, "s", 0, idemBatch(t, 9, 0, 2, 2))
	if err != nil || res.Duplicate {
		t.Fatalf("the retry after the fault: %+v, %v; want it stored", res, err)
	}

	// The next batch's wait ends before it is known to be stored: the
	// state learns the outcome once storage has it, and the retry is a
	// duplicate of it.
	p := b.SubmitBatches(ctx, "s", 0, idemBatch(t, 9, 0, 4, 2))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with an ended context: %v", err)
	}
	again, err := b.AppendBatches(ctx, "s", 0, idemBatch(t, 9, 0, 4, 2))
	if err != nil || !again.Duplicate || again.BaseOffset != res.LastOffset+1 {
		t.Fatalf("the retry of a batch whose wait ended: %+v, %v; want a duplicate at %d", again, err, res.LastOffset+1)
	}
}

// TestSubmitBehindFailedBatch: an idempotent producer's batch submitted
// while the one before it is in flight is not stored if that one failed,
// even when the failure came before the later batch was submitted and
// before anyone waited for the failed one: the partition never holds a
// producer's batch after a gap.
func TestSubmitBehindFailedBatch(t *testing.T) {
	b, efs := faultStreamWithBatch(t, 5)
	ctx := context.Background()
	s, err := b.stream("s")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.partition(0)
	if err != nil {
		t.Fatal(err)
	}
	failures := l.Failures()
	efs.FailSync(fmt.Errorf("%w: fdatasync: %w", vfs.ErrInjected, syscall.EIO))
	p1 := b.SubmitBatches(ctx, "s", 0, idemBatch(t, 5, 0, 2, 2))
	for l.Failures() == failures { // the writer has failed p1; nobody waited yet
		time.Sleep(time.Millisecond)
	}
	efs.Reset()
	p2 := b.SubmitBatches(ctx, "s", 0, idemBatch(t, 5, 0, 4, 2))
	if _, err := p2.Wait(ctx); !errors.Is(err, ErrEarlierBatchFailed) {
		t.Fatalf("the batch behind the failed one: %v, want ErrEarlierBatchFailed", err)
	}
	if _, err := p1.Wait(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("the failed batch: %v, want the fault's error", err)
	}
	if end := mustEndOffset(t, b, "s"); end != 2 {
		t.Fatalf("end offset %d, want 2: a batch behind the failed one was stored", end)
	}
	// The producer retries both, in order.
	for i, seq := range []int32{2, 4} {
		res, err := b.AppendBatches(ctx, "s", 0, idemBatch(t, 5, 0, seq, 2))
		if err != nil || res.Duplicate || res.BaseOffset != int64(seq) {
			t.Fatalf("retry %d: %+v, %v; want stored at %d", i, res, err, seq)
		}
	}
}
