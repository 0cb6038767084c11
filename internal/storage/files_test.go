package storage

import (
	"os"
	"testing"
)

func processFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err) // not Linux
	}
	return len(fds)
}

// TestLogHoldsOneFile: a partition's active segment keeps only its log file
// open, whatever it has written (the index files are opened to be appended
// to), so that a node with thousands of queues, each a stream, does not run
// out of file descriptors. The indexes written that way serve reads by
// offset and by time after a restart. (A sealed segment keeps its log file
// open once it was read, as Kafka's do.)
func TestLogHoldsOneFile(t *testing.T) {
	const logs = 40
	dir := t.TempDir()
	opts := Options{IndexIntervalBytes: 512, FSync: FSyncNever}
	value := make([]byte, 1000)
	before, counted := processFiles(t), OpenFiles()
	var open []*Log
	for i := range logs {
		l := mustOpen(t, dir+"/"+string(rune('a'+i%26))+string(rune('a'+i/26)), opts)
		open = append(open, l)
		for range 200 { // index entries flushed three times
			mustAppend(t, l, []testRecord{{Value: value, Timestamp: 1000}})
		}
	}
	if got := processFiles(t) - before; got > logs+4 {
		t.Errorf("%d logs hold %d files, want about one each", logs, got)
	}
	if got := OpenFiles() - counted; got != logs {
		t.Errorf("OpenFiles counts %d more, want %d", got, logs)
	}
	for _, l := range open {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := processFiles(t) - before; got > 4 {
		t.Errorf("%d files still open after closing every log", got)
	}
	if got := OpenFiles() - counted; got != 0 {
		t.Errorf("OpenFiles counts %d more after closing every log", got)
	}
	l := mustOpen(t, dir+"/aa", opts)
	defer l.Close()
	if got := readAll(t, l, 150); len(got) != 50 || got[0].Offset != 150 {
		t.Fatalf("read from 150 after reopening: %d records, first %+v", len(got), got[0])
	}
	if off, ok, err := l.OffsetForTime(1000); err != nil || !ok || off != 0 {
		t.Errorf("OffsetForTime(1000) = %d, %v, %v; want 0", off, ok, err)
	}
}
