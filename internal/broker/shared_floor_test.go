package broker

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// floorQueue makes a one-partition queue holding n records, all received by
// consumer "c", and returns the deliveries by offset.
func floorQueue(t *testing.T, b *Broker, n int) []Delivery {
	t.Helper()
	createQueue(t, b, QueueConfig{Name: "q"})
	for i := range n {
		publish(t, b, "q", Record{Value: []byte(strconv.Itoa(i))})
	}
	ds := receiveAll(t, b, "q", "c", n, 5*time.Second)
	if len(ds) != n {
		t.Fatalf("received %d of %d", len(ds), n)
	}
	for i, d := range ds {
		if d.Offset != int64(i) {
			t.Fatalf("delivery %d has offset %d", i, d.Offset)
		}
	}
	return ds
}

func offsets(ds []Delivery) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.Offset)
	}
	return out
}

// TestAcksBelowTheFloorWriteNoKeys checks that in-order acks raise the
// stored floor in their own transaction without an ack or delivery key
// each, that an ack above the floor keeps a key until the floor passes it,
// and that both survive a restart.
func TestAcksBelowTheFloorWriteNoKeys(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ds := floorQueue(t, b, 10)
	ss, err := b.sharedSub("q", "q")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ack := func(ds ...Delivery) {
		t.Helper()
		if err := b.Ack(ctx, "q", "q", "c", refs(ds)); err != nil {
			t.Fatal(err)
		}
	}
	stored := func(floor int64, acked ...int64) {
		t.Helper()
		st, err := b.state.LoadCursor(ss.id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Floor != floor || !reflect.DeepEqual(st.Acked, acked) || len(st.Deliveries) != 0 {
			t.Fatalf("stored %+v, want floor %d, acked %v and no delivery keys", st, floor, acked)
		}
	}
	// A floor that passes no key moves without range deletions (each
	// would cost every later reader of the store until a flush).
	// (Creating the queue set its floor with some.)
	var base int64 = -1
	rangeDels := func(want int64) {
		t.Helper()
		st, err := b.state.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if base < 0 {
			base = st.RangeDeletions
		}
		if got := st.RangeDeletions - base; got != want {
			t.Fatalf("%d range deletions committed, want %d", got, want)
		}
	}
	rangeDels(0)
	for i := range 5 {
		ack(ds[i])
	}
	stored(5) // as soon as the acks are confirmed
	rangeDels(0)
	ack(ds[7])
	stored(5, 7)
	ack(ds[5], ds[6])
	stored(8)    // past 7, whose key went with the floor
	rangeDels(2) // its ack key, and delivery keys, below 8
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	again := receiveAll(t, b, "q", "c", 2, 5*time.Second)
	if got := offsets(again); !reflect.DeepEqual(got, []int64{8, 9}) {
		t.Fatalf("after the restart: %v, want 8 and 9", got)
	}
	for _, d := range again {
		if d.DeliveryCount != 2 {
			t.Errorf("record %d: delivery count %d after a clean restart, want 2", d.Offset, d.DeliveryCount)
		}
	}
	if more := receive(t, b, "q", "c", 10, 200*time.Millisecond); len(more) != 0 {
		t.Fatalf("delivered again: %v", offsets(more))
	}
}

// TestFailedAckWriteKeepsTheFloor checks that acks whose transaction fails
// hold the floor back afterwards: a later transaction must not store a
// floor past them, so they are not lost by a restart.
func TestFailedAckWriteKeepsTheFloor(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ds := floorQueue(t, b, 5)
	ctx := context.Background()
	fault := errors.New("injected state write failure")
	b.stateFault.Store(&fault)
	if err := b.Ack(ctx, "q", "q", "c", refs(ds[:3])); !errors.Is(err, fault) {
		t.Fatalf("ack during the fault: %v", err)
	}
	b.stateFault.Store(nil)
	if err := b.Ack(ctx, "q", "q", "c", refs(ds[3:])); err != nil {
		t.Fatal(err)
	}
	ss, _ := b.sharedSub("q", "q")
	st, err := b.state.LoadCursor(ss.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Floor != 0 || !reflect.DeepEqual(st.Acked, []int64{3, 4}) {
		t.Fatalf("stored %+v, want floor 0 and acks 3, 4", st)
	}
	// The three whose acks failed are delivered again, now and after a
	// restart.
	if got := offsets(receiveAll(t, b, "q", "d", 3, 5*time.Second)); !reflect.DeepEqual(got, []int64{0, 1, 2}) {
		t.Fatalf("redelivered %v, want 0, 1, 2", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openBroker(t, dir)
	defer b.Close()
	if got := offsets(receiveAll(t, b, "q", "d", 3, 5*time.Second)); !reflect.DeepEqual(got, []int64{0, 1, 2}) {
		t.Fatalf("after the restart: %v, want 0, 1, 2", got)
	}
	if more := receive(t, b, "q", "d", 10, 200*time.Millisecond); len(more) != 0 {
		t.Fatalf("delivered again: %v", offsets(more))
	}
}

// TestFirstDeliveryCountWrittenWhenItComesBack checks that a first
// delivery's count, not written at the hand-out, is written before the
// record goes out again when it comes back unacknowledged.
func TestFirstDeliveryCountWrittenWhenItComesBack(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ds := floorQueue(t, b, 2)
	ss, _ := b.sharedSub("q", "q")
	if n := storedCount(t, b, ss, 0, 0); n != 0 {
		t.Fatalf("first delivery's count stored at the hand-out: %d", n)
	}
	if err := b.Ack(context.Background(), "q", "q", "c", refs(ds[1:])); err != nil {
		t.Fatal(err)
	}
	b.CloseConsumer("q", "q", "c")
	got := receiveAll(t, b, "q", "d", 1, 5*time.Second)
	if len(got) != 1 || got[0].Offset != 0 || got[0].DeliveryCount != 2 {
		t.Fatalf("redelivered %+v", got)
	}
	if n := storedCount(t, b, ss, 0, 0); n < 1 {
		t.Fatalf("stored count %d after the second hand-out", n)
	}
	waitFor(t, func() bool { return storedCount(t, b, ss, 0, 0) == 2 })
}
