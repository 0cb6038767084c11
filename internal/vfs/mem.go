package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MemFS is an in-memory FS with a strict crash model, in the manner of
// Pebble's strict MemFS. It is safe for concurrent use.
//
// # Live semantics
//
// While running, MemFS behaves like a POSIX filesystem: files opened with
// Create or OpenAppend append on Write, Open is read-only, directories are
// real (MkdirAll creates them; Create in a missing directory fails with an
// error satisfying errors.Is(err, os.ErrNotExist)), and Remove and Rename
// only change directory entries, so open handles keep reading and writing
// the file they opened (unlink semantics). Create on an existing file
// truncates that same file, as O_TRUNC does, so its other open handles see
// the truncation.
//
// Paths are cleaned with filepath.Clean and are all relative to the root of
// the MemFS: "a/b" and "/a/b" name the same file.
//
// Differences from Default, which tests should not rely on: Open of a
// directory fails with EISDIR (the OS returns a handle that cannot be read),
// and SyncDir of a file fails with ENOTDIR (the OS syncs the file).
//
// # Crash model
//
// MemFS records two states for every node: the live state and the durable
// state, the one a machine would find after a power loss.
//
//   - A file's durable content is its content at the last File.Sync of any
//     handle on it (read-only handles included, as fsync(2) on Linux). A file
//     never synced has empty durable content. Write, Truncate and the
//     truncation done by Create change only the live content until the next
//     Sync; in particular a Truncate followed by a crash without a Sync leaves
//     the old, longer durable content.
//   - A directory's durable entries are its entries at its last SyncDir. An
//     entry created, removed or renamed since then is not durable: a file
//     created and synced in a directory that was never synced does not exist
//     after a crash, a removed file whose directory was not synced comes back
//     (with its durable content, which Syncs through handles opened before
//     the removal still update), and a rename whose directories were not
//     synced is undone. A rename is durable in each of its two directories
//     separately: syncing only the destination leaves the file under both
//     names, as one file (a hard link).
//   - Directories are entries too: a directory made by MkdirAll exists after
//     a crash only if its parent was synced after it was made (and the
//     parent's parent, up to a directory that was already durable). The root
//     always exists.
//
// Crash returns a new MemFS holding exactly the durable state; the original
// is left untouched and keeps working.
type MemFS struct {
	// mu guards the tree: the children, syncedChildren and modTime of every
	// directory. It is taken before any node's mu.
	mu   sync.RWMutex
	root *memNode
}

// memNode is a file or a directory. A node is identified by its pointer: it
// may be referenced from several places (a live and a durable directory
// entry, open handles) and lives as long as any of them.
type memNode struct {
	isDir bool

	// Directories only, guarded by MemFS.mu. syncedChildren is the set of
	// entries as of the last SyncDir.
	children       map[string]*memNode
	syncedChildren map[string]*memNode

	// mu guards the fields below for files. For directories modTime is
	// guarded by MemFS.mu.
	mu sync.RWMutex
	// data is the live content and synced the durable one. To make Sync
	// cheap, synced is a prefix of data's backing array when possible
	// (synced = data[:len:len]). The invariant that keeps this safe: bytes
	// of an array below len(synced) are never written again. Data only
	// grows by append (which writes at indices >= len(data)), and a
	// truncation below len(synced) copies data to a new array first.
	data      []byte
	synced    []byte
	modTime   time.Time
	syncedMod time.Time
}

var _ FS = (*MemFS)(nil)

// NewMem returns an empty in-memory filesystem holding only the root
// directory.
func NewMem() *MemFS {
	return &MemFS{root: newDirNode(time.Now())}
}

func newDirNode(mod time.Time) *memNode {
	return &memNode{
		isDir:          true,
		children:       map[string]*memNode{},
		syncedChildren: map[string]*memNode{},
		modTime:        mod,
	}
}

const sep = string(filepath.Separator)

// splitPath returns the components of a cleaned name; nil for the root.
func splitPath(name string) []string {
	p := filepath.Clean(sep + name)
	if p == sep {
		return nil
	}
	return strings.Split(p[1:], sep)
}

func pathErr(op, name string, errno syscall.Errno) error {
	return &os.PathError{Op: op, Path: name, Err: errno}
}

// lookupParent resolves the directory holding name's last component. It
// returns a nil dir for the root, which has no parent. m.mu must be held.
func (m *MemFS) lookupParent(op, name string) (dir *memNode, base string, err error) {
	parts := splitPath(name)
	if len(parts) == 0 {
		return nil, "", nil
	}
	dir = m.root
	for _, p := range parts[:len(parts)-1] {
		c, ok := dir.children[p]
		if !ok {
			return nil, "", pathErr(op, name, syscall.ENOENT)
		}
		if !c.isDir {
			return nil, "", pathErr(op, name, syscall.ENOTDIR)
		}
		dir = c
	}
	return dir, parts[len(parts)-1], nil
}

