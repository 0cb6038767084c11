package state

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// walGuardFS passes everything to the file system under it, and tells the
// store at once when a write or a sync of a write-ahead log file fails —
// before the error reaches Pebble's log writer, which keeps it for good and
// makes the next commit that writes to the log panic inside Pebble's commit
// pipeline (see failure.go, where commits check it).
type walGuardFS struct {
	vfs.FS
	failed func(error)
}

// walCategory is the write category Pebble creates its log files with.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

func isWALFile(name string, category vfs.DiskWriteCategory) bool {
	return category == walCategory || strings.HasSuffix(name, ".log")
}

func (fs walGuardFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, err, isWALFile(name, category))
}

func (fs walGuardFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, err, isWALFile(newname, category))
}

func (fs walGuardFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(f, err, isWALFile(name, category))
}

func (fs walGuardFS) wrap(f vfs.File, err error, wal bool) (vfs.File, error) {
	if err != nil || !wal {
		return f, err
	}
	return walGuardFile{File: f, failed: fs.failed}, nil
}

// walGuardFile reports the failure of every write and sync of the log file
// (not of Preallocate, whose errors Pebble ignores: a hint, not a write).
type walGuardFile struct {
	vfs.File
	failed func(error)
}

func (f walGuardFile) check(err error) error {
	if err != nil {
		f.failed(err)
	}
	return err
}

func (f walGuardFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.check(err)
}

func (f walGuardFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.check(err)
}

func (f walGuardFile) Sync() error     { return f.check(f.File.Sync()) }
func (f walGuardFile) SyncData() error { return f.check(f.File.SyncData()) }

func (f walGuardFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	return full, f.check(err)
}
