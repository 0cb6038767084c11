package vfs

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
)

// newErrMem returns an ErrorFS over a MemFS holding a durable, empty /d.
func newErrMem(t *testing.T) (*ErrorFS, *MemFS) {
	t.Helper()
	m := NewMem()
	must(t, m.MkdirAll("/d"))
	must(t, m.SyncDir("/"))
	return NewErrorFS(m), m
}

func TestENOSPC(t *testing.T) {
	err := ENOSPC()
	wantErrIs(t, "ENOSPC()", err, syscall.ENOSPC)
	wantErrIs(t, "ENOSPC()", err, ErrInjected)
	if errors.Is(err, syscall.EROFS) {
		t.Fatal("ENOSPC() is EROFS")
	}
}

func TestErrorFSFailSync(t *testing.T) {
	e, m := newErrMem(t)
	injected := errors.New("flush failed")
	f, err := e.Create("/d/f")
	must(t, err)
	mustWrite(t, f, "data")
	must(t, e.SyncDir("/d"))
	if e.Syncs() != 0 || e.DirSyncs() != 1 {
		t.Fatalf("Syncs, DirSyncs = %d, %d; want 0, 1", e.Syncs(), e.DirSyncs())
	}

	e.FailSync(injected)
	if err := f.Sync(); err != injected {
		t.Fatalf("Sync() = %v; want %v", err, injected)
	}
	mustCreate(t, e, "/d/g", "")
	if err := e.SyncDir("/d"); err != injected {
		t.Fatalf("SyncDir() = %v; want %v", err, injected)
	}
	// Nothing reached the inner FS: the data and /d/g are not durable.
	if e.Syncs() != 0 || e.DirSyncs() != 1 {
		t.Fatalf("Syncs, DirSyncs = %d, %d; want 0, 1", e.Syncs(), e.DirSyncs())
	}
	c := m.Crash()
	wantFile(t, c, "/d/f", "")
	wantNotExist(t, c, "/d/g")
	// Writes and reads still work.
	mustWrite(t, f, "+")
	wantContent(t, f, "data+")

	e.FailSync(nil)
	must(t, f.Sync())
	must(t, e.SyncDir("/d"))
	if e.Syncs() != 1 || e.DirSyncs() != 2 {
		t.Fatalf("Syncs, DirSyncs = %d, %d; want 1, 2", e.Syncs(), e.DirSyncs())
	}
	c = m.Crash()
	wantFile(t, c, "/d/f", "data+")
	wantFile(t, c, "/d/g", "")
}

func TestErrorFSFailWritesAfter(t *testing.T) {
	e, m := newErrMem(t)
	f, err := e.Create("/d/f")
	must(t, err)
	g, err := e.Create("/d/g")
	must(t, err)

	e.FailWritesAfter(8, ENOSPC())
	for _, tc := range []struct {
		file    File
		write   string
		n       int
		enospc  bool
		content string // of the file written, afterwards
	}{
		{f, "abc", 3, false, "abc"},
		{g, "12", 2, false, "12"},       // the budget is shared
		{f, "defgh", 3, true, "abcdef"}, // short write: 3 of 5 bytes land
		{f, "x", 0, true, "abcdef"},
		{g, "y", 0, true, "12"},
		{g, "", 0, false, "12"}, // an empty write needs no budget
	} {
		n, err := tc.file.Write([]byte(tc.write))
		if n != tc.n || errors.Is(err, syscall.ENOSPC) != tc.enospc || (!tc.enospc && err != nil) {
			t.Fatalf("Write(%q) = %d, %v; want %d, ENOSPC %v", tc.write, n, err, tc.n, tc.enospc)
		}
		wantContent(t, tc.file, tc.content)
	}
	// The inner file really holds the bytes of the short write.
	wantFile(t, m, "/d/f", "abcdef")

	e.Reset()
	mustWrite(t, f, "ghij")
	wantFile(t, m, "/d/f", "abcdefghij")

	// A nil error means ErrInjected; zero bytes allowed fails at once.
	e.FailWritesAfter(0, nil)
	n, err := g.Write([]byte("z"))
	if n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("Write = %d, %v; want 0, ErrInjected", n, err)
	}
	e.FailWritesAfter(-1, nil)
	mustWrite(t, g, "z")
	wantFile(t, m, "/d/g", "12z")
}

