package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs one table of behaviours against every implementation, so
// that the OS filesystem, MemFS and an ErrorFS with no fault on demonstrably
// agree on the semantics they share (everything but crashes).

type fsImpl struct {
	name string
	// setup returns a filesystem and an existing, empty directory in it.
	setup func(t *testing.T) (FS, string)
}

var impls = []fsImpl{
	{"os", func(t *testing.T) (FS, string) { return Default, t.TempDir() }},
	{"mem", func(t *testing.T) (FS, string) {
		m := NewMem()
		must(t, m.MkdirAll("/tmp/test"))
		return m, "/tmp/test"
	}},
	{"errfs(mem)", func(t *testing.T) (FS, string) {
		m := NewMem()
		must(t, m.MkdirAll("/tmp/test"))
		return NewErrorFS(m), "/tmp/test"
	}},
	{"errfs(os)", func(t *testing.T) (FS, string) { return NewErrorFS(Default), t.TempDir() }},
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCreate(t testing.TB, fs FS, name, content string) File {
	t.Helper()
	f, err := fs.Create(name)
	must(t, err)
	mustWrite(t, f, content)
	return f
}

func mustWrite(t testing.TB, f File, content string) {
	t.Helper()
	n, err := f.Write([]byte(content))
	if err != nil || n != len(content) {
		t.Fatalf("Write(%q) = %d, %v; want %d, nil", content, n, err, len(content))
	}
}

// readAll reads f's whole content through Size and ReadAt.
func readAll(t testing.TB, f File) string {
	t.Helper()
	size, err := f.Size()
	must(t, err)
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(%d bytes) = %d, %v", len(b), n, err)
	}
	return string(b)
}

func wantContent(t testing.TB, f File, want string) {
	t.Helper()
	if got := readAll(t, f); got != want {
		t.Fatalf("content = %q; want %q", got, want)
	}
}

// wantFile checks name's content through a fresh read-only handle.
func wantFile(t testing.TB, fs FS, name, want string) {
	t.Helper()
	f, err := fs.Open(name)
	must(t, err)
	defer f.Close()
	wantContent(t, f, want)
	fi, err := fs.Stat(name)
	must(t, err)
	if fi.Size() != int64(len(want)) {
		t.Fatalf("Stat(%s).Size() = %d; want %d", name, fi.Size(), len(want))
	}
}

func wantNotExist(t testing.TB, fs FS, name string) {
	t.Helper()
	if _, err := fs.Stat(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat(%s) error = %v; want os.ErrNotExist", name, err)
	}
}

func wantErrIs(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error = %v; want errors.Is(_, %v)", what, err, target)
	}
}

func wantList(t testing.TB, fs FS, dir string, want ...string) {
	t.Helper()
	got, err := fs.List(dir)
	must(t, err)
	if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
		t.Fatalf("List(%s) = %q; want %q", dir, got, want)
	}
}

