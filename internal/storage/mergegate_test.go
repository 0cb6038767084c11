package storage

import "testing"

// TestMergeGate: a merge wait that brings back at least half of the
// appenders the flush answered keeps the writer waiting after every flush;
// one that does not makes it skip the next 1, 2, 4, ... 64 chances, and a
// wait that pays again ends the skipping.
func TestMergeGate(t *testing.T) {
	var g mergeGate
	// skips counts the chances skipped before the gate allows a wait.
	skips := func() int {
		n := 0
		for !g.wait() {
			n++
			if n > maxMergeSkip {
				t.Fatalf("the gate skipped more than %d waits in a row", maxMergeSkip)
			}
		}
		return n
	}
	for range 3 {
		if n := skips(); n != 0 {
			t.Fatalf("paying waits: skipped %d", n)
		}
		g.waited(16, 32) // half came back: pays
	}
	if n := skips(); n != 0 {
		t.Fatalf("skipped %d after a paying wait", n)
	}
	want := []int{1, 2, 4, 8, 16, 32, 64, 64, 64}
	for i, w := range want {
		g.waited(15, 32) // less than half: does not pay
		if n := skips(); n != w {
			t.Fatalf("after %d waits that did not pay: skipped %d, want %d", i+1, n, w)
		}
	}
	g.waited(1, 1)
	if n := skips(); n != 0 {
		t.Fatalf("after a paying wait: skipped %d, want 0", n)
	}
	g.waited(0, 1)
	if n := skips(); n != 1 {
		t.Fatalf("the backoff did not restart from 1: skipped %d", n)
	}
}
