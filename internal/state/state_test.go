package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openMem opens a store on a fresh in-memory file system, closed at the end
// of the test.
func openMem(t *testing.T) *Store {
	t.Helper()
	return openAt(t, vfs.NewMem(), "/db", Options{})
}

func openAt(t *testing.T, fs vfs.FS, dir string, opts Options) *Store {
	t.Helper()
	opts.FS = fs
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustUpdate(t *testing.T, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustClose(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func catalogNames(t *testing.T, s *Store, kind Kind) []string {
	t.Helper()
	entries, err := s.ListCatalog(kind)
	if err != nil {
		t.Fatalf("ListCatalog(%v): %v", kind, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	return names
}

func TestCatalogRoundTrip(t *testing.T) {
	kinds := []Kind{KindStream, KindQueue, KindExchange, KindBinding, KindSubscription, KindConnector, KindConnectorProgress, KindGroupConfig, KindTransaction}
	s := openMem(t)
	// Insert out of order, with names that are prefixes of one another and
	// the same names under every kind.
	names := []string{"ab", "a", "b", "a\x00", "a.b", "abc"}
	mustUpdate(t, s, func(tx *Tx) error {
		for _, kind := range kinds {
			for _, name := range names {
				if err := tx.PutCatalog(kind, name, []byte(kind.String()+"/"+name)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	want := []string{"a", "a\x00", "a.b", "ab", "abc", "b"}
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			for _, name := range names {
				got, err := s.GetCatalog(kind, name)
				if err != nil || string(got) != kind.String()+"/"+name {
					t.Errorf("GetCatalog(%q) = %q, %v", name, got, err)
				}
			}
			if got := catalogNames(t, s, kind); !slices.Equal(got, want) {
				t.Errorf("ListCatalog names = %q, want %q", got, want)
			}
			if _, err := s.GetCatalog(kind, "missing"); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetCatalog(missing) err = %v, want ErrNotFound", err)
			}
		})
	}

	// Deleting "a" of one kind leaves "ab", "a\x00" and the other kinds' "a".
	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteCatalog(KindQueue, "a") })
	if _, err := s.GetCatalog(KindQueue, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted entry: err = %v, want ErrNotFound", err)
	}
	if got := catalogNames(t, s, KindQueue); !slices.Equal(got, want[1:]) {
		t.Errorf("after delete: names = %q, want %q", got, want[1:])
	}
	if got := catalogNames(t, s, KindStream); !slices.Equal(got, want) {
		t.Errorf("other kind after delete: names = %q, want %q", got, want)
	}

	// Overwrite, empty value, deleting an absent entry.
	mustUpdate(t, s, func(tx *Tx) error {
		if err := tx.PutCatalog(KindStream, "a", []byte("v2")); err != nil {
			return err
		}
		if err := tx.PutCatalog(KindStream, "empty", nil); err != nil {
			return err
		}
		return tx.DeleteCatalog(KindStream, "never-existed")
	})
	if got, err := s.GetCatalog(KindStream, "a"); err != nil || string(got) != "v2" {
		t.Errorf("overwritten value = %q, %v", got, err)
	}
	if got, err := s.GetCatalog(KindStream, "empty"); err != nil || len(got) != 0 {
		t.Errorf("empty value = %q, %v", got, err)
	}
}

func TestCatalogValueIsCopied(t *testing.T) {
	s := openMem(t)
	value := []byte("original")
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutCatalog(KindStream, "s", value) })
	copy(value, "mutated!")
	got, err := s.GetCatalog(KindStream, "s")
	if err != nil || string(got) != "original" {
		t.Fatalf("GetCatalog = %q, %v", got, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := openMem(t)
	key := OffsetKey{Group: "g", Stream: "s"}
	tests := []struct {
		name string
		call func(tx *Tx) error
		want error
	}{
		{"kind zero", func(*Tx) error { _, err := s.GetCatalog(0, "x"); return err }, ErrInvalidKind},
		{"kind unknown", func(*Tx) error { _, err := s.ListCatalog(KindTransaction + 1); return err }, ErrInvalidKind},
		{"put kind zero", func(tx *Tx) error { return tx.PutCatalog(0, "x", nil) }, ErrInvalidKind},
		{"empty catalog name", func(tx *Tx) error { return tx.PutCatalog(KindStream, "", nil) }, ErrInvalidName},
		{"delete empty name", func(tx *Tx) error { return tx.DeleteCatalog(KindStream, "") }, ErrInvalidName},
		{"get empty name", func(*Tx) error { _, err := s.GetCatalog(KindStream, ""); return err }, ErrInvalidName},
		{"empty group", func(tx *Tx) error { return tx.CommitOffset(OffsetKey{Stream: "s"}, CommittedOffset{}) }, ErrInvalidName},
		{"empty stream", func(tx *Tx) error { return tx.CommitOffset(OffsetKey{Group: "g"}, CommittedOffset{}) }, ErrInvalidName},
		{"list empty group", func(*Tx) error { _, err := s.ListOffsets(""); return err }, ErrInvalidName},
		{"delete empty group", func(tx *Tx) error { return tx.DeleteOffsets("") }, ErrInvalidName},
		{"delete empty stream", func(tx *Tx) error { return tx.DeleteStreamOffsets("") }, ErrInvalidName},
		{"time before 1678", func(tx *Tx) error {
			return tx.CommitOffset(key, CommittedOffset{CommitTime: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)})
		}, ErrInvalidOffset},
		{"time after 2262", func(tx *Tx) error {
			return tx.CommitOffset(key, CommittedOffset{CommitTime: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)})
		}, ErrInvalidOffset},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var callErr error
			err := s.Update(func(tx *Tx) error { callErr = tc.call(tx); return callErr })
			if !errors.Is(callErr, tc.want) || !errors.Is(err, tc.want) {
				t.Errorf("call err = %v, Update err = %v, want %v", callErr, err, tc.want)
			}
		})
	}
}

