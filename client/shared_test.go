package weir_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// createQueue creates a queue or fails the test.
func createQueue(t *testing.T, c *weir.Client, cfg weir.QueueConfig) *weir.SubscriptionInfo {
	t.Helper()
	q, err := c.CreateQueue(t.Context(), cfg)
	if err != nil {
		t.Fatalf("CreateQueue(%q): %v", cfg.Name, err)
	}
	return q
}

// publishValues publishes one record per value, with the given key (nil:
// none).
func publishValues(t *testing.T, c *weir.Client, stream string, key []byte, values ...string) {
	t.Helper()
	recs := make([]weir.Record, len(values))
	for i, v := range values {
		recs[i] = weir.Record{Key: key, Value: []byte(v)}
	}
	if _, err := c.Publish(t.Context(), stream, recs...); err != nil {
		t.Fatalf("Publish(%q): %v", stream, err)
	}
}

// waitDepth waits until a subscription has no record left to settle.
func waitDepth(t *testing.T, c *weir.Client, stream, sub string, want int64) *weir.SubscriptionInfo {
	t.Helper()
	var info *weir.SubscriptionInfo
	eventually(t, 20*time.Second, fmt.Sprintf("%s/%s to have depth %d", stream, sub, want), func() bool {
		var err error
		info, err = c.DescribeSubscription(t.Context(), stream, sub)
		return err == nil && info.Depth == want
	})
	return info
}

// TestSharedCompeting: four competing consumers of a queue, nothing fails:
// every record is handled exactly once, and each consumer gets a share.
func TestSharedCompeting(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "work", Partitions: 4})
	const total = 2000
	var mu sync.Mutex
	seen := make(map[string]int)
	perConsumer := make([]int, 4)
	var consumers []*weir.Consumer
	for i := range 4 {
		cons, err := c.Consume(ctx, "work", func(_ context.Context, m *weir.Message) error {
			if m.DeliveryCount != 1 {
				t.Errorf("record %s delivered %d times", m.Value, m.DeliveryCount)
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
			mu.Lock()
			seen[string(m.Value)]++
			perConsumer[i]++
			mu.Unlock()
			return nil
		}, weir.Shared(""), weir.Prefetch(20))
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, cons)
	}
	values := make([]string, total)
	for i := range values {
		values[i] = "job-" + strconv.Itoa(i)
	}
	for i := 0; i < total; i += 100 {
		publishValues(t, c, "work", nil, values[i:i+100]...)
	}
	eventually(t, 30*time.Second, "every record handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == total })
	waitDepth(t, c, "work", "work", 0)
	for _, cons := range consumers {
		if err := cons.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s handled %d times", v, n)
		}
	}
	for i, n := range perConsumer {
		if n == 0 {
			t.Errorf("consumer %d handled nothing: %v", i, perConsumer)
		}
	}
	t.Logf("records per consumer: %v", perConsumer)
	// The server lets a consumer go when it sees its stream end.
	eventually(t, 10*time.Second, "the consumers to leave", func() bool {
		info, err := c.DescribeQueue(ctx, "work")
		return err == nil && info.InFlight == 0 && info.Consumers == 0 && info.DeadLettered == 0
	})
}