func TestErrorFSReadOnly(t *testing.T) {
	e, m := newErrMem(t)
	f := mustCreate(t, e, "/d/f", "data")
	must(t, e.MkdirAll("/d/sub"))
	before := m.String()

	e.SetReadOnly(true)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Create", second(e.Create("/d/new"))},
		{"Create(existing)", second(e.Create("/d/f"))},
		{"OpenAppend", second(e.OpenAppend("/d/f"))},
		{"Write", second(f.Write([]byte("x")))},
		{"Truncate", f.Truncate(0)},
		{"Sync", f.Sync()},
		{"SyncDir", e.SyncDir("/d")},
		{"Remove", e.Remove("/d/f")},
		{"RemoveAll", e.RemoveAll("/d")},
		{"Rename", e.Rename("/d/f", "/d/g")},
		{"MkdirAll", e.MkdirAll("/d/other")},
	} {
		wantErrIs(t, tc.name, tc.err, syscall.EROFS)
		wantErrIs(t, tc.name, tc.err, ErrInjected)
	}
	if got := m.String(); got != before {
		t.Fatalf("read-only mode changed the FS:\n%s\nbecame\n%s", before, got)
	}
	if e.Syncs() != 0 || e.DirSyncs() != 0 {
		t.Fatalf("Syncs, DirSyncs = %d, %d; want 0, 0", e.Syncs(), e.DirSyncs())
	}
	// Reads keep working.
	wantContent(t, f, "data")
	wantFile(t, e, "/d/f", "data")
	wantList(t, e, "/d", "f", "sub")

	e.SetReadOnly(false)
	mustWrite(t, f, "+")
	must(t, f.Sync())
	must(t, e.Rename("/d/f", "/d/g"))
	wantFile(t, e, "/d/g", "data+")
}

func TestErrorFSReset(t *testing.T) {
	e, m := newErrMem(t)
	f := mustCreate(t, e, "/d/f", "")
	e.FailSync(errors.New("sync"))
	e.FailWritesAfter(0, ENOSPC())
	e.SetReadOnly(true)
	// Read-only mode wins over the other faults.
	wantErrIs(t, "Sync", f.Sync(), syscall.EROFS)
	wantErrIs(t, "Write", second(f.Write([]byte("x"))), syscall.EROFS)

	e.Reset()
	mustWrite(t, f, "recovered")
	must(t, f.Sync())
	must(t, e.SyncDir("/d"))
	must(t, f.Close())
	wantFile(t, m.Crash(), "/d/f", "recovered")
	if e.Syncs() != 1 || e.DirSyncs() != 1 {
		t.Fatalf("Syncs, DirSyncs = %d, %d; want 1, 1", e.Syncs(), e.DirSyncs())
	}
}

// TestErrorFSPassesThroughErrors checks the inner FS's own errors come back
// unchanged in kind.
func TestErrorFSPassesThroughErrors(t *testing.T) {
	e, _ := newErrMem(t)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"Open", second(e.Open("/d/missing")), syscall.ENOENT},
		{"OpenAppend", second(e.OpenAppend("/d/missing")), syscall.ENOENT},
		{"Create", second(e.Create("/missing/f")), syscall.ENOENT},
		{"Stat", second(e.Stat("/d/missing")), syscall.ENOENT},
		{"List", second(e.List("/d/missing")), syscall.ENOENT},
		{"Remove", e.Remove("/d/missing"), syscall.ENOENT},
		{"Rename", e.Rename("/d/missing", "/d/x"), syscall.ENOENT},
		{"SyncDir", e.SyncDir("/d/missing"), syscall.ENOENT},
	} {
		wantErrIs(t, tc.name, tc.err, tc.want)
		if errors.Is(tc.err, ErrInjected) {
			t.Errorf("%s: %v is an injected error", tc.name, tc.err)
		}
	}
}

// TestErrorFSConcurrent toggles faults while files are written and synced;
// under -race it checks the fault state is properly synchronised, and that
// the write budget is never overspent.
func TestErrorFSConcurrent(t *testing.T) {
	e, m := newErrMem(t)
	const writers, writes = 4, 500
	e.FailWritesAfter(1000, ENOSPC())
	var wg sync.WaitGroup
	written := make([]int, writers)
	for w := range writers {
		f, err := e.Create(fmt.Sprintf("/d/f%d", w))
		must(t, err)
		defer f.Close()
		wg.Go(func() {
			for range writes {
				n, _ := f.Write([]byte("abc"))
				written[w] += n
				f.Sync()
				f.ReadAt(make([]byte, 3), 0)
			}
		})
	}
	wg.Go(func() {
		for i := range writes {
			e.FailSync(nil)
			if i%2 == 0 {
				e.FailSync(errors.New("sync"))
			}
			e.SetReadOnly(i%3 == 0)
			e.SyncDir("/d")
		}
		e.SetReadOnly(false)
	})
	wg.Wait()

	total := 0
	for w, n := range written {
		fi, err := m.Stat(fmt.Sprintf("/d/f%d", w))
		must(t, err)
		if fi.Size() != int64(n) {
			t.Errorf("f%d: size %d; Write reported %d", w, fi.Size(), n)
		}
		total += n
	}
	if total > 1000 {
		t.Fatalf("wrote %d bytes with a budget of 1000", total)
	}
}
