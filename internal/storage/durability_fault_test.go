package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// Fault injection through vfs.ErrorFS (docs/RELIABILITY.md): each test
// checks that a failed append says so with the fault's error, that nothing
// acknowledged is lost or damaged, that a failed append never becomes
// visible (also not after later appends, a reopen or a power loss), and
// that appends work again once the fault is gone.

// ledger of a fault test: what each acknowledged append holds, by offset.
type faultLedger struct {
	mu     sync.Mutex
	acked  map[int64]string // offset → value
	failed map[string]bool  // values of failed appends
}

func newFaultLedger() *faultLedger {
	return &faultLedger{acked: make(map[int64]string), failed: make(map[string]bool)}
}

// append appends one record of value v and notes the outcome.
func (fl *faultLedger) append(t *testing.T, l *Log, v string) error {
	t.Helper()
	res, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: []byte(v), Timestamp: 1}}))
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err != nil {
		fl.failed[v] = true
		return err
	}
	if prev, ok := fl.acked[res.BaseOffset]; ok {
		t.Errorf("offset %d acknowledged twice: %q and %q", res.BaseOffset, prev, v)
	}
	fl.acked[res.BaseOffset] = v
	return nil
}

// verify checks that l holds exactly the acknowledged records, each at its
// offset, and none of the failed ones.
func (fl *faultLedger) verify(t *testing.T, l *Log, what string) {
	t.Helper()
	fl.mu.Lock()
	defer fl.mu.Unlock()
	got := readAll(t, l, 0)
	if len(got) != len(fl.acked) {
		t.Fatalf("%s: %d records, %d acknowledged", what, len(got), len(fl.acked))
	}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("%s: record %d has offset %d: the log has a gap", what, i, r.Offset)
		}
		if want := fl.acked[r.Offset]; string(r.Value) != want {
			t.Fatalf("%s: offset %d holds %q, acknowledged %q (failed append: %v)", what, r.Offset, r.Value, want, fl.failed[string(r.Value)])
		}
	}
}

func TestFaultFsyncFailuresUnderGroupCommit(t *testing.T) {
	t.Run("fdatasync", func(t *testing.T) { testFsyncFailuresUnderGroupCommit(t, nil) })
	// The same with the files flushed by a shared Flusher (as syncfs does).
	t.Run("flusher", func(t *testing.T) {
		fl := (&fileSetSyncer{}).flusher()
		defer fl.Close()
		testFsyncFailuresUnderGroupCommit(t, fl)
	})
}

func testFsyncFailuresUnderGroupCommit(t *testing.T, flusher *Flusher) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	opts := Options{FS: efs, SegmentBytes: 32 << 10, Flusher: flusher}
	l := mustOpen(t, "/p", opts)
	fl := newFaultLedger()
	flushErr := errors.New("injected: fdatasync EIO")

	var wrongErrors atomic.Int64
	var wg sync.WaitGroup
	const writers, appends = 8, 150
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				err := fl.append(t, l, fmt.Sprintf("w%d-%04d", w, i))
				if err != nil && !errors.Is(err, flushErr) {
					wrongErrors.Add(1)
					t.Errorf("append failed with %v, want the injected fsync error", err)
				}
			}
		}()
	}
	// Flushes fail on and off while the writers group-commit.
	stop := make(chan struct{})
	go func() { wg.Wait(); close(stop) }()
	for on := true; ; on = !on {
		if on {
			efs.FailSync(flushErr)
		} else {
			efs.Reset()
		}
		select {
		case <-stop:
		case <-time.After(2 * time.Millisecond):
			continue
		}
		break
	}
	efs.Reset()
	fl.mu.Lock()
	nAcked, nFailed := len(fl.acked), len(fl.failed)
	fl.mu.Unlock()
	t.Logf("%d appends acknowledged, %d failed", nAcked, nFailed)
	if nFailed == 0 {
		// Every flush happened to run while the fault was off: force one.
		efs.FailSync(flushErr)
		if err := fl.append(t, l, "forced"); !errors.Is(err, flushErr) {
			t.Fatalf("append with fsync failing: %v", err)
		}
		efs.Reset()
	}
	if l.DurableOffset() != l.EndOffset() {
		t.Fatalf("durable offset %d, end offset %d under FSyncAlways", l.DurableOffset(), l.EndOffset())
	}
	fl.verify(t, l, "after the faults")
	// Later appends go where the failed ones would have been; none of the
	// failed ones comes back.
	for i := range 20 {
		if err := fl.append(t, l, fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatalf("append once flushing works: %v", err)
		}
	}
	fl.verify(t, l, "after the fault cleared")
	// A power loss keeps exactly what was acknowledged.
	crashed := mustOpen(t, "/p", Options{FS: mem.Crash(), SegmentBytes: 32 << 10})
	fl.verify(t, crashed, "after a power loss")
	crashed.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, "/p", opts)
	defer l.Close()
	fl.verify(t, l, "after a reopen")
}

