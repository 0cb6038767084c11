package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/vfs"
)

func TestAppendReadReopen(t *testing.T) {
	for _, policy := range []FSyncPolicy{FSyncAlways, FSyncInterval, FSyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{FSync: policy, FSyncInterval: time.Millisecond})
			var want []testRecord
			for i := range 50 {
				n := 1 + i%5
				var recs []testRecord
				for j := range n {
					recs = append(recs, testRecord{Key: []byte(fmt.Sprintf("k%d", j)), Value: value(len(want) + j), Timestamp: int64(1000 + len(want) + j)})
				}
				res := mustAppend(t, l, recs)
				if res.BaseOffset != int64(len(want)) || res.LastOffset != int64(len(want)+n-1) {
					t.Fatalf("append %d: got [%d, %d], want [%d, %d]", i, res.BaseOffset, res.LastOffset, len(want), len(want)+n-1)
				}
				for j := range recs {
					recs[j].Offset = int64(len(want) + j)
				}
				want = append(want, recs...)
			}
			if got := l.EndOffset(); got != int64(len(want)) {
				t.Fatalf("end offset %d, want %d", got, len(want))
			}
			equalRecords(t, readAll(t, l, 0), want)
			equalRecords(t, readAll(t, l, 77), want[77:])
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, Options{FSync: policy})
			defer l.Close()
			if l.StartOffset() != 0 || l.EndOffset() != int64(len(want)) || l.DurableOffset() != int64(len(want)) {
				t.Fatalf("after reopen: start %d end %d durable %d", l.StartOffset(), l.EndOffset(), l.DurableOffset())
			}
			equalRecords(t, readAll(t, l, 0), want)
			res := mustAppend(t, l, []testRecord{{Value: []byte("after")}})
			if res.BaseOffset != int64(len(want)) {
				t.Fatalf("append after reopen got offset %d, want %d", res.BaseOffset, len(want))
			}
		})
	}
}

func TestReadBounds(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	defer l.Close()
	mustAppend(t, l, []testRecord{{Value: []byte("a")}, {Value: []byte("b")}})
	if data, err := l.Read(nil, 2, 1024); err != nil || len(data) != 0 {
		t.Fatalf("read at end: %d bytes, %v", len(data), err)
	}
	for _, off := range []int64{-1, 3, 100} {
		if _, err := l.Read(nil, off, 1024); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read at %d: got %v, want ErrOffsetOutOfRange", off, err)
		}
	}
	// A batch bigger than maxBytes still comes back whole.
	data, err := l.Read(nil, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record.Validate(data); err != nil {
		t.Fatalf("read with tiny budget returned %d bytes that are not one batch: %v", len(data), err)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentBytes: 4096})
	defer l.Close()
	good := makeBatch(t, []testRecord{{Value: []byte("x")}})
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	big := makeBatch(t, []testRecord{{Value: make([]byte, 5000)}})
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrInvalidBatch},
		{"crc", corrupt, record.ErrCorrupt},
		{"truncated", good[:len(good)-3], record.ErrShort},
		{"trailing garbage", append(append([]byte(nil), good...), 1, 2, 3), ErrInvalidBatch},
		{"bigger than a segment", big, ErrBatchTooLarge},
	}
	for _, c := range cases {
		if _, err := l.Append(context.Background(), c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if l.EndOffset() != 0 {
		t.Fatalf("rejected appends moved the end offset to %d", l.EndOffset())
	}
	// Several batches in one append get consecutive offsets.
	two := append(makeBatch(t, []testRecord{{Value: []byte("a")}, {Value: []byte("b")}}), makeBatch(t, []testRecord{{Value: []byte("c")}})...)
	res, err := l.Append(context.Background(), two)
	if err != nil || res.BaseOffset != 0 || res.LastOffset != 2 {
		t.Fatalf("two batches: %+v, %v", res, err)
	}
}

func TestRollAndIndexLookup(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10, IndexIntervalBytes: 512}
	l := mustOpen(t, dir, opts)
	var want []testRecord
	for i := range 400 {
		n := 1 + i%3
		var recs []testRecord
		for j := range n {
			off := int64(len(want) + j)
			recs = append(recs, testRecord{Offset: off, Value: value(int(off)), Timestamp: 5000 + off})
		}
		mustAppend(t, l, recs)
		want = append(want, recs...)
	}
	if st := l.Stats(); st.Segments < 10 {
		t.Fatalf("expected many segments, got %d", st.Segments)
	}
	check := func(l *Log) {
		t.Helper()
		for _, off := range []int64{0, 1, 2, 3, 100, 399, 400, int64(len(want) - 1)} {
			got := readAll(t, l, off)
			equalRecords(t, got, want[off:])
		}
		// Every offset: the first batch returned holds it.
		for off := range int64(len(want)) {
			data, err := l.Read(nil, off, 1)
			if err != nil {
				t.Fatal(err)
			}
			h, err := record.ParseHeader(data)
			if err != nil || h.BaseOffset > off || h.LastOffset() < off {
				t.Fatalf("read %d returned batch [%d, %d] (%v)", off, h.BaseOffset, h.LastOffset(), err)
			}
		}
	}
	check(l)
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	check(l)
}

