package storage

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/weirmq/weir/internal/vfs"
)

func appendValues(t *testing.T, l *Log, n int) []testRecord {
	t.Helper()
	var out []testRecord
	for range n {
		off := l.EndOffset()
		r := testRecord{Offset: off, Value: value(int(off)), Timestamp: 1000 + off}
		mustAppend(t, l, []testRecord{r})
		out = append(out, r)
	}
	return out
}

func TestFsyncFailure(t *testing.T) {
	mem := vfs.NewMem()
	efs := vfs.NewErrorFS(mem)
	l := mustOpen(t, "/p", Options{FS: efs})
	want := appendValues(t, l, 10)

	efs.FailSync(errors.New("disk flush failed"))
	_, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: []byte("lost")}}))
	if err == nil {
		t.Fatal("append succeeded although fsync failed")
	}
	if l.EndOffset() != 10 || l.DurableOffset() != 10 {
		t.Fatalf("failed append moved offsets: end %d durable %d", l.EndOffset(), l.DurableOffset())
	}
	equalRecords(t, readAll(t, l, 0), want)

	// The failed fsync is not retried as if it had worked: once flushing works
	// again, new appends go where the failed one would have been.
	efs.Reset()
	want = append(want, appendValues(t, l, 3)...)
	equalRecords(t, readAll(t, l, 0), want)

	// What was acknowledged survives a power loss; the failed record does not
	// reappear.
	crashed := mem.Crash()
	l2 := mustOpen(t, "/p", Options{FS: crashed})
	defer l2.Close()
	equalRecords(t, readAll(t, l2, 0), want)
	l.Close()
}

func TestDiskFull(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := mustOpen(t, "/p", Options{FS: efs, SegmentBytes: 4096})
	want := appendValues(t, l, 20)

	efs.FailWritesAfter(30, vfs.ENOSPC()) // a short write: part of the next batch lands
	_, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: make([]byte, 200)}}))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	for range 5 { // still full: clear error each time, log unchanged
		if _, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: []byte("x")}})); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append on a full disk: %v", err)
		}
	}
	if l.EndOffset() != 20 {
		t.Fatalf("end offset %d after failed appends", l.EndOffset())
	}
	equalRecords(t, readAll(t, l, 0), want)

	efs.Reset()                                    // space is back
	want = append(want, appendValues(t, l, 30)...) // enough to roll segments
	equalRecords(t, readAll(t, l, 0), want)
	l.Close()
	l = mustOpen(t, "/p", Options{FS: efs, SegmentBytes: 4096})
	defer l.Close()
	equalRecords(t, readAll(t, l, 0), want)
}

func TestDiskFullDuringRoll(t *testing.T) {
	efs := vfs.NewErrorFS(vfs.NewMem())
	l := mustOpen(t, "/p", Options{FS: efs, SegmentBytes: 2048})
	defer l.Close()
	want := appendValues(t, l, 5)
	efs.SetReadOnly(true) // creating the next segment fails
	for range 40 {
		if _, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: make([]byte, 100)}})); err == nil {
			efs.SetReadOnly(false)
			t.Fatal("append on a read-only disk succeeded")
		}
	}
	equalRecords(t, readAll(t, l, 0), want)
	efs.SetReadOnly(false)
	want = append(want, appendValues(t, l, 40)...)
	equalRecords(t, readAll(t, l, 0), want)
}

func TestReadOnlyOpenKeepsReading(t *testing.T) {
	mem := vfs.NewMem()
	l := mustOpen(t, "/p", Options{FS: mem})
	want := appendValues(t, l, 10)
	l.Close()
	efs := vfs.NewErrorFS(mem)
	efs.SetReadOnly(true)
	// Recovery rewrites the active segment's index, which a read-only disk
	// refuses: opening fails with a clear error rather than half-working.
	if _, err := Open("/p", Options{FS: efs, JanitorInterval: -1}); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("open on a read-only disk: %v", err)
	}
	efs.SetReadOnly(false)
	l = mustOpen(t, "/p", Options{FS: efs})
	defer l.Close()
	equalRecords(t, readAll(t, l, 0), want)
}

