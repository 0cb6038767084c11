package vfs

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// durableFile creates /d/name with content, syncs it and the directory.
func durableFile(t *testing.T, m *MemFS, name, content string) File {
	t.Helper()
	f := mustCreate(t, m, name, content)
	must(t, f.Sync())
	must(t, m.SyncDir("/d"))
	return f
}

func TestMemCrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run works in /d, which exists and is durable.
		run func(t *testing.T, m *MemFS)
		// want is the content of files after the crash; gone lists names
		// that must not exist; list, when set, is the listing of /d.
		want map[string]string
		gone []string
		list []string
	}{
		{
			name: "unsynced tail is lost",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "synced")
				mustWrite(t, f, " unsynced")
			},
			want: map[string]string{"/d/f": "synced"},
		},
		{
			name: "each sync extends the durable content",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "one")
				mustWrite(t, f, " two")
				must(t, f.Sync())
				mustWrite(t, f, " three")
			},
			want: map[string]string{"/d/f": "one two"},
		},
		{
			name: "file never synced is empty",
			run: func(t *testing.T, m *MemFS) {
				mustCreate(t, m, "/d/f", "data")
				must(t, m.SyncDir("/d"))
			},
			want: map[string]string{"/d/f": ""},
		},
		{
			name: "synced file in unsynced directory is gone",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/old", "old")
				f := mustCreate(t, m, "/d/new", "new")
				must(t, f.Sync())
			},
			want: map[string]string{"/d/old": "old"},
			gone: []string{"/d/new"},
			list: []string{"old"},
		},
		{
			name: "directory entry synced before the file's data",
			run: func(t *testing.T, m *MemFS) {
				f := mustCreate(t, m, "/d/f", "")
				must(t, m.SyncDir("/d"))
				mustWrite(t, f, "later")
				must(t, f.Sync())
			},
			want: map[string]string{"/d/f": "later"},
		},
		{
			name: "sync through a read-only handle",
			run: func(t *testing.T, m *MemFS) {
				mustCreate(t, m, "/d/f", "data")
				must(t, m.SyncDir("/d"))
				r, err := m.Open("/d/f")
				must(t, err)
				must(t, r.Sync())
			},
			want: map[string]string{"/d/f": "data"},
		},
		{
			name: "unsynced removal is undone",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/f", "data")
				must(t, m.Remove("/d/f"))
			},
			want: map[string]string{"/d/f": "data"},
		},
		{
			name: "synced removal",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/f", "data")
				must(t, m.Remove("/d/f"))
				must(t, m.SyncDir("/d"))
			},
			gone: []string{"/d/f"},
			list: []string{},
		},
		{
			name: "removed file synced through its handle comes back with it",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "data")
				must(t, m.Remove("/d/f"))
				mustWrite(t, f, "+more")
				must(t, f.Sync())
			},
			want: map[string]string{"/d/f": "data+more"},
		},
		{
			name: "unsynced rename is undone",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/a", "a")
				durableFile(t, m, "/d/b", "b")
				must(t, m.Rename("/d/a", "/d/b"))
			},
			want: map[string]string{"/d/a": "a", "/d/b": "b"},
		},
		{
			name: "synced rename replaces the destination",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/b", "old b")
				f := mustCreate(t, m, "/d/b.tmp", "new b")
				must(t, f.Sync())
				must(t, m.Rename("/d/b.tmp", "/d/b"))
				must(t, m.SyncDir("/d"))
			},
			want: map[string]string{"/d/b": "new b"},
			gone: []string{"/d/b.tmp"},
			list: []string{"b"},
		},
		{
			name: "rename synced before the data",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/b", "old b")
				mustCreate(t, m, "/d/b.tmp", "new b")
				must(t, m.Rename("/d/b.tmp", "/d/b"))
				must(t, m.SyncDir("/d"))
			},
			want: map[string]string{"/d/b": ""},
			gone: []string{"/d/b.tmp"},
		},
		{
			name: "rename across directories durable only in the destination",
			run: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("/d/sub"))
				must(t, m.SyncDir("/d"))
				durableFile(t, m, "/d/f", "data")
				must(t, m.Rename("/d/f", "/d/sub/f"))
				must(t, m.SyncDir("/d/sub"))
			},
			want: map[string]string{"/d/f": "data", "/d/sub/f": "data"},
		},
		{
			name: "unsynced truncate is ignored",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "0123456789")
				must(t, f.Truncate(4))
				mustWrite(t, f, "abc")
			},
			want: map[string]string{"/d/f": "0123456789"},
		},
		{
			name: "synced truncate",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "0123456789")
				must(t, f.Truncate(4))
				must(t, f.Sync())
				mustWrite(t, f, "abc")
			},
			want: map[string]string{"/d/f": "0123"},
		},
		{
			name: "truncate then write then sync",
			run: func(t *testing.T, m *MemFS) {
				f := durableFile(t, m, "/d/f", "0123456789")
				must(t, f.Truncate(4))
				mustWrite(t, f, "abc")
				must(t, f.Sync())
			},
			want: map[string]string{"/d/f": "0123abc"},
		},
		{
			name: "create over a durable file is a truncate",
			run: func(t *testing.T, m *MemFS) {
				durableFile(t, m, "/d/f", "old")
				mustCreate(t, m, "/d/f", "new")
			},
			want: map[string]string{"/d/f": "old"},
		},
		{
			name: "new directory needs its parent synced",
			run: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("/d/x/y"))
				f := mustCreate(t, m, "/d/x/y/f", "data")
				must(t, f.Sync())
				must(t, m.SyncDir("/d/x/y"))
				must(t, m.SyncDir("/d/x"))
			},
			gone: []string{"/d/x", "/d/x/y/f"},
			list: []string{},
		},
		{
			name: "new directory synced up to a durable ancestor",
			run: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("/d/x/y"))
				f := mustCreate(t, m, "/d/x/y/f", "data")
				must(t, f.Sync())
				for _, dir := range []string{"/d/x/y", "/d/x", "/d"} {
					must(t, m.SyncDir(dir))
				}
			},
			want: map[string]string{"/d/x/y/f": "data"},
			list: []string{"x"},
		},
		{
			name: "unsynced RemoveAll is undone",
			run: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("/d/x"))
				f := mustCreate(t, m, "/d/x/f", "data")
				must(t, f.Sync())
				must(t, m.SyncDir("/d/x"))
				must(t, m.SyncDir("/d"))
				must(t, m.RemoveAll("/d/x"))
			},
			want: map[string]string{"/d/x/f": "data"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMem()
			must(t, m.MkdirAll("/d"))
			must(t, m.SyncDir("/"))
			tc.run(t, m)
			before := m.String()
			c := m.Crash()
			if after := m.String(); after != before {
				t.Fatalf("Crash changed the original:\n%s\nbecame\n%s", before, after)
			}
			for name, want := range tc.want {
				wantFile(t, c, name, want)
			}
			if tc.list != nil {
				wantList(t, c, "/d", tc.list...)
			}
			for _, name := range tc.gone {
				wantNotExist(t, c, name)
			}
			// Everything in the crashed FS is durable.
			if cc := c.Crash().String(); cc != c.String() {
				t.Fatalf("crashing twice lost data:\n%s\nbecame\n%s", c, cc)
			}
		})
	}
}

