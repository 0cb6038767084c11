package weir_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// ledger records what consumers handled, to check delivery and order.
type ledger struct {
	mu         sync.Mutex
	count      map[weir.PartitionOffset]int // how often each record was handled
	byConsumer map[int][]weir.Record
	seqs       map[string][]int // per key, the sequence numbers in the order handled
	next       map[int32]int64  // per partition, the offset after the highest handled
	handovers  []string         // assignment offsets that did not match next
}

func newLedger() *ledger {
	return &ledger{
		count:      make(map[weir.PartitionOffset]int),
		byConsumer: make(map[int][]weir.Record),
		seqs:       make(map[string][]int),
		next:       make(map[int32]int64),
	}
}

func (l *ledger) handler(consumer int) weir.Handler {
	return func(_ context.Context, m *weir.Message) error {
		key, seq := parseValue(m.Value)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.count[weir.PartitionOffset{Stream: m.Stream, Partition: m.Partition, Offset: m.Offset}]++
		l.byConsumer[consumer] = append(l.byConsumer[consumer], m.Record)
		l.seqs[key] = append(l.seqs[key], seq)
		l.next[m.Partition] = max(l.next[m.Partition], m.Offset+1)
		return nil
	}
}

// checkHandover is an OnAssignment hook: a partition must be handed over at
// the offset after the last one handled, since each owner commits what it
// handled before it gives a partition up.
func (l *ledger) checkHandover(consumer int) func(weir.AssignmentEvent) {
	return func(ev weir.AssignmentEvent) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, a := range ev.Assigned {
			if a.Offset != l.next[a.Partition] {
				l.handovers = append(l.handovers, fmt.Sprintf("consumer %d got partition %d at offset %d, but %d records were handled",
					consumer, a.Partition, a.Offset, l.next[a.Partition]))
			}
		}
	}
}

func (l *ledger) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.count)
}

// check verifies that every one of want records was handled exactly once
// and each key's records in order.
func (l *ledger) check(t *testing.T, want int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.count) != want {
		t.Errorf("%d distinct records handled, want %d", len(l.count), want)
	}
	for pos, n := range l.count {
		if n != 1 {
			t.Errorf("record %d/%d handled %d times", pos.Partition, pos.Offset, n)
		}
	}
	for key, seqs := range l.seqs {
		if !slices.IsSorted(seqs) {
			t.Errorf("key %s handled out of order: %v", key, seqs)
		}
	}
	for _, h := range l.handovers {
		t.Error(h)
	}
}

func recordValue(key string, seq int) []byte { return []byte(key + ":" + strconv.Itoa(seq)) }

func parseValue(v []byte) (string, int) {
	key, seq, _ := strings.Cut(string(v), ":")
	n, _ := strconv.Atoi(seq)
	return key, n
}