// TestSharedPoison: a record the handler always fails is delivered
// max-deliveries times, then dead-lettered with headers saying why; redrive
// brings it back, without them, to a consumer that now takes it.
func TestSharedPoison(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "orders", Partitions: 2, Subscription: weir.SubscriptionConfig{
		MaxDeliveries: 3,
		Backoff:       weir.Backoff{Initial: 20 * time.Millisecond, Multiplier: 1},
	}})
	var mu sync.Mutex
	var poisonDeliveries []int32
	good := 0
	healed := false
	handler := func(_ context.Context, m *weir.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if string(m.Value) != "poison" {
			good++
			return nil
		}
		poisonDeliveries = append(poisonDeliveries, m.DeliveryCount)
		if healed {
			return nil
		}
		return fmt.Errorf("cannot parse order %q", m.Value)
	}
	cons, err := c.Consume(ctx, "orders", handler, weir.Shared(""))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	publishValues(t, c, "orders", []byte("k1"), "a", "poison", "b")
	info := waitDepth(t, c, "orders", "orders", 0)
	if info.DeadLettered != 1 {
		t.Errorf("dead-lettered %d, want 1", info.DeadLettered)
	}
	mu.Lock()
	if fmt.Sprint(poisonDeliveries) != "[1 2 3]" || good != 2 {
		t.Errorf("poison delivered as %v, %d good records; want [1 2 3] and 2", poisonDeliveries, good)
	}
	mu.Unlock()

	dlq, err := c.DescribeQueue(ctx, "orders.dlq")
	if err != nil || dlq.Depth != 1 {
		t.Fatalf("dead-letter queue: %+v, %v", dlq, err)
	}
	res, err := c.Fetch(ctx, "orders.dlq", 0, 0, 0, 0)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("fetch of the dead-letter queue: %+v, %v", res, err)
	}
	dead := res.Records[0]
	for name, want := range map[string]string{
		weir.HeaderDeadLetterStream: "orders",
		weir.HeaderDeadLetterReason: weir.ReasonMaxDeliveries,
		weir.HeaderDeliveryCount:    "3",
		weir.HeaderLastError:        `cannot parse order "poison"`,
	} {
		if got, _ := dead.Header(name); string(got) != want {
			t.Errorf("dead letter header %s = %q, want %q (headers %v)", name, got, want, dead.Headers)
		}
	}
	if _, ok := dead.Header(weir.HeaderDeadLetterOffset); !ok || string(dead.Key) != "k1" || string(dead.Value) != "poison" {
		t.Errorf("dead letter %+v", dead)
	}

	mu.Lock()
	healed = true
	mu.Unlock()
	moved, err := c.Redrive(ctx, "orders", 0)
	if err != nil || moved != 1 {
		t.Fatalf("Redrive = %d, %v; want 1", moved, err)
	}
	eventually(t, 10*time.Second, "the redriven record", func() bool { mu.Lock(); defer mu.Unlock(); return len(poisonDeliveries) == 4 })
	waitDepth(t, c, "orders", "orders", 0)
	waitDepth(t, c, "orders.dlq", "orders.dlq", 0)
	mu.Lock()
	if poisonDeliveries[3] != 1 {
		t.Errorf("the redriven record came with delivery count %d, want 1", poisonDeliveries[3])
	}
	mu.Unlock()
	if moved, err := c.Redrive(ctx, "orders", 0); err != nil || moved != 0 {
		t.Errorf("second Redrive = %d, %v; want 0", moved, err)
	}
}

// TestSharedKeyOrdered: eight concurrent consumers of a key-ordered queue
// handle each key's records one at a time, in order.
func TestSharedKeyOrdered(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "ledger", Partitions: 4, Subscription: weir.SubscriptionConfig{KeyOrdered: true}})
	const keys, perKey = 20, 40
	var mu sync.Mutex
	seqs := make(map[string][]int)
	busy := make(map[string]bool)
	var overlaps []string
	handler := func(_ context.Context, m *weir.Message) error {
		key, seq := parseValue(m.Value)
		mu.Lock()
		if busy[key] {
			overlaps = append(overlaps, string(m.Value))
		}
		busy[key] = true
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		mu.Lock()
		busy[key] = false
		seqs[key] = append(seqs[key], seq)
		mu.Unlock()
		return nil
	}
	for range 8 {
		cons, err := c.Consume(ctx, "ledger", handler, weir.Shared(""), weir.Prefetch(10))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close(ctx)
	}
	publishKeyed(t, c, "ledger", keys, perKey, 0)
	waitDepth(t, c, "ledger", "ledger", 0)
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("records handled while another of their key was: %v", overlaps)
	}
	for k := range keys {
		key := "key" + strconv.Itoa(k)
		got := seqs[key]
		if len(got) != perKey {
			t.Errorf("%s: %d records handled, want %d", key, len(got), perKey)
		}
		for i, seq := range got {
			if seq != i {
				t.Errorf("%s handled in the order %v", key, got)
				break
			}
		}
	}
}

// TestSharedDelay: a record with a deliver-at header is held back until
// then; the queue counts it as delayed meanwhile.
func TestSharedDelay(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "later"})
	got := make(chan time.Time, 2)
	cons, err := c.Consume(ctx, "later", func(_ context.Context, m *weir.Message) error {
		got <- time.Now()
		return nil
	}, weir.Shared(""))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	const delay = 1500 * time.Millisecond
	published := time.Now()
	if _, err := c.Publish(ctx, "later", weir.Record{Value: []byte("x"), Headers: []weir.Header{weir.DeliverAfter(delay)}}); err != nil {
		t.Fatal(err)
	}
	if info, err := c.DescribeQueue(ctx, "later"); err != nil || info.Delayed != 1 && time.Since(published) < delay/2 {
		t.Errorf("queue right after publishing: %+v, %v; want 1 delayed", info, err)
	}
	select {
	case at := <-got:
		if early := published.Add(delay).Sub(at); early > 10*time.Millisecond {
			t.Errorf("delivered %v before its deliver-at", early)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the delayed record never came")
	}
	h := weir.DeliverAfter(0)
	if ts, err := time.Parse(time.RFC3339Nano, string(h.Value)); err != nil || h.Key != "deliver-at" || !strings.HasSuffix(string(h.Value), "Z") ||
		len(string(h.Value)) != len("2006-01-02T15:04:05.000Z") || time.Since(ts) > time.Second {
		t.Errorf("DeliverAfter(0) = %s=%s", h.Key, h.Value)
	}
	if h := weir.ExpiresAt(time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("CET", 3600))); h.Key != "expires-at" || string(h.Value) != "2026-01-02T02:04:05.006Z" {
		t.Errorf("ExpiresAt = %s=%s", h.Key, h.Value)
	}
}

