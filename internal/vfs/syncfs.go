package vfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A FileSystem flushes, with one syncfs(2), everything written to one mounted
// filesystem: the data of every file and the metadata needed to read it back.
// Many files' appends then cost one flush instead of one fdatasync each.
type FileSystem struct {
	// Device identifies the filesystem (st_dev of its files).
	Device uint64
	name   string
	fd     int
}

// DeviceOf returns the device of the filesystem f lives on; ok is false when
// f is not an operating-system file (Mem, ErrorFS) or cannot be examined.
func DeviceOf(f File) (dev uint64, ok bool) {
	of, isOS := f.(osFile)
	if !isOS {
		return 0, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(of.Fd()), &st); err != nil {
		return 0, false
	}
	return st.Dev, true
}

// OpenFileSystem returns the filesystem f lives on, holding a descriptor of
// its own (a duplicate of f's, so f can be closed).
func OpenFileSystem(f File) (*FileSystem, error) {
	dev, ok := DeviceOf(f)
	if !ok {
		return nil, errors.New("vfs: not an operating-system file")
	}
	of := f.(osFile)
	fd, err := unix.FcntlInt(of.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "dup", Path: of.Name(), Err: err}
	}
	return &FileSystem{Device: dev, name: of.Name(), fd: fd}, nil
}

// Sync flushes the whole filesystem. It reports a write-back error of any of
// its files that this handle has not reported yet (Linux 5.8 and later; see
// SyncFSSupported), so a failure fails every flush it could concern.
func (s *FileSystem) Sync() error {
	for {
		err := unix.Syncfs(s.fd)
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "syncfs", Path: s.name, Err: err}
			}
			return nil
		}
	}
}

// Close releases the descriptor.
func (s *FileSystem) Close() error { return unix.Close(s.fd) }

// SyncFSSupported says whether syncfs(2) reports write-back errors on this
// kernel, which it does from Linux 5.8: before, it returned success even when
// data could not be written, and a flush must never claim durability it did
// not get.
func SyncFSSupported() error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("vfs: uname: %w", err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	if !kernelAtLeast(release, 5, 8) {
		return fmt.Errorf("vfs: syncfs does not report write errors before Linux 5.8 (this kernel: %s)", release)
	}
	return nil
}

// kernelAtLeast compares a kernel release ("6.1.0-18-amd64", "5.8-rc1")
// with major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	mnr, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}
