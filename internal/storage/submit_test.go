package storage

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// TestSubmitInOrder submits appends one after another without waiting for
// any: they land in submission order, and they share flushes rather than
// taking one each.
func TestSubmitInOrder(t *testing.T) {
	var syncs atomic.Int64
	l := mustOpen(t, t.TempDir(), Options{FSync: FSyncAlways, OnSync: func(time.Duration) { syncs.Add(1) }})
	defer l.Close()
	ctx := context.Background()
	const n = 200
	pending := make([]PendingAppend, n)
	for i := range pending {
		p, err := l.Submit(ctx, makeBatch(t, []testRecord{{Value: fmt.Appendf(nil, "v%d", i)}, {Value: fmt.Appendf(nil, "w%d", i)}}))
		if err != nil {
			t.Fatal(err)
		}
		pending[i] = p
	}
	for i, p := range pending {
		res, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseOffset != int64(2*i) || res.LastOffset != int64(2*i+1) {
			t.Fatalf("submission %d landed at %d..%d, want %d..%d", i, res.BaseOffset, res.LastOffset, 2*i, 2*i+1)
		}
	}
	got := readAll(t, l, 0)
	if len(got) != 2*n {
		t.Fatalf("read %d records, want %d", len(got), 2*n)
	}
	for i := range n {
		if string(got[2*i].Value) != fmt.Sprintf("v%d", i) || string(got[2*i+1].Value) != fmt.Sprintf("w%d", i) {
			t.Fatalf("records %d and %d are %q and %q", 2*i, 2*i+1, got[2*i].Value, got[2*i+1].Value)
		}
	}
	if s := syncs.Load(); s >= n {
		t.Errorf("%d flushes for %d submitted appends: they did not share any", s, n)
	}
	t.Logf("%d flushes for %d appends", syncs.Load(), n)

	// Bad input is refused at submission, and a log's failure or closing
	// too.
	if _, err := l.Submit(ctx, []byte("not a batch")); err == nil {
		t.Error("Submit took a malformed batch")
	}
	l.Close()
	if _, err := l.Submit(ctx, makeBatch(t, []testRecord{{Value: []byte("late")}})); err != ErrClosed {
		t.Errorf("Submit on a closed log: %v, want ErrClosed", err)
	}
}

// TestSubmitAfterFailure: data submitted with SubmitAfter is refused once
// an append of the log failed after the given Failures count, whether it
// was queued before that failure or after it; data submitted with a count
// read after the failure is stored, and nothing refused is readable.
func TestSubmitAfterFailure(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.Default)
	l := mustOpen(t, t.TempDir(), Options{FS: efs, FSync: FSyncAlways})
	defer l.Close()
	ctx := context.Background()
	batch := func(v string) []byte { return makeBatch(t, []testRecord{{Value: []byte(v)}}) }
	if _, err := l.Append(ctx, batch("first")); err != nil {
		t.Fatal(err)
	}
	before := l.Failures()
	efs.FailSync(fmt.Errorf("%w: fdatasync: %w", vfs.ErrInjected, syscall.EIO))
	a, err := l.Submit(ctx, batch("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.SubmitAfter(ctx, batch("b"), before) // queued behind a
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("a: %v, want the fault's error", err)
	}
	if _, err := b.Wait(ctx); err == nil {
		t.Fatal("b, submitted behind a failed append, was stored")
	}
	if l.Failures() == before {
		t.Fatal("Failures did not count the failure")
	}
	efs.Reset()
	c, err := l.SubmitAfter(ctx, batch("c"), before) // after the failure
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx); !errors.Is(err, ErrEarlierFailed) {
		t.Fatalf("c, submitted after the failure it follows: %v, want ErrEarlierFailed", err)
	}
	d, err := l.SubmitAfter(ctx, batch("d"), l.Failures())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.Wait(ctx); err != nil || res.BaseOffset != 1 {
		t.Fatalf("d: %+v, %v; want stored at 1", res, err)
	}
	got := readAll(t, l, 0)
	if len(got) != 2 || string(got[0].Value) != "first" || string(got[1].Value) != "d" {
		t.Fatalf("the log holds %d records (%+v), want first and d", len(got), got)
	}
}

// TestWaitKnownOutcome: an append whose outcome is known when Wait is
// called returns it even with an ended context (a produce request waits
// for its partitions one after another, with one deadline).
func TestWaitKnownOutcome(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{FSync: FSyncAlways})
	defer l.Close()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		p, err := l.Submit(context.Background(), makeBatch(t, []testRecord{{Value: []byte("v")}}))
		if err != nil {
			t.Fatal(err)
		}
		for l.EndOffset() <= int64(i) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond) // the writer answers right after publishing the end
		if res, err := p.Wait(ended); err != nil || res.BaseOffset != int64(i) {
			t.Fatalf("append %d, stored before Wait: %+v, %v", i, res, err)
		}
	}
}
