package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/vfs"
)

// gateSyncer is a filesystem flush that the test lets finish: each Sync
// announces itself on started and waits for an error (or nil) on results.
type gateSyncer struct {
	started chan int // the Sync's number, from 1
	results chan error
	n       atomic.Int64
	closed  atomic.Bool
}

func newGateSyncer() *gateSyncer {
	return &gateSyncer{started: make(chan int, 16), results: make(chan error)}
}

func (s *gateSyncer) Sync() error {
	s.started <- int(s.n.Add(1))
	return <-s.results
}

func (s *gateSyncer) Close() error { s.closed.Store(true); return nil }

// testFlusher is a Flusher whose every file is on device 1, flushed by s.
func testFlusher(s syncer) *Flusher {
	return &Flusher{
		groups: make(map[uint64]*flushGroup),
		device: func(vfs.File) (uint64, bool) { return 1, true },
		open:   func(vfs.File) (syncer, error) { return s, nil },
	}
}

// flushAsync starts a flush and returns where its result arrives.
func flushAsync(g *flushGroup) <-chan error {
	c := make(chan error, 1)
	go func() { c <- g.flush() }()
	return c
}

// waitForWaiters waits until n flushes have joined the round that has not
// started yet.
func waitForWaiters(t *testing.T, g *flushGroup, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		g.mu.Lock()
		got := 0
		if g.next != nil {
			got = g.next.waiters
		}
		g.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flushes waiting for the next round, want %d", got, n)
		}
	}
}

func expectNoResult(t *testing.T, c <-chan error, what string) {
	t.Helper()
	select {
	case err := <-c:
		t.Fatalf("%s returned (%v) before its own flush ran", what, err)
	case <-time.After(20 * time.Millisecond):
	}
}

// A flush asked while a syncfs runs waits for the next one, which started
// after it was asked, and every flush asked meanwhile shares that one.
func TestFlusherRoundsStartAfterTheAsk(t *testing.T) {
	s := newGateSyncer()
	fl := testFlusher(s)
	defer fl.Close()
	g := fl.groupFor(nil)
	if g == nil {
		t.Fatal("no flush group")
	}

	first := flushAsync(g)
	if n := <-s.started; n != 1 {
		t.Fatalf("sync %d started, want 1", n)
	}
	// Asked while sync 1 runs: it may have missed their writes.
	var late []<-chan error
	for range 10 {
		late = append(late, flushAsync(g))
	}
	waitForWaiters(t, g, 10)
	s.results <- nil
	if err := <-first; err != nil {
		t.Fatalf("first flush: %v", err)
	}
	for i, c := range late {
		expectNoResult(t, c, fmt.Sprintf("late flush %d", i))
	}
	if n := <-s.started; n != 2 {
		t.Fatalf("sync %d started, want 2", n)
	}
	s.results <- nil
	for i, c := range late {
		if err := <-c; err != nil {
			t.Fatalf("late flush %d: %v", i, err)
		}
	}
	if got := s.n.Load(); got != 2 {
		t.Fatalf("%d syncs for 11 flushes, want 2", got)
	}
}

// A failed syncfs fails every flush of its round, and only those.
func TestFlusherErrorFailsItsRound(t *testing.T) {
	s := newGateSyncer()
	fl := testFlusher(s)
	defer fl.Close()
	g := fl.groupFor(nil)
	eio := errors.New("injected: syncfs EIO")

	a := flushAsync(g)
	<-s.started
	b, c := flushAsync(g), flushAsync(g)
	waitForWaiters(t, g, 2)
	s.results <- nil // round 1 (a) succeeds
	if err := <-a; err != nil {
		t.Fatalf("round 1: %v", err)
	}
	<-s.started
	d := flushAsync(g) // asked during round 2: joins round 3
	waitForWaiters(t, g, 1)
	s.results <- eio // round 2 (b, c) fails
	for _, ch := range []<-chan error{b, c} {
		if err := <-ch; !errors.Is(err, eio) {
			t.Fatalf("round 2 flush: %v, want the injected error", err)
		}
	}
	<-s.started
	s.results <- nil
	if err := <-d; err != nil {
		t.Fatalf("round 3 flush got %v: a later round must not inherit an earlier failure", err)
	}
}

