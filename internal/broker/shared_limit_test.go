package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// sized is a record of exactly n bytes as MaxLengthBytes counts them: a
// one-byte key, a header "h" = "v", and a value of n-3 bytes that starts
// with label.
func sized(label string, n int) Record {
	v := append([]byte(label+":"), bytes.Repeat([]byte("x"), n-3-len(label)-1)...)
	return Record{Key: []byte("k"), Value: v, Headers: []Header{{Key: "h", Value: []byte("v")}}}
}

func labels(ds []Delivery) []string {
	var out []string
	for _, d := range ds {
		label, _, _ := bytes.Cut(d.Value, []byte(":"))
		out = append(out, string(label))
	}
	return out
}

// waitInfo waits until the subscription's description satisfies ok.
func waitInfo(t *testing.T, b *Broker, stream, sub string, ok func(SubscriptionInfo) bool) SubscriptionInfo {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := b.DescribeSubscription(stream, sub)
		if err != nil {
			t.Fatal(err)
		}
		if ok(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: depth %d, %d bytes: not as expected", stream, sub, info.Depth, info.DepthBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxLengthBytesPolicies(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if r := sized("a", 100); recordSize(&r) != 100 {
		t.Fatalf("test record of %d bytes", recordSize(&r))
	}

	t.Run("drop-oldest", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "drop", Subscription: SubscriptionConfig{MaxLengthBytes: 500}})
		for i := range 10 {
			publish(t, b, "drop", sized(strconv.Itoa(i), 100))
		}
		info := waitInfo(t, b, "drop", "drop", func(i SubscriptionInfo) bool { return i.Depth == 5 })
		if info.DepthBytes != 500 || info.Config.Overflow != OverflowDropOldest {
			t.Fatalf("depth %d bytes, overflow %q; want 500 and the default policy", info.DepthBytes, info.Config.Overflow)
		}
		got := receiveAll(t, b, "drop", "c", 10, time.Second)
		if fmt.Sprint(labels(got)) != "[5 6 7 8 9]" {
			t.Fatalf("kept %v, want the newest five", labels(got))
		}
		// One record larger than the bound replaces everything not in
		// flight and then goes itself, as RabbitMQ drops it.
		publish(t, b, "drop", sized("big", 600))
		waitInfo(t, b, "drop", "drop", func(i SubscriptionInfo) bool { return i.Depth == 5 && i.DepthBytes == 500 })
		if err := b.Ack(ctx, "drop", "drop", "c", refs(got)); err != nil {
			t.Fatal(err)
		}
		waitInfo(t, b, "drop", "drop", func(i SubscriptionInfo) bool { return i.Depth == 0 && i.DepthBytes == 0 })
	})

	t.Run("reject-publish", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "reject", Subscription: SubscriptionConfig{MaxLengthBytes: 250, Overflow: OverflowRejectPublish}})
		for i := range 2 {
			publish(t, b, "reject", sized(strconv.Itoa(i), 100))
		}
		// 200 of 250 bytes: the next publish is taken although it crosses
		// the bound; the one after it is refused.
		publish(t, b, "reject", sized("2", 100))
		if _, err := b.Publish(ctx, "reject", []Record{sized("over", 10)}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("publish past the max length in bytes: %v", err)
		}
		if info, _ := b.DescribeSubscription("reject", "reject"); info.Depth != 3 || info.DepthBytes != 300 {
			t.Fatalf("depth %d, %d bytes; want 3, 300", info.Depth, info.DepthBytes)
		}
		// Once acked down below the bound, publishes fit again.
		ds := receiveAll(t, b, "reject", "c", 1, time.Second)
		if err := b.Ack(ctx, "reject", "reject", "c", refs(ds)); err != nil {
			t.Fatal(err)
		}
		publish(t, b, "reject", sized("fits", 50))
		waitInfo(t, b, "reject", "reject", func(i SubscriptionInfo) bool { return i.Depth == 3 && i.DepthBytes == 250 })
		if _, err := b.Publish(ctx, "reject", []Record{sized("over", 10)}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("publish at the max length in bytes: %v", err)
		}
	})

	t.Run("dead-letter", func(t *testing.T) {
		createQueue(t, b, QueueConfig{Name: "dl", Subscription: SubscriptionConfig{MaxLengthBytes: 200, Overflow: OverflowDeadLetter}})
		for i := range 5 {
			publish(t, b, "dl", sized(strconv.Itoa(i), 100))
		}
		waitInfo(t, b, "dl", "dl", func(i SubscriptionInfo) bool { return i.Depth == 2 && i.DepthBytes == 200 })
		dead := receiveAll(t, b, "dl.dlq", "c", 3, 3*time.Second)
		got := labels(dead)
		slices.Sort(got)
		if fmt.Sprint(got) != "[0 1 2]" || header(dead[0].Record, HeaderDeadLetterReason) != ReasonMaxLength {
			t.Fatalf("dead-lettered %v (%q)", got, header(dead[0].Record, HeaderDeadLetterReason))
		}
		if kept := labels(receiveAll(t, b, "dl", "c", 2, time.Second)); fmt.Sprint(kept) != "[3 4]" {
			t.Fatalf("kept %v", kept)
		}
	})

	t.Run("both bounds", func(t *testing.T) {
		// The tighter bound applies: 4 records, or 250 bytes.
		createQueue(t, b, QueueConfig{Name: "both", Subscription: SubscriptionConfig{MaxLength: 4, MaxLengthBytes: 250}})
		for i := range 6 {
			publish(t, b, "both", sized(strconv.Itoa(i), 50))
		}
		waitInfo(t, b, "both", "both", func(i SubscriptionInfo) bool { return i.Depth == 4 && i.DepthBytes == 200 })
		publish(t, b, "both", sized("big", 200))
		waitInfo(t, b, "both", "both", func(i SubscriptionInfo) bool { return i.Depth == 2 && i.DepthBytes == 250 })
	})

	for _, bad := range []int64{-1, -1 << 40} {
		_, err := b.CreateQueue(ctx, QueueConfig{Name: "bad", Subscription: SubscriptionConfig{MaxLengthBytes: bad}})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("max length bytes %d: %v", bad, err)
		}
	}
}