// lookup resolves name to its node. m.mu must be held.
func (m *MemFS) lookup(op, name string) (*memNode, error) {
	dir, base, err := m.lookupParent(op, name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return m.root, nil
	}
	n, ok := dir.children[base]
	if !ok {
		return nil, pathErr(op, name, syscall.ENOENT)
	}
	return n, nil
}

// Create creates name, or truncates it if it exists, and opens it for
// append and read.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent("open", name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	now := time.Now()
	n, ok := dir.children[base]
	switch {
	case !ok:
		n = &memNode{modTime: now}
		dir.children[base] = n
		dir.modTime = now
	case n.isDir:
		return nil, pathErr("open", name, syscall.EISDIR)
	default:
		n.mu.Lock()
		n.truncateLocked(0)
		n.modTime = now
		n.mu.Unlock()
	}
	return &memFile{name: name, n: n, writable: true}, nil
}

// OpenAppend opens an existing file for append and read.
func (m *MemFS) OpenAppend(name string) (File, error) {
	return m.open(name, true)
}

// Open opens an existing file read-only.
func (m *MemFS) Open(name string) (File, error) {
	return m.open(name, false)
}

func (m *MemFS) open(name string, writable bool) (File, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if n.isDir {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	return &memFile{name: name, n: n, writable: writable}, nil
}

// Remove removes a file or an empty directory. Open handles on a removed
// file keep working.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent("remove", name)
	if err != nil {
		return err
	}
	if dir == nil {
		return pathErr("remove", name, syscall.EBUSY)
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	return nil
}

// RemoveAll removes name and, if it is a directory, everything below it. It
// returns nil if name does not exist.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent("unlinkat", name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if dir == nil {
		return pathErr("RemoveAll", name, syscall.EINVAL)
	}
	if _, ok := dir.children[base]; ok {
		// Detaching the subtree is enough: handles on files below keep
		// working, and nothing below is reachable any more.
		delete(dir.children, base)
		dir.modTime = time.Now()
	}
	return nil
}

// Rename atomically replaces newname with oldname. As os.Rename does, it
// fails if newname is an existing directory.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	linkErr := func(err error) error {
		if pe, ok := err.(*os.PathError); ok {
			err = pe.Err
		}
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	odir, obase, err := m.lookupParent("rename", oldname)
	if err != nil {
		return linkErr(err)
	}
	ndir, nbase, err := m.lookupParent("rename", newname)
	if err != nil {
		return linkErr(err)
	}
	if odir == nil || ndir == nil {
		return linkErr(syscall.EBUSY)
	}
	n, ok := odir.children[obase]
	if !ok {
		return linkErr(syscall.ENOENT)
	}
	if dst, ok := ndir.children[nbase]; ok {
		switch {
		case dst.isDir:
			return linkErr(syscall.EEXIST)
		case dst == n:
			return nil // same file: rename(2) does nothing
		case n.isDir:
			return linkErr(syscall.ENOTDIR)
		}
	}
	if n.isDir {
		// A directory cannot move below itself.
		cur := m.root
		for _, p := range splitPath(newname) {
			if cur == n {
				return linkErr(syscall.EINVAL)
			}
			if cur = cur.children[p]; cur == nil {
				break
			}
		}
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	now := time.Now()
	odir.modTime, ndir.modTime = now, now
	return nil
}

// MkdirAll creates dir and any missing parents.
func (m *MemFS) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.root
	for _, p := range splitPath(dir) {
		c, ok := cur.children[p]
		if !ok {
			now := time.Now()
			c = newDirNode(now)
			cur.children[p] = c
			cur.modTime = now
		} else if !c.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		cur = c
	}
	return nil
}

// List returns the sorted names of dir's entries.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.lookup("open", dir)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("readdirent", dir, syscall.ENOTDIR)
	}
	names := slices.Sorted(maps.Keys(n.children))
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// Stat describes name.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	fi := &memFileInfo{name: filepath.Base(filepath.Clean(sep + name)), dir: n.isDir}
	if n.isDir {
		fi.mod = n.modTime
	} else {
		n.mu.RLock()
		fi.size, fi.mod = int64(len(n.data)), n.modTime
		n.mu.RUnlock()
	}
	return fi, nil
}

// SyncDir makes dir's current entries durable (see the crash model on
// MemFS). It fails with ENOTDIR if dir is a file.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup("open", dir)
	if err != nil {
		return err
	}
	if !n.isDir {
		return pathErr("sync", dir, syscall.ENOTDIR)
	}
	n.syncedChildren = maps.Clone(n.children)
	return nil
}