// Close lets the round under way finish, releases the syncer, and refuses
// later flushes.
func TestFlusherClose(t *testing.T) {
	s := newGateSyncer()
	fl := testFlusher(s)
	g := fl.groupFor(nil)
	a := flushAsync(g)
	<-s.started
	closed := make(chan error, 1)
	go func() { closed <- fl.Close() }()
	expectNoResult(t, closed, "Close")
	s.results <- nil
	if err := <-a; err != nil {
		t.Fatalf("flush under way at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if !s.closed.Load() {
		t.Fatal("the syncer was not closed")
	}
	if err := g.flush(); !errors.Is(err, ErrFlusherClosed) {
		t.Fatalf("flush after Close: %v, want ErrFlusherClosed", err)
	}
	if fl.groupFor(nil) != nil {
		t.Fatal("a closed Flusher handed out a group")
	}
}

// fileSetSyncer flushes every file the Flusher was shown, as syncfs flushes
// every file of a filesystem, through the files' own Sync (so an ErrorFS
// can fail it and a Mem filesystem's crash keeps what it flushed).
type fileSetSyncer struct {
	mu    sync.Mutex
	files []vfs.File
	syncs atomic.Int64
	delay time.Duration // how long a flush takes, as a disk's does
}

func (s *fileSetSyncer) flusher() *Flusher {
	fl := testFlusher(s)
	fl.device = func(f vfs.File) (uint64, bool) {
		s.mu.Lock()
		s.files = append(s.files, f)
		s.mu.Unlock()
		return 1, true
	}
	return fl
}

func (s *fileSetSyncer) Sync() error {
	s.syncs.Add(1)
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.files {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileSetSyncer) Close() error { return nil }

// Logs that share a Flusher share their flushes, and what they acknowledged
// survives a power loss.
func TestFlusherLogsShareFlushes(t *testing.T) {
	mem := vfs.NewMem()
	s := &fileSetSyncer{delay: time.Millisecond}
	fl := s.flusher()
	const logs, appends = 16, 40
	var ls []*Log
	for i := range logs {
		ls = append(ls, mustOpen(t, fmt.Sprintf("/p%d", i), Options{FS: mem, Flusher: fl}))
	}
	var wg sync.WaitGroup
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range appends {
				if _, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: fmt.Appendf(nil, "%d-%d", i, j)}})); err != nil {
					t.Errorf("log %d append %d: %v", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	syncs := s.syncs.Load()
	t.Logf("%d appends over %d logs: %d filesystem flushes", logs*appends, logs, syncs)
	if syncs >= logs*appends {
		t.Fatalf("%d flushes for %d appends: the logs did not share them", syncs, logs*appends)
	}
	for i, l := range ls {
		if l.DurableOffset() != appends || l.EndOffset() != appends {
			t.Fatalf("log %d: durable %d, end %d, want %d", i, l.DurableOffset(), l.EndOffset(), appends)
		}
	}
	crashed := mem.Crash()
	for i := range logs {
		l := mustOpen(t, fmt.Sprintf("/p%d", i), Options{FS: crashed})
		got := readAll(t, l, 0)
		if len(got) != appends {
			t.Fatalf("log %d after a power loss: %d records, want %d", i, len(got), appends)
		}
		for j, r := range got {
			if want := fmt.Sprintf("%d-%d", i, j); string(r.Value) != want {
				t.Fatalf("log %d offset %d: %q, want %q", i, j, r.Value, want)
			}
		}
		l.Close()
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
}

// The real thing: logs in two filesystems (the test's temporary directory
// and /dev/shm) get a flush group each, and a restart reads back every
// acknowledged record.
func TestFlusherOperatingSystemFilesystems(t *testing.T) {
	fl, err := NewFlusher()
	if err != nil {
		t.Fatalf("this kernel cannot flush with syncfs: %v", err)
	}
	shm, err := os.MkdirTemp("/dev/shm", "weir-flusher-")
	if err != nil {
		t.Fatalf("a second filesystem for the test: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b"), filepath.Join(shm, "c")}
	var ls []*Log
	for _, d := range dirs {
		ls = append(ls, mustOpen(t, d, Options{Flusher: fl}))
	}
	for i, l := range ls {
		for j := range 5 {
			mustAppend(t, l, []testRecord{{Value: fmt.Appendf(nil, "%d-%d", i, j)}})
		}
		if l.DurableOffset() != 5 {
			t.Fatalf("log %d: durable offset %d after 5 appends", i, l.DurableOffset())
		}
	}
	if ls[0].w.flushes == nil || ls[0].w.flushes != ls[1].w.flushes {
		t.Fatal("two logs on one filesystem do not share a flush group")
	}
	if ls[2].w.flushes == nil || ls[2].w.flushes == ls[0].w.flushes {
		t.Fatal("a log on another filesystem shares the first filesystem's flush group")
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		l := mustOpen(t, d, Options{})
		if got := readAll(t, l, 0); len(got) != 5 {
			t.Fatalf("log %d after reopening: %d records, want 5", i, len(got))
		}
		l.Close()
	}
}