var conformance = []struct {
	name string
	run  func(t *testing.T, fs FS, dir string)
}{
	{"create write read", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		before := time.Now().Add(-time.Minute)
		f := mustCreate(t, fs, name, "hello")
		mustWrite(t, f, ", world")
		wantContent(t, f, "hello, world")
		must(t, f.Sync())
		must(t, f.Close())
		wantFile(t, fs, name, "hello, world")
		fi, err := fs.Stat(name)
		must(t, err)
		if fi.Name() != "f" || fi.IsDir() || fi.Mode().IsDir() || fi.ModTime().Before(before) {
			t.Fatalf("Stat = name %q dir %v mode %v mod %v", fi.Name(), fi.IsDir(), fi.Mode(), fi.ModTime())
		}
	}},
	{"create truncates existing file", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		old := mustCreate(t, fs, name, "old content")
		f := mustCreate(t, fs, name, "new")
		// Same file, truncated: the old handle sees it and appends at the end.
		wantContent(t, old, "new")
		mustWrite(t, old, "+")
		wantContent(t, f, "new+")
		must(t, old.Close())
		must(t, f.Close())
	}},
	{"open append", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		must(t, mustCreate(t, fs, name, "abc").Close())
		f, err := fs.OpenAppend(name)
		must(t, err)
		mustWrite(t, f, "def")
		wantContent(t, f, "abcdef")
		must(t, f.Close())
		_, err = fs.OpenAppend(filepath.Join(dir, "missing"))
		wantErrIs(t, "OpenAppend(missing)", err, os.ErrNotExist)
	}},
	{"open is read-only", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		must(t, mustCreate(t, fs, name, "abc").Close())
		f, err := fs.Open(name)
		must(t, err)
		if n, err := f.Write([]byte("x")); n != 0 || err == nil {
			t.Fatalf("Write on read-only file = %d, %v; want 0, error", n, err)
		}
		if err := f.Truncate(0); err == nil {
			t.Fatal("Truncate on read-only file succeeded")
		}
		must(t, f.Sync()) // fsync works on a read-only descriptor
		wantContent(t, f, "abc")
		must(t, f.Close())
		_, err = fs.Open(filepath.Join(dir, "missing"))
		wantErrIs(t, "Open(missing)", err, os.ErrNotExist)
	}},
	{"read at and past EOF", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"), "0123456789")
		defer f.Close()
		for _, tc := range []struct {
			off, len int
			want     string
			err      error
		}{
			{0, 10, "0123456789", nil},
			{3, 4, "3456", nil},
			{6, 4, "6789", nil},
			{6, 8, "6789", io.EOF},
			{10, 1, "", io.EOF},
			{20, 5, "", io.EOF},
			{20, 0, "", nil},
		} {
			b := make([]byte, tc.len)
			n, err := f.ReadAt(b, int64(tc.off))
			if string(b[:n]) != tc.want || err != tc.err {
				t.Errorf("ReadAt(len %d, off %d) = %q, %v; want %q, %v", tc.len, tc.off, b[:n], err, tc.want, tc.err)
			}
		}
		if _, err := f.ReadAt(make([]byte, 1), -1); err == nil {
			t.Error("ReadAt at a negative offset succeeded")
		}
	}},
	{"truncate moves the append point", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"), "abcdef")
		defer f.Close()
		must(t, f.Truncate(3))
		wantContent(t, f, "abc")
		mustWrite(t, f, "XY")
		wantContent(t, f, "abcXY")
		must(t, f.Truncate(7))
		mustWrite(t, f, "Z")
		wantContent(t, f, "abcXY\x00\x00Z")
		must(t, f.Truncate(0))
		wantContent(t, f, "")
		mustWrite(t, f, "q")
		wantContent(t, f, "q")
	}},
	{"remove keeps open handles working", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		w := mustCreate(t, fs, name, "data")
		r, err := fs.Open(name)
		must(t, err)
		must(t, fs.Remove(name))
		wantNotExist(t, fs, name)
		wantList(t, fs, dir)
		wantContent(t, r, "data")
		mustWrite(t, w, "+more")
		must(t, w.Sync())
		wantContent(t, r, "data+more")
		// A new file of the same name is a different file.
		must(t, mustCreate(t, fs, name, "new").Close())
		wantContent(t, r, "data+more")
		wantFile(t, fs, name, "new")
		must(t, w.Close())
		must(t, r.Close())
		wantErrIs(t, "Remove(missing)", fs.Remove(filepath.Join(dir, "missing")), os.ErrNotExist)
	}},
	{"rename replaces the destination", func(t *testing.T, fs FS, dir string) {
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		fa := mustCreate(t, fs, a, "from a")
		fb := mustCreate(t, fs, b, "from b")
		must(t, fs.Rename(a, b))
		wantNotExist(t, fs, a)
		wantFile(t, fs, b, "from a")
		wantList(t, fs, dir, "b")
		// The replaced file lives on through its handle, and the renamed
		// file's handle follows it.
		wantContent(t, fb, "from b")
		mustWrite(t, fa, "!")
		wantFile(t, fs, b, "from a!")
		must(t, fa.Close())
		must(t, fb.Close())
		// Renaming a file onto itself does nothing.
		must(t, fs.Rename(b, b))
		wantFile(t, fs, b, "from a!")
		wantErrIs(t, "Rename(missing)", fs.Rename(a, filepath.Join(dir, "c")), os.ErrNotExist)
		wantErrIs(t, "Rename(to missing dir)", fs.Rename(b, filepath.Join(dir, "no", "c")), os.ErrNotExist)
		wantFile(t, fs, b, "from a!")
	}},
	{"rename directories", func(t *testing.T, fs FS, dir string) {
		d, e := filepath.Join(dir, "d"), filepath.Join(dir, "e")
		must(t, fs.MkdirAll(filepath.Join(d, "sub")))
		must(t, mustCreate(t, fs, filepath.Join(d, "sub", "f"), "x").Close())
		must(t, fs.Rename(d, e))
		wantNotExist(t, fs, d)
		wantFile(t, fs, filepath.Join(e, "sub", "f"), "x")
		// Onto an existing directory, empty or not, os.Rename refuses.
		must(t, fs.MkdirAll(d))
		wantErrIs(t, "Rename(dir onto dir)", fs.Rename(e, d), syscall.EEXIST)
		must(t, mustCreate(t, fs, filepath.Join(dir, "file"), "").Close())
		wantErrIs(t, "Rename(file onto dir)", fs.Rename(filepath.Join(dir, "file"), d), syscall.EEXIST)
		if err := fs.Rename(e, filepath.Join(e, "sub", "inner")); err == nil {
			t.Fatal("renaming a directory below itself succeeded")
		}
		wantList(t, fs, dir, "d", "e", "file")
	}},
	{"directories", func(t *testing.T, fs FS, dir string) {
		_, err := fs.Create(filepath.Join(dir, "missing", "f"))
		wantErrIs(t, "Create in missing dir", err, os.ErrNotExist)
		_, err = fs.List(filepath.Join(dir, "missing"))
		wantErrIs(t, "List(missing)", err, os.ErrNotExist)
		wantErrIs(t, "SyncDir(missing)", fs.SyncDir(filepath.Join(dir, "missing")), os.ErrNotExist)

		sub := filepath.Join(dir, "a", "b", "c")
		must(t, fs.MkdirAll(sub))
		must(t, fs.MkdirAll(sub)) // idempotent
		wantList(t, fs, sub)
		for _, n := range []string{"b", "a", "c"} {
			must(t, mustCreate(t, fs, filepath.Join(sub, n), n).Close())
		}
		must(t, fs.MkdirAll(filepath.Join(sub, "d")))
		wantList(t, fs, sub, "a", "b", "c", "d")
		must(t, fs.SyncDir(sub))
		fi, err := fs.Stat(sub)
		must(t, err)
		if !fi.IsDir() || !fi.Mode().IsDir() || fi.Name() != "c" {
			t.Fatalf("Stat(dir) = name %q dir %v mode %v", fi.Name(), fi.IsDir(), fi.Mode())
		}
		if err := fs.MkdirAll(filepath.Join(sub, "a", "x")); err == nil {
			t.Fatal("MkdirAll through a file succeeded")
		}

		wantErrIs(t, "Remove(non-empty dir)", fs.Remove(sub), syscall.ENOTEMPTY)
		wantList(t, fs, sub, "a", "b", "c", "d")
		must(t, fs.Remove(filepath.Join(sub, "d")))
		wantList(t, fs, sub, "a", "b", "c")

		must(t, fs.RemoveAll(filepath.Join(dir, "a")))
		wantNotExist(t, fs, filepath.Join(dir, "a"))
		wantNotExist(t, fs, filepath.Join(sub, "a"))
		wantList(t, fs, dir)
		must(t, fs.RemoveAll(filepath.Join(dir, "a")))           // missing: no error
		must(t, fs.RemoveAll(filepath.Join(dir, "x", "y", "z"))) // missing parents too
		f := mustCreate(t, fs, filepath.Join(dir, "f"), "x")
		wantErrIs(t, "RemoveAll below a file", fs.RemoveAll(filepath.Join(dir, "f", "g")), syscall.ENOTDIR)
		must(t, fs.RemoveAll(filepath.Join(dir, "f"))) // a plain file
		wantNotExist(t, fs, filepath.Join(dir, "f"))
		wantContent(t, f, "x")
		must(t, f.Close())
	}},
	{"closed handles", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"), "x")
		must(t, f.Close())
		wantErrIs(t, "second Close", f.Close(), os.ErrClosed)
		_, err := f.Write([]byte("y"))
		wantErrIs(t, "Write after Close", err, os.ErrClosed)
		_, err = f.ReadAt(make([]byte, 1), 0)
		wantErrIs(t, "ReadAt after Close", err, os.ErrClosed)
		if _, err := f.Size(); err == nil {
			t.Fatal("Size after Close succeeded")
		}
		if err := f.Sync(); err == nil {
			t.Fatal("Sync after Close succeeded")
		}
	}},
	{"concurrent ReadAt during Write", func(t *testing.T, fs FS, dir string) {
		testConcurrentAppend(t, fs, filepath.Join(dir, "log"))
	}},
}

