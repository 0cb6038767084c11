package vfs

import (
	"path/filepath"
	"testing"
)

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"5.8.0", true},
		{"5.8-rc1", true},
		{"5.7.19", false},
		{"5.10.0-28-amd64", true},
		{"4.19.0", false},
		{"6.1.0-18-amd64", true},
		{"6.18.44-fc-v445", true},
		{"10.0", true},
		{"", false},
		{"5", false},
		{"x.y.z", false},
		{"5.x", false},
	} {
		if got := kernelAtLeast(c.release, 5, 8); got != c.want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", c.release, got, c.want)
		}
	}
}

func TestFileSystemOfOSFiles(t *testing.T) {
	if err := SyncFSSupported(); err != nil {
		t.Fatalf("the test machine's kernel: %v", err)
	}
	dir := t.TempDir()
	f, err := Default.Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenFileSystem(f)
	if err != nil {
		t.Fatal(err)
	}
	// The handle outlives the file it was opened from.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Sync(); err != nil {
		t.Fatalf("syncfs: %v", err)
	}
	g, err := Default.Create(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if dev, ok := DeviceOf(g); !ok || dev != fs.Device {
		t.Fatalf("a file beside it is on device %d (%v), the handle on %d", dev, ok, fs.Device)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	mf, err := NewMem().Create("/m")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := DeviceOf(mf); ok {
		t.Fatal("an in-memory file has a device")
	}
	if _, err := OpenFileSystem(mf); err == nil {
		t.Fatal("OpenFileSystem of an in-memory file worked")
	}
}