func TestSegmentRollByAge(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	l := mustOpen(t, t.TempDir(), Options{SegmentMaxAge: time.Hour, Now: clock})
	defer l.Close()
	mustAppend(t, l, []testRecord{{Value: []byte("a")}})
	now = now.Add(30 * time.Minute)
	mustAppend(t, l, []testRecord{{Value: []byte("b")}})
	if n := l.Stats().Segments; n != 1 {
		t.Fatalf("rolled too early: %d segments", n)
	}
	now = now.Add(31 * time.Minute)
	mustAppend(t, l, []testRecord{{Value: []byte("c")}})
	if n := l.Stats().Segments; n != 2 {
		t.Fatalf("segment older than its max age was not rolled: %d segments", n)
	}
}

func TestOffsetForTime(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 4 << 10, IndexIntervalBytes: 256}
	l := mustOpen(t, dir, opts)
	rng := rand.New(rand.NewPCG(1, 2))
	var all []testRecord
	ts := int64(1_000_000)
	for range 300 {
		n := 1 + rng.IntN(4)
		var recs []testRecord
		for range n {
			// Mostly increasing, sometimes out of order, as producer clocks are.
			ts += int64(rng.IntN(20)) - 3
			off := int64(len(all) + len(recs))
			recs = append(recs, testRecord{Offset: off, Value: value(int(off)), Timestamp: ts})
		}
		mustAppend(t, l, recs)
		all = append(all, recs...)
	}
	brute := func(target int64) (int64, bool) {
		for _, r := range all {
			if r.Timestamp >= target {
				return r.Offset, true
			}
		}
		return 0, false
	}
	check := func(l *Log) {
		t.Helper()
		for target := int64(999_990); target <= ts+5; target += 7 {
			got, ok, err := l.OffsetForTime(target)
			if err != nil {
				t.Fatal(err)
			}
			want, wok := brute(target)
			if ok != wok || got != want {
				t.Fatalf("OffsetForTime(%d) = %d, %v; want %d, %v", target, got, ok, want, wok)
			}
		}
	}
	check(l)
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	check(l)
}

