package storage

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/weirmq/weir/internal/vfs"
)

// FuzzRecoverTail damages the end of the active segment — cuts it and
// appends arbitrary bytes — and checks that opening recovers: no panic, no
// error, every record before the damage intact, and the log writable.
func FuzzRecoverTail(f *testing.F) {
	good := makeBatch(f, []testRecord{{Key: []byte("k"), Value: []byte("a valid batch"), Timestamp: 7}})
	f.Add(uint16(0), []byte{})
	f.Add(uint16(0), []byte("garbage"))
	f.Add(uint16(13), []byte{})
	f.Add(uint16(0), good)
	f.Add(uint16(5), good[:40])
	f.Add(uint16(0), make([]byte, 100))
	f.Add(uint16(200), append(append([]byte{}, good...), 0xde, 0xad))
	f.Fuzz(func(t *testing.T, cut uint16, tail []byte) {
		fs := vfs.NewMem()
		opts := Options{FS: fs, IndexIntervalBytes: 64, JanitorInterval: -1}
		l := mustOpen(t, "/p", opts)
		want := appendValues(t, l, 12)
		l.Close()
		p := filepath.Join("/p", segmentName(0, logSuffix))
		fi, err := fs.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size()
		newSize := max(size-int64(cut), 0)
		truncateFile(t, fs, p, newSize)
		mustAppendFile(t, fs, p, tail)

		l, err = Open("/p", opts)
		if err != nil {
			t.Fatalf("recovery failed: %v", err)
		}
		defer l.Close()
		got := readAll(t, l, 0)
		// Whole records before the cut survive; nothing is invented before
		// them (a tail that happens to hold valid batches may add records).
		intact := 0
		for intact < len(want) && (intact+1)*int(lastBatchSize) <= int(newSize) {
			intact++
		}
		if len(got) < intact {
			t.Fatalf("recovered %d records, %d were intact", len(got), intact)
		}
		for i := range intact {
			if got[i].Offset != want[i].Offset || !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("record %d changed by recovery", i)
			}
		}
		end := l.EndOffset()
		res := mustAppend(t, l, []testRecord{{Value: []byte("after")}})
		if res.BaseOffset != end {
			t.Fatalf("append after recovery at %d, end was %d", res.BaseOffset, end)
		}
	})
}