func TestMemCrashIsIndependent(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/f", "abc")
	must(t, f.Sync())
	must(t, m.SyncDir("/"))

	c := m.Crash()
	cf, err := c.OpenAppend("/f")
	must(t, err)
	mustWrite(t, cf, "X")
	// The two copies share the synced bytes; writing, truncating and
	// syncing either must never show through the other.
	mustWrite(t, f, "Y")
	wantContent(t, cf, "abcX")
	wantContent(t, f, "abcY")
	must(t, f.Truncate(1))
	mustWrite(t, f, "Z")
	must(t, f.Sync())
	must(t, cf.Truncate(2))
	mustWrite(t, cf, "W")
	wantContent(t, f, "aZ")
	wantContent(t, cf, "abW")
	// The crashed FS's own entries and files survive its own crash.
	wantFile(t, c.Crash(), "/f", "abc")
	must(t, cf.Sync())
	wantFile(t, c.Crash(), "/f", "abW")
	wantFile(t, m.Crash(), "/f", "aZ")

	// A second crash of the original sees later syncs; its open handles
	// kept working across the first.
	mustWrite(t, f, "!")
	must(t, f.Sync())
	wantFile(t, m.Crash(), "/f", "aZ!")
	wantFile(t, c, "/f", "abW")
}

func TestMemCrashHardLink(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/a"))
	must(t, m.MkdirAll("/b"))
	must(t, m.SyncDir("/"))
	f := mustCreate(t, m, "/a/f", "data")
	must(t, f.Sync())
	must(t, m.SyncDir("/a"))
	must(t, m.Rename("/a/f", "/b/f"))
	must(t, m.SyncDir("/b"))

	c := m.Crash()
	// Both names are one file.
	w, err := c.OpenAppend("/a/f")
	must(t, err)
	mustWrite(t, w, "+")
	wantFile(t, c, "/b/f", "data+")
}

