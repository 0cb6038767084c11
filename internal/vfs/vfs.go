// Package vfs is the small filesystem interface every on-disk component of Weir
// goes through. It has three implementations: Default (the operating system),
// NewMem (in memory, with a crash model that keeps only what was synced), and
// NewErrorFS (wraps another FS and injects faults on demand). Storage code never
// calls package os directly, so crash, fsync-failure and disk-full behaviour can
// be tested deterministically.
package vfs

import (
	"errors"
	"io"
	"os"
)

// ErrInjected is the error returned by faults injected by ErrorFS, unless a
// specific errno (such as ENOSPC) was requested.
var ErrInjected = errors.New("vfs: injected fault")

// File is an open file. ReadAt is safe for concurrent use with Write on the
// same file (the storage engine reads while its single writer appends).
type File interface {
	io.Writer
	io.ReaderAt
	io.Closer
	// Sync makes the file's written data durable (fdatasync on Linux).
	Sync() error
	// Truncate changes the size of the file. It does not move the write
	// position: files in Weir are opened for append, so the next Write goes to
	// the new end.
	Truncate(size int64) error
	// Size is the current size of the file in bytes.
	Size() (int64, error)
}

// FS is a filesystem. Paths are plain strings joined with path/filepath.
type FS interface {
	// Create creates (or truncates) a file opened for append and read.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for append and read.
	OpenAppend(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// Remove removes a file or an empty directory. Open handles keep working
	// (POSIX unlink semantics).
	Remove(name string) error
	// RemoveAll removes a directory tree.
	RemoveAll(name string) error
	// Rename atomically replaces newname with oldname.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat returns the size of a file; it returns an error satisfying
	// errors.Is(err, os.ErrNotExist) when there is none.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}
