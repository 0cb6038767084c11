package weir_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// TestQueueAdmin: queues and subscriptions are created, listed, described,
// purged and deleted, and bad settings are refused with the server's word.
func TestQueueAdmin(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	q := createQueue(t, c, weir.QueueConfig{Name: "emails", Partitions: 3, Subscription: weir.SubscriptionConfig{
		MaxDeliveries: 5, AckTimeout: time.Minute, KeyOrdered: true, MessageTTL: time.Hour, Filter: "has_key",
		Backoff: weir.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 3},
	}})
	cfg := q.Config
	if !q.Queue || q.Partitions != 3 || cfg.Stream != "emails" || cfg.Name != "emails" || cfg.MaxDeliveries != 5 ||
		cfg.AckTimeout != time.Minute || !cfg.KeyOrdered || cfg.MessageTTL != time.Hour || cfg.Filter != "has_key" ||
		cfg.DeadLetterStream != "emails.dlq" || cfg.Backoff != (weir.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 3}) {
		t.Errorf("CreateQueue = %+v", q)
	}
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "emails"}); !errors.Is(err, weir.ErrAlreadyExists) {
		t.Errorf("second CreateQueue = %v, want ErrAlreadyExists", err)
	}
	_, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "bad", Subscription: weir.SubscriptionConfig{Filter: "headers['type'] ==="}})
	if !errors.Is(err, weir.ErrInvalidArgument) || !strings.Contains(err.Error(), "filter") {
		t.Errorf("CreateQueue with a bad filter = %v, want ErrInvalidArgument with the server's message", err)
	}
	t.Logf("bad filter: %v", err)

	publishValues(t, c, "emails", []byte("k"), "one", "two")
	publishValues(t, c, "emails", nil, "no key: filtered out")
	eventually(t, 10*time.Second, "a depth of 2", func() bool {
		info, err := c.DescribeQueue(ctx, "emails")
		return err == nil && info.Depth == 2
	})
	queues, err := c.ListQueues(ctx)
	// The dead-letter queue is made with the queue.
	if err != nil || len(queues) != 2 || queues[0].Config.Name != "emails" || queues[1].Config.Name != "emails.dlq" {
		t.Errorf("ListQueues = %+v, %v", queues, err)
	}
	if n, err := c.PurgeQueue(ctx, "emails"); err != nil || n != 2 {
		t.Errorf("PurgeQueue = %d, %v; want 2", n, err)
	}
	if info, err := c.DescribeQueue(ctx, "emails"); err != nil || info.Depth != 0 {
		t.Errorf("after the purge: %+v, %v", info, err)
	}

	// Shared subscriptions of a plain stream.
	createStream(t, c, "events", 2)
	sub, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "events", Name: "audit", Start: weir.Earliest(), Filter: "key == 'a'"})
	if err != nil || sub.Queue || sub.Config.DeadLetterStream != "events.audit.dlq" || sub.Partitions != 2 {
		t.Fatalf("CreateSubscription = %+v, %v", sub, err)
	}
	if _, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "events", Name: "audit"}); !errors.Is(err, weir.ErrAlreadyExists) {
		t.Errorf("second CreateSubscription = %v", err)
	}
	if _, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "nowhere", Name: "x"}); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("CreateSubscription on a missing stream = %v", err)
	}
	if _, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "events", Name: "f", Filter: "nosuchvariable"}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("CreateSubscription with a bad filter = %v", err)
	}
	if _, err := c.CreateSubscription(ctx, weir.SubscriptionConfig{Stream: "events", Name: "all"}); err != nil {
		t.Fatal(err)
	}
	subs, err := c.ListSubscriptions(ctx, "events")
	if err != nil || len(subs) != 2 {
		t.Errorf("ListSubscriptions = %+v, %v", subs, err)
	}
	publishValues(t, c, "events", []byte("a"), "a1", "a2")
	publishValues(t, c, "events", []byte("b"), "b1")
	var mu sync.Mutex
	var got []string
	cons, err := c.Consume(ctx, "events", func(_ context.Context, m *weir.Message) error {
		mu.Lock()
		got = append(got, string(m.Value))
		mu.Unlock()
		return nil
	}, weir.Shared("audit"))
	if err != nil {
		t.Fatal(err)
	}
	waitDepth(t, c, "events", "audit", 0)
	cons.Close(ctx)
	mu.Lock()
	if len(got) != 2 || !strings.HasPrefix(got[0], "a") || !strings.HasPrefix(got[1], "a") {
		t.Errorf("the filtered subscription delivered %q, want a1 and a2", got)
	}
	mu.Unlock()
	if info, err := c.DescribeSubscription(ctx, "events", "all"); err != nil || info.Depth != 3 {
		t.Errorf("the other subscription: %+v, %v; want depth 3", info, err)
	}
	if _, err := c.DescribeQueue(ctx, "events"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("DescribeQueue of a stream = %v, want ErrNotFound", err)
	}
	if err := c.DeleteQueue(ctx, "events"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("DeleteQueue of a stream = %v, want ErrNotFound", err)
	}
	if err := c.DeleteSubscription(ctx, "events", "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeSubscription(ctx, "events", "audit"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("DescribeSubscription after the delete = %v", err)
	}
	if _, err := c.Consume(ctx, "events", func(context.Context, *weir.Message) error { return nil }, weir.Shared("audit")); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("Consume of a deleted subscription = %v", err)
	}
	if err := c.DeleteQueue(ctx, "emails"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeStream(ctx, "emails"); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("the queue's stream after DeleteQueue: %v", err)
	}
	if _, err := c.DescribeStream(ctx, "events"); err != nil {
		t.Errorf("the stream DeleteQueue refused: %v", err)
	}

	// Options that do not go together.
	noop := func(context.Context, *weir.Message) error { return nil }
	for name, opts := range map[string][]weir.ConsumeOption{
		"shared and group":    {weir.Shared(""), weir.Group("g")},
		"shared with filter":  {weir.Shared("all"), weir.Filter("true")},
		"shared with start":   {weir.Shared("all"), weir.Start(weir.Earliest())},
		"shared auto-commit":  {weir.Shared("all"), weir.AutoCommit(true)},
		"zero ack interval":   {weir.Shared("all"), weir.AckBatching(10, 0)},
		"negative ack batch":  {weir.Shared("all"), weir.AckBatching(-1, time.Millisecond)},
		"filter of ephemeral": {weir.Ephemeral(), weir.Filter("key ==")},
	} {
		if _, err := c.Consume(ctx, "events", noop, opts...); !errors.Is(err, weir.ErrInvalidArgument) {
			t.Errorf("%s: Consume = %v, want ErrInvalidArgument", name, err)
		}
	}
}

