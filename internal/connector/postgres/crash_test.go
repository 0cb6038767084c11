package postgres

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/connector"
)

// The crash test runs this test binary again as a child that opens a
// broker and runs a connector in it (Weir, as far as CDC goes), and kills
// it with SIGKILL at random moments while a writer changes the table.
const crashChildEnv = "WEIR_CDC_CRASH_CHILD" // "<data dir>\n<dsn>"

func TestMain(m *testing.M) {
	if arg := os.Getenv(crashChildEnv); arg != "" {
		os.Exit(crashChild(arg))
	}
	os.Exit(m.Run())
}

func crashChild(arg string) int {
	dir, dsn, _ := strings.Cut(arg, "\n")
	b, err := broker.Open(broker.Config{DataDir: dir, JanitorInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open broker:", err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("child", os.Getpid())
	cfg := Config{Name: "crash", DSN: dsn, Tables: []string{"ledger"}, StatusInterval: 100 * time.Millisecond, BatchRecords: 50}
	c, err := New(cfg, Options{Sink: connector.NewBrokerSink(b, cfg.StreamDefaults()), Store: b, Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	go func() {
		for c.Stats().State != StateStreaming {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("streaming")
	}()
	connector.Supervise(context.Background(), logger, connector.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, c.Run, nil)
	return 0
}

// runCrashChild starts a child and returns once it printed "streaming"
// (or after wait, when it may still be in its snapshot), and a function
// that kills it.
func runCrashChild(t *testing.T, dir, dsn string, wait time.Duration) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+"\n"+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill = func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	streaming := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "streaming" {
				close(streaming)
			}
		}
	}()
	select {
	case <-streaming:
	case <-time.After(wait):
	}
	return kill
}

// Weir (a broker and the connector in a child process) is killed with
// SIGKILL again and again, during the snapshot and while a writer inserts,
// updates and deletes rows; after the last restart every change is in the
// streams: the latest record of each key is the row as PostgreSQL has it
// (a tombstone for a deleted row; nothing for a row deleted before the
// snapshot).
func TestConnectorSurvivesCrashes(t *testing.T) {
	s := startPostgres(t)
	dir := t.TempDir()
	s.Exec(t, `CREATE TABLE public.ledger (id int PRIMARY KEY, v int NOT NULL);
		INSERT INTO public.ledger SELECT g, 0 FROM generate_series(1, 5000) g`)

	const last = 9000
	writerDone := runWriter(s, 5001, last, 1, func(id int) string {
		sql := fmt.Sprintf(`INSERT INTO public.ledger VALUES (%d, 1); UPDATE public.ledger SET v = v + 1 WHERE id = %d`, id, id-4000)
		if id%7 == 0 {
			sql += fmt.Sprintf(`; DELETE FROM public.ledger WHERE id = %d`, id-3000)
		}
		return sql
	})

	// The first child is killed early, most likely within its snapshot.
	kill := runCrashChild(t, dir, s.ConnString(), 150*time.Millisecond)
	kill()
	for range 5 {
		kill := runCrashChild(t, dir, s.ConnString(), 30*time.Second)
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		kill()
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	_, target := slotPosition(t, s, "weir_crash")
	kill = runCrashChild(t, dir, s.ConnString(), 30*time.Second)
	deadline := time.Now().Add(time.Minute)
	for {
		confirmed, _ := slotPosition(t, s, "weir_crash")
		if confirmed >= target {
			break
		}
		if time.Now().After(deadline) {
			kill()
			t.Fatalf("slot confirmed %s, not %s", confirmed, target)
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill()

	b := openBroker(t, dir)
	defer b.Close()
	recs := readStream(t, b, "crash.public.ledger")

	latest := make(map[float64]cdcRecord)
	for _, r := range recs {
		latest[r.Key["id"].(float64)] = r
	}
	want := make(map[float64]float64)
	for _, row := range s.Exec(t, `SELECT id, v FROM public.ledger`)[0].Rows {
		var id, v float64
		fmt.Sscan(string(row[0]), &id)
		fmt.Sscan(string(row[1]), &v)
		want[id] = v
	}
	for id := 1.0; id <= last; id++ {
		r, found := latest[id]
		v, exists := want[id]
		switch {
		case !found && exists:
			t.Fatalf("row %v is not in the stream", id)
		case !found:
			// Deleted before the snapshot that counted (the first
			// was interrupted and taken again).
		case !exists && r.op() != "tombstone":
			t.Fatalf("row %v was deleted, its latest record is %s", id, r.op())
		case exists && (r.Envelope == nil || r.row("after")["v"] != v):
			t.Fatalf("row %v has v=%v, its latest record is %s %v; its records:\n%s", id, v, r.op(), r.Envelope, history(recs, id))
		}
	}
	// Repeats: the same change (op, key, position) written again by a run
	// that followed a kill; rows read again by a snapshot taken again.
	// A repeat carries the message-id of the first writing.
	repeats := 0
	changes := make(map[string]string) // change -> its message-id
	for _, r := range recs {
		if r.Envelope == nil {
			continue
		}
		k := fmt.Sprint(r.op(), r.Key["id"], r.source()["sequence"])
		if id, ok := changes[k]; ok {
			repeats++
			if r.op() != "r" && id != r.Headers["message-id"] {
				t.Errorf("change %s written again with message-id %q, first %q", k, r.Headers["message-id"], id)
			}
		}
		changes[k] = r.Headers["message-id"]
	}
	t.Logf("%d records for %d rows (%d deleted); %d changes written again after the kills", len(recs), last, last-len(want), repeats)
}

// history lists the records of one key, for a failure message.
func history(recs []cdcRecord, id float64) string {
	var b strings.Builder
	for _, r := range recs {
		if r.Key["id"] != id {
			continue
		}
		if r.Envelope == nil {
			fmt.Fprintf(&b, "  offset %d tombstone\n", r.Offset)
			continue
		}
		fmt.Fprintf(&b, "  offset %d %s v=%v snapshot=%v sequence=%v message-id=%s\n", r.Offset, r.op(), r.row("after")["v"],
			r.source()["snapshot"], r.source()["sequence"], r.Headers["message-id"])
	}
	return b.String()
}