func TestRetention(t *testing.T) {
	now := time.UnixMilli(10_000_000)
	opts := Options{SegmentBytes: 2048, Now: func() time.Time { return now }}
	fill := func(l *Log, from, n int) {
		for i := from; i < from+n; i++ {
			mustAppend(t, l, []testRecord{{Value: make([]byte, 200), Timestamp: int64(i) * 1000}})
		}
	}
	t.Run("age", func(t *testing.T) {
		o := opts
		o.RetentionAge = 20 * time.Second
		l := mustOpen(t, t.TempDir(), o)
		defer l.Close()
		fill(l, 0, 60) // timestamps 0..59 s
		now = time.UnixMilli(60_000)
		segsBefore := l.Stats().Segments
		n, err := l.EnforceRetention()
		if err != nil || n == 0 {
			t.Fatalf("deleted %d segments, %v", n, err)
		}
		if l.Stats().Segments != segsBefore-n {
			t.Fatal("segment count does not match")
		}
		// Everything from 40 s on must still be there; nothing readable is older than a whole segment past the horizon.
		start := l.StartOffset()
		if start > 40 {
			t.Fatalf("retention deleted records younger than the horizon: start %d", start)
		}
		if _, err := l.Read(nil, start-1, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below start: %v", err)
		}
		recs := readAll(t, l, start)
		if len(recs) != int(60-start) || recs[0].Offset != start {
			t.Fatalf("after retention read %d records from %d", len(recs), start)
		}
		if oldest := recs[0].Timestamp; oldest < 40_000-int64(l.opts.SegmentBytes/200+1)*1000 {
			t.Fatalf("a segment entirely older than the horizon was kept (oldest %d)", oldest)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		o := opts
		o.RetentionBytes = 5000
		l := mustOpen(t, t.TempDir(), o)
		defer l.Close()
		fill(l, 0, 100)
		if _, err := l.EnforceRetention(); err != nil {
			t.Fatal(err)
		}
		st := l.Stats()
		last := *l.segs.Load()
		if st.Bytes > o.RetentionBytes+last[len(last)-1].size.Load() {
			t.Fatalf("log holds %d bytes, limit %d", st.Bytes, o.RetentionBytes)
		}
		if st.Bytes-last[0].size.Load() > o.RetentionBytes && st.Segments > 1 {
			t.Fatalf("deleted too little: %d bytes", st.Bytes)
		}
		if len(readAll(t, l, l.StartOffset())) != int(l.EndOffset()-l.StartOffset()) {
			t.Fatal("records missing after byte retention")
		}
	})
	t.Run("delete-before", func(t *testing.T) {
		dir := t.TempDir()
		l := mustOpen(t, dir, opts)
		fill(l, 0, 50)
		n, err := l.DeleteBefore(33)
		if err != nil || n == 0 {
			t.Fatalf("DeleteBefore: %d, %v", n, err)
		}
		if l.StartOffset() != 33 {
			t.Fatalf("start %d, want 33", l.StartOffset())
		}
		if _, err := l.Read(nil, 32, 100); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below start: %v", err)
		}
		if got := readAll(t, l, 33); len(got) != 17 || got[0].Offset != 33 {
			t.Fatalf("read from 33: %d records", len(got))
		}
		if _, err := l.DeleteBefore(51); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("DeleteBefore past the end: %v", err)
		}
		l.Close()
		o := opts
		o.StartOffset = 33
		l = mustOpen(t, dir, o)
		defer l.Close()
		if l.StartOffset() != 33 || l.EndOffset() != 50 {
			t.Fatalf("reopened with start %d end %d", l.StartOffset(), l.EndOffset())
		}
	})
}

func TestCompaction(t *testing.T) {
	now := time.UnixMilli(100_000_000)
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2048, IndexIntervalBytes: 256, Compacted: true, TombstoneRetention: time.Hour, Now: func() time.Time { return now }}
	l := mustOpen(t, dir, opts)
	latest := map[string]testRecord{}
	var unkeyed []testRecord
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 600 {
		off := l.EndOffset()
		r := testRecord{Offset: off, Timestamp: now.UnixMilli() - 3*3600_000 + int64(i)}
		if i >= 400 {
			r.Timestamp = now.UnixMilli() - 600_000 + int64(i) // younger than the tombstone retention
		}
		switch x := rng.IntN(20); {
		case x == 0:
			r.Value = []byte("no key")
			unkeyed = append(unkeyed, r)
		case x < 3:
			r.Key = []byte(fmt.Sprintf("key-%02d", rng.IntN(30)))
			r.Value = nil // tombstone
		default:
			r.Key = []byte(fmt.Sprintf("key-%02d", rng.IntN(30)))
			r.Value = value(i)
		}
		mustAppend(t, l, []testRecord{r})
		if r.Key != nil {
			latest[string(r.Key)] = r
		}
	}
	before := l.Stats()
	// Readers keep reading while compaction swaps segments.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				readAll(t, l, 0)
			}
		}
	}()
	st, err := l.Compact(context.Background())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.SegmentsRewritten == 0 || st.RecordsRemoved == 0 || st.BytesAfter >= st.BytesBefore {
		t.Fatalf("compaction did nothing useful: %+v", st)
	}
	activeBase := (*l.segs.Load())[l.Stats().Segments-1].base
	recentTombstones := 0
	check := func(l *Log) {
		t.Helper()
		got := readAll(t, l, 0)
		seen := map[string]bool{}
		prev := int64(-1)
		recentTombstones = 0
		for _, r := range got {
			if r.Offset <= prev {
				t.Fatalf("offsets not increasing: %d after %d", r.Offset, prev)
			}
			prev = r.Offset
			if r.Key == nil || r.Offset >= activeBase {
				continue
			}
			k := string(r.Key)
			if seen[k] {
				t.Fatalf("key %s appears twice in compacted segments", k)
			}
			seen[k] = true
			want := latest[k]
			if r.Offset != want.Offset {
				t.Fatalf("key %s kept at offset %d, newest is %d", k, r.Offset, want.Offset)
			}
			if r.Value == nil {
				if r.Timestamp < now.Add(-opts.TombstoneRetention).UnixMilli() {
					t.Fatalf("tombstone of %s older than the retention survived", k)
				}
				recentTombstones++
			}
		}
		for k, w := range latest {
			if !seen[k] && w.Offset < activeBase && (w.Value != nil || w.Timestamp >= now.Add(-opts.TombstoneRetention).UnixMilli()) {
				t.Fatalf("newest value of %s at %d lost", k, w.Offset)
			}
		}
		n := 0
		for _, r := range got {
			if r.Key == nil {
				n++
			}
		}
		if n != len(unkeyed) {
			t.Fatalf("unkeyed records: %d kept, %d written", n, len(unkeyed))
		}
		if l.EndOffset() != before.EndOffset {
			t.Fatal("end offset changed")
		}
	}
	check(l)
	if recentTombstones == 0 {
		t.Fatal("no tombstone younger than the retention was kept; the test data does not exercise it")
	}
	l.Close()
	l = mustOpen(t, dir, opts)
	defer l.Close()
	check(l)
	// A second pass over already compacted data changes nothing.
	st, err = l.Compact(context.Background())
	if err != nil || st.RecordsRemoved != 0 {
		t.Fatalf("second pass: %+v, %v", st, err)
	}
	// Appends still work and continue the offsets.
	if res := mustAppend(t, l, []testRecord{{Key: []byte("key-00"), Value: []byte("new")}}); res.BaseOffset != before.EndOffset {
		t.Fatalf("append after compaction at %d", res.BaseOffset)
	}
	// Once the tombstones are old enough they go too.
	now = now.Add(4 * time.Hour)
	if _, err := l.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range readAll(t, l, 0) {
		if r.Key != nil && r.Value == nil && r.Offset < activeBase {
			t.Fatalf("tombstone at %d survived past its retention", r.Offset)
		}
	}
}