// chunk returns the i-th chunk the concurrent test appends: its length and
// bytes vary so that a misplaced or torn read is visible.
func chunk(i int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%13)
}

func testConcurrentAppend(t *testing.T, fs FS, name string) {
	const chunks = 2000
	var want []byte
	for i := range chunks {
		want = append(want, chunk(i)...)
	}
	w, err := fs.Create(name)
	must(t, err)
	defer w.Close()
	other, err := fs.Open(name)
	must(t, err)
	defer other.Close()

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, r := range []File{w, other, w, other} {
		wg.Go(func() {
			buf := make([]byte, len(want))
			for {
				select {
				case <-done:
					return
				default:
				}
				size, err := r.Size()
				if err != nil {
					errs <- err
					return
				}
				n, err := r.ReadAt(buf[:size], 0)
				if int64(n) != size || (err != nil && err != io.EOF) {
					errs <- fmt.Errorf("ReadAt(%d) = %d, %v", size, n, err)
					return
				}
				if !bytes.Equal(buf[:n], want[:n]) {
					errs <- fmt.Errorf("read %d bytes that differ from what was written", n)
					return
				}
			}
		})
	}
	for i := range chunks {
		if _, err := w.Write(chunk(i)); err != nil {
			t.Error(err)
			break
		}
		if i%100 == 0 {
			if err := w.Sync(); err != nil {
				t.Error(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantContent(t, other, string(want))
}

func TestConformance(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			for _, tc := range conformance {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					fs, dir := impl.setup(t)
					tc.run(t, fs, dir)
				})
			}
		})
	}
}