// TestMaxLengthBytesBacklog checks the bound on a backlog larger than the
// fetcher's buffer: records beyond it are sized ahead, so the oldest go
// until what is left fits, and the bytes add up to nothing once all is
// acknowledged.
func TestMaxLengthBytesBacklog(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	const n, size, keep = 3 * maxBuffered, 100, 1000
	createQueue(t, b, QueueConfig{Name: "q", Partitions: 2, Subscription: SubscriptionConfig{MaxLengthBytes: keep * size}})
	for i := 0; i < n; i += 1000 {
		var recs []Record
		for j := i; j < i+1000; j++ {
			recs = append(recs, sized(strconv.Itoa(j), size))
		}
		publish(t, b, "q", recs...)
	}
	waitInfo(t, b, "q", "q", func(i SubscriptionInfo) bool { return i.Depth == keep && i.DepthBytes == keep*size })
	ds := receiveAll(t, b, "q", "c", keep, 3*time.Second)
	if len(ds) != keep {
		t.Fatalf("received %d, want %d", len(ds), keep)
	}
	for _, l := range labels(ds) {
		if i, _ := strconv.Atoi(l); i < n-keep {
			t.Fatalf("kept record %d; want the newest %d of %d", i, keep, n)
		}
	}
	if err := b.Ack(ctx, "q", "q", "c", refs(ds)); err != nil {
		t.Fatal(err)
	}
	waitInfo(t, b, "q", "q", func(i SubscriptionInfo) bool { return i.Depth == 0 && i.DepthBytes == 0 })
}