func TestWait(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on empty log: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.Wait(context.Background(), 0) }()
	time.Sleep(5 * time.Millisecond)
	mustAppend(t, l, []testRecord{{Value: []byte("wake")}})
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by append")
	}
	go func() { got <- l.Wait(context.Background(), 5) }()
	time.Sleep(5 * time.Millisecond)
	l.Close()
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("wait after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by close")
	}
	if _, err := l.Append(context.Background(), makeBatch(t, []testRecord{{Value: []byte("x")}})); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// TestConcurrentAppendAndRead checks under -race that concurrent appenders
// get distinct, contiguous offsets and that readers see a consistent prefix.
func TestConcurrentAppendAndRead(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentBytes: 64 << 10, IndexIntervalBytes: 1024})
	defer l.Close()
	const writers, each = 8, 200
	var mu sync.Mutex
	owner := map[int64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := fmt.Sprintf("w%d-%d", w, i)
				res := mustAppend(t, l, []testRecord{{Value: []byte(v)}})
				mu.Lock()
				if _, dup := owner[res.BaseOffset]; dup {
					t.Errorf("offset %d given twice", res.BaseOffset)
				}
				owner[res.BaseOffset] = v
				mu.Unlock()
			}
		}()
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for l.EndOffset() < writers*each {
			recs := readAll(t, l, 0)
			for i, r := range recs {
				if r.Offset != int64(i) {
					t.Errorf("reader saw offset %d at position %d", r.Offset, i)
					return
				}
			}
		}
	}()
	wg.Wait()
	<-readerDone
	recs := readAll(t, l, 0)
	if len(recs) != writers*each {
		t.Fatalf("read %d records, want %d", len(recs), writers*each)
	}
	for _, r := range recs {
		if owner[r.Offset] != string(r.Value) {
			t.Fatalf("offset %d holds %q, acknowledged as %q", r.Offset, r.Value, owner[r.Offset])
		}
	}
}

