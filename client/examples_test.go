package weir_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

var buildExamplesOnce = sync.OnceValue(func() error {
	for _, name := range []string{"publish", "consume-group", "replay", "worker", "point-to-point", "pubsub", "firehose", "request-reply", "scatter-gather", "message-filter", "recipient-list", "topic-to-queue"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "./examples/"+name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("building example %s: %v\n%s", name, err, out)
		}
	}
	return nil
})

// example runs an example program to completion and returns its stdout.
func example(t *testing.T, name string, args ...string) []string {
	t.Helper()
	if err := buildExamplesOnce(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = cleanEnv()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v; stderr:\n%s", name, args, err, &stderr)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

var (
	publishedLine = regexp.MustCompile(`^published key=(customer-\d+) value="order (\d+)" partition=(\d+) offset=(\d+)$`)
	consumedLine  = regexp.MustCompile(`^partition=(\d+) offset=(\d+) key=(\S+) value=(.*)$`)
	replayedLine  = regexp.MustCompile(`^partition=(\d+) offset=(\d+) time=(\S+) key=(\S+) value=(.*)$`)
)

func TestExamples(t *testing.T) {
	srv := startServer(t)
	server := "-server=" + srv.addr

	// publish: 12 records of 3 keys, in order per key.
	lines := example(t, "publish", server, "-stream=shop", "-n=12", "-keys=3", "-partitions=4")
	if len(lines) != 12 {
		t.Fatalf("publish printed %d lines, want 12:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	lastOffset := make(map[string]int)
	for i, line := range lines {
		m := publishedLine.FindStringSubmatch(line)
		if m == nil || m[2] != strconv.Itoa(i) || m[1] != "customer-"+strconv.Itoa(i%3) {
			t.Fatalf("publish line %d = %q", i, line)
		}
		off, _ := strconv.Atoi(m[4])
		if prev, ok := lastOffset[m[1]]; ok && off <= prev {
			t.Errorf("key %s: offset %d after %d", m[1], off, prev)
		}
		lastOffset[m[1]] = off
	}

	// consume-group: the 12 records, then a second run of the group finds
	// nothing left but what is published next.
	lines = example(t, "consume-group", server, "-stream=shop", "-group=readers", "-count=12")
	values := make(map[string]bool)
	for _, line := range lines {
		m := consumedLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("consume-group line %q", line)
		}
		values[m[4]] = true
	}
	if len(values) != 12 {
		t.Errorf("consume-group printed %d distinct records, want 12:\n%s", len(values), strings.Join(lines, "\n"))
	}
	cutoff := time.Now()
	time.Sleep(20 * time.Millisecond) // the server's clock stamps what follows later
	example(t, "publish", server, "-stream=shop", "-n=2", "-keys=1")
	lines = example(t, "consume-group", server, "-stream=shop", "-group=readers", "-count=2")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "value=order 0") || !strings.HasSuffix(lines[1], "value=order 1") {
		t.Errorf("second consume-group run printed %q, want the 2 new records", lines)
	}

	// replay: from a time between the two publish runs, only the second.
	lines = example(t, "replay", server, "-stream=shop", "-since="+cutoff.Format(time.RFC3339Nano), "-idle=500ms")
	if len(lines) != 2 {
		t.Fatalf("replay printed %q, want the 2 records published after the cutoff", lines)
	}
	for _, line := range lines {
		m := replayedLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("replay line %q", line)
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[3]); err != nil || ts.Before(cutoff) {
			t.Errorf("replayed record of %s, before the cutoff %s", m[3], cutoff)
		}
	}
	lines = example(t, "replay", server, "-stream=shop", "-since=1h", "-idle=500ms")
	if len(lines) != 14 {
		t.Errorf("replay of the last hour printed %d records, want 14", len(lines))
	}
}

// printedRecord is a record a consumer process printed, and when.
type printedRecord struct {
	partition int32
	offset    int64
	at        time.Time
}

// TestGroupConsumerKilled kills a group consumer process in the middle of
// its work. Its partitions move to the surviving consumer, which starts at
// the committed offsets: no record is lost, and the only records handled
// twice are those the killed consumer handled after its last commit.
func TestGroupConsumerKilled(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "jobs", 4)
	publishKeyed(t, c, "jobs", 20, 200, 0)
	if err := buildExamplesOnce(); err != nil {
		t.Fatal(err)
	}

	victim := exec.Command(filepath.Join(binDir, "consume-group"), "-server="+srv.addr, "-stream=jobs", "-group=crew",
		"-delay=5ms", "-commit-interval=100ms")
	victim.Env = cleanEnv()
	var victimErr lockedBuffer
	victim.Stderr = &victimErr
	stdout, err := victim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill() })
	var mu sync.Mutex
	var printed []printedRecord
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			m := consumedLine.FindStringSubmatch(scanner.Text())
			if m == nil {
				t.Errorf("consume-group printed %q", scanner.Text())
				continue
			}
			p, _ := strconv.Atoi(m[1])
			off, _ := strconv.ParseInt(m[2], 10, 64)
			mu.Lock()
			printed = append(printed, printedRecord{int32(p), off, time.Now()})
			mu.Unlock()
		}
	}()
	countPrinted := func() int { mu.Lock(); defer mu.Unlock(); return len(printed) }
	eventually(t, 20*time.Second, "the victim to start consuming", func() bool { return countPrinted() >= 100 })

	// The survivor joins: two partitions move to it in a graceful handover.
	// It commits nothing, so that the group's offsets stay the victim's.
	survivor := newLedger()
	var amu sync.Mutex
	startedAt := make(map[int32]int64) // partition -> the offset the survivor got it at
	cons, err := c.Consume(ctx, "jobs", survivor.handler(1), weir.Group("crew"), weir.AutoCommit(false),
		weir.OnAssignment(func(ev weir.AssignmentEvent) {
			amu.Lock()
			defer amu.Unlock()
			for _, a := range ev.Assigned {
				startedAt[a.Partition] = a.Offset
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 20*time.Second, "the survivor to get partitions", func() bool { return len(cons.Assigned()) == 2 })
	graceful := cons.Assigned()

	time.Sleep(1500 * time.Millisecond)
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	victim.Wait()
	<-readDone

	eventually(t, 20*time.Second, "the survivor to own every partition", func() bool { return len(cons.Assigned()) == 4 })
	info, err := c.DescribeStream(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the survivor to reach the end", func() bool {
		survivor.mu.Lock()
		defer survivor.mu.Unlock()
		for _, p := range info.Partitions {
			if survivor.next[p.Partition] != p.EndOffset {
				return false
			}
		}
		return true
	})
	g, err := c.DescribeGroup(ctx, "crew")
	if err != nil || len(g.Members) != 1 {
		t.Errorf("after the kill the group has members %+v (%v), want the survivor only", g.Members, err)
	}

	victimOffsets := make(map[int32][]int64)
	committedBefore := make(map[int32]int64) // the last offset printed a second before the kill, +1
	for _, r := range printed {
		victimOffsets[r.partition] = append(victimOffsets[r.partition], r.offset)
		if r.at.Before(killedAt.Add(-time.Second)) {
			committedBefore[r.partition] = max(committedBefore[r.partition], r.offset+1)
		}
	}
	survivor.mu.Lock()
	defer survivor.mu.Unlock()
	duplicates := 0
	for _, p := range info.Partitions {
		part, end := p.Partition, p.EndOffset
		start, ok := startedAt[part]
		if !ok {
			t.Fatalf("the survivor never got partition %d", part)
		}
		// The survivor handled [start, end), each once.
		for off := range end {
			n := survivor.count[weir.PartitionOffset{Stream: "jobs", Partition: part, Offset: off}]
			if want := min(1, max(0, int(off-start+1))); n != want {
				t.Fatalf("partition %d offset %d: the survivor handled it %d times, want %d (it started at %d)", part, off, n, want, start)
			}
		}
		// The victim handled [0, start) at least: nothing is lost.
		victim := victimOffsets[part]
		slices.Sort(victim)
		for off := range start {
			if _, found := slices.BinarySearch(victim, off); !found {
				t.Fatalf("partition %d offset %d: handled by neither consumer", part, off)
			}
		}
		// Duplicates: exactly the victim's records from the committed offset on.
		var dups []int64
		for _, off := range victim {
			if off >= start {
				dups = append(dups, off)
			}
		}
		duplicates += len(dups)
		if slices.Contains(graceful, part) {
			if len(dups) > 0 {
				t.Errorf("partition %d, handed over gracefully at %d, was handled twice at %v", part, start, dups)
			}
			continue
		}
		if start < committedBefore[part] {
			t.Errorf("partition %d: the survivor started at %d, but the victim handled up to %d more than a second before it died, with commits every 100ms",
				part, start, committedBefore[part])
		}
		t.Logf("partition %d: killed consumer handled up to %d, committed %d; %d records handled twice", part, slices.Max(victim), start, len(dups))
	}
	t.Logf("%d records handled by the killed consumer, %d handled twice", len(printed), duplicates)
}