// TestMaxLengthBytesRestart checks that the bound, and the bytes it counts,
// survive a restart, with a backlog larger than the fetcher's buffer.
func TestMaxLengthBytesRestart(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	const backlog, size = maxBuffered + 904, 100 // 5,000 records, 500,000 bytes
	createQueue(t, b, QueueConfig{Name: "full", Partitions: 2, Subscription: SubscriptionConfig{MaxLengthBytes: backlog * size, Overflow: OverflowRejectPublish}})
	createQueue(t, b, QueueConfig{Name: "drop", Subscription: SubscriptionConfig{MaxLengthBytes: 5 * size}})
	var recs []Record
	for i := range backlog {
		recs = append(recs, sized(strconv.Itoa(i), size))
	}
	publish(t, b, "full", recs...)
	for i := range 5 {
		publish(t, b, "drop", sized(strconv.Itoa(i), size))
	}
	if _, err := b.Publish(ctx, "full", []Record{sized("over", size)}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("publish to a full queue: %v", err)
	}
	// Some of the backlog is acknowledged, above the floor too.
	ds := receiveAll(t, b, "full", "c", 10, 2*time.Second)
	var odd []Delivery
	for _, d := range ds {
		if d.Offset%2 == 1 {
			odd = append(odd, d)
		}
	}
	if err := b.Ack(ctx, "full", "full", "c", refs(odd)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openBroker(t, dir)
	defer b.Close()
	left := int64(backlog - len(odd))
	info := waitInfo(t, b, "full", "full", func(i SubscriptionInfo) bool { return i.Depth == left && i.DepthBytes == left*size })
	if info.Config.MaxLengthBytes != backlog*size || info.Config.Overflow != OverflowRejectPublish {
		t.Fatalf("config after the restart: %+v", info.Config)
	}
	// Room for what was acknowledged, then full.
	accepted := 0
	for ; accepted <= len(odd); accepted++ {
		if _, err := b.Publish(ctx, "full", []Record{sized("more", size)}); errors.Is(err, ErrQueueFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if accepted != len(odd) {
		t.Fatalf("%d publishes taken after the restart, want %d (the acknowledged records' room)", accepted, len(odd))
	}
	// Drop-oldest keeps the newest 5 across the restart.
	publish(t, b, "drop", sized("5", size), sized("6", size))
	waitInfo(t, b, "drop", "drop", func(i SubscriptionInfo) bool { return i.Depth == 5 && i.DepthBytes == 5*size })
	if got := labels(receiveAll(t, b, "drop", "c", 5, 2*time.Second)); fmt.Sprint(got) != "[2 3 4 5 6]" {
		t.Fatalf("kept %v after the restart", got)
	}
}

// TestOverflowBlock: under the block policy a publish waits while the
// subscription is at its max length, until consumers settle records (or
// its context ends, with ErrQueueFull), and takes nothing meanwhile; a
// publish into a subscription below the bound is taken whatever its size;
// a purge and the byte bound free waiting publishers too.
func TestOverflowBlock(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	if err := (&SubscriptionConfig{Overflow: "wait"}).validate(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("overflow %q: err = %v, want ErrInvalidArgument", "wait", err)
	}

	createQueue(t, b, QueueConfig{Name: "held", Subscription: SubscriptionConfig{MaxLength: 3, Overflow: OverflowBlock}})
	for i := range 3 {
		publish(t, b, "held", sized(strconv.Itoa(i), 100))
	}
	// The fourth waits, and its context ending gives up with ErrQueueFull.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := b.Publish(short, "held", []Record{sized("late", 100)})
	cancel()
	if !errors.Is(err, ErrQueueFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish to a full queue past its deadline: %v, want ErrQueueFull and the deadline", err)
	}
	waited := async(func() error { _, err := b.Publish(ctx, "held", []Record{sized("3", 100), sized("4", 100)}); return err })
	stillWaiting(t, waited, "a publish into a full queue")
	// A receive takes records out of the ready ones but not out of the
	// length: in flight still counts.
	ds := receiveAll(t, b, "held", "c", 3, time.Second)
	stillWaiting(t, waited, "a publish while the records are in flight")
	// One ack leaves the queue below its bound: the batch of two goes in.
	if err := b.Ack(ctx, "held", "held", "c", refs(ds[:1])); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("publish once there was room: %v", err)
	}
	if got := labels(receiveAll(t, b, "held", "c", 3, time.Second)); fmt.Sprint(got) != "[3 4]" {
		t.Fatalf("after the wait received %v, want [3 4] (nothing dropped or taken twice)", got)
	}
	info := waitInfo(t, b, "held", "held", func(i SubscriptionInfo) bool { return i.Depth == 4 })
	if info.Config.Overflow != OverflowBlock {
		t.Fatalf("overflow %q, want %q", info.Config.Overflow, OverflowBlock)
	}
	// Past the bound by that batch, nothing more goes in until the
	// depth is below it again.
	waited = async(func() error { _, err := b.Publish(ctx, "held", []Record{sized("5", 100)}); return err })
	stillWaiting(t, waited, "a publish into a queue past its bound")
	if err := b.Ack(ctx, "held", "held", "c", refs(ds[1:2])); err != nil {
		t.Fatal(err)
	}
	stillWaiting(t, waited, "a publish into a queue at its bound")
	if err := b.Ack(ctx, "held", "held", "c", refs(ds[2:3])); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("publish once below the bound: %v", err)
	}

	// A purge frees a waiting publisher.
	waited = async(func() error { _, err := b.Publish(ctx, "held", []Record{sized("6", 100)}); return err })
	stillWaiting(t, waited, "a publish into a full queue")
	if _, err := b.Purge(ctx, "held", "held"); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("publish after a purge: %v", err)
	}

	// A batch larger than the max length goes into an empty queue, and
	// nothing of it is dropped.
	createQueue(t, b, QueueConfig{Name: "big", Subscription: SubscriptionConfig{MaxLength: 2, Overflow: OverflowBlock}})
	if _, err := b.Publish(ctx, "big", []Record{sized("a", 100), sized("b", 100), sized("c", 100)}); err != nil {
		t.Fatalf("a batch larger than the max length into an empty queue: %v", err)
	}
	if got := labels(receiveAll(t, b, "big", "c", 3, time.Second)); fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("received %v, want [a b c]", got)
	}

	// The byte bound holds publishes the same way.
	createQueue(t, b, QueueConfig{Name: "bytes", Subscription: SubscriptionConfig{MaxLengthBytes: 200, Overflow: OverflowBlock}})
	publish(t, b, "bytes", sized("0", 100))
	publish(t, b, "bytes", sized("1", 100))
	waited = async(func() error { _, err := b.Publish(ctx, "bytes", []Record{sized("2", 100)}); return err })
	stillWaiting(t, waited, "a publish past the byte bound")
	ds = receiveAll(t, b, "bytes", "c", 1, time.Second)
	if err := b.Ack(ctx, "bytes", "bytes", "c", refs(ds)); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("publish once under the byte bound: %v", err)
	}
}