// TestFaultShortWriteAtEveryByte fails the write of a batch after each
// possible number of its bytes (a disk that fills up, or an I/O error, in
// the middle of a write).
func TestFaultShortWriteAtEveryByte(t *testing.T) {
	batchLen := len(makeBatch(t, []testRecord{{Value: []byte("the failed append"), Timestamp: 1}}))
	for cut := range batchLen {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
			mem := vfs.NewMem()
			efs := vfs.NewErrorFS(mem)
			l := mustOpen(t, "/p", Options{FS: efs})
			fl := newFaultLedger()
			for i := range 3 {
				if err := fl.append(t, l, fmt.Sprintf("before-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			efs.FailWritesAfter(int64(cut), fmt.Errorf("%w: %w", vfs.ErrInjected, errno))
			err := fl.append(t, l, "the failed append")
			if !errors.Is(err, errno) {
				t.Fatalf("cut at %d: append got %v, want %v", cut, err, errno)
			}
			if l.EndOffset() != 3 {
				t.Fatalf("cut at %d: end offset %d after a failed append", cut, l.EndOffset())
			}
			efs.Reset()
			for i := range 2 {
				if err := fl.append(t, l, fmt.Sprintf("after-%d", i)); err != nil {
					t.Fatalf("cut at %d: append once space is back: %v", cut, err)
				}
			}
			fl.verify(t, l, fmt.Sprintf("cut at %d (%v)", cut, errno))
			crashed := mustOpen(t, "/p", Options{FS: mem.Crash()})
			fl.verify(t, crashed, fmt.Sprintf("cut at %d (%v), after a power loss", cut, errno))
			crashed.Close()
			l.Close()
		}
	}
}

func TestFaultReadOnlyDisk(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	l := mustOpen(t, "/p", Options{FS: efs, SegmentBytes: 4096})
	defer l.Close()
	fl := newFaultLedger()
	for i := range 30 { // more than a segment: the read-only disk meets rolls too
		if err := fl.append(t, l, fmt.Sprintf("before-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	efs.SetReadOnly(true)
	for i := range 40 {
		err := fl.append(t, l, fmt.Sprintf("refused-%03d", i))
		if !errors.Is(err, syscall.EROFS) {
			t.Fatalf("append on a read-only disk: %v, want EROFS", err)
		}
	}
	fl.verify(t, l, "reads on a read-only disk")
	efs.SetReadOnly(false)
	for i := range 60 {
		if err := fl.append(t, l, fmt.Sprintf("after-%03d", i)); err != nil {
			t.Fatalf("append once the disk is writable: %v", err)
		}
	}
	fl.verify(t, l, "after the disk became writable")
	crashed := mustOpen(t, "/p", Options{FS: mem.Crash(), SegmentBytes: 4096})
	defer crashed.Close()
	fl.verify(t, crashed, "after a power loss")
}

// TestFaultIntervalFlushFailure: under FSyncInterval an append is
// acknowledged before it is flushed, so a failed background flush may
// concern acknowledged records: the log refuses every append from then on
// (ErrFailed) until it is reopened, as PostgreSQL does since "fsyncgate",
// instead of retrying a flush whose failure may have dropped the data.
func TestFaultIntervalFlushFailure(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	opts := Options{FS: efs, FSync: FSyncInterval, FSyncInterval: 2 * time.Millisecond}
	l := mustOpen(t, "/p", opts)
	fl := newFaultLedger()
	for i := range 10 {
		if err := fl.append(t, l, fmt.Sprintf("flushed-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.DurableOffset() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("durable offset %d: the background flush did not run", l.DurableOffset())
		}
		time.Sleep(time.Millisecond)
	}
	efs.FailSync(errors.New("injected: fdatasync EIO"))
	var failErr error
	for i := 0; failErr == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("appends still accepted long after the background flush failed")
		}
		failErr = fl.append(t, l, fmt.Sprintf("unflushed-%d", i))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(failErr, ErrFailed) {
		t.Fatalf("append after a failed background flush: %v, want ErrFailed", failErr)
	}
	if err := fl.append(t, l, "still refused"); !errors.Is(err, ErrFailed) {
		t.Fatalf("second append: %v, want ErrFailed", err)
	}
	if l.DurableOffset() != 10 {
		t.Fatalf("durable offset %d, want 10: nothing was flushed since the fault", l.DurableOffset())
	}
	fl.verify(t, l, "reads after the failed flush") // reads go on
	// A power loss now loses the acknowledged records that were never
	// flushed — the promise of FSyncInterval — and nothing else.
	crashed := mustOpen(t, "/p", Options{FS: mem.Crash()})
	got := readAll(t, crashed, 0)
	crashed.Close()
	if len(got) != 10 {
		t.Fatalf("after a power loss: %d records, want the 10 flushed ones", len(got))
	}
	efs.Reset()
	l.Close()
	// Reopening (the process restarts; the page cache kept the writes)
	// accepts appends again and keeps everything acknowledged.
	l = mustOpen(t, "/p", opts)
	defer l.Close()
	fl.verify(t, l, "after a reopen")
	if err := fl.append(t, l, "after reopen"); err != nil {
		t.Fatalf("append after a reopen: %v", err)
	}
}

// truncateFaultFS refuses File.Truncate while fail is set: the undo of a
// failed write fails as well (a disk that went read-only after an I/O
// error, as ext4 with errors=remount-ro does).
type truncateFaultFS struct {
	vfs.FS
	fail atomic.Bool
}

type truncateFaultFile struct {
	vfs.File
	fs *truncateFaultFS
}

func (f *truncateFaultFS) wrap(file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &truncateFaultFile{File: file, fs: f}, nil
}

func (f *truncateFaultFS) Create(name string) (vfs.File, error) { return f.wrap(f.FS.Create(name)) }
func (f *truncateFaultFS) OpenAppend(name string) (vfs.File, error) {
	return f.wrap(f.FS.OpenAppend(name))
}

func (f *truncateFaultFile) Truncate(size int64) error {
	if f.fs.fail.Load() {
		return fmt.Errorf("%w: truncate refused", vfs.ErrInjected)
	}
	return f.File.Truncate(size)
}

// TestFaultUndoFails: the fsync of an append fails and so does the
// truncation that would remove its bytes. The log cannot tell what the
// file holds any more, so it refuses appends (ErrFailed) until reopened;
// reads go on. After a power loss the failed append is gone (it was never
// flushed). After a mere process restart the page cache may still hold
// its bytes, whole and with a valid CRC: recovery then keeps it, as the
// record after the last acknowledged one — an append reported failed that
// is present after all (docs/RELIABILITY.md), never one that replaces or
// hides an acknowledged record.
func TestFaultUndoFails(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	tfs := &truncateFaultFS{FS: efs}
	l := mustOpen(t, "/p", Options{FS: tfs})
	fl := newFaultLedger()
	for i := range 10 {
		if err := fl.append(t, l, fmt.Sprintf("acked-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	efs.FailSync(errors.New("injected: fdatasync EIO"))
	tfs.fail.Store(true)
	if err := fl.append(t, l, "failed"); err == nil {
		t.Fatal("append succeeded although fsync failed")
	}
	efs.Reset()
	tfs.fail.Store(false)
	if err := fl.append(t, l, "refused"); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed undo: %v, want ErrFailed", err)
	}
	fl.verify(t, l, "reads of a failed log")

	crashed := mustOpen(t, "/p", Options{FS: mem.Crash()})
	fl.verify(t, crashed, "after a power loss")
	crashed.Close()

	l.Close()
	l = mustOpen(t, "/p", Options{FS: mem})
	defer l.Close()
	got := readAll(t, l, 0)
	if len(got) < 10 || len(got) > 11 {
		t.Fatalf("after a restart: %d records, want the 10 acknowledged and at most the failed one", len(got))
	}
	for i, r := range got[:10] {
		if r.Offset != int64(i) || string(r.Value) != fl.acked[int64(i)] {
			t.Fatalf("after a restart: offset %d holds %q, acknowledged %q", r.Offset, r.Value, fl.acked[int64(i)])
		}
	}
	if len(got) == 11 {
		if string(got[10].Value) != "failed" {
			t.Fatalf("after a restart: offset 10 holds %q", got[10].Value)
		}
		t.Logf("the failed append is present after a restart without a power loss (documented)")
	}
}
