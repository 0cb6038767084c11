package vfs

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrorFS wraps an FS and injects faults that tests switch on and off while
// it is in use. It is safe for concurrent use. With no fault on, every call
// goes straight to the inner FS.
//
// When several faults apply to one call, read-only mode wins over a failing
// Sync or an exhausted write budget.
type ErrorFS struct {
	inner FS

	mu       sync.Mutex
	syncErr  error // non-nil: Sync and SyncDir fail with it
	budget   int64 // bytes that may still be written; < 0: unlimited
	writeErr error // returned once the budget is exhausted
	readOnly bool

	syncs    atomic.Int64
	dirSyncs atomic.Int64
}

var _ FS = (*ErrorFS)(nil)

// NewErrorFS returns an ErrorFS over inner with every fault off.
func NewErrorFS(inner FS) *ErrorFS {
	return &ErrorFS{inner: inner, budget: -1}
}

// ENOSPC returns the error of a full disk: it satisfies both
// errors.Is(err, syscall.ENOSPC) and errors.Is(err, ErrInjected).
func ENOSPC() error { return injected(syscall.ENOSPC) }

func injected(errno syscall.Errno) error {
	return fmt.Errorf("%w: %w", ErrInjected, errno)
}

// FailSync makes every File.Sync and SyncDir return err, without calling the
// inner FS, so the data stays unsynced as on a disk whose flush failed. A nil
// err turns the fault off.
func (e *ErrorFS) FailSync(err error) {
	e.mu.Lock()
	e.syncErr = err
	e.mu.Unlock()
}

// FailWritesAfter lets n more bytes be written in total, across all files;
// then a Write writes only the part that fits (the inner file receives those
// bytes) and returns how many it wrote and err, and every later non-empty
// Write returns 0 and err. A nil err means an error wrapping ErrInjected;
// use ENOSPC() to simulate a full disk. A negative n turns the fault off.
func (e *ErrorFS) FailWritesAfter(n int64, err error) {
	if err == nil {
		err = fmt.Errorf("%w: write budget exhausted", ErrInjected)
	}
	e.mu.Lock()
	if n < 0 {
		e.budget, e.writeErr = -1, nil
	} else {
		e.budget, e.writeErr = n, err
	}
	e.mu.Unlock()
}

// SetReadOnly switches read-only mode, in which Create, OpenAppend, Remove,
// RemoveAll, Rename, MkdirAll, SyncDir and File.Write, File.Truncate and
// File.Sync fail with an error satisfying errors.Is(err, syscall.EROFS)
// (and ErrInjected) without reaching the inner FS. Open, List, Stat and
// File.ReadAt, File.Size and File.Close keep working.
func (e *ErrorFS) SetReadOnly(on bool) {
	e.mu.Lock()
	e.readOnly = on
	e.mu.Unlock()
}

// Reset turns every fault off. It does not reset the sync counters.
func (e *ErrorFS) Reset() {
	e.mu.Lock()
	e.syncErr, e.budget, e.writeErr, e.readOnly = nil, -1, nil, false
	e.mu.Unlock()
}

// Syncs returns how many File.Sync calls reached the inner FS.
func (e *ErrorFS) Syncs() int64 { return e.syncs.Load() }

// DirSyncs returns how many SyncDir calls reached the inner FS.
func (e *ErrorFS) DirSyncs() int64 { return e.dirSyncs.Load() }

func (e *ErrorFS) isReadOnly() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.readOnly
}

// checkWrite returns an error if read-only mode is on.
func (e *ErrorFS) checkWrite(op, name string) error {
	if e.isReadOnly() {
		return &os.PathError{Op: op, Path: name, Err: injected(syscall.EROFS)}
	}
	return nil
}

// checkSync returns the error a sync fails with, if any.
func (e *ErrorFS) checkSync(op, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.readOnly {
		return &os.PathError{Op: op, Path: name, Err: injected(syscall.EROFS)}
	}
	return e.syncErr
}

// reserve takes up to n bytes from the write budget. It returns how many
// may be written and, if fewer than n, the error to return.
func (e *ErrorFS) reserve(name string, n int) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.readOnly:
		return 0, &os.PathError{Op: "write", Path: name, Err: injected(syscall.EROFS)}
	case e.budget < 0:
		return n, nil
	case int64(n) <= e.budget:
		e.budget -= int64(n)
		return n, nil
	}
	allowed := int(e.budget)
	e.budget = 0
	return allowed, e.writeErr
}

// refund returns n reserved bytes the inner FS did not write.
func (e *ErrorFS) refund(n int) {
	e.mu.Lock()
	if e.budget >= 0 {
		e.budget += int64(n)
	}
	e.mu.Unlock()
}

func (e *ErrorFS) wrap(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, fs: e, name: name}, nil
}

// Create creates name through the inner FS unless read-only mode is on.
func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.checkWrite("open", name); err != nil {
		return nil, err
	}
	f, err := e.inner.Create(name)
	return e.wrap(name, f, err)
}

// OpenAppend opens name through the inner FS unless read-only mode is on.
func (e *ErrorFS) OpenAppend(name string) (File, error) {
	if err := e.checkWrite("open", name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenAppend(name)
	return e.wrap(name, f, err)
}

// Open opens name read-only through the inner FS.
func (e *ErrorFS) Open(name string) (File, error) {
	f, err := e.inner.Open(name)
	return e.wrap(name, f, err)
}

// Remove removes name through the inner FS unless read-only mode is on.
func (e *ErrorFS) Remove(name string) error {
	if err := e.checkWrite("remove", name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

// RemoveAll removes name through the inner FS unless read-only mode is on.
func (e *ErrorFS) RemoveAll(name string) error {
	if err := e.checkWrite("remove", name); err != nil {
		return err
	}
	return e.inner.RemoveAll(name)
}

// Rename renames through the inner FS unless read-only mode is on.
func (e *ErrorFS) Rename(oldname, newname string) error {
	if e.isReadOnly() {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: injected(syscall.EROFS)}
	}
	return e.inner.Rename(oldname, newname)
}

// MkdirAll creates dir through the inner FS unless read-only mode is on.
func (e *ErrorFS) MkdirAll(dir string) error {
	if err := e.checkWrite("mkdir", dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir)
}

// List lists dir through the inner FS.
func (e *ErrorFS) List(dir string) ([]string, error) { return e.inner.List(dir) }

// Stat describes name through the inner FS.
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) { return e.inner.Stat(name) }

// SyncDir syncs dir through the inner FS unless a sync fault or read-only
// mode is on.
func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.checkSync("sync", dir); err != nil {
		return err
	}
	e.dirSyncs.Add(1)
	return e.inner.SyncDir(dir)
}

// errFile is a File of an ErrorFS. ReadAt, Size and Close go straight to the
// inner file.
type errFile struct {
	File
	fs   *ErrorFS
	name string
}

func (f *errFile) Write(p []byte) (int, error) {
	allowed, ferr := f.fs.reserve(f.name, len(p))
	if allowed == 0 && ferr != nil {
		return 0, ferr
	}
	n, err := f.File.Write(p[:allowed])
	if n < allowed {
		f.fs.refund(allowed - n)
	}
	if err != nil {
		return n, err
	}
	return n, ferr
}

func (f *errFile) Sync() error {
	if err := f.fs.checkSync("sync", f.name); err != nil {
		return err
	}
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func (f *errFile) Truncate(size int64) error {
	if err := f.fs.checkWrite("truncate", f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}