// TestConsumeFilter: group, positions and ephemeral consumers with a filter
// get the records it selects.
func TestConsumeFilter(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "orders", 3)
	var recs []weir.Record
	for i := range 30 {
		typ := []string{"created", "paid", "shipped"}[i%3]
		recs = append(recs, weir.Record{Value: []byte(typ), Headers: []weir.Header{{Key: "type", Value: []byte(typ)}}})
	}
	if _, err := c.Publish(ctx, "orders", recs...); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]weir.ConsumeOption{
		"group":     weir.Group("payments"),
		"positions": weir.FromPositions(nil),
	} {
		var got collector
		cons, err := c.Consume(ctx, "orders", got.handle, mode, weir.Start(weir.Earliest()), weir.Filter("headers['type'] == 'paid'"))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, name+" to get the paid orders", func() bool { return got.len() >= 10 })
		time.Sleep(200 * time.Millisecond)
		cons.Close(ctx)
		if v := got.values(); len(v) != 1 || v["paid"] != 10 {
			t.Errorf("%s consumer got %v, want 10 paid", name, v)
		}
	}
	var live collector
	cons, err := c.Consume(ctx, "orders", live.handle, weir.Ephemeral(), weir.Filter("value_string.startsWith('ship')"))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, 10*time.Second, "the live record", func() bool {
		if _, err := c.Publish(ctx, "orders", weir.Record{Value: []byte("created")}, weir.Record{Value: []byte("shipped")}); err != nil {
			t.Fatal(err)
		}
		return live.len() > 0
	})
	if v := live.values(); len(v) != 1 || v["shipped"] == 0 {
		t.Errorf("ephemeral consumer got %v", v)
	}
	_, err = c.Consume(ctx, "orders", live.handle, weir.Group("g"), weir.Filter("headers['type'] = 'paid'"))
	if !errors.Is(err, weir.ErrInvalidArgument) || !strings.Contains(err.Error(), "filter") {
		t.Errorf("Consume with a bad filter = %v, want ErrInvalidArgument with the server's message", err)
	}
	t.Logf("bad filter: %v", err)
}

// TestQueueMaxLength: the max length settings go to the server and come
// back, a full queue refuses publishes with ErrResourceExhausted, and
// DepthBytes says what the byte bound counts.
func TestQueueMaxLength(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	q := createQueue(t, c, weir.QueueConfig{Name: "bounded", Subscription: weir.SubscriptionConfig{
		MaxLength: 10, MaxLengthBytes: 2500, Overflow: weir.OverflowRejectPublish,
	}})
	if cfg := q.Config; cfg.MaxLength != 10 || cfg.MaxLengthBytes != 2500 || cfg.Overflow != weir.OverflowRejectPublish {
		t.Errorf("CreateQueue = %+v", cfg)
	}
	value := strings.Repeat("v", 1000)
	// One publish of 3,000 bytes: taken, as the queue was below 2,500.
	publishValues(t, c, "bounded", nil, value, value, value)
	_, err := c.Publish(ctx, "bounded", weir.Record{Value: []byte("x")})
	if !errors.Is(err, weir.ErrResourceExhausted) {
		t.Errorf("publish to a full queue = %v, want ErrResourceExhausted", err)
	}
	info, err := c.DescribeQueue(ctx, "bounded")
	if err != nil || info.Depth != 3 || info.DepthBytes != 3000 || info.Config.MaxLengthBytes != 2500 {
		t.Errorf("DescribeQueue = %+v, %v; want depth 3, 3000 bytes", info, err)
	}

	// Drop-oldest is the default policy.
	q = createQueue(t, c, weir.QueueConfig{Name: "recent", Subscription: weir.SubscriptionConfig{MaxLengthBytes: 2000}})
	if q.Config.Overflow != weir.OverflowDropOldest {
		t.Errorf("default overflow %q", q.Config.Overflow)
	}
	publishValues(t, c, "recent", nil, value, value, value)
	eventually(t, 10*time.Second, "two records, 2000 bytes", func() bool {
		info, err := c.DescribeQueue(ctx, "recent")
		return err == nil && info.Depth == 2 && info.DepthBytes == 2000
	})

	_, err = c.CreateQueue(ctx, weir.QueueConfig{Name: "bad", Subscription: weir.SubscriptionConfig{MaxLengthBytes: -1}})
	if !errors.Is(err, weir.ErrInvalidArgument) {
		t.Errorf("CreateQueue with a negative MaxLengthBytes = %v, want ErrInvalidArgument", err)
	}
}
