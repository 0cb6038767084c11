package console_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/server"
)

// browserDir holds the browser test's script and its playwright-core
// (installed by .ci/run with npm ci).
const browserDir = "testdata/browser"

// TestConsoleInBrowser runs the browser test (testdata/browser/run.js)
// against a Weir holding data: every page loads without console errors,
// the publish form publishes a record the record browser then shows, a
// queue's depth changes on the page when a consumer acknowledges a record,
// the records a consumer rejected show dead-lettered and the redrive
// button (after its confirmation) moves them back into their queue, purge
// asks first, and the groups page shows the lag history the server keeps,
// after a reload too.
// With WEIR_SCREENSHOTS=DIR it saves screenshots of the main pages there
// (docs/console, relative to the repository, is where the README finds
// them).
func TestConsoleInBrowser(t *testing.T) {
	runBrowserTest(t, false)
}

// TestConsoleInBrowserWithAuth runs it against a server that requires
// authentication: the console shows its login form, then works with the
// credentials given there.
func TestConsoleInBrowserWithAuth(t *testing.T) {
	runBrowserTest(t, true)
}

func runBrowserTest(t *testing.T, withAuth bool) {
	node, chromium := browserTools(t)
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", ""
	cfg.HTTPAddr = "127.0.0.1:0"
	var authorization string
	if withAuth {
		cfg.Users = writeUsers(t, "alice", "wonderland")
		authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))
	}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	base := "http://" + s.Addr("http")
	client := weirpbconnect.NewWeirClient(http.DefaultClient, base, connect.WithInterceptors(credentials(authorization)))

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	fill(ctx, t, client)
	deadLetter(ctx, t, client)
	stopTraffic := traffic(ctx, t, client)
	defer stopTraffic()
	consumer := consumeOne(ctx, t, client)

	cmd := exec.CommandContext(ctx, node, "run.js", base)
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	if withAuth {
		cmd.Env = append(cmd.Env, "WEIR_USER=alice", "WEIR_PASSWORD=wonderland")
	}
	if dir := os.Getenv("WEIR_SCREENSHOTS"); dir != "" && !withAuth {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", "..", dir) // from the repository's root
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, "WEIR_SCREENSHOTS="+abs)
	}
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		switch line := lines.Text(); line {
		case "ack-one":
			if err := consumer.ack(ctx); err != nil {
				t.Errorf("ack: %v", err)
				_, _ = io.WriteString(stdin, "failed\n")
				continue
			}
			if _, err := io.WriteString(stdin, "acked\n"); err != nil {
				t.Errorf("answer the browser test: %v", err)
			}
		default:
			t.Logf("browser test said %q", line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the browser test failed (its output is above): %v", err)
	}
}

// browserTools finds node, the playwright-core that .ci/run installs, and
// Debian's chromium. A test that cannot run fails: it is not skipped.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (.ci/run installs nodejs): %v", err)
	}
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed: run npm ci in internal/console/%s (.ci/run does): %v", browserDir, err)
	}
	// Debian's /usr/bin/chromium is a shell script that starts this binary.
	for _, path := range []string{os.Getenv("CHROMIUM"), "/usr/lib/chromium/chromium", "chromium", "chromium-browser"} {
		if path == "" {
			continue
		}
		if found, err := exec.LookPath(path); err == nil {
			return node, found
		}
	}
	t.Fatal("chromium is not installed (.ci/run installs Debian's chromium; or set CHROMIUM to a Chromium binary)")
	return "", ""
}

// writeUsers writes a users file with one user and returns its path.
func writeUsers(t *testing.T, name, password string) string {
	t.Helper()
	u := auth.New()
	if err := u.Add(name, password); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// credentials sends an Authorization header on every call, when set.
func credentials(authorization string) connect.Interceptor {
	return authInterceptor(authorization)
}

type authInterceptor string

func (a authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if a != "" {
			req.Header().Set("Authorization", string(a))
		}
		return next(ctx, req)
	}
}

func (a authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if a != "" {
			conn.RequestHeader().Set("Authorization", string(a))
		}
		return conn
	}
}

