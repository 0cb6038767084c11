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

// upper serves requests of a queue, answering with the value upper-cased.
func upper(t *testing.T, c *weir.Client, queue string, opts ...weir.ConsumeOption) *weir.Consumer {
	t.Helper()
	cons, err := c.Respond(t.Context(), queue, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		return weir.Record{Value: []byte(strings.ToUpper(string(req.Value)))}, nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close(context.Background()) })
	return cons
}

func TestRequestReply(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	admin := srv.dial(t)
	if _, err := admin.CreateQueue(ctx, weir.QueueConfig{Name: "rpc", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	// Two responders compete for the requests.
	upper(t, srv.dial(t), "rpc", weir.Prefetch(50))
	upper(t, srv.dial(t), "rpc", weir.Prefetch(50))

	requester := srv.dial(t)
	reply, err := requester.Request(ctx, weir.ToStream("rpc"), weir.Record{Value: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	corr, ok := reply.Header(weir.HeaderCorrelationID)
	if string(reply.Value) != "HELLO" || !ok || len(corr) != 32 {
		t.Fatalf("reply %q with correlation-id %q", reply.Value, corr)
	}

	// 1,000 concurrent requests: every reply answers its own request.
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			v := fmt.Sprintf("request-%d", i)
			reply, err := requester.Request(rctx, weir.ToStream("rpc"), weir.Record{Value: []byte(v)})
			if err == nil && string(reply.Value) != strings.ToUpper(v) {
				err = fmt.Errorf("request %q got reply %q", v, reply.Value)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every request was acknowledged.
	eventually(t, 10*time.Second, "every request acknowledged", func() bool {
		qs, err := admin.ListQueues(ctx)
		return err == nil && len(qs) == 1 && qs[0].Depth == 0
	})
}

func TestRequestTimeoutAndErrors(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	c := srv.dial(t)
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "nobody-home"}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Request(rctx, weir.ToStream("nobody-home"), weir.Record{Value: []byte("anyone?")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request without a responder: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the request gave up after %v, its deadline was 300ms", d)
	}
	if _, err := c.Request(ctx, weir.ToStream("no-such-queue"), weir.Record{}); !errors.Is(err, weir.ErrNotFound) {
		t.Fatalf("request to a missing queue: %v, want not found", err)
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "rpc-x", Type: weir.ExchangeDirect}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, weir.ToExchange("rpc-x", "nobody"), weir.Record{}); !errors.Is(err, weir.ErrNoRoute) {
		t.Fatalf("request routed nowhere: %v, want ErrNoRoute", err)
	}
	if _, err := c.Request(ctx, weir.Destination{}, weir.Record{}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("request to no destination: %v", err)
	}
	// A record that is not a request cannot be replied to.
	if err := c.Reply(ctx, &weir.Record{Value: []byte("x")}, weir.Record{}); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("reply to a record without reply-to: %v", err)
	}
}

// The inbox goes away with its requester; a responder that answers late
// settles the request all the same.
func TestInboxEndsWithRequester(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	admin := srv.dial(t)
	if _, err := admin.CreateQueue(ctx, weir.QueueConfig{Name: "slow"}); err != nil {
		t.Fatal(err)
	}
	inboxes := make(chan string, 1)
	release := make(chan struct{})
	resp, err := admin.Respond(ctx, "slow", func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		to, _ := req.Header(weir.HeaderReplyTo)
		inboxes <- string(to)
		<-release
		return weir.Record{Value: []byte("too late")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close(context.Background())

	requester := srv.dial(t)
	done := make(chan error, 1)
	go func() {
		_, err := requester.Request(ctx, weir.ToStream("slow"), weir.Record{Value: []byte("q")})
		done <- err
	}()
	inbox := <-inboxes
	if !strings.HasPrefix(inbox, "_inbox.") {
		t.Fatalf("reply-to %q is not an inbox", inbox)
	}
	if _, err := admin.DescribeStream(ctx, inbox); err != nil {
		t.Fatalf("the inbox of a waiting requester: %v", err)
	}
	requester.Close()
	if err := <-done; !errors.Is(err, weir.ErrInboxLost) {
		t.Fatalf("request of a client closed while it waited: %v, want ErrInboxLost", err)
	}
	eventually(t, 10*time.Second, "the inbox deleted", func() bool {
		_, err := admin.DescribeStream(ctx, inbox)
		return errors.Is(err, weir.ErrNotFound)
	})
	close(release)
	eventually(t, 10*time.Second, "the late request settled", func() bool {
		qs, err := admin.ListQueues(ctx)
		return err == nil && qs[0].Depth == 0
	})
	for _, s := range mustList(t, admin) {
		if strings.HasPrefix(s, "_inbox.") {
			t.Fatalf("ListStreams shows inbox %s", s)
		}
	}
}

// A server restart takes the inbox: waiting requests fail at once, and
// the next request gets a new inbox.
func TestInboxAcrossRestart(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	c := srv.dial(t)
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "rpc"}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(rctx, weir.ToStream("rpc"), weir.Record{Value: []byte("lost")})
		done <- err
	}()
	eventually(t, 10*time.Second, "the request queued", func() bool {
		qs, err := c.ListQueues(ctx)
		return err == nil && qs[0].Depth == 1
	})
	srv.restart()
	select {
	case err := <-done:
		if !errors.Is(err, weir.ErrInboxLost) {
			t.Fatalf("request across a restart: %v, want ErrInboxLost", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a request whose inbox was lost kept waiting")
	}
	// The unanswered request is still queued; a responder now answers
	// it into the old, gone inbox (dropped) and the new one.
	upper(t, srv.dial(t), "rpc")
	reply, err := c.Request(rctx, weir.ToStream("rpc"), weir.Record{Value: []byte("again")})
	if err != nil || string(reply.Value) != "AGAIN" {
		t.Fatalf("request after restart: %q, %v", reply.Value, err)
	}
}

func TestScatterGather(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	c := srv.dial(t)
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "quotes", Type: weir.ExchangeFanout}); err != nil {
		t.Fatal(err)
	}
	prices := map[string]int{"acme": 120, "globex": 95, "initech": 80}
	for vendor, price := range prices {
		if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "quotes." + vendor}); err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(ctx, "quotes", weir.Binding{Destination: "quotes." + vendor}); err != nil {
			t.Fatal(err)
		}
		cons, err := c.Respond(ctx, "quotes."+vendor, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
			if vendor == "initech" { // the cheapest, and too slow
				select {
				case <-time.After(3 * time.Second):
				case <-ctx.Done():
					return weir.Record{}, ctx.Err()
				}
			}
			return weir.Record{Key: []byte(vendor), Value: []byte(strconv.Itoa(price))}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close(context.Background())
	}
	best := func(replies []weir.Record) (string, error) {
		if len(replies) == 0 {
			return "", errors.New("no quotes")
		}
		slices.SortFunc(replies, func(a, b weir.Record) int {
			x, _ := strconv.Atoi(string(a.Value))
			y, _ := strconv.Atoi(string(b.Value))
			return x - y
		})
		return fmt.Sprintf("%s@%s/%d", replies[0].Key, replies[0].Value, len(replies)), nil
	}
	// Waiting for three replies: the deadline passes first and the two
	// that came are aggregated.
	start := time.Now()
	got, err := weir.ScatterGather(ctx, c, weir.ToExchange("quotes", ""), weir.Record{Value: []byte("100 widgets")},
		weir.GatherOptions{Replies: 3, Timeout: 1500 * time.Millisecond}, best)
	elapsed := time.Since(start)
	if err != nil || got != "globex@95/2" {
		t.Fatalf("gathered %q, %v; want globex@95/2", got, err)
	}
	if elapsed < 1400*time.Millisecond || elapsed > 2900*time.Millisecond {
		t.Fatalf("gathering took %v; the deadline was 1.5s and the slow responder takes 3s", elapsed)
	}
	// Two replies are enough: no waiting for the deadline.
	start = time.Now()
	got, err = weir.ScatterGather(ctx, c, weir.ToExchange("quotes", ""), weir.Record{Value: []byte("5 widgets")},
		weir.GatherOptions{Replies: 2, Timeout: 20 * time.Second}, best)
	if err != nil || got != "globex@95/2" || time.Since(start) > 10*time.Second {
		t.Fatalf("gathered %q, %v after %v", got, err, time.Since(start))
	}
	// With enough time the slow one's cheaper quote wins.
	got, err = weir.ScatterGather(ctx, c, weir.ToExchange("quotes", ""), weir.Record{Value: []byte("1 widget")},
		weir.GatherOptions{Replies: 3, Timeout: 20 * time.Second}, best)
	if err != nil || got != "initech@80/3" {
		t.Fatalf("gathered %q, %v; want initech@80/3", got, err)
	}
	if _, err := weir.ScatterGather(context.Background(), c, weir.ToExchange("quotes", ""), weir.Record{}, weir.GatherOptions{}, best); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("scatter-gather without a deadline: %v", err)
	}
}

func TestPublishToRecipientList(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	c := srv.dial(t)
	for _, s := range []string{"billing", "shipping", "audit.eu"} {
		if _, err := c.CreateStream(ctx, weir.StreamConfig{Name: s}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "audit", Type: weir.ExchangeDirect}); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(ctx, "audit", weir.Binding{Destination: "audit.eu", Key: "eu"}); err != nil {
		t.Fatal(err)
	}
	rec := weir.Record{Key: []byte("o-1"), Value: []byte("order 1"), Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte("o-1")}}}
	dests := []weir.Destination{weir.ToStream("billing"), weir.ToStream("shipping"), weir.ToExchange("audit", "eu"), weir.ToExchange("audit", "us")}
	res, err := c.PublishTo(ctx, dests, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || len(res[0].Results) != 1 || len(res[1].Results) != 1 ||
		!slices.Equal(res[2].Streams, []string{"audit.eu"}) || res[2].Unroutable || !res[3].Unroutable {
		t.Fatalf("results %+v", res)
	}
	res, err = c.PublishTo(ctx, dests[:2], rec)
	if err != nil || !res[0].Results[0].Duplicate || !res[1].Results[0].Duplicate {
		t.Fatalf("a retried publish was stored again: %+v, %v", res, err)
	}
	for _, s := range []string{"billing", "shipping", "audit.eu"} {
		info, err := c.DescribeStream(ctx, s)
		if err != nil || info.Records() != 1 {
			t.Fatalf("%s: %v records, %v", s, info, err)
		}
	}
	if _, err := c.PublishTo(ctx, []weir.Destination{weir.ToStream("billing"), weir.ToStream("nope")}, rec); !errors.Is(err, weir.ErrNotFound) {
		t.Fatalf("a missing destination: %v", err)
	}
	if _, err := c.PublishTo(ctx, []weir.Destination{weir.ToStream("billing"), weir.ToStream("billing")}, rec); !errors.Is(err, weir.ErrInvalidArgument) {
		t.Fatalf("a repeated destination: %v", err)
	}
}

func mustList(t *testing.T, c *weir.Client) []string {
	t.Helper()
	streams, err := c.ListStreams(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range streams {
		names = append(names, s.Config.Name)
	}
	return names
}