// TestSharedExplicitSettle: handlers that settle their messages themselves
// are not settled again by their return; Nack with a delay, Reject and
// Extend do what they say.
func TestSharedExplicitSettle(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "jobs", Subscription: weir.SubscriptionConfig{AckTimeout: time.Second}})
	var mu sync.Mutex
	var log []string
	var errs []error
	note := func(format string, args ...any) {
		mu.Lock()
		log = append(log, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	check := func(what string, err, want error) {
		if !errors.Is(err, want) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s = %v, want %v", what, err, want))
			mu.Unlock()
		}
	}
	handler := func(ctx context.Context, m *weir.Message) error {
		switch v := string(m.Value); {
		case v == "ack":
			check("Ack", m.Ack(ctx), nil)
			check("second Ack", m.Ack(ctx), weir.ErrSettled)
			check("Nack after Ack", m.Nack(ctx, nil, 0), weir.ErrSettled)
			check("Extend after Ack", m.Extend(ctx, time.Second), weir.ErrSettled)
			note("ack")
			return errors.New("ignored: the message is settled")
		case v == "nack" && m.DeliveryCount == 1:
			check("Nack", m.Nack(ctx, errors.New("later"), 300*time.Millisecond), nil)
			note("nack")
		case v == "nack":
			note("nack again")
		case v == "reject":
			check("Reject", m.Reject(ctx, "no such customer"), nil)
			note("reject")
			return nil
		case v == "slow":
			// Past the ack timeout of 1s, kept with Extend.
			check("Extend", m.Extend(ctx, 5*time.Second), nil)
			time.Sleep(1500 * time.Millisecond)
			note("slow %d", m.DeliveryCount)
		}
		return nil
	}
	cons, err := c.Consume(ctx, "jobs", handler, weir.Shared(""), weir.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	publishValues(t, c, "jobs", nil, "ack", "nack", "reject", "slow")
	info := waitDepth(t, c, "jobs", "jobs", 0)
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	got := strings.Join(slices.Sorted(slices.Values(log)), ",")
	if got != "ack,nack,nack again,reject,slow 1" {
		t.Errorf("handled %s", got)
	}
	if info.DeadLettered != 1 {
		t.Errorf("dead-lettered %d, want the rejected one", info.DeadLettered)
	}
	res, err := c.Fetch(ctx, "jobs.dlq", 0, 0, 0, 0)
	if err != nil || len(res.Records) != 1 {
		t.Fatalf("dead letters %+v, %v", res, err)
	}
	if r, _ := res.Records[0].Header(weir.HeaderDeadLetterReason); string(r) != weir.ReasonRejected {
		t.Errorf("dead letter reason %q", r)
	}
	if r, _ := res.Records[0].Header(weir.HeaderLastError); string(r) != "no such customer" {
		t.Errorf("dead letter error %q", r)
	}

	// Outside shared mode, settling is refused.
	createStream(t, c, "plain", 1)
	publishValues(t, c, "plain", nil, "x")
	done := make(chan error, 1)
	group, err := c.Consume(ctx, "plain", func(ctx context.Context, m *weir.Message) error {
		done <- m.Ack(ctx)
		return nil
	}, weir.Group("g"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close(ctx)
	if err := <-done; !errors.Is(err, weir.ErrNotShared) {
		t.Errorf("Ack of a group message = %v, want ErrNotShared", err)
	}
}

// callCounts counts calls by RPC method.
type callCounts struct {
	mu    sync.Mutex
	calls map[string]int
}

// add counts a call of the method that urlPath (/weir.v1.Weir/Ack) names.
func (c *callCounts) add(urlPath string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = make(map[string]int)
	}
	c.calls[path.Base(urlPath)]++
}

func (c *callCounts) count(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[method]
}

// countingTransport counts the calls of each RPC method.
type countingTransport struct {
	next http.RoundTripper
	callCounts
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.add(req.URL.Path)
	return c.next.RoundTrip(req)
}

// TestSharedAckBatching: acks go in batches, so a consumer makes far fewer
// Ack calls than it handles records, and none of AddCredits; a lone ack
// still goes out after the interval.
func TestSharedAckBatching(t *testing.T) {
	srv := startServer(t)
	counter := &countingTransport{next: httpClient().Transport}
	c := srv.dial(t, weir.WithHTTPClient(&http.Client{Transport: counter}))
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "bulk", Partitions: 2})
	values := make([]string, 2000)
	for i := range values {
		values[i] = strconv.Itoa(i)
	}
	publishValues(t, c, "bulk", nil, values...)
	var handled atomic.Int64
	cons, err := c.Consume(ctx, "bulk", func(context.Context, *weir.Message) error {
		handled.Add(1)
		return nil
	}, weir.Shared(""), weir.Prefetch(100), weir.AckBatching(25, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	waitDepth(t, c, "bulk", "bulk", 0)
	acks := counter.count("Ack")
	if handled.Load() != 2000 || acks > 2000/10 || counter.count("AddCredits") != 0 {
		t.Errorf("%d records handled with %d Ack and %d AddCredits calls; want 2000 in at most 200 Acks, no AddCredits",
			handled.Load(), acks, counter.count("AddCredits"))
	}
	t.Logf("2000 records acked in %d calls", acks)

	// One record: its ack waits for the interval, not for a full batch.
	start := time.Now()
	publishValues(t, c, "bulk", nil, "lonely")
	waitDepth(t, c, "bulk", "bulk", 0)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("a lone ack took %v", waited)
	}
	if n := counter.count("Ack") - acks; n != 1 {
		t.Errorf("the lone record took %d Ack calls", n)
	}
}

// TestSharedRestart: a shared consumer lives through a server restart in
// the middle of its work: it reconnects, the records it held come back,
// and every record is handled, acked ones never again.
func TestSharedRestart(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "steady", Partitions: 2})
	var mu sync.Mutex
	seen := make(map[string]int)
	cons, err := c.Consume(ctx, "steady", func(_ context.Context, m *weir.Message) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		seen[string(m.Value)]++
		mu.Unlock()
		return nil
	}, weir.Shared(""), weir.Prefetch(10))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	values := make([]string, 400)
	for i := range values {
		values[i] = strconv.Itoa(i)
	}
	publishValues(t, c, "steady", nil, values[:200]...)
	distinct := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	eventually(t, 10*time.Second, "the consumer to start", func() bool { return distinct() >= 50 })
	srv.restart()
	publishValues(t, c, "steady", nil, values[200:]...)
	eventually(t, 30*time.Second, "every record handled", func() bool { return distinct() == 400 })
	waitDepth(t, c, "steady", "steady", 0)
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	// Only what was in flight at the restart comes back: the prefetch, and
	// the acks not yet stored.
	if twice > 20 {
		t.Errorf("%d records handled twice", twice)
	}
	t.Logf("%d records handled twice after the restart", twice)
	select {
	case <-cons.Done():
		t.Errorf("the consumer stopped: %v", cons.Wait())
	default:
	}
}

