package storage

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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