func (a authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// fill creates what the pages show: a stream of orders with records, a
// queue with jobs, exchanges bound to both and to each other, a consumer
// group with committed offsets and a filtered shared subscription.
func fill(ctx context.Context, t *testing.T, c weirpbconnect.WeirClient) {
	t.Helper()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "orders", Partitions: 3}}))
	must("create orders", err)
	_, err = c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "audit-log"}}))
	must("create audit-log", err)
	var orders []*weirpb.Record
	for i := range 30 {
		orders = append(orders, &weirpb.Record{
			Key:     fmt.Appendf(nil, "customer-%d", i%7),
			Value:   fmt.Appendf(nil, `{"order":%d,"customer":"customer-%d","total":%d.25,"status":"paid"}`, i, i%7, 10+i),
			Headers: []*weirpb.Header{{Key: "type", Value: []byte("order.created")}, {Key: "content-type", Value: []byte("application/json")}},
		})
	}
	_, err = c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: orders}))
	must("publish orders", err)
	_, err = c.CreateQueue(ctx, connect.NewRequest(&weirpb.CreateQueueRequest{Name: "jobs", Subscription: &weirpb.SubscriptionConfig{MaxDeliveries: 5}}))
	must("create queue jobs", err)
	var jobs []*weirpb.Record
	for i := range 5 {
		jobs = append(jobs, &weirpb.Record{Value: fmt.Appendf(nil, "resize image %d", i)})
	}
	_, err = c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "jobs", Records: jobs}))
	must("publish jobs", err)
	_, err = c.CreateQueue(ctx, connect.NewRequest(&weirpb.CreateQueueRequest{Name: "emails"}))
	must("create queue emails", err)

	for _, x := range []*weirpb.DeclareExchangeRequest{{Name: "events", Type: "topic", AlternateExchange: "unrouted"}, {Name: "audit", Type: "fanout"}, {Name: "unrouted", Type: "fanout"}} {
		_, err = c.DeclareExchange(ctx, connect.NewRequest(x))
		must("declare exchange "+x.Name, err)
	}
	for _, b := range []*weirpb.BindRequest{
		{Exchange: "events", Destination: "orders", Key: "order.*"},
		{Exchange: "events", Destination: "jobs", Key: "job.#"},
		{Exchange: "events", Destination: "audit", ToExchange: true, Key: "#"},
		{Exchange: "audit", Destination: "audit-log"},
		{Exchange: "unrouted", Destination: "emails"},
	} {
		_, err = c.Bind(ctx, connect.NewRequest(b))
		must("bind "+b.Exchange+" to "+b.Destination, err)
	}
	var commits []*weirpb.OffsetCommit
	for p := range int32(3) {
		commits = append(commits, &weirpb.OffsetCommit{Stream: "orders", Partition: p, Offset: int64(p) + 1})
	}
	_, err = c.Commit(ctx, connect.NewRequest(&weirpb.CommitRequest{Group: "billing", Offsets: commits}))
	must("commit billing's offsets", err)
	_, err = c.CreateSubscription(ctx, connect.NewRequest(&weirpb.CreateSubscriptionRequest{Config: &weirpb.SubscriptionConfig{
		Stream: "orders", Name: "big-orders", Filter: `value_string.contains('"total":3')`,
		Start: &weirpb.StartPosition{Position: &weirpb.StartPosition_Earliest{Earliest: true}},
	}}))
	must("create subscription big-orders", err)
}

