package weir_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	weir "github.com/weirmq/weir/client"
	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

// collector gathers the records a handler got.
type collector struct {
	mu      sync.Mutex
	records []weir.Record
}

func (c *collector) handle(_ context.Context, m *weir.Message) error {
	c.mu.Lock()
	c.records = append(c.records, m.Record)
	c.mu.Unlock()
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.records)
}

func (c *collector) values() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int)
	for _, r := range c.records {
		out[string(r.Value)]++
	}
	return out
}

// TestEphemeral: an ephemeral subscriber sees only what was published after
// it joined.
func TestEphemeral(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "live", 3)
	for i := range 10 {
		if _, err := c.Publish(ctx, "live", weir.Record{Value: []byte("before-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var got collector
	cons, err := c.Consume(ctx, "live", got.handle, weir.Ephemeral())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := c.Publish(ctx, "live", weir.Record{Value: []byte("after-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	// A marker published last, in every partition, tells that the rest came.
	for p := range int32(3) {
		if _, err := c.PublishPartition(ctx, "live", p, weir.Record{Value: []byte("end")}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the records published after subscribing", func() bool { return got.values()["end"] == 3 })
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	values := got.values()
	delete(values, "end")
	if len(values) != 10 {
		t.Errorf("ephemeral subscriber got %v, want after-0 to after-9", values)
	}
	for v, n := range values {
		if v[:6] != "after-" || n != 1 {
			t.Errorf("ephemeral subscriber got %q %d times", v, n)
		}
	}
	if err := cons.Commit(ctx); !errors.Is(err, weir.ErrNoGroup) {
		t.Errorf("Commit of an ephemeral consumer = %v, want ErrNoGroup", err)
	}
}

// TestReplayFromTime: a replay from a timestamp starts, in each partition,
// at the first record of that time.
func TestReplayFromTime(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "history", 4)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	firstOfSecond := make(map[int32]int64) // partition -> offset of its first record of the second batch
	for batch, at := range []time.Time{base, base.Add(time.Hour)} {
		recs := make([]weir.Record, 40)
		for i := range recs {
			recs[i] = weir.Record{
				Key:       []byte("k" + strconv.Itoa(i%10)),
				Value:     []byte(strconv.Itoa(batch) + "-" + strconv.Itoa(i)),
				Timestamp: at.Add(time.Duration(i) * time.Millisecond),
			}
		}
		res, err := c.Publish(ctx, "history", recs...)
		if err != nil {
			t.Fatal(err)
		}
		if batch == 1 {
			for _, r := range res {
				if off, ok := firstOfSecond[r.Partition]; !ok || r.Offset < off {
					firstOfSecond[r.Partition] = r.Offset
				}
			}
		}
	}

	var got collector
	cons, err := c.Consume(ctx, "history", got.handle, weir.FromPositions(nil), weir.Start(weir.AtTime(base.Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the second batch", func() bool { return got.len() >= 40 })
	time.Sleep(100 * time.Millisecond) // nothing more may come
	cons.Close(ctx)
	first := make(map[int32]int64)
	for _, r := range got.records {
		if r.Value[0] != '1' {
			t.Errorf("replay from the second batch's time got %q of the first batch", r.Value)
		}
		if !r.Timestamp.Equal(base.Add(time.Hour).Add(time.Duration(mustAtoi(t, string(r.Value[2:]))) * time.Millisecond)) {
			t.Errorf("record %q has timestamp %v", r.Value, r.Timestamp)
		}
		if off, ok := first[r.Partition]; !ok || r.Offset < off {
			first[r.Partition] = r.Offset
		}
	}
	if len(got.records) != 40 {
		t.Errorf("replay got %d records, want 40", len(got.records))
	}
	for p, off := range firstOfSecond {
		if first[p] != off {
			t.Errorf("replay of partition %d started at offset %d, want %d", p, first[p], off)
		}
	}

	// Explicit positions: partition 1 only, from its offset 2.
	var part collector
	cons, err = c.Consume(ctx, "history", part.handle, weir.FromPositions(map[int32]int64{1: 2}))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.DescribeStream(ctx, "history")
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.Partitions[1].EndOffset - 2)
	eventually(t, 10*time.Second, "partition 1 from offset 2", func() bool { return part.len() >= want })
	cons.Close(ctx)
	for i, r := range part.records {
		if r.Partition != 1 || r.Offset != int64(2+i) {
			t.Errorf("record %d is %d/%d, want 1/%d", i, r.Partition, r.Offset, 2+i)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRestart: after a server restart streams, records and committed offsets
// are all there, and consumers that ran through the restart reconnect and
// go on where they were.
func TestRestart(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "durable", 4)
	publishKeyed(t, c, "durable", 10, 10, 0)

	// A group that read everything and stopped.
	done := newLedger()
	cons, err := c.Consume(ctx, "durable", done.handler(0), weir.Group("finished"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "100 records", func() bool { return done.distinct() == 100 })
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// A group consumer and a positional one that live through the restart.
	group, positional := newLedger(), newLedger()
	groupCons, err := c.Consume(ctx, "durable", group.handler(0), weir.Group("running"), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	posCons, err := c.Consume(ctx, "durable", positional.handler(0), weir.Start(weir.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "100 records", func() bool { return group.distinct() == 100 && positional.distinct() == 100 })
	if err := groupCons.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}

	srv.restart()

	info, err := c.DescribeStream(ctx, "durable")
	if err != nil {
		t.Fatalf("DescribeStream after restart: %v", err)
	}
	if info.Records() != 100 || len(info.Partitions) != 4 {
		t.Errorf("after restart: %d records in %d partitions, want 100 in 4", info.Records(), len(info.Partitions))
	}
	g, err := c.DescribeGroup(ctx, "finished")
	if err != nil {
		t.Fatalf("DescribeGroup after restart: %v", err)
	}
	var committed int64
	for _, o := range g.Offsets {
		committed += o.Offset
	}
	if committed != 100 || g.Lag() != 0 {
		t.Errorf("after restart the group has committed %d records with lag %d, want 100 and 0", committed, g.Lag())
	}

	publishKeyed(t, c, "durable", 10, 10, 10)
	eventually(t, 30*time.Second, "the consumers to resume", func() bool { return group.distinct() == 200 && positional.distinct() == 200 })
	groupCons.Close(ctx)
	posCons.Close(ctx)
	group.check(t, 200)
	positional.check(t, 200)

	// The finished group resumes after what it committed before the restart.
	again := newLedger()
	cons, err = c.Consume(ctx, "durable", again.handler(0), weir.Group("finished"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the records published after the restart", func() bool { return again.distinct() == 100 })
	cons.Close(ctx)
	again.check(t, 100)
	for _, r := range again.byConsumer[0] {
		if _, seq := parseValue(r.Value); seq < 10 {
			t.Errorf("the finished group got %q again", r.Value)
		}
	}
}

// TestStreamDeleted ends a consumer whose stream is deleted with ErrNotFound.
func TestStreamDeleted(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	createStream(t, c, "doomed", 1)
	var got collector
	cons, err := c.Consume(t.Context(), "doomed", got.handle, weir.Group("g"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteStream(t.Context(), "doomed"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cons.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the consumer of a deleted stream did not stop")
	}
	if err := cons.Wait(); !errors.Is(err, weir.ErrNotFound) {
		t.Errorf("Wait = %v, want ErrNotFound", err)
	}
}

// TestClientVanishes: a subscriber or publisher that goes away in the middle
// of a call is cleaned up on the server, which goes on serving.
func TestClientVanishes(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	createStream(t, c, "vanish", 2)
	publishKeyed(t, c, "vanish", 4, 50, 0)
	raw := weirpbconnect.NewWeirClient(httpClient(), "http://"+srv.addr, connect.WithGRPC())

	// A group member that reads a little and disappears without a word.
	subCtx, cancel := context.WithCancel(ctx)
	stream, err := raw.Subscribe(subCtx, connect.NewRequest(&weirpb.SubscribeRequest{
		Stream: "vanish", Credits: 10,
		Mode: &weirpb.SubscribeRequest_Group{Group: &weirpb.GroupMode{Group: "ghosts",
			Start: &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
		if stream.Msg().GetRecords() != nil {
			break
		}
	}
	g, err := c.DescribeGroup(ctx, "ghosts")
	if err != nil || len(g.Members) != 1 {
		t.Fatalf("DescribeGroup while subscribed = %+v, %v; want one member", g, err)
	}
	cancel()
	stream.Close()
	eventually(t, 10*time.Second, "the vanished member to leave", func() bool {
		g, err := c.DescribeGroup(ctx, "ghosts") // a group with no member and no offset is gone
		return errors.Is(err, weir.ErrNotFound) || err == nil && len(g.Members) == 0
	})

	// A publisher that sends part of a stream of batches and disappears.
	before, err := c.DescribeStream(ctx, "vanish")
	if err != nil {
		t.Fatal(err)
	}
	pubCtx, cancel := context.WithCancel(ctx)
	pub := raw.PublishStream(pubCtx)
	if err := pub.Send(&weirpb.PublishRequest{Stream: "vanish", Records: []*weirpb.Record{{Value: []byte("half")}}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := pub.CloseAndReceive(); connect.CodeOf(err) != connect.CodeCanceled {
		t.Errorf("a canceled PublishStream returned %v", err)
	}
	after, err := c.DescribeStream(ctx, "vanish")
	if err != nil {
		t.Fatal(err)
	}
	if after.Records() != before.Records() {
		t.Logf("the canceled PublishStream stored %d records", after.Records()-before.Records())
	}
	if _, err := c.Publish(ctx, "vanish", weir.Record{Value: []byte("still serving")}); err != nil {
		t.Errorf("Publish after the vanished clients: %v", err)
	}
}

// httpClient speaks HTTP/2 without TLS, as gRPC needs.
func httpClient() *http.Client {
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

// TestProtocols publishes and consumes over each protocol the client speaks,
// and with an HTTP client of the caller's.
func TestProtocols(t *testing.T) {
	srv := startServer(t)
	setup := srv.dial(t)
	createStream(t, setup, "wire", 2)
	for _, tt := range []struct {
		name string
		opts []weir.Option
	}{
		{"grpc", nil},
		{"connect+proto", []weir.Option{weir.WithProtocol(weir.ConnectProto)}},
		{"connect+json", []weir.Option{weir.WithConnectJSON()}},
		{"own http client", []weir.Option{weir.WithHTTPClient(httpClient())}},
	} {
		group := strings.NewReplacer("+", "-", " ", "-").Replace(tt.name)
		t.Run(tt.name, func(t *testing.T) {
			c := srv.dial(t, tt.opts...)
			ctx := t.Context()
			var got collector
			cons, err := c.Consume(ctx, "wire", got.handle, weir.Group(group), weir.Start(weir.Latest()))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the assignment", func() bool { return len(cons.Assigned()) == 2 })
			p := c.NewProducer("wire")
			for i := range 10 {
				p.Send(ctx, weir.Record{Key: []byte{byte(i)}, Value: []byte(tt.name), Headers: []weir.Header{{Key: "n", Value: []byte{byte(i)}}}}, nil)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "10 records", func() bool { return got.len() == 10 })
			if err := cons.Close(ctx); err != nil {
				t.Fatal(err)
			}
			for _, r := range got.records {
				if string(r.Value) != tt.name || len(r.Headers) != 1 || r.Stream != "wire" {
					t.Errorf("record %+v", r)
				}
			}

			// A queue: its acks go over an AckStream, or in Ack calls
			// with an HTTP client of the caller's.
			queue := "wire-" + group
			createQueue(t, c, weir.QueueConfig{Name: queue})
			publishValues(t, c, queue, nil, "1", "2", "3")
			var acked atomic.Int64
			shared, err := c.Consume(ctx, queue, func(context.Context, *weir.Message) error { return nil },
				weir.Shared(""), weir.OnAcked(func(m *weir.Message, err error) {
					if err != nil {
						t.Errorf("ack of %s: %v", m.Value, err)
					}
					acked.Add(1)
				}))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "3 acks", func() bool { return acked.Load() == 3 })
			if err := shared.Close(ctx); err != nil {
				t.Fatal(err)
			}
			waitDepth(t, c, queue, queue, 0)
		})
	}
}