// TestModel runs random operations against a log on the in-memory FS and a
// simple model, including crashes that keep only synced data.
func TestModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			fs := vfs.NewMem()
			dir := "/data/p0"
			opts := Options{FS: fs, SegmentBytes: 2048 + int64(rng.IntN(4096)), IndexIntervalBytes: int64(64 + rng.IntN(512))}
			l := mustOpen(t, dir, opts)
			var model []testRecord
			start := int64(0)
			for step := range 400 {
				op := rng.IntN(100)
				if testing.Verbose() {
					t.Logf("step %d op %d end %d", step, op, l.EndOffset())
				}
				switch {
				case op < 70:
					var recs []testRecord
					for j := range 1 + rng.IntN(5) {
						off := l.EndOffset() + int64(j)
						recs = append(recs, testRecord{Offset: off, Key: []byte(fmt.Sprint(rng.IntN(10))), Value: make([]byte, rng.IntN(300)), Timestamp: int64(step)})
					}
					mustAppend(t, l, recs)
					model = append(model, recs...)
				case op < 80:
					from := start + rng.Int64N(int64(len(model))-start+1)
					equalRecords(t, readAll(t, l, from), model[from:])
				case op < 88:
					l.Close()
					o := opts
					o.StartOffset = start
					l = mustOpen(t, dir, o)
				case op < 94:
					// Power loss: with FSyncAlways every acknowledged record survives.
					fs = fs.Crash()
					l.Close() // the old log lives on in the pre-crash FS only
					opts.FS = fs
					o := opts
					o.StartOffset = start
					l = mustOpen(t, dir, o)
				default:
					if len(model) > 0 {
						to := start + rng.Int64N(int64(len(model))-start+1)
						if _, err := l.DeleteBefore(to); err != nil {
							t.Fatal(err)
						}
						start = max(start, to)
					}
				}
				if l.EndOffset() != int64(len(model)) || l.StartOffset() != start {
					t.Fatalf("step %d: log [%d, %d), model [%d, %d)", step, l.StartOffset(), l.EndOffset(), start, len(model))
				}
			}
			equalRecords(t, readAll(t, l, start), model[start:])
			l.Close()
		})
	}
}

func TestSegmentNames(t *testing.T) {
	for _, base := range []int64{0, 1, 12345678901234} {
		name := segmentName(base, logSuffix)
		got, ok := parseSegmentName(name)
		if !ok || got != base {
			t.Fatalf("%s parsed as %d, %v", name, got, ok)
		}
	}
	for _, bad := range []string{"1.log", "00000000000000000001.index", "0000000000000000000x.log", filepath.Join("a", "b")} {
		if _, ok := parseSegmentName(bad); ok {
			t.Fatalf("%q parsed as a segment", bad)
		}
	}
	names := []string{segmentName(10, logSuffix), segmentName(9, logSuffix), segmentName(100, logSuffix)}
	sort.Strings(names)
	if names[0] != segmentName(9, logSuffix) {
		t.Fatal("segment names do not sort by offset")
	}
}

// Notify signals a channel for appends, one standing signal for any number
// of them, until stopped; other listeners go on.
func TestNotify(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	defer l.Close()
	a, b := make(chan struct{}, 1), make(chan struct{}, 1)
	stopA := l.Notify(a)
	stopB := l.Notify(b)
	defer stopB()
	signalled := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if signalled(a) || signalled(b) {
		t.Fatal("signalled before any append")
	}
	for range 3 {
		mustAppend(t, l, []testRecord{{Value: []byte("x")}}) // returns once readable
	}
	if !signalled(a) || !signalled(b) {
		t.Fatal("an append did not signal")
	}
	if signalled(a) {
		t.Fatal("three appends left more than one signal")
	}
	stopA()
	stopA() // stopping twice is harmless
	mustAppend(t, l, []testRecord{{Value: []byte("y")}})
	if signalled(a) {
		t.Fatal("signalled after stop")
	}
	if !signalled(b) {
		t.Fatal("stopping one listener stopped another")
	}
}

// The background janitor (a timer, not a goroutine per log) applies
// retention every JanitorInterval, and not after Close.
func TestJanitorRunsEveryInterval(t *testing.T) {
	var mu sync.Mutex
	now := time.UnixMilli(0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := mustOpen(t, t.TempDir(), Options{SegmentBytes: 2048, RetentionAge: 10 * time.Second, JanitorInterval: 20 * time.Millisecond, Now: clock})
	for i := range 40 {
		mustAppend(t, l, []testRecord{{Value: make([]byte, 200), Timestamp: int64(i) * 1000}})
	}
	setNow := func(ms int64) {
		mu.Lock()
		defer mu.Unlock()
		now = time.UnixMilli(ms)
	}
	waitFor := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: start offset %d, %d segments", what, l.StartOffset(), l.Stats().Segments)
			}
		}
	}
	time.Sleep(60 * time.Millisecond) // three intervals: nothing is old yet
	if l.StartOffset() != 0 {
		t.Fatalf("start offset %d before anything was past retention", l.StartOffset())
	}
	setNow(40_000)
	waitFor("the janitor did not run", func() bool { return l.StartOffset() > 0 })
	setNow(60_000) // everything but the active segment is past it
	waitFor("the janitor did not run again", func() bool { return l.Stats().Segments == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // a janitor run after Close would touch a closed log (-race, the logger)
}