// Crash returns a new MemFS holding the state a machine would find after a
// power loss now: starting from the root, only directory entries made
// durable by SyncDir, and each file with the content of its last Sync (empty
// if it was never synced). Everything in the new MemFS is durable. A file
// reachable through several durable entries (a rename made durable only in
// its destination) is one file under each name; a directory reachable
// through several (possible only after renaming directories between
// unsynced parents) appears only at the first of them in depth-first,
// sorted order. The receiver is not modified and its open handles keep
// working.
func (m *MemFS) Crash() *MemFS {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := crashCloner{files: map[*memNode]*memNode{}, dirs: map[*memNode]bool{}}
	return &MemFS{root: c.dir(m.root)}
}

type crashCloner struct {
	files map[*memNode]*memNode
	dirs  map[*memNode]bool
}

func (c *crashCloner) dir(d *memNode) *memNode {
	c.dirs[d] = true
	nd := newDirNode(d.modTime)
	for _, name := range slices.Sorted(maps.Keys(d.syncedChildren)) {
		child := d.syncedChildren[name]
		if child.isDir {
			if !c.dirs[child] {
				nd.children[name] = c.dir(child)
			}
			continue
		}
		nf, ok := c.files[child]
		if !ok {
			child.mu.RLock()
			// synced has no spare capacity, so both copies reallocate on
			// their first append instead of writing into the shared array.
			nf = &memNode{data: child.synced, synced: child.synced, modTime: child.syncedMod, syncedMod: child.syncedMod}
			child.mu.RUnlock()
			c.files[child] = nf
		}
		nd.children[name] = nf
	}
	nd.syncedChildren = maps.Clone(nd.children)
	return nd
}

// String dumps the live tree for debugging: one line per entry with its
// path (directories end in a slash), the live and synced size of files, and
// "(not durable)" for entries not yet made durable by a SyncDir.
func (m *MemFS) String() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var b strings.Builder
	var walk func(path string, d *memNode)
	walk = func(path string, d *memNode) {
		for _, name := range slices.Sorted(maps.Keys(d.children)) {
			n, p := d.children[name], path+sep+name
			note := ""
			if d.syncedChildren[name] != n {
				note = " (not durable)"
			}
			if n.isDir {
				fmt.Fprintf(&b, "%s%s%s\n", p, sep, note)
				walk(p, n)
				continue
			}
			n.mu.RLock()
			fmt.Fprintf(&b, "%s size=%d synced=%d%s\n", p, len(n.data), len(n.synced), note)
			n.mu.RUnlock()
		}
	}
	walk("", m.root)
	return b.String()
}

// truncateLocked sets the live size of a file. n.mu must be held.
func (n *memNode) truncateLocked(size int64) {
	switch {
	case size > int64(len(n.data)):
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	case size < int64(len(n.synced)):
		// Appends after this would overwrite bytes synced still holds.
		n.data = slices.Clone(n.data[:size])
	default:
		n.data = n.data[:size]
	}
}

// memFile is an open handle on a memNode.
type memFile struct {
	name     string
	n        *memNode
	writable bool
	closed   atomic.Bool
}

func (f *memFile) check(op string, write bool) error {
	if f.closed.Load() {
		return &os.PathError{Op: op, Path: f.name, Err: os.ErrClosed}
	}
	if write && !f.writable {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

// Write appends p to the file.
func (f *memFile) Write(p []byte) (int, error) {
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.n.mu.Lock()
	f.n.data = append(f.n.data, p...)
	f.n.modTime = time.Now()
	f.n.mu.Unlock()
	return len(p), nil
}

// ReadAt reads len(p) bytes at off; it returns io.EOF if fewer were read
// because the file ends.
func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("readat", f.name, syscall.EINVAL)
	}
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	if off >= int64(len(f.n.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Sync makes the file's current content durable.
func (f *memFile) Sync() error {
	if err := f.check("sync", false); err != nil {
		return err
	}
	f.n.mu.Lock()
	f.n.synced = f.n.data[:len(f.n.data):len(f.n.data)]
	f.n.syncedMod = f.n.modTime
	f.n.mu.Unlock()
	return nil
}

// Truncate sets the file's size; the next Write appends at the new end. The
// durable content changes only at the next Sync.
func (f *memFile) Truncate(size int64) error {
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.n.mu.Lock()
	f.n.truncateLocked(size)
	f.n.modTime = time.Now()
	f.n.mu.Unlock()
	return nil
}

// Size returns the file's live size.
func (f *memFile) Size() (int64, error) {
	if err := f.check("stat", false); err != nil {
		return 0, err
	}
	f.n.mu.RLock()
	defer f.n.mu.RUnlock()
	return int64(len(f.n.data)), nil
}

// Close closes the handle; a second Close fails with os.ErrClosed.
func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return &os.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	return nil
}

type memFileInfo struct {
	name string
	size int64
	dir  bool
	mod  time.Time
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) ModTime() time.Time { return fi.mod }
func (fi *memFileInfo) IsDir() bool        { return fi.dir }
func (fi *memFileInfo) Sys() any           { return nil }

func (fi *memFileInfo) Mode() fs.FileMode {
	if fi.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
