package weir_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// TestProducer sends keyed records asynchronously: callbacks come in the
// order of the sends, each key's records are stored in order and in the
// partition Publish would have chosen.
func TestProducer(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "produced", 8)

	p := c.NewProducer("produced", weir.Linger(time.Millisecond), weir.MaxBatchRecords(64), weir.MaxInFlight(4), weir.MaxBuffered(500))
	const n = 5000
	var mu sync.Mutex
	var order []int
	results := make([]weir.PublishResult, n)
	for i := range n {
		key := []byte("key" + strconv.Itoa(i%37))
		p.Send(ctx, weir.Record{Key: key, Value: []byte(strconv.Itoa(i))}, func(res weir.PublishResult, err error) {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			results[i] = res
			mu.Unlock()
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(order) != n {
		t.Fatalf("%d callbacks after Flush, want %d", len(order), n)
	}
	for i, got := range order {
		if got != i {
			t.Fatalf("callback %d was for record %d: callbacks out of order", i, got)
		}
	}
	mu.Unlock()

	partitionOf := make(map[string]int32)
	lastOffset := make(map[string]int64)
	for i, res := range results {
		key := "key" + strconv.Itoa(i%37)
		if p, ok := partitionOf[key]; ok && p != res.Partition {
			t.Fatalf("key %s in partitions %d and %d", key, p, res.Partition)
		}
		if off, ok := lastOffset[key]; ok && res.Offset <= off {
			t.Fatalf("record %d of key %s stored at %d, before the previous one at %d", i, key, res.Offset, off)
		}
		partitionOf[key], lastOffset[key] = res.Partition, res.Offset
	}
	// Publish puts the same keys in the same partitions.
	for key, part := range partitionOf {
		res, err := c.Publish(ctx, "produced", weir.Record{Key: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Partition != part {
			t.Errorf("key %s: Producer chose partition %d, the server %d", key, part, res[0].Partition)
		}
	}

	// Records without a key are spread over the partitions.
	var futures []*weir.Future
	for i := range 400 {
		futures = append(futures, p.SendFuture(ctx, weir.Record{Value: []byte(strconv.Itoa(i))}))
	}
	used := make(map[int32]bool)
	for _, f := range futures {
		res, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		used[res.Partition] = true
	}
	if len(used) < 4 {
		t.Errorf("400 records without a key went to partitions %v only", used)
	}

	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := p.SendFuture(ctx, weir.Record{}).Wait(ctx)
	if !errors.Is(err, weir.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	info, err := c.DescribeStream(ctx, "produced")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(n + 37 + 400); info.Records() != want {
		t.Errorf("stream holds %d records, want %d", info.Records(), want)
	}
}

// TestProducerWithoutLinger: with Linger(0) a record goes at once, with no
// timer or Flush to wait for, and the records sent while their partition
// has a publish under way go together in the next one (at most
// MaxBatchRecords each), not one publish call per record.
func TestProducerWithoutLinger(t *testing.T) {
	srv := startServer(t)
	createStream(t, srv.dial(t), "nolinger", 1)
	proxy := startProcedureProxy(t, srv.addr)
	c := dialAt(t, proxy.addr)
	ctx := t.Context()

	p := c.NewProducer("nolinger", weir.Linger(0), weir.MaxInFlight(1), weir.MaxBatchRecords(64))
	defer p.Close(ctx)
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.SendFuture(ctx, weir.Record{Value: []byte("alone")}).Wait(wait); err != nil {
		t.Fatalf("a lone record without linger: %v", err)
	}
	if n := proxy.count("Publish"); n != 1 {
		t.Fatalf("%d Publish calls for one record, want 1", n)
	}

	const n = 1000
	futures := make([]*weir.Future, n)
	for i := range futures {
		futures[i] = p.SendFuture(ctx, weir.Record{Value: []byte(strconv.Itoa(i))})
	}
	for i, f := range futures {
		res, err := f.Wait(wait)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if want := int64(i + 1); res.Offset != want {
			t.Fatalf("record %d stored at offset %d, want %d", i, res.Offset, want)
		}
	}
	calls := proxy.count("Publish") - 1
	if calls < n/64 || calls > n/10 {
		t.Errorf("%d records went in %d Publish calls, want %d to %d (batches of what waited, at most 64 each)", n, calls, n/64, n/10)
	}
}

// TestProducerErrors: a record the server refuses fails with the server's
// error, as do the records of its batch; records of other batches are
// stored.
func TestProducerErrors(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "strict", 2)

	p := c.NewProducer("strict", weir.Linger(0))
	small := p.SendFuture(ctx, weir.Record{Key: []byte("a"), Value: []byte("fine")})
	big := p.SendFuture(ctx, weir.Record{Key: []byte("a"), Value: bytes.Repeat([]byte("x"), 2<<20)})
	if _, err := small.Wait(ctx); err != nil {
		t.Errorf("small record: %v", err)
	}
	if _, err := big.Wait(ctx); !errors.Is(err, weir.ErrResourceExhausted) {
		t.Errorf("record over the limit: %v, want ErrResourceExhausted", err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	missing := c.NewProducer("missing")
	if _, err := missing.SendFuture(ctx, weir.Record{Value: []byte("x")}).Wait(ctx); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("Send to a missing stream: %v, want ErrNotFound", err)
	}
	missing.Close(ctx)

	// Send waits for room, within its context: two records of keys in
	// different partitions, lingering, fill a buffer of two.
	var keys [][]byte
	seen := make(map[int32]bool)
	for i := 0; len(keys) < 2; i++ {
		key := []byte("k" + strconv.Itoa(i))
		res, err := c.Publish(ctx, "strict", weir.Record{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if !seen[res[0].Partition] {
			seen[res[0].Partition] = true
			keys = append(keys, key)
		}
	}
	slow := c.NewProducer("strict", weir.MaxBuffered(2), weir.MaxBatchRecords(2), weir.Linger(time.Hour))
	first := slow.SendFuture(ctx, weir.Record{Key: keys[0]})
	second := slow.SendFuture(ctx, weir.Record{Key: keys[1]})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := slow.SendFuture(short, weir.Record{Key: keys[0]}).Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send to a full producer = %v, want DeadlineExceeded", err)
	}
	select {
	case <-first.Done():
		t.Error("a lingering record was sent before its linger time or a Flush")
	default:
	}
	if err := slow.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*weir.Future{first, second} {
		if _, err := f.Wait(ctx); err != nil {
			t.Errorf("lingering record after Flush: %v", err)
		}
	}
	if err := slow.Close(ctx); err != nil {
		t.Error(err)
	}
}

// An idle producer holds no goroutine: one producer per queue is how an
// application publishes to many queues, and 10,000 of them held 10,000
// goroutines, each waiting to run callbacks. Callbacks still run, in
// order, whenever records finish, and a second Close waits as the first.
func TestIdleProducersHoldNoGoroutine(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "many", 2)
	if _, err := c.Publish(ctx, "many", weir.Record{}); err != nil { // the connection is up
		t.Fatal(err)
	}
	settled := func() int {
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settled()
	const producers = 200
	ps := make([]*weir.Producer, producers)
	for i := range ps {
		ps[i] = c.NewProducer("many")
	}
	for round := range 2 { // the second round after the first's goroutines ended
		for i, p := range ps {
			var got []int
			for j := range 3 {
				p.Send(ctx, weir.Record{Value: []byte(strconv.Itoa(j))}, func(_ weir.PublishResult, err error) {
					if err != nil {
						t.Errorf("producer %d, record %d: %v", i, j, err)
					}
					got = append(got, j) // callbacks run one at a time
				})
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
				t.Fatalf("round %d, producer %d: callbacks %v, want [0 1 2]", round, i, got)
			}
		}
		if extra := settled() - before; extra > producers/10 {
			t.Fatalf("round %d: %d more goroutines with %d idle producers", round, extra, producers)
		}
	}
	for _, p := range ps {
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	info, err := c.DescribeStream(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + 2*3*producers); info.Records() != want {
		t.Errorf("stream holds %d records, want %d", info.Records(), want)
	}
}
