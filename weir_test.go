package weir_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir"
	client "github.com/weirmq/weir/client"
)

// TestEmbeddedInProcess runs a node with no listener, uses it through the SDK
// over the in-memory pipe (admin, publish, fetch, a group consumer), and
// checks that the data survives closing and reopening the node.
func TestEmbeddedInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	node, err := weir.Open(ctx, weir.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if node.Addr() != "" {
		t.Fatalf("in-process node listens on %q", node.Addr())
	}
	c, err := node.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateStream(ctx, client.StreamConfig{Name: "orders", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	var recs []client.Record
	for i := range 30 {
		recs = append(recs, client.Record{Key: []byte(fmt.Sprintf("order-%d", i%7)), Value: []byte(fmt.Sprint(i))})
	}
	if _, err := c.Publish(ctx, "orders", recs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]bool{}
	done := make(chan struct{})
	cons, err := c.Consume(ctx, "orders", func(ctx context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Value)] = true
		if len(got) == 30 {
			close(done)
		}
		return nil
	}, client.Group("billing"), client.Start(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("group consumer received %d of 30 records", len(got))
	}
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := node.Close(ctx); err != nil {
		t.Fatal(err)
	}

	node, err = weir.Open(ctx, weir.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close(ctx)
	c, err = node.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.DescribeStream(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range info.Partitions {
		total += p.EndOffset
	}
	if total != 30 {
		t.Fatalf("after reopening: %d records", total)
	}
	g, err := c.DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, o := range g.Offsets {
		committed += o.Offset
	}
	if committed != 30 {
		t.Fatalf("after reopening the group's committed offsets add up to %d, want 30", committed)
	}
}

func TestEmbeddedWithListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := weir.Open(ctx, weir.Options{Dir: t.TempDir(), HTTPAddr: "127.0.0.1:0", FSync: "never"})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close(ctx)
	if node.Addr() == "" {
		t.Fatal("no address")
	}
	resp, err := http.Get("http://" + node.Addr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	c, err := node.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateStream(ctx, client.StreamConfig{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := weir.Open(ctx, weir.Options{}); err == nil {
		t.Fatal("Open without a directory succeeded")
	}
	if _, err := weir.Open(ctx, weir.Options{Dir: t.TempDir(), FSync: "sometimes"}); err == nil {
		t.Fatal("Open with a bad fsync policy succeeded")
	}
}