// TestSharedOnAcked: OnAcked reports each ack of a handler's nil return
// once the server stored it, and an ack the server could not take (its
// queue was deleted meanwhile) as failed.
func TestSharedOnAcked(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createQueue(t, c, weir.QueueConfig{Name: "confirmed", Partitions: 2})
	values := make([]string, 500)
	for i := range values {
		values[i] = strconv.Itoa(i)
	}
	publishValues(t, c, "confirmed", nil, values...)
	publishValues(t, c, "confirmed", nil, "held")
	var mu sync.Mutex
	stored := make(map[string]int)
	var failed []string
	release := make(chan struct{})
	cons, err := c.Consume(ctx, "confirmed", func(_ context.Context, m *weir.Message) error {
		if string(m.Value) == "held" {
			<-release
		}
		return nil
	}, weir.Shared(""), weir.Prefetch(50), weir.OnAcked(func(m *weir.Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, string(m.Value)+": "+err.Error())
			return
		}
		stored[string(m.Value)]++
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 20*time.Second, "every ack but the held one's confirmed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(stored) == len(values)
	})
	// Confirmed means stored: only the held record is left to settle.
	info, err := c.DescribeSubscription(ctx, "confirmed", "confirmed")
	if err != nil {
		t.Fatal(err)
	}
	if info.Depth != 1 {
		t.Errorf("depth %d once every other ack was confirmed, want 1", info.Depth)
	}
	if err := c.DeleteStream(ctx, "confirmed"); err != nil {
		t.Fatal(err)
	}
	close(release)
	eventually(t, 20*time.Second, "the held record's ack reported failed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failed) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	for v, n := range stored {
		if n != 1 {
			t.Errorf("record %s confirmed %d times", v, n)
		}
	}
	if len(failed) != 1 || !strings.HasPrefix(failed[0], "held: ") || stored["held"] != 0 {
		t.Errorf("failed acks %q, want the held record's only", failed)
	}
}
