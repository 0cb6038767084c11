package broker

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The event store crash test runs this test binary again as a child whose
// writers append to their own aggregates at exact expected versions and
// report each append that returned ("ok AGG FIRSTVERSION FIRSTPOS IDS");
// the parent kills it with SIGKILL at random moments — between log appends
// and index commits among them — and checks after every restart that every
// acknowledged event is where it was reported, that the index agrees with
// the log, and that appends go on at the right versions.
const (
	eventCrashChildEnv = "WEIR_EVENT_CRASH_CHILD"
	eventCrashWriters  = 4
)

func eventCrashChild(dir string) int {
	b, err := Open(Config{DataDir: dir, JanitorInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 1
	}
	ctx := context.Background()
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	fmt.Fprintln(out, "ready")
	out.Flush()
	var wg sync.WaitGroup
	for w := range eventCrashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agg := fmt.Sprint("acct-", w)
			evs, err := b.ReadAggregate(ctx, agg, 1, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child read:", err)
				os.Exit(1)
			}
			version := int64(len(evs))
			for i := 0; ; i++ {
				n := 1 + i%3
				batch := make([]NewEvent, n)
				ids := make([]string, n)
				for j := range batch {
					ids[j] = fmt.Sprintf("%s-v%d", agg, version+1+int64(j))
					batch[j] = NewEvent{ID: ids[j], Type: "Deposited", Data: []byte(ids[j])}
				}
				res, err := b.AppendEvents(ctx, agg, ExpectedVersion(version), batch)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(1)
				}
				version = res.LastVersion
				mu.Lock()
				fmt.Fprintf(out, "ok %s %d %d %s\n", agg, res.FirstVersion, res.FirstPosition, strings.Join(ids, ","))
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

func TestEventCrashKill(t *testing.T) {
	dir := t.TempDir()
	type acked struct {
		version, position int64
		id                string
	}
	var confirmed []acked
	aggOf := map[string]string{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 10))
	for cycle := range 6 {
		runKilledChild(t, eventCrashChildEnv, dir, time.Duration(30+rng.IntN(300))*time.Millisecond, func(line string) {
			var agg, ids string
			var version, position int64
			if _, err := fmt.Sscanf(line, "ok %s %d %d %s", &agg, &version, &position, &ids); err != nil {
				return
			}
			for j, id := range strings.Split(ids, ",") {
				confirmed = append(confirmed, acked{version + int64(j), position + int64(j), id})
				aggOf[id] = agg
			}
		})

		b := openBroker(t, dir)
		ctx := context.Background()
		end, _ := b.EventLogEnd()
		if cp, err := b.state.EventCheckpoint(); err != nil || cp != end {
			t.Fatalf("cycle %d: index checkpoint %d (%v), log end %d", cycle, cp, err, end)
		}
		if cp, err := b.state.CategoryCheckpoint(); err != nil || cp != end {
			t.Fatalf("cycle %d: category index checkpoint %d (%v), log end %d", cycle, cp, err, end)
		}
		// Every event is in category acct: the category index holds every
		// position, and a category read (through it) returns the log.
		if got := indexedPositions(t, b, "acct"); int64(len(got)) != end || (end > 0 && got[end-1] != end-1) {
			t.Fatalf("cycle %d: the category index holds %d positions, the log %d", cycle, len(got), end)
		}
		checkCategories(t, b, fmt.Sprint("cycle ", cycle), "acct")
		// The log, read in global order: versions contiguous per aggregate.
		inLog := map[string]int64{}
		byID := map[string]Event{}
		for pos := int64(0); pos < end; {
			r, err := b.ReadEvents(ctx, pos, 0, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Events {
				if e.Version != inLog[e.Aggregate]+1 {
					t.Fatalf("cycle %d: %s has version %d after %d in the log", cycle, e.Aggregate, e.Version, inLog[e.Aggregate])
				}
				inLog[e.Aggregate] = e.Version
				byID[e.ID] = e
			}
			pos = r.Next
		}
		// The index agrees with the log.
		for w := range eventCrashWriters {
			agg := fmt.Sprint("acct-", w)
			evs, err := b.ReadAggregate(ctx, agg, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(evs)) != inLog[agg] {
				t.Fatalf("cycle %d: the index has %d events of %s, the log %d", cycle, len(evs), agg, inLog[agg])
			}
			_, err = b.AppendEvents(ctx, agg, ExpectedVersion(inLog[agg]+1), []NewEvent{{ID: fmt.Sprint("probe-", cycle, "-", w), Type: "T"}})
			wantConflict(t, err, inLog[agg])
		}
		// Every acknowledged event is where it was reported.
		for _, a := range confirmed {
			e, ok := byID[a.id]
			if !ok {
				t.Fatalf("cycle %d: acknowledged event %s (version %d, position %d) is lost", cycle, a.id, a.version, a.position)
			}
			if e.Version != a.version || e.Position != a.position || e.Aggregate != aggOf[a.id] {
				t.Fatalf("cycle %d: event %s is version %d at %d of %s, was acknowledged as version %d at %d", cycle, a.id, e.Version, e.Position, e.Aggregate, a.version, a.position)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(confirmed) == 0 {
		t.Fatal("no append was acknowledged in any cycle")
	}
	t.Logf("%d events acknowledged across the kills", len(confirmed))
}
