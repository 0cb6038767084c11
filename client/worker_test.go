package weir_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

var workerLine = regexp.MustCompile(`^done partition=(\d+) offset=(\d+) delivery=(\d+) command=(.*)$`)

// TestWorkerExample runs the worker example on a queue of commands: the
// good ones are done once, the failing one is dead-lettered after its
// attempts, the malformed ones at once.
func TestWorkerExample(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	// The worker creates the queue; commands published before it starts
	// wait in the queue, so create it first the same way.
	example(t, "worker", "-server="+srv.addr, "-queue=commands", "-create", "-max-deliveries=3", "-idle=300ms")
	var commands []string
	for i := range 20 {
		commands = append(commands, "echo:"+strconv.Itoa(i))
	}
	commands = append(commands, "sleep:10ms", "fail:disk full", "sleep:soon", "launch:rocket")
	publishValues(t, c, "commands", nil, commands...)

	lines := example(t, "worker", "-server="+srv.addr, "-queue=commands", "-prefetch=5", "-idle=1s")
	done := make(map[string]int)
	for _, line := range lines {
		m := workerLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("worker printed %q", line)
		}
		if m[3] != "1" {
			t.Errorf("%s was done at delivery %s", m[4], m[3])
		}
		done[m[4]]++
	}
	if len(done) != 21 {
		t.Errorf("the worker did %d commands, want the 20 echos and the sleep: %v", len(done), done)
	}
	for cmd, n := range done {
		if n != 1 {
			t.Errorf("%s done %d times", cmd, n)
		}
	}
	info, err := c.DescribeQueue(ctx, "commands")
	if err != nil || info.Depth != 0 || info.DeadLettered != 3 {
		t.Errorf("queue after the worker: %+v, %v; want empty, 3 dead-lettered", info, err)
	}
	res, err := c.Fetch(ctx, "commands.dlq", 0, 0, 0, 0)
	if err != nil || len(res.Records) != 3 {
		t.Fatalf("dead letters: %+v, %v", res, err)
	}
	reasons := make(map[string]string)
	for _, r := range res.Records {
		reason, _ := r.Header(weir.HeaderDeadLetterReason)
		last, _ := r.Header(weir.HeaderLastError)
		reasons[string(r.Value)] = string(reason) + ": " + string(last)
	}
	for cmd, want := range map[string]string{
		"fail:disk full": "max-deliveries: command failed: disk full",
		"sleep:soon":     `rejected: malformed command: time: invalid duration "soon"`,
		"launch:rocket":  `rejected: unknown command "launch"`,
	} {
		if reasons[cmd] != want {
			t.Errorf("dead letter %s: %q, want %q", cmd, reasons[cmd], want)
		}
	}
}

// TestSharedConsumerKilled kills a worker process in the middle of its
// work. The records it held unsettled go to the surviving consumer at
// once, so every record is done; the only records done twice are among
// those the victim held when it died, at most its prefetch.
func TestSharedConsumerKilled(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "tasks", Partitions: 4})
	const total, prefetch = 600, 10
	var commands []string
	for i := range total {
		commands = append(commands, "echo:"+strconv.Itoa(i))
	}
	publishValues(t, c, "tasks", nil, commands...)
	if err := buildExamplesOnce(); err != nil {
		t.Fatal(err)
	}
	victim := exec.Command(filepath.Join(binDir, "worker"), "-server="+srv.addr, "-queue=tasks",
		"-prefetch="+strconv.Itoa(prefetch), "-work=20ms")
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
	byVictim := make(map[string]int)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			m := workerLine.FindStringSubmatch(scanner.Text())
			if m == nil {
				t.Errorf("worker printed %q", scanner.Text())
				continue
			}
			mu.Lock()
			byVictim[m[4]]++
			mu.Unlock()
		}
	}()
	victimDone := func() int { mu.Lock(); defer mu.Unlock(); return len(byVictim) }
	eventually(t, 20*time.Second, "the victim to start working", func() bool { return victimDone() >= 50 })

	// The survivor joins, then the victim dies.
	var smu sync.Mutex
	bySurvivor := make(map[string]int)
	redelivered := 0
	cons, err := c.Consume(ctx, "tasks", func(_ context.Context, m *weir.Message) error {
		time.Sleep(20 * time.Millisecond)
		smu.Lock()
		defer smu.Unlock()
		bySurvivor[string(m.Value)]++
		if m.DeliveryCount > 1 {
			redelivered++
		}
		return nil
	}, weir.Shared(""), weir.Prefetch(prefetch))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	survivorDone := func() int { smu.Lock(); defer smu.Unlock(); return len(bySurvivor) }
	eventually(t, 20*time.Second, "the survivor to start working", func() bool { return survivorDone() >= 20 })
	if done := victimDone() + survivorDone(); done > total-100 {
		t.Fatalf("%d of %d records done before the kill: too few left to see them redelivered", done, total)
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.Wait()
	<-readDone

	waitDepth(t, c, "tasks", "tasks", 0)
	mu.Lock()
	defer mu.Unlock()
	smu.Lock()
	defer smu.Unlock()
	twice := 0
	for _, cmd := range commands {
		v, s := byVictim[cmd], bySurvivor[cmd]
		switch {
		case v+s == 0:
			t.Errorf("%s was never done", cmd)
		case v > 1 || s > 1:
			t.Errorf("%s done %d times by the victim, %d by the survivor", cmd, v, s)
		case v+s == 2:
			twice++
		}
	}
	if twice > prefetch {
		t.Errorf("%d records done twice, more than the victim's prefetch of %d", twice, prefetch)
	}
	if redelivered == 0 {
		t.Errorf("the survivor got no record the victim held")
	}
	t.Logf("victim did %d, survivor %d (%d redelivered to it), %d done twice", len(byVictim), len(bySurvivor), redelivered, twice)
}