func TestOffsetsRoundTrip(t *testing.T) {
	s := openMem(t)
	when := time.Date(2025, 6, 1, 12, 30, 45, 123456789, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		key OffsetKey
		c   CommittedOffset
	}{
		{OffsetKey{"g", "orders", 0}, CommittedOffset{Offset: 42, LeaderEpoch: 3, Metadata: "m", CommitTime: when}},
		{OffsetKey{"g", "orders", 1}, CommittedOffset{Offset: 0, LeaderEpoch: -1}},
		{OffsetKey{"g", "orders", -7}, CommittedOffset{Offset: -1, Metadata: "negative partition"}},
		{OffsetKey{"g", "orders", math.MaxInt32}, CommittedOffset{Offset: math.MaxInt64, LeaderEpoch: math.MaxInt32}},
		{OffsetKey{"g", "orders.eu", 0}, CommittedOffset{Offset: 5, CommitTime: time.Unix(0, 0)}},
		{OffsetKey{"g2", "orders", 0}, CommittedOffset{Offset: 7, Metadata: "\x00binary\xff"}},
		{OffsetKey{"g\x00", "o\x00", 3}, CommittedOffset{Offset: 9}},
	}
	mustUpdate(t, s, func(tx *Tx) error {
		for _, tc := range tests {
			if err := tx.CommitOffset(tc.key, tc.c); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range tests {
		got, err := s.GetOffset(tc.key)
		if err != nil {
			t.Errorf("GetOffset(%+v): %v", tc.key, err)
			continue
		}
		if got.Offset != tc.c.Offset || got.LeaderEpoch != tc.c.LeaderEpoch || got.Metadata != tc.c.Metadata ||
			!got.CommitTime.Equal(tc.c.CommitTime) || got.CommitTime.IsZero() != tc.c.CommitTime.IsZero() {
			t.Errorf("GetOffset(%+v) = %+v, want %+v", tc.key, got, tc.c)
		}
	}
	if _, err := s.GetOffset(OffsetKey{"g", "orders", 2}); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent partition: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetOffset(OffsetKey{"g3", "orders", 0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent group: err = %v, want ErrNotFound", err)
	}

	list, err := s.ListOffsets("g")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range list {
		got = append(got, fmt.Sprintf("%s/%d=%d", o.Stream, o.Partition, o.Committed.Offset))
	}
	want := []string{"orders/-7=-1", "orders/0=42", "orders/1=0", "orders/2147483647=9223372036854775807", "orders.eu/0=5"}
	if !slices.Equal(got, want) {
		t.Errorf("ListOffsets(g) = %q, want %q", got, want)
	}
	if list, err := s.ListOffsets("unknown"); err != nil || len(list) != 0 {
		t.Errorf("ListOffsets(unknown) = %v, %v; want empty", list, err)
	}
	groups, err := s.ListGroups()
	if err != nil || !slices.Equal(groups, []string{"g", "g\x00", "g2"}) {
		t.Errorf("ListGroups = %q, %v", groups, err)
	}

	// Deleting group "g" leaves "g\x00" and "g2" untouched.
	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteOffsets("g") })
	if list, _ := s.ListOffsets("g"); len(list) != 0 {
		t.Errorf("after DeleteOffsets(g): %d offsets left", len(list))
	}
	groups, err = s.ListGroups()
	if err != nil || !slices.Equal(groups, []string{"g\x00", "g2"}) {
		t.Errorf("ListGroups after delete = %q, %v", groups, err)
	}
	if got, err := s.GetOffset(OffsetKey{"g2", "orders", 0}); err != nil || got.Offset != 7 {
		t.Errorf("g2 after deleting g = %+v, %v", got, err)
	}
}

// offsetSet returns every committed offset as "group/stream/partition=offset".
func offsetSet(t *testing.T, s *Store) []string {
	t.Helper()
	groups, err := s.ListGroups()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range groups {
		list, err := s.ListOffsets(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list {
			out = append(out, fmt.Sprintf("%s/%s/%d=%d", g, o.Stream, o.Partition, o.Committed.Offset))
		}
	}
	return out
}

func TestDeleteStreamOffsets(t *testing.T) {
	s := openMem(t)
	commit := func(tx *Tx, g, stream string, p int32, off int64) error {
		return tx.CommitOffset(OffsetKey{g, stream, p}, CommittedOffset{Offset: off})
	}
	mustUpdate(t, s, func(tx *Tx) error {
		for _, g := range []string{"a", "b", "c", "s"} {
			for _, stream := range []string{"s", "s2", "s\x00", "r"} {
				for p := int32(0); p < 2; p++ {
					if err := commit(tx, g, stream, p, 1); err != nil {
						return err
					}
				}
			}
		}
		return commit(tx, "only-s2", "s2", 0, 1)
	})
	// In one transaction: a pending commit on s for a new group (deleted),
	// the deletion, then a commit on s after it (kept).
	mustUpdate(t, s, func(tx *Tx) error {
		if err := commit(tx, "pending", "s", 0, 2); err != nil {
			return err
		}
		if err := commit(tx, "pending", "s2", 0, 2); err != nil {
			return err
		}
		if err := tx.DeleteStreamOffsets("s"); err != nil {
			return err
		}
		return commit(tx, "b", "s", 1, 3)
	})
	want := []string{
		"a/r/0=1", "a/r/1=1", "a/s\x00/0=1", "a/s\x00/1=1", "a/s2/0=1", "a/s2/1=1",
		"b/r/0=1", "b/r/1=1", "b/s/1=3", "b/s\x00/0=1", "b/s\x00/1=1", "b/s2/0=1", "b/s2/1=1",
		"c/r/0=1", "c/r/1=1", "c/s\x00/0=1", "c/s\x00/1=1", "c/s2/0=1", "c/s2/1=1",
		"only-s2/s2/0=1",
		"pending/s2/0=2",
		"s/r/0=1", "s/r/1=1", "s/s\x00/0=1", "s/s\x00/1=1", "s/s2/0=1", "s/s2/1=1",
	}
	if got := offsetSet(t, s); !slices.Equal(got, want) {
		t.Errorf("after DeleteStreamOffsets(s):\n got %q\nwant %q", got, want)
	}
	// Deleting a stream nobody consumes writes nothing and fails nothing.
	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteStreamOffsets("nobody") })
	if got := offsetSet(t, s); !slices.Equal(got, want) {
		t.Errorf("after DeleteStreamOffsets(nobody): changed to %q", got)
	}
}

func TestUpdateAtomicity(t *testing.T) {
	s := openMem(t)
	mustUpdate(t, s, func(tx *Tx) error {
		return tx.CommitOffset(OffsetKey{"g", "s", 0}, CommittedOffset{Offset: 1})
	})
	errBoom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutCatalog(KindStream, "s", []byte("v")); err != nil {
			return err
		}
		if err := tx.CommitOffset(OffsetKey{"g", "s", 0}, CommittedOffset{Offset: 2}); err != nil {
			return err
		}
		if err := tx.DeleteStreamOffsets("s"); err != nil {
			return err
		}
		return fmt.Errorf("fn failed: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update err = %v, want fn's error", err)
	}
	if _, err := s.GetCatalog(KindStream, "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("catalog written by failed Update: err = %v", err)
	}
	if got, err := s.GetOffset(OffsetKey{"g", "s", 0}); err != nil || got.Offset != 1 {
		t.Errorf("offset after failed Update = %+v, %v; want 1", got, err)
	}
	// The failed transaction released the exclusive lock.
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutCatalog(KindStream, "t", nil) })
}

