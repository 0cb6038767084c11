package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/state"
)

// holdStateCommits stops every state store commit until the returned
// function is called: a transaction that takes the store's commit lock
// exclusively (as DeleteStreamOffsets does) and waits.
func holdStateCommits(t *testing.T, b *Broker) (release func()) {
	t.Helper()
	holding, resume, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- b.state.Update(func(tx *state.Tx) error {
			if err := tx.DeleteStreamOffsets("no-such-stream"); err != nil {
				return err
			}
			close(holding)
			<-resume
			return nil
		})
	}()
	select {
	case <-holding:
	case err := <-done:
		t.Fatalf("holding commits: %v", err)
	}
	released := false
	return func() {
		if released {
			return
		}
		released = true
		close(resume)
		if err := <-done; err != nil {
			t.Fatalf("holding commits: %v", err)
		}
	}
}

func storedCount(t *testing.T, b *Broker, ss *sharedSub, partition int32, offset int64) int32 {
	t.Helper()
	st, err := b.state.LoadCursor(ss.id, partition)
	if err != nil {
		t.Fatal(err)
	}
	return st.Deliveries[offset].Count
}

// TestDeliveryCountWrittenAfterHandOut checks the order the delivery count
// of a hand-out is written in: Receive does not wait for it, the
// committer's next transaction writes it, and the record is not handed out
// again before that count is durable (so a crash loses at most the
// delivery under way).
func TestDeliveryCountWrittenAfterHandOut(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "q"})
	publish(t, b, "q", Record{Value: []byte("job")})
	ss, err := b.sharedSub("q", "q")
	if err != nil {
		t.Fatal(err)
	}
	// Let the fetcher take the record in first (it commits nothing).
	if ds := receive(t, b, "q", "warm", 1, 5*time.Second); len(ds) != 1 {
		t.Fatalf("received %d", len(ds))
	}
	b.CloseConsumer("q", "q", "warm")
	waitFor(t, func() bool { return storedCount(t, b, ss, 0, 0) == 1 })

	release := holdStateCommits(t, b)
	defer release()
	// Handed out at once although nothing can be stored.
	ds := receive(t, b, "q", "a", 1, 5*time.Second)
	if len(ds) != 1 || ds[0].DeliveryCount != 2 {
		t.Fatalf("received %+v while commits were held", ds)
	}
	// Given back at once, it is not handed out again while its second
	// count is not durable.
	b.CloseConsumer("q", "q", "a")
	if got := receive(t, b, "q", "b", 1, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("handed out again before its count was durable: %+v", got)
	}
	if n := storedCount(t, b, ss, 0, 0); n != 1 {
		t.Fatalf("stored count %d while commits were held", n)
	}
	release()
	got := receive(t, b, "q", "b", 1, 5*time.Second)
	if len(got) != 1 || got[0].DeliveryCount != 3 {
		t.Fatalf("after the commit: %+v", got)
	}
	if n := storedCount(t, b, ss, 0, 0); n < 2 {
		t.Fatalf("stored count %d before the third hand-out", n)
	}
	waitFor(t, func() bool { return storedCount(t, b, ss, 0, 0) == 3 })
}

// TestAckThenReleasesBeforeDurable checks that AckThen takes the records
// from the consumer (and says so) before their acks are durable, and
// returns only once they are.
func TestAckThenReleasesBeforeDurable(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createQueue(t, b, QueueConfig{Name: "q"})
	publish(t, b, "q", Record{Value: []byte("a")}, Record{Value: []byte("b")})
	ds := receiveAll(t, b, "q", "c", 2, 5*time.Second)
	if len(ds) != 2 {
		t.Fatalf("received %d", len(ds))
	}
	release := holdStateCommits(t, b)
	defer release()
	taken := make(chan struct{})
	acked := make(chan error, 1)
	go func() {
		acked <- b.AckThen(context.Background(), "q", "q", "c", refs(ds[:1]), func() { close(taken) })
	}()
	select {
	case <-taken:
	case <-time.After(5 * time.Second):
		t.Fatal("AckThen did not take the record while commits were held")
	}
	select {
	case err := <-acked:
		t.Fatalf("AckThen returned (%v) before the ack was durable", err)
	case <-time.After(200 * time.Millisecond):
	}
	info, _ := b.DescribeSubscription("q", "q")
	if info.InFlight != 1 {
		t.Fatalf("in flight %d after the ack was taken, want 1", info.InFlight)
	}
	release()
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	// A refused ack does not call taken.
	err := b.AckThen(context.Background(), "q", "q", "other", refs(ds[1:]), func() { t.Error("taken called for a refused ack") })
	if err == nil {
		t.Fatal("ack of a record held by another consumer succeeded")
	}
}

// TestDeliveryCountsSurviveClose checks that a clean shutdown writes the
// delivery counts the committer had not written yet.
func TestDeliveryCountsSurviveClose(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	createQueue(t, b, QueueConfig{Name: "q", Partitions: 2})
	const n = 400
	var recs []Record
	for i := range n {
		recs = append(recs, Record{Value: []byte(strconv.Itoa(i))})
	}
	publish(t, b, "q", recs...)
	if ds := receiveAll(t, b, "q", "warm", n, 5*time.Second); len(ds) != n {
		t.Fatalf("received %d", len(ds))
	}
	b.CloseConsumer("q", "q", "warm")
	ss, _ := b.sharedSub("q", "q")
	waitFor(t, func() bool {
		stored := 0
		for p := range int32(2) {
			st, err := b.state.LoadCursor(ss.id, p)
			if err != nil {
				t.Fatal(err)
			}
			stored += len(st.Deliveries)
		}
		return stored == n
	})
	// Commits are held while the records go out one by one, and until
	// Close has begun: the committer takes the first counts, then stops,
	// and Close must write the rest.
	release := holdStateCommits(t, b)
	got := 0
	for got < n {
		got += len(receive(t, b, "q", "c", 1, 5*time.Second))
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		release()
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	ds := receiveAll(t, b, "q", "c", n, 10*time.Second)
	if len(ds) != n {
		t.Fatalf("received %d of %d after the restart", len(ds), n)
	}
	for _, d := range ds {
		if d.DeliveryCount != 3 {
			t.Fatalf("record %d/%d delivered with count %d after a clean restart, want 3", d.Partition, d.Offset, d.DeliveryCount)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
