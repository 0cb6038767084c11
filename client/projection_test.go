package weir_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	weir "github.com/weirmq/weir/client"
)

// The read model of these tests counts how many times each event was
// applied: every count must be exactly 1.

const projectionReadModel = `CREATE TABLE IF NOT EXISTS applied (
    id    TEXT PRIMARY KEY,
    times INTEGER NOT NULL,
    value TEXT    NOT NULL,
    place TEXT    NOT NULL
)`

// openProjectionDB opens (creating) the SQLite database at path with the
// read model; the crash test's child process opens it too.
func openProjectionDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(wal)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec(projectionReadModel); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func testProjectionDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "read.db")
	db, err := openProjectionDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// eventID is what identifies an event in the read model: the event
// store's id, or the record's value (unique in these tests).
func eventID(ev *weir.ProjectionEvent) string {
	if ev.Event != nil {
		return ev.Event.ID
	}
	return string(ev.Value)
}

// countApply counts the applications of each event.
func countApply(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO applied (id, times, value, place) VALUES (?, 1, ?, ?)
		ON CONFLICT (id) DO UPDATE SET times = applied.times + 1`, eventID(ev), string(ev.Value), ev.String())
	return err
}

func resetApplied(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM applied`)
	return err
}

// readModel returns id -> "times value place".
func readModel(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT id, times, value, place FROM applied`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var id, value, place string
		var times int
		if err := rows.Scan(&id, &times, &value, &place); err != nil {
			t.Fatal(err)
		}
		out[id] = fmt.Sprintf("%d %s %s", times, value, place)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func countApplied(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM applied`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkpoint returns the stored positions of a projection.
func checkpoint(t *testing.T, db *sql.DB, name string) map[int32]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT partition_id, next_position FROM `+weir.ProjectionTable+` WHERE name = ?`, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := make(map[int32]int64)
	for rows.Next() {
		var part int32
		var next int64
		if err := rows.Scan(&part, &next); err != nil {
			t.Fatal(err)
		}
		out[part] = next
	}
	return out
}

// checkAppliedOnce checks that the read model holds exactly the events of
// want (id -> value), each applied once.
func checkAppliedOnce(t *testing.T, db *sql.DB, want map[string]string) {
	t.Helper()
	got := readModel(t, db)
	for id, value := range want {
		row, ok := got[id]
		if !ok {
			t.Errorf("event %s never applied", id)
			continue
		}
		if !strings.HasPrefix(row, "1 "+value+" ") {
			t.Errorf("event %s: %q, want applied once with value %q", id, row, value)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("event %s applied but not expected", id)
		}
	}
}

// publishEvents publishes records with values prefix-first … prefix-(first+n-1).
func publishEvents(t *testing.T, c *weir.Client, stream, prefix string, first, n int, want map[string]string) {
	t.Helper()
	var recs []weir.Record
	for i := first; i < first+n; i++ {
		v := fmt.Sprintf("%s-%d", prefix, i)
		recs = append(recs, weir.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: []byte(v)})
		want[v] = v
	}
	if _, err := c.Publish(t.Context(), stream, recs...); err != nil {
		t.Fatal(err)
	}
}

// runProjection runs Project in the background until the test ends or
// stop is called, which returns Project's error.
func runProjection(t *testing.T, c *weir.Client, p weir.Projection) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Project(ctx, p) }()
	t.Cleanup(cancel)
	return func() error {
		cancel()
		return <-done
	}
}

func TestProjectionValidates(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	ok := weir.Projection{Name: "p", DB: db, Dialect: weir.OutboxSQLite, Stream: "s", Apply: countApply, Reset: resetApplied}
	for name, mutate := range map[string]func(*weir.Projection){
		"no name":        func(p *weir.Projection) { p.Name = "" },
		"no db":          func(p *weir.Projection) { p.DB = nil },
		"no source":      func(p *weir.Projection) { p.Stream = "" },
		"two sources":    func(p *weir.Projection) { p.Category = "order" },
		"all and stream": func(p *weir.Projection) { p.AllEvents = true },
		"no apply":       func(p *weir.Projection) { p.Apply = nil },
		"bad dialect":    func(p *weir.Projection) { p.Dialect = 42 },
		"negative batch": func(p *weir.Projection) { p.BatchSize = -1 },
	} {
		p := ok
		mutate(&p)
		if err := c.Project(t.Context(), p); !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("%s: Project = %v, want ErrInvalidArgument", name, err)
		}
	}
	noReset := ok
	noReset.Reset = nil
	if err := c.RebuildProjection(t.Context(), noReset); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("rebuild without Reset: %v, want ErrInvalidArgument", err)
	}
	if err := c.Project(t.Context(), ok); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("projecting a missing stream: %v, want ErrNotFound", err)
	}

	// A projection cannot silently change its source.
	createStream(t, c, "s", 1)
	publishEvents(t, c, "s", "ev", 0, 3, map[string]string{})
	stop := runProjection(t, c, ok)
	eventually(t, time.Minute, "3 events applied", func() bool { return countApplied(t, db) == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	moved := ok
	moved.Stream, moved.Category = "", "order"
	if err := c.Project(t.Context(), moved); !errors.Is(err, weir.ErrInvalidArgument) || !strings.Contains(err.Error(), "stream:s") {
		t.Errorf("same name, other source: %v, want ErrInvalidArgument naming stream:s", err)
	}
	if n := countApplied(t, db); n != 3 {
		t.Errorf("read model changed by refused calls: %d rows", n)
	}
}

func TestProjectionStreamSQLite(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	createStream(t, c, "orders", 3)
	want := map[string]string{}
	publishEvents(t, c, "orders", "ev", 0, 250, want)

	p := weir.Projection{Name: "orders-view", DB: db, Dialect: weir.OutboxSQLite, Stream: "orders", BatchSize: 40,
		PartitionCheckInterval: 100 * time.Millisecond, Apply: countApply, Reset: resetApplied}
	stop := runProjection(t, c, p)
	eventually(t, 2*time.Minute, "250 events applied", func() bool { return countApplied(t, db) == 250 })
	// Events published while it runs are applied too (flushed when the
	// source is idle, with fewer than BatchSize).
	publishEvents(t, c, "orders", "ev", 250, 5, want)
	eventually(t, 2*time.Minute, "255 events applied", func() bool { return countApplied(t, db) == 255 })
	// So are the records of partitions added to the stream.
	if _, err := c.AddPartitions(t.Context(), "orders", 4); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishPartition(t.Context(), "orders", 3, weir.Record{Value: []byte("ev-late")}); err != nil {
		t.Fatal(err)
	}
	want["ev-late"] = "ev-late"
	eventually(t, 2*time.Minute, "the new partition's event applied", func() bool { return countApplied(t, db) == 256 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, want)

	info, err := c.DescribeStream(t.Context(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, part := range info.Partitions {
		ends[part.Partition] = part.EndOffset
	}
	if cp := checkpoint(t, db, "orders-view"); !maps.Equal(cp, ends) {
		t.Errorf("checkpoint %v, want the partitions' ends %v", cp, ends)
	}

	// Rebuild: the read model and checkpoint are cleared together, and the
	// next run builds the same read model again.
	before := readModel(t, db)
	if err := c.RebuildProjection(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if n, cp := countApplied(t, db), checkpoint(t, db, "orders-view"); n != 0 || len(cp) != 0 {
		t.Fatalf("after rebuild: %d rows, checkpoint %v; want none", n, cp)
	}
	stop = runProjection(t, c, p)
	eventually(t, 2*time.Minute, "rebuilt", func() bool { return countApplied(t, db) == 256 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if after := readModel(t, db); !maps.Equal(before, after) {
		t.Errorf("rebuilt read model differs:\nbefore %v\nafter  %v", before, after)
	}
}

func TestProjectionEventStoreSQLite(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	orders, all := map[string]string{}, map[string]string{}
	for i := range 30 {
		aggregate := fmt.Sprintf("order-%d", i%4)
		if i%5 == 0 {
			aggregate = fmt.Sprintf("user-%d", i)
		}
		data := fmt.Sprintf(`{"n": %d}`, i)
		id := fmt.Sprintf("e-%02d", i)
		if _, err := c.Append(t.Context(), aggregate, weir.AnyVersion, weir.EventData{ID: id, Type: "Happened", Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
		all[id] = data
		if weir.Category(aggregate) == "order" {
			orders[id] = data
		}
	}
	byCategory := weir.Projection{Name: "orders", DB: db, Dialect: weir.OutboxSQLite, Category: "order", BatchSize: 7,
		Apply: func(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
			if typ, _ := ev.Header(weir.HeaderType); string(typ) != "Happened" || ev.Event.Type != "Happened" ||
				string(ev.Key) != ev.Event.Aggregate || ev.Position != ev.Event.Position || ev.Partition != -1 {
				return fmt.Errorf("event %v: type header %q, key %q", ev, typ, ev.Key)
			}
			return countApply(ctx, tx, ev)
		}, Reset: resetApplied}
	stop := runProjection(t, c, byCategory)
	eventually(t, 2*time.Minute, "the order events applied", func() bool { return countApplied(t, db) == len(orders) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, orders)
	cp := checkpoint(t, db, "orders")
	if len(cp) != 1 || cp[-1] < 29 {
		t.Errorf("checkpoint %v, want one global position past the last order event", cp)
	}

	// Every event, into a fresh read model.
	if err := c.RebuildProjection(t.Context(), byCategory); err != nil {
		t.Fatal(err)
	}
	everything := weir.Projection{Name: "everything", DB: db, Dialect: weir.OutboxSQLite, AllEvents: true, Apply: countApply, Reset: resetApplied}
	stop = runProjection(t, c, everything)
	eventually(t, 2*time.Minute, "all events applied", func() bool { return countApplied(t, db) == len(all) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, all)
	if cp := checkpoint(t, db, "everything"); cp[-1] != 30 {
		t.Errorf("checkpoint %v, want position 30", cp)
	}
}

var errRefused = errors.New("refused by the test")

func TestProjectionApplyError(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	createStream(t, c, "bills", 1)
	want := map[string]string{}
	publishEvents(t, c, "bills", "bill", 0, 100, want)

	failing := weir.Projection{Name: "bills", DB: db, Dialect: weir.OutboxSQLite, Stream: "bills", BatchSize: 10,
		FlushInterval: time.Hour, // only full batches: all 100 events are there
		Apply: func(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
			if err := countApply(ctx, tx, ev); err != nil {
				return err
			}
			if string(ev.Value) == "bill-57" {
				return errRefused
			}
			return nil
		}}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := c.Project(ctx, failing)
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "bills/0@57") {
		t.Fatalf("Project = %v, want the Apply error at bills/0@57", err)
	}
	// Batches 0-9 … 40-49 committed; 50-59 rolled back with its checkpoint.
	if n := countApplied(t, db); n != 50 {
		t.Errorf("%d events in the read model, want the 50 of the committed batches", n)
	}
	if cp := checkpoint(t, db, "bills"); cp[0] != 50 {
		t.Errorf("checkpoint %v, want partition 0 at 50", cp)
	}

	fixed := failing
	fixed.Apply = countApply
	fixed.FlushInterval = 0
	stop := runProjection(t, c, fixed)
	eventually(t, 2*time.Minute, "100 events applied", func() bool { return countApplied(t, db) == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, want)
}

// The crash test's child: a process running a projection, started by
// TestProjectionKilledMidBatch with these variables set, before TestMain.
const (
	envProjectionChild  = "WEIR_TEST_PROJECTION_CHILD" // the server's address
	envProjectionDB     = "WEIR_TEST_PROJECTION_DB"
	envProjectionSource = "WEIR_TEST_PROJECTION_SOURCE"  // "stream" (orders) or "category" (order)
	envProjectionHangAt = "WEIR_TEST_PROJECTION_HANG_AT" // hang in the batch that applies this many events of the process
)

func init() {
	if addr := os.Getenv(envProjectionChild); addr != "" {
		os.Exit(projectionChild(addr))
	}
}

func projectionChild(addr string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "projection child:", err); return 1 }
	ctx := context.Background()
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		return fail(err)
	}
	db, err := openProjectionDB(os.Getenv(envProjectionDB))
	if err != nil {
		return fail(err)
	}
	hangAt := -1
	fmt.Sscan(os.Getenv(envProjectionHangAt), &hangAt)
	applied := 0
	p := weir.Projection{Name: "crash", DB: db, Dialect: weir.OutboxSQLite, BatchSize: 25,
		Apply: func(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
			if err := countApply(ctx, tx, ev); err != nil {
				return err
			}
			applied++
			if applied == hangAt {
				// The batch's transaction is open and has changed the read
				// model: the parent kills the process now.
				fmt.Println("hanging mid-batch")
				select {}
			}
			return nil
		},
		OnCommit: func(n int) { fmt.Println("committed", n) },
	}
	if os.Getenv(envProjectionSource) == "category" {
		p.Category = "order"
	} else {
		p.Stream = "orders"
	}
	if err := c.Project(ctx, p); err != nil {
		return fail(err)
	}
	return 0
}

// startProjectionChild runs the child; lines receives its output.
func startProjectionChild(t *testing.T, addr, dbPath, source string, hangAt int) (*exec.Cmd, <-chan string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(cleanEnv(), envProjectionChild+"="+addr, envProjectionDB+"="+dbPath, envProjectionSource+"="+source,
		fmt.Sprintf("%s=%d", envProjectionHangAt, hangAt))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, lines
}

// appendOrderEvents appends events first… to aggregates of the category
// "order", and as many to "user-…" aggregates (which the projection skips);
// it returns the global position after the last order event.
func appendOrderEvents(t *testing.T, c *weir.Client, first, n int, want map[string]string) int64 {
	t.Helper()
	var after int64
	for i := first; i < first+n; i++ {
		id, data := fmt.Sprintf("evt-%d", i), fmt.Sprintf(`{"n": %d}`, i)
		res, err := c.Append(t.Context(), fmt.Sprintf("order-%d", i%9), weir.AnyVersion, weir.EventData{ID: id, Type: "OrderChanged", Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		want[id] = data
		after = res.LastPosition + 1
		if _, err := c.Append(t.Context(), fmt.Sprintf("user-%d", i), weir.AnyVersion, weir.EventData{Type: "Other"}); err != nil {
			t.Fatal(err)
		}
	}
	return after
}

// TestProjectionKilledMidBatch kills (SIGKILL) a process running a
// projection while its batch's transaction is open, after it committed
// several batches, and restarts it: every event is applied exactly once.
func TestProjectionKilledMidBatch(t *testing.T) {
	for _, source := range []string{"stream", "category"} {
		t.Run(source, func(t *testing.T) {
			s := startServer(t)
			c := s.dial(t)
			db, path := testProjectionDB(t)
			want := map[string]string{}
			var after int64 // the checkpoint once everything is applied
			more := func(first, n int) {
				if source == "stream" {
					publishEvents(t, c, "orders", "ev", first, n, want)
					after = int64(first + n) // the sum over the partitions
				} else {
					after = appendOrderEvents(t, c, first, n, want)
				}
			}
			if source == "stream" {
				createStream(t, c, "orders", 3)
			}
			more(0, 300)

			// The first process hangs inside the batch that applies its
			// 110th event, after several batches were committed, and is
			// killed there.
			cmd, lines := startProjectionChild(t, s.addr, path, source, 110)
			committed := 0
			timeout := time.After(3 * time.Minute)
			for hanging := false; !hanging; {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatal("the child exited before hanging mid-batch")
					}
					var n int
					if _, err := fmt.Sscanf(line, "committed %d", &n); err == nil {
						committed += n
					}
					hanging = line == "hanging mid-batch"
				case <-timeout:
					t.Fatal("the child did not reach its 110th event")
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if committed == 0 || committed >= 110 {
				t.Fatalf("%d events committed before the kill, want some but not the hanging batch", committed)
			}
			if n := countApplied(t, db); n != committed {
				t.Fatalf("after the kill: %d events in the read model, want the %d of the committed batches", n, committed)
			}

			// Restarted, it goes on from the checkpoint: every event
			// exactly once, also those that come while it runs.
			cmd, _ = startProjectionChild(t, s.addr, path, source, -1)
			eventually(t, 3*time.Minute, "300 events applied", func() bool { return countApplied(t, db) == 300 })
			more(300, 10)
			eventually(t, 3*time.Minute, "310 events applied", func() bool { return countApplied(t, db) == 310 })
			cmd.Process.Kill()
			cmd.Wait()
			checkAppliedOnce(t, db, want)
			var sum int64
			for _, next := range checkpoint(t, db, "crash") {
				sum += next
			}
			if source == "stream" && sum != after || source == "category" && sum < after {
				t.Errorf("checkpoint %d, want %d", sum, after)
			}
		})
	}
}

func TestProjectionRebuildWhileRunning(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	createStream(t, c, "carts", 1)
	want := map[string]string{}
	publishEvents(t, c, "carts", "cart", 0, 20, want)
	p := weir.Projection{Name: "carts", DB: db, Dialect: weir.OutboxSQLite, Stream: "carts", Apply: countApply, Reset: resetApplied}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Project(ctx, p) }()
	eventually(t, 2*time.Minute, "20 events applied", func() bool { return countApplied(t, db) == 20 })

	// Rebuilt under the running projection: its next batch finds its
	// checkpoint gone and is rolled back instead of applied to the empty
	// read model.
	if err := c.RebuildProjection(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, c, "carts", "cart", 20, 5, want)
	if err := <-done; !errors.Is(err, weir.ErrProjectionConflict) || !errors.Is(err, weir.ErrAborted) {
		t.Fatalf("Project = %v, want ErrProjectionConflict", err)
	}
	if n, cp := countApplied(t, db), checkpoint(t, db, "carts"); n != 0 || len(cp) != 0 {
		t.Fatalf("after the conflict: %d rows, checkpoint %v; want the rebuilt (empty) state", n, cp)
	}
	stop := runProjection(t, c, p)
	eventually(t, 2*time.Minute, "25 events applied", func() bool { return countApplied(t, db) == 25 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, want)
}

// TestProjectionMySQL projects a stream and a category into MariaDB (the
// MySQL dialect), with a rebuild; startMariaDB is outbox_mysql_test.go's.
func TestProjectionMySQL(t *testing.T) {
	db := openMySQL(t, startMariaDB(t), "readmodel")
	if _, err := db.Exec(`CREATE TABLE applied (id VARCHAR(64) PRIMARY KEY, times INT NOT NULL, value TEXT NOT NULL, place TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	apply := func(ctx context.Context, tx *sql.Tx, ev *weir.ProjectionEvent) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO applied (id, times, value, place) VALUES (?, 1, ?, ?)
			ON DUPLICATE KEY UPDATE times = times + 1`, eventID(ev), string(ev.Value), ev.String())
		return err
	}
	s := startServer(t)
	c := s.dial(t)
	createStream(t, c, "orders", 3)
	want := map[string]string{}
	publishEvents(t, c, "orders", "ev", 0, 120, want)
	stream := weir.Projection{Name: "orders", DB: db, Dialect: weir.OutboxMySQL, Stream: "orders", BatchSize: 16, Apply: apply, Reset: resetApplied}
	stop := runProjection(t, c, stream)
	eventually(t, 2*time.Minute, "120 events applied", func() bool { return countApplied(t, db) == 120 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, want)
	before := readModel(t, db)
	if err := c.RebuildProjection(t.Context(), stream); err != nil {
		t.Fatal(err)
	}
	if n := countApplied(t, db); n != 0 {
		t.Fatalf("%d rows after the rebuild", n)
	}
	stop = runProjection(t, c, stream)
	eventually(t, 2*time.Minute, "rebuilt", func() bool { return countApplied(t, db) == 120 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if after := readModel(t, db); !maps.Equal(before, after) {
		t.Errorf("rebuilt read model differs:\nbefore %v\nafter  %v", before, after)
	}

	if err := c.RebuildProjection(t.Context(), stream); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{}
	after := appendOrderEvents(t, c, 0, 40, want)
	category := weir.Projection{Name: "orders-by-category", DB: db, Dialect: weir.OutboxMySQL, Category: "order", BatchSize: 16, Apply: apply}
	stop = runProjection(t, c, category)
	eventually(t, 2*time.Minute, "40 events applied", func() bool { return countApplied(t, db) == 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkAppliedOnce(t, db, want)
	if cp := checkpoint(t, db, "orders-by-category"); cp[-1] < after {
		t.Errorf("checkpoint %v, want at least %d", cp, after)
	}
}

// TestProjectionsShareTheTable starts several projections of one database
// at once: each creates the checkpoint table if missing, concurrently.
func TestProjectionsShareTheTable(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	db, _ := testProjectionDB(t)
	want := map[string]string{}
	var stops []func() error
	for i := range 4 {
		stream := fmt.Sprintf("s%d", i)
		createStream(t, c, stream, 1)
		publishEvents(t, c, stream, stream, 0, 10, want)
		stops = append(stops, runProjection(t, c, weir.Projection{Name: stream, DB: db, Dialect: weir.OutboxSQLite, Stream: stream, Apply: countApply}))
	}
	eventually(t, 2*time.Minute, "40 events applied", func() bool { return countApplied(t, db) == 40 })
	for _, stop := range stops {
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	checkAppliedOnce(t, db, want)
}