// publishKeyed publishes perKey records for each of keys keys through a
// Producer, with values "key:seq", seq counting from first.
func publishKeyed(t *testing.T, c *weir.Client, stream string, keys, perKey, first int) {
	t.Helper()
	p := c.NewProducer(stream, weir.Linger(2*time.Millisecond), weir.MaxBatchRecords(200))
	var mu sync.Mutex
	var errs []error
	for seq := first; seq < first+perKey; seq++ {
		for k := range keys {
			key := "key" + strconv.Itoa(k)
			p.Send(t.Context(), weir.Record{Key: []byte(key), Value: recordValue(key, seq)}, func(_ weir.PublishResult, err error) {
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
	}
	if err := p.Close(t.Context()); err != nil {
		t.Fatalf("Producer.Close: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d records failed, the first with %v", len(errs), errs[0])
	}
}

// TestGroupOfThree: 8 partitions, keyed records, three consumers in a group.
// Each record is handled once and each key in order; when one consumer stops,
// its partitions move to the others, which go on from the committed offsets,
// so that nothing is lost nor handled twice.
func TestGroupOfThree(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "events", 8)
	const keys, perKey = 40, 50
	publishKeyed(t, c, "events", keys, perKey, 0)

	l := newLedger()
	var consumers []*weir.Consumer
	for i := range 3 {
		cons, err := c.Consume(ctx, "events", l.handler(i),
			weir.Group("workers"), weir.Start(weir.Earliest()), weir.AutoCommitInterval(100*time.Millisecond),
			weir.SessionTimeout(5*time.Second), weir.OnAssignment(l.checkHandover(i)))
		if err != nil {
			t.Fatalf("Consume %d: %v", i, err)
		}
		consumers = append(consumers, cons)
	}
	eventually(t, 30*time.Second, "every record to be handled", func() bool { return l.distinct() == keys*perKey })
	eventually(t, 10*time.Second, "the three consumers to share the partitions", func() bool {
		var all []int32
		for _, cons := range consumers {
			if len(cons.Assigned()) == 0 {
				return false
			}
			all = append(all, cons.Assigned()...)
		}
		slices.Sort(all)
		return slices.Equal(all, []int32{0, 1, 2, 3, 4, 5, 6, 7})
	})
	l.check(t, keys*perKey)

	// Stop one consumer while records flow: the others take its partitions
	// over from the offsets it committed on the way out.
	stopped := consumers[0].Assigned()
	done := make(chan struct{})
	go func() {
		defer close(done)
		publishKeyed(t, c, "events", keys, perKey, perKey)
	}()
	if err := consumers[0].Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-done
	eventually(t, 30*time.Second, "the records published after the stop", func() bool { return l.distinct() == 2*keys*perKey })
	eventually(t, 10*time.Second, "the stopped consumer's partitions to move", func() bool {
		var all []int32
		for _, cons := range consumers[1:] {
			all = append(all, cons.Assigned()...)
		}
		return len(all) == 8
	})
	for _, cons := range consumers[1:] {
		if err := cons.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	l.check(t, 2*keys*perKey)
	t.Logf("consumer 0 read partitions %v before it stopped", stopped)

	g, err := c.DescribeGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if g.Lag() != 0 || len(g.Offsets) != 8 || len(g.Members) != 0 {
		t.Errorf("group after every consumer stopped: lag %d, %d offsets, %d members; want 0, 8, 0", g.Lag(), len(g.Offsets), len(g.Members))
	}
}

// TestManualCommit commits some messages explicitly, with auto-commit off.
func TestManualCommit(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "manual", 1)
	for i := range 20 {
		if _, err := c.Publish(ctx, "manual", weir.Record{Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	handled := 0
	cons, err := c.Consume(ctx, "manual", func(ctx context.Context, m *weir.Message) error {
		mu.Lock()
		handled++
		mu.Unlock()
		if m.Offset == 11 {
			return m.Commit(ctx)
		}
		return nil
	}, weir.Group("manual"), weir.Start(weir.Earliest()), weir.AutoCommit(false))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "20 records", func() bool { mu.Lock(); defer mu.Unlock(); return handled == 20 })
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := c.DescribeGroup(ctx, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Offsets) != 1 || g.Offsets[0].Offset != 12 {
		t.Fatalf("committed %+v, want offset 12 (after the record committed by hand)", g.Offsets)
	}

	// Consumer.Commit commits everything handled.
	cons, err = c.Consume(ctx, "manual", func(context.Context, *weir.Message) error { return nil },
		weir.Group("manual"), weir.AutoCommit(false))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the remaining records", func() bool {
		if err := cons.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		g, err := c.DescribeGroup(ctx, "manual")
		return err == nil && len(g.Offsets) == 1 && g.Offsets[0].Offset == 20
	})
	cons.Close(ctx)
}

// TestHandlerError stops the consumer with the handler's error and leaves
// the failed record uncommitted.
func TestHandlerError(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "failing", 1)
	for i := range 10 {
		if _, err := c.Publish(ctx, "failing", weir.Record{Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	errPoison := fmt.Errorf("poison record")
	cons, err := c.Consume(ctx, "failing", func(_ context.Context, m *weir.Message) error {
		if string(m.Value) == "6" {
			return errPoison
		}
		return nil
	}, weir.Group("failing"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-cons.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer did not stop after its handler failed")
	}
	if err := cons.Wait(); err == nil || !strings.Contains(err.Error(), "offset 6") || !errors.Is(err, errPoison) {
		t.Errorf("Wait = %v, want the handler's error at offset 6", err)
	}
	g, err := c.DescribeGroup(ctx, "failing")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Offsets) != 1 || g.Offsets[0].Offset != 6 {
		t.Errorf("committed %+v, want 6: the records before the failed one", g.Offsets)
	}
}

// TestSmallCredits checks that credits flow back: with a buffer of 3, a
// thousand records all arrive.
func TestSmallCredits(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	createStream(t, c, "credits", 2)
	publishKeyed(t, c, "credits", 10, 100, 0)
	l := newLedger()
	cons, err := c.Consume(t.Context(), "credits", l.handler(0), weir.Start(weir.Earliest()), weir.Credits(3))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "1000 records", func() bool { return l.distinct() == 1000 })
	cons.Close(t.Context())
	l.check(t, 1000)
}