// traffic publishes a few records a second through the topic exchange and
// to the queue emails, and reads the audit log, while the test runs, so
// that the overview's charts move.
func traffic(ctx context.Context, t *testing.T, c weirpbconnect.WeirClient) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(250 * time.Millisecond)
		defer ticker.Stop()
		var next int64
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			recs := make([]*weirpb.Record, 5+i%7)
			for j := range recs {
				recs[j] = &weirpb.Record{Value: fmt.Appendf(nil, `{"tick":%d,"n":%d}`, i, j)}
			}
			_, err := c.PublishExchange(ctx, connect.NewRequest(&weirpb.PublishExchangeRequest{Exchange: "events", RoutingKey: "audit.tick", Records: recs}))
			if err == nil {
				_, err = c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "emails", Records: recs[:1]}))
			}
			if err == nil { // a reader of the audit log, for the records out
				var res *connect.Response[weirpb.FetchResponse]
				res, err = c.Fetch(ctx, connect.NewRequest(&weirpb.FetchRequest{Stream: "audit-log", Offset: next}))
				if err == nil {
					next = res.Msg.GetNextOffset()
				}
			}
			if err != nil && ctx.Err() == nil {
				t.Errorf("traffic: %v", err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// queueConsumer is a consumer of the queue jobs holding one record.
type queueConsumer struct {
	client         weirpbconnect.WeirClient
	subscriptionID string
	record         *weirpb.Record
}

// consumeOne subscribes to the queue jobs with a prefetch of one and waits
// for a record; the subscription stays open until the test ends.
func consumeOne(ctx context.Context, t *testing.T, c weirpbconnect.WeirClient) *queueConsumer {
	t.Helper()
	stream, err := c.Subscribe(ctx, connect.NewRequest(&weirpb.SubscribeRequest{
		Stream: "jobs", Credits: 1, Mode: &weirpb.SubscribeRequest_Shared{Shared: &weirpb.SharedMode{}},
	}))
	if err != nil {
		t.Fatalf("subscribe to jobs: %v", err)
	}
	t.Cleanup(func() { _ = stream.Close() })
	q := &queueConsumer{client: c}
	for q.record == nil && stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *weirpb.SubscribeResponse_Subscribed:
			q.subscriptionID = ev.Subscribed.GetSubscriptionId()
		case *weirpb.SubscribeResponse_Records:
			q.record = ev.Records.GetRecords()[0]
		}
	}
	if q.record == nil {
		t.Fatalf("no record from the queue jobs: %v", stream.Err())
	}
	return q
}

func (q *queueConsumer) ack(ctx context.Context) error {
	_, err := q.client.Ack(ctx, connect.NewRequest(&weirpb.SettleRequest{
		SubscriptionId: q.subscriptionID,
		Records:        []*weirpb.PartitionOffset{{Partition: q.record.GetPartition(), Offset: q.record.GetOffset()}},
	}))
	return err
}

// deadLetter makes the queue "tasks" (dead-letter stream "tasks.dlq") with
// three records, which a consumer rejects: they are dead-lettered, for the
// redrive button.
func deadLetter(ctx context.Context, t *testing.T, c weirpbconnect.WeirClient) {
	t.Helper()
	if _, err := c.CreateQueue(ctx, connect.NewRequest(&weirpb.CreateQueueRequest{Name: "tasks", Subscription: &weirpb.SubscriptionConfig{MaxDeliveries: 3}})); err != nil {
		t.Fatalf("create queue tasks: %v", err)
	}
	recs := make([]*weirpb.Record, 3)
	for i := range recs {
		recs[i] = &weirpb.Record{Value: fmt.Appendf(nil, "send invoice %d", i)}
	}
	if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "tasks", Records: recs})); err != nil {
		t.Fatalf("publish tasks: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Subscribe(ctx, connect.NewRequest(&weirpb.SubscribeRequest{
		Stream: "tasks", Credits: 3, Mode: &weirpb.SubscribeRequest_Shared{Shared: &weirpb.SharedMode{}},
	}))
	if err != nil {
		t.Fatalf("subscribe to tasks: %v", err)
	}
	defer stream.Close()
	var id string
	var got []*weirpb.PartitionOffset
	for len(got) < len(recs) && stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *weirpb.SubscribeResponse_Subscribed:
			id = ev.Subscribed.GetSubscriptionId()
		case *weirpb.SubscribeResponse_Records:
			for _, r := range ev.Records.GetRecords() {
				got = append(got, &weirpb.PartitionOffset{Partition: r.GetPartition(), Offset: r.GetOffset()})
			}
		}
	}
	if len(got) < len(recs) {
		t.Fatalf("got %d records of the queue tasks, want %d: %v", len(got), len(recs), stream.Err())
	}
	if _, err := c.Reject(ctx, connect.NewRequest(&weirpb.SettleRequest{SubscriptionId: id, Records: got, Error: "the invoice service is down"})); err != nil {
		t.Fatalf("reject the records of tasks: %v", err)
	}
}