func TestUpdatePanicReleasesLock(t *testing.T) {
	s := openMem(t)
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(func(tx *Tx) error {
			_ = tx.DeleteStreamOffsets("s")
			panic("fn panics")
		})
	}()
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutCatalog(KindStream, "s", nil) })
}

func TestTxUnusableAfterUpdate(t *testing.T) {
	s := openMem(t)
	var leaked *Tx
	mustUpdate(t, s, func(tx *Tx) error { leaked = tx; return nil })
	if err := leaked.PutCatalog(KindStream, "s", nil); !errors.Is(err, ErrTxDone) {
		t.Errorf("PutCatalog on finished tx: err = %v, want ErrTxDone", err)
	}
	if err := leaked.DeleteStreamOffsets("s"); !errors.Is(err, ErrTxDone) {
		t.Errorf("DeleteStreamOffsets on finished tx: err = %v, want ErrTxDone", err)
	}
}

func TestConcurrentUpdates(t *testing.T) {
	s := openAt(t, vfs.NewMem(), "/db", Options{NoSync: true})
	const writers, commits = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			group := fmt.Sprint("group", w)
			for i := range commits {
				err := s.Update(func(tx *Tx) error {
					if err := tx.CommitOffset(OffsetKey{group, "s", int32(i % 4)}, CommittedOffset{Offset: int64(i)}); err != nil {
						return err
					}
					if err := tx.CommitOffset(OffsetKey{group, "doomed", 0}, CommittedOffset{Offset: int64(i)}); err != nil {
						return err
					}
					return tx.PutCatalog(KindSubscription, group, fmt.Appendf(nil, "%d", i))
				})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.GetOffset(OffsetKey{group, "s", int32(i % 4)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := s.Update(func(tx *Tx) error { return tx.DeleteStreamOffsets("doomed") }); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.ListGroups(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	mustUpdate(t, s, func(tx *Tx) error { return tx.DeleteStreamOffsets("doomed") })

	for w := range writers {
		group := fmt.Sprint("group", w)
		list, err := s.ListOffsets(group)
		if err != nil || len(list) != 4 {
			t.Fatalf("%s: %d offsets, %v; want 4", group, len(list), err)
		}
		for _, o := range list {
			if o.Stream != "s" || o.Committed.Offset != commits-4+int64(o.Partition) {
				t.Errorf("%s: %+v, want last commit of partition", group, o)
			}
		}
		if v, err := s.GetCatalog(KindSubscription, group); err != nil || string(v) != fmt.Sprint(commits-1) {
			t.Errorf("%s: catalog %q, %v", group, v, err)
		}
	}
}

func TestStats(t *testing.T) {
	s := openMem(t)
	mustUpdate(t, s, func(tx *Tx) error { return tx.PutCatalog(KindStream, "s", bytes.Repeat([]byte("x"), 1000)) })
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.DiskUsageBytes == 0 || st.WALBytes == 0 {
		t.Errorf("Stats = %+v, want disk and WAL usage", st)
	}
}

func TestPebbleLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	logger := pebbleLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	logger.Infof("replayed %d", 3)
	logger.Errorf("failed %s", "x")
	out := buf.String()
	for _, want := range []string{"level=DEBUG msg=\"replayed 3\"", "level=ERROR msg=\"failed x\""} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("log output %q lacks %q", out, want)
		}
	}
	buf.Reset()
	quiet := pebbleLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	quiet.Infof("hidden")
	if buf.Len() != 0 {
		t.Errorf("info message shown at the default level: %q", buf.String())
	}
}
