package state

import (
	"io"
	"io/fs"
	"strings"
	"time"

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
	return fs.wrapNew(f, err, isWALFile(name, category))
}

func (fs walGuardFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrapNew(f, err, isWALFile(newname, category))
}

// wrapNew is wrap for a file being created. Pebble creates its next log
// file when a commit rotates the memtable, and panics if it cannot (its
// rotateWAL, with its mutex released: a fatal error no recover catches).
// So a log file that cannot be created (no descriptor left, a full or
// read-only disk) fails the store and is handed to Pebble as a file that
// fails every write and sync with the error: the commit that needed it
// fails through walGuardFile like any failed log write, and the store's
// failure check keeps every later one away from it. On disk there is no
// such file, and nothing durable was written to it.
func (fs walGuardFS) wrapNew(f vfs.File, err error, wal bool) (vfs.File, error) {
	if err != nil && wal {
		fs.failed(err)
		return walGuardFile{File: unwritableFile{err}, failed: fs.failed}, nil
	}
	return fs.wrap(f, err, wal)
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

// unwritableFile stands for a log file that could not be created: writes
// and syncs fail with err, reads find nothing.
type unwritableFile struct{ err error }

func (f unwritableFile) Close() error                       { return nil }
func (f unwritableFile) Read([]byte) (int, error)           { return 0, io.EOF }
func (f unwritableFile) ReadAt([]byte, int64) (int, error)  { return 0, io.EOF }
func (f unwritableFile) Write([]byte) (int, error)          { return 0, f.err }
func (f unwritableFile) WriteAt([]byte, int64) (int, error) { return 0, f.err }
func (f unwritableFile) Preallocate(int64, int64) error     { return nil }
func (f unwritableFile) Stat() (vfs.FileInfo, error)        { return emptyFileInfo{}, nil }
func (f unwritableFile) Sync() error                        { return f.err }
func (f unwritableFile) SyncData() error                    { return f.err }
func (f unwritableFile) SyncTo(int64) (bool, error)         { return false, f.err }
func (f unwritableFile) Prefetch(int64, int64) error        { return nil }
func (f unwritableFile) Fd() uintptr                        { return vfs.InvalidFd }

// emptyFileInfo describes an unwritableFile: Pebble asks a reused log
// file's size.
type emptyFileInfo struct{}

func (emptyFileInfo) Name() string           { return "" }
func (emptyFileInfo) Size() int64            { return 0 }
func (emptyFileInfo) Mode() fs.FileMode      { return 0 }
func (emptyFileInfo) ModTime() time.Time     { return time.Time{} }
func (emptyFileInfo) IsDir() bool            { return false }
func (emptyFileInfo) Sys() any               { return nil }
func (emptyFileInfo) DeviceID() vfs.DeviceID { return vfs.DeviceID{} }