func TestMemCrashDirectoryCycle(t *testing.T) {
	// Renaming directories between unsynced parents can make the durable
	// entries form a cycle; Crash must still terminate with a tree, keeping
	// each directory at the first place depth-first sorted order finds it.
	m := NewMem()
	must(t, m.MkdirAll("/a/b"))
	for _, d := range []string{"/", "/a", "/a/b"} {
		must(t, m.SyncDir(d))
	}
	must(t, m.Rename("/a/b", "/b"))
	must(t, m.SyncDir("/")) // durable: /a, /b, and still /a/b
	must(t, m.Rename("/a", "/b/a"))
	must(t, m.SyncDir("/b")) // durable: /b/a, so a -> b -> a -> ...

	c := m.Crash()
	if got, want := c.String(), "/a/\n/a/b/\n"; got != want {
		t.Fatalf("crashed tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestMemPaths(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("a/b"))
	must(t, mustCreate(t, m, "/a/b/../b/f", "x").Close())
	wantFile(t, m, "a/b/f", "x")
	wantFile(t, m, "//a/./b/f", "x")
	wantList(t, m, "", "a")
	wantList(t, m, "/", "a")
	fi, err := m.Stat("/")
	must(t, err)
	if !fi.IsDir() {
		t.Fatal("root is not a directory")
	}
}

func TestMemErrors(t *testing.T) {
	m := NewMem()
	must(t, m.MkdirAll("/d/e"))
	must(t, mustCreate(t, m, "/d/f", "x").Close())
	f, err := m.Create("/d/g")
	must(t, err)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"Create(dir)", second(m.Create("/d")), syscall.EISDIR},
		{"Create(root)", second(m.Create("/")), syscall.EISDIR},
		{"Open(dir)", second(m.Open("/d")), syscall.EISDIR},
		{"OpenAppend(dir)", second(m.OpenAppend("/d")), syscall.EISDIR},
		{"Create below a file", second(m.Create("/d/f/g")), syscall.ENOTDIR},
		{"Stat below a file", second(m.Stat("/d/f/g")), syscall.ENOTDIR},
		{"Stat(missing parent)", second(m.Stat("/nope/x")), os.ErrNotExist},
		{"List(file)", second(m.List("/d/f")), syscall.ENOTDIR},
		{"SyncDir(file)", m.SyncDir("/d/f"), syscall.ENOTDIR},
		{"MkdirAll over a file", m.MkdirAll("/d/f/g"), syscall.ENOTDIR},
		{"Remove(root)", m.Remove("/"), syscall.EBUSY},
		{"RemoveAll(root)", m.RemoveAll("/"), syscall.EINVAL},
		{"RemoveAll below a file", m.RemoveAll("/d/f/g"), syscall.ENOTDIR},
		{"Rename(root)", m.Rename("/", "/x"), syscall.EBUSY},
		{"Rename(onto root)", m.Rename("/d/f", "/"), syscall.EBUSY},
		{"Rename(dir onto file)", m.Rename("/d/e", "/d/f"), syscall.ENOTDIR},
		{"Rename(dir into itself)", m.Rename("/d", "/d/e/x"), syscall.EINVAL},
		{"Rename(dir onto itself)", m.Rename("/d", "/d"), syscall.EEXIST},
		{"Remove(missing)", m.Remove("/nope"), syscall.ENOENT},
		{"Truncate(-1)", f.Truncate(-1), syscall.EINVAL},
		{"ReadAt(-1)", second(f.ReadAt(nil, -1)), syscall.EINVAL},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error = %v; want %v", tc.name, tc.err, tc.want)
		}
	}
	// Nothing above changed the tree.
	if got, want := m.String(), "/d/ (not durable)\n/d/e/ (not durable)\n/d/f size=1 synced=0 (not durable)\n/d/g size=0 synced=0 (not durable)\n"; got != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
	}
}

func second[T any](_ T, err error) error { return err }