// tornTail writes records, closes the log, then damages the active segment's
// tail with f and reopens.
func TestRecoveryOfDamagedTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, fs *vfs.MemFS, logPath string, size int64)
		lost   int // records lost from the end
	}{
		{"garbage appended", func(t *testing.T, fs *vfs.MemFS, p string, _ int64) {
			mustAppendFile(t, fs, p, []byte("this is not a record batch at all........................................."))
		}, 0},
		{"zeros appended", func(t *testing.T, fs *vfs.MemFS, p string, _ int64) {
			mustAppendFile(t, fs, p, make([]byte, 4096))
		}, 0},
		{"last batch cut in half", func(t *testing.T, fs *vfs.MemFS, p string, size int64) {
			truncateFile(t, fs, p, size-20)
		}, 1},
		{"only a length field left", func(t *testing.T, fs *vfs.MemFS, p string, size int64) {
			// Remove the last batch and leave 10 bytes of it.
			truncateFile(t, fs, p, size-lastBatchSize+10)
		}, 1},
		{"last batch bit flip", func(t *testing.T, fs *vfs.MemFS, p string, size int64) {
			flipByte(t, fs, p, size-5)
		}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := vfs.NewMem()
			opts := Options{FS: fs, IndexIntervalBytes: 128}
			l := mustOpen(t, "/p", opts)
			want := appendValues(t, l, 40)
			l.Close()
			p := filepath.Join("/p", segmentName(0, logSuffix))
			fi, err := fs.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			c.damage(t, fs, p, fi.Size())
			l = mustOpen(t, "/p", opts)
			want = want[:len(want)-c.lost]
			if l.EndOffset() != int64(len(want)) {
				t.Fatalf("end offset %d after recovery, want %d", l.EndOffset(), len(want))
			}
			equalRecords(t, readAll(t, l, 0), want)
			// New appends continue right after the valid data.
			want = append(want, appendValues(t, l, 5)...)
			l.Close()
			l = mustOpen(t, "/p", opts)
			defer l.Close()
			equalRecords(t, readAll(t, l, 0), want)
		})
	}
}

// lastBatchSize is the size of the one-record batches appendValues writes.
var lastBatchSize = func() int64 {
	return int64(len(makeBatch(&testing.T{}, []testRecord{{Value: value(39), Timestamp: 1039}})))
}()

func TestIndexRebuild(t *testing.T) {
	for _, damage := range []string{"missing", "garbage", "truncated entry", "wrong positions"} {
		t.Run(damage, func(t *testing.T) {
			fs := vfs.NewMem()
			opts := Options{FS: fs, SegmentBytes: 2048, IndexIntervalBytes: 128}
			l := mustOpen(t, "/p", opts)
			want := appendValues(t, l, 100)
			l.Close()
			names, _ := fs.List("/p")
			for _, name := range names {
				if filepath.Ext(name) != indexSuffix && filepath.Ext(name) != timeIndexSuffix {
					continue
				}
				p := filepath.Join("/p", name)
				switch damage {
				case "missing":
					if err := fs.Remove(p); err != nil {
						t.Fatal(err)
					}
				case "garbage":
					writeFile(t, fs, p, []byte("\xff\xff\xff\xff\x00\x00\x00\x01garbage!"))
				case "truncated entry":
					fi, _ := fs.Stat(p)
					if fi.Size() > 3 {
						truncateFile(t, fs, p, fi.Size()-3)
					}
				case "wrong positions":
					// Entries that point into the middle of batches.
					writeFile(t, fs, p, []byte{0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 9})
				}
			}
			l = mustOpen(t, "/p", opts)
			defer l.Close()
			for _, from := range []int64{0, 17, 50, 99} {
				equalRecords(t, readAll(t, l, from), want[from:])
			}
			for _, ts := range []int64{1000, 1050, 1099} {
				off, ok, err := l.OffsetForTime(ts)
				if err != nil || !ok || off != ts-1000 {
					t.Fatalf("OffsetForTime(%d) = %d, %v, %v", ts, off, ok, err)
				}
			}
		})
	}
}

func mustAppendFile(t *testing.T, fs vfs.FS, p string, data []byte) {
	t.Helper()
	if err := appendFile(fs, p, data, false); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fs vfs.FS, p string, data []byte) {
	t.Helper()
	f, err := fs.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func truncateFile(t *testing.T, fs vfs.FS, p string, size int64) {
	t.Helper()
	f, err := fs.OpenAppend(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, fs vfs.FS, p string, at int64) {
	t.Helper()
	data, err := readWholeFile(fs, p)
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= 0x55
	writeFile(t, fs, p, data)
}
