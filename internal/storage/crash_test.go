package storage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/record"
)

// The crash test runs this test binary again as a child process that appends
// with FSyncAlways and reports every acknowledged append on stdout; the
// parent kills it with SIGKILL at a random moment and checks, after each
// restart, that every acknowledged record is there, byte-identical and in
// order.
const (
	crashChildEnv  = "WEIR_STORAGE_CRASH_CHILD" // the log directory, in the child
	crashRunEnv    = "WEIR_STORAGE_CRASH_RUN"   // the cycle number, in the child
	crashCyclesEnv = "WEIR_CRASH_CYCLES"        // more cycles than the default 20
	crashWriters   = 8
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		run, _ := strconv.Atoi(os.Getenv(crashRunEnv))
		os.Exit(crashChild(dir, run))
	}
	os.Exit(m.Run())
}

func crashOptions() Options {
	return Options{SegmentBytes: 256 << 10, IndexIntervalBytes: 1024, JanitorInterval: -1}
}

// crashRecords are the records writer w sends in its append number seq of
// cycle run: deterministic, so the parent knows what each ack covers.
func crashRecords(run, w, seq int) []record.Record {
	n := 1 + (seq+w)%4
	recs := make([]record.Record, n)
	for i := range recs {
		pad := strings.Repeat("x", (run*131+w*17+seq*7+i*3)%300)
		recs[i] = record.Record{
			Offset:    int64(i),
			Timestamp: int64(1_700_000_000_000 + seq),
			Key:       []byte(fmt.Sprintf("w%d", w)),
			Value:     []byte(fmt.Sprintf("run=%d writer=%d seq=%d rec=%d %s", run, w, seq, i, pad)),
			Headers:   []record.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(seq))}},
		}
	}
	return recs
}

func crashChild(dir string, run int) int {
	l, err := Open(dir, crashOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	fmt.Fprintf(out, "ready %d\n", l.EndOffset())
	out.Flush()
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				batch, err := record.AppendBatch(nil, record.DefaultBatchOptions(), crashRecords(run, w, seq))
				if err != nil {
					panic(err)
				}
				res, err := l.Append(context.Background(), batch)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d %d %d\n", res.BaseOffset, res.LastOffset, w, seq)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

type ackedAppend struct {
	run, writer, seq int
	base, last       int64
}

func TestCrashKill(t *testing.T) {
	cycles := 20
	if s := os.Getenv(crashCyclesEnv); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var acked []ackedAppend
	totalAcked := 0
	for run := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRunEnv+"="+strconv.Itoa(run))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		kill := time.After(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		runAcks := 0
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				var a ackedAppend
				if _, err := fmt.Sscanf(line, "ack %d %d %d %d", &a.base, &a.last, &a.writer, &a.seq); err == nil {
					a.run = run
					acked = append(acked, a)
					runAcks++
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child ended by itself: %v", run, err)
		}
		totalAcked += runAcks
		verifyCrashLog(t, dir, acked, run)
	}
	t.Logf("%d kill cycles, %d acknowledged appends, all present", cycles, totalAcked)
	if totalAcked == 0 {
		t.Fatal("no append was acknowledged in any cycle")
	}
}

// verifyCrashLog opens the log as a restart would and checks every
// acknowledged append against what the child wrote.
func verifyCrashLog(t *testing.T, dir string, acked []ackedAppend, cycle int) {
	t.Helper()
	l, err := Open(dir, crashOptions())
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer l.Close()
	got := map[int64]record.Record{}
	var it record.Iterator
	var r record.Record
	next := int64(0)
	for next < l.EndOffset() {
		data, err := l.Read(nil, next, 1<<20)
		if err != nil {
			t.Fatalf("cycle %d: read at %d: %v", cycle, next, err)
		}
		for p := 0; p < len(data); {
			size, _ := record.BatchSize(data[p:])
			if err := it.Reset(data[p : p+size]); err != nil {
				t.Fatalf("cycle %d: stored batch: %v", cycle, err)
			}
			for it.Next(&r) {
				if r.Offset != next {
					t.Fatalf("cycle %d: offset %d follows %d: the log has a gap or disorder", cycle, r.Offset, next-1)
				}
				got[r.Offset] = cloneRecord(r)
				next++
			}
			p += size
		}
	}
	lastSeq := map[[2]int]int64{} // (run, writer) -> last offset seen
	for _, a := range acked {
		want := crashRecords(a.run, a.writer, a.seq)
		if int(a.last-a.base+1) != len(want) {
			t.Fatalf("cycle %d: ack covers %d records, the child wrote %d", cycle, a.last-a.base+1, len(want))
		}
		for i, w := range want {
			g, ok := got[a.base+int64(i)]
			if !ok {
				t.Fatalf("cycle %d: acknowledged record at offset %d (run %d writer %d seq %d) is missing; log ends at %d",
					cycle, a.base+int64(i), a.run, a.writer, a.seq, l.EndOffset())
			}
			if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Timestamp != w.Timestamp ||
				len(g.Headers) != 1 || g.Headers[0].Key != "seq" || !bytes.Equal(g.Headers[0].Value, w.Headers[0].Value) {
				t.Fatalf("cycle %d: record at offset %d differs from what was acknowledged", cycle, a.base+int64(i))
			}
		}
		k := [2]int{a.run, a.writer}
		if prev, ok := lastSeq[k]; ok && prev >= a.base {
			t.Fatalf("cycle %d: writer %d's appends are out of order in the log", cycle, a.writer)
		}
		lastSeq[k] = a.last
	}
}
