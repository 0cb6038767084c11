package weir_test

// Integration tests of the pattern examples (examples/point-to-point,
// pubsub, firehose, request-reply, scatter-gather, message-filter,
// recipient-list, topic-to-queue): each runs the example's binaries against
// a real server and checks what they print, and what the server holds,
// against what the pattern promises.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// patternTimeout bounds each wait of these tests for a process to print
// something.
const patternTimeout = 20 * time.Second

// running is an example program running in the background, its stdout
// collected line by line.
type running struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed once stdout is read to its end and the process exited

	mu    sync.Mutex
	lines []string
}

// startExample starts an example program in the background; it is killed
// at the end of the test if it is still running.
func startExample(t *testing.T, name string, args ...string) *running {
	t.Helper()
	if err := buildExamplesOnce(); err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, name: name, stderr: &lockedBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(filepath.Join(binDir, name), args...)
	r.cmd.Env = cleanEnv()
	r.cmd.Stderr = r.stderr
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.done
	})
	go func() {
		defer close(r.done)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, scanner.Text())
			r.mu.Unlock()
		}
		r.cmd.Wait()
	}()
	return r
}

// output returns the lines printed so far.
func (r *running) output() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// waitFor polls the lines printed until cond holds, failing the test if
// the program exits first or patternTimeout passes.
func (r *running) waitFor(what string, cond func(lines []string) bool) {
	r.t.Helper()
	deadline := time.Now().Add(patternTimeout)
	for !cond(r.output()) {
		select {
		case <-r.done:
			if cond(r.output()) {
				return
			}
			r.t.Fatalf("%s %q exited (%v) before %s; stdout:\n%s\nstderr:\n%s",
				r.name, r.cmd.Args[1:], r.cmd.ProcessState, what, strings.Join(r.output(), "\n"), r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %v waiting for %s %s; stdout:\n%s\nstderr:\n%s",
				patternTimeout, r.name, what, strings.Join(r.output(), "\n"), r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCount waits until the program printed at least n lines starting with
// prefix.
func (r *running) waitCount(prefix string, n int) {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("to print %d %q lines", n, prefix), func(lines []string) bool { return countPrefix(lines, prefix) >= n })
}

// wait waits for the program to exit by itself, with status 0, and
// returns its lines.
func (r *running) wait() []string {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(patternTimeout):
		r.t.Fatalf("%s %q still running after %v; stdout:\n%s\nstderr:\n%s",
			r.name, r.cmd.Args[1:], patternTimeout, strings.Join(r.output(), "\n"), r.stderr)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		r.t.Fatalf("%s %q exited with %d; stderr:\n%s", r.name, r.cmd.Args[1:], code, r.stderr)
	}
	return r.output()
}

// stop interrupts the program as a user's Ctrl-C would, and returns its
// lines once it exited (with status 0).
func (r *running) stop() []string {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	return r.wait()
}

// exampleStatus runs an example program to completion and returns its
// stdout lines, its stderr and its exit status.
func exampleStatus(t *testing.T, name string, args ...string) (lines []string, stderr string, code int) {
	t.Helper()
	if err := buildExamplesOnce(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = cleanEnv()
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"), errBuf.String(), cmd.ProcessState.ExitCode()
}

// countPrefix counts the lines that start with prefix.
func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// printed is one line an example printed: "verb k=v k=v ...".
type printed struct {
	verb   string
	fields map[string]string
}

func (p printed) get(k string) string { return p.fields[k] }

// parseLines parses lines of the form "verb k=v k=v ..." and keeps those
// whose verb is one of verbs; any other line fails the test.
func parseLines(t *testing.T, program string, lines []string, verbs ...string) []printed {
	t.Helper()
	var out []printed
	for _, line := range lines {
		words := strings.Fields(line)
		if len(words) == 0 {
			t.Fatalf("%s printed an empty line", program)
		}
		p := printed{verb: words[0], fields: make(map[string]string)}
		for _, w := range words[1:] {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				t.Fatalf("%s printed %q: %q is not key=value", program, line, w)
			}
			p.fields[k] = v
		}
		switch {
		case p.verb == "ready":
		case slices.Contains(verbs, p.verb):
			out = append(out, p)
		default:
			t.Fatalf("%s printed %q, want a line starting with one of %q", program, line, verbs)
		}
	}
	return out
}

// values lists a field of printed lines, in order.
func values(lines []printed, field string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.get(field)
	}
	return out
}

// TestPatternPointToPoint: two competing receivers of a queue and a
// sender; every task is received once, by one receiver, at its first
// delivery, and the queue ends empty.
func TestPatternPointToPoint(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	server := "-server=" + srv.addr
	const tasks = 60
	var receivers []*running
	for _, name := range []string{"r1", "r2"} {
		r := startExample(t, "point-to-point", server, "-role=receive", "-queue=tasks", "-name="+name, "-prefetch=1", "-work=5ms")
		r.waitCount("ready receiver="+name, 1)
		receivers = append(receivers, r)
	}
	sent := parseLines(t, "sender", example(t, "point-to-point", server, "-role=send", "-queue=tasks", "-n="+strconv.Itoa(tasks)), "sent")
	if len(sent) != tasks {
		t.Fatalf("the sender sent %d tasks, want %d", len(sent), tasks)
	}
	for i, s := range sent {
		if s.get("task") != strconv.Itoa(i) {
			t.Fatalf("sent line %d is task %q", i, s.get("task"))
		}
	}
	eventually(t, patternTimeout, "every task received", func() bool {
		return countPrefix(receivers[0].output(), "received")+countPrefix(receivers[1].output(), "received") >= tasks
	})
	waitDepth(t, c, "tasks", "tasks", 0)

	byTask := make(map[string][]string)
	for i, r := range receivers {
		got := parseLines(t, "receiver", r.stop(), "received")
		if len(got) == 0 {
			t.Errorf("receiver r%d got no task: the receivers did not compete", i+1)
		}
		for _, g := range got {
			if g.get("delivery") != "1" {
				t.Errorf("task %s received at delivery %s", g.get("task"), g.get("delivery"))
			}
			byTask[g.get("task")] = append(byTask[g.get("task")], g.get("receiver"))
		}
		t.Logf("receiver r%d got %d tasks", i+1, len(got))
	}
	for i := range tasks {
		if by := byTask[strconv.Itoa(i)]; len(by) != 1 {
			t.Errorf("task %d received by %q, want exactly one receiver", i, by)
		}
	}
	if len(byTask) != tasks {
		t.Errorf("received %d distinct tasks, want %d", len(byTask), tasks)
	}
}

// TestPatternPubSub: a durable subscriber gets what was published while
// it was down when it comes back, and nothing twice; an ephemeral one gets
// only what is published while it runs.
func TestPatternPubSub(t *testing.T) {
	srv := startServer(t)
	server := "-server=" + srv.addr
	publish := func(prefix string) {
		t.Helper()
		lines := parseLines(t, "publisher", example(t, "pubsub", server, "-role=publish", "-prefix="+prefix, "-n=3"), "published")
		for i, l := range lines {
			streams := strings.Split(l.get("streams"), ",")
			slices.Sort(streams)
			if l.get("value") != fmt.Sprintf("%s-%d", prefix, i) || !slices.Equal(streams, []string{"news.billing", "news.live"}) {
				t.Fatalf("publisher printed %+v, want %s-%d routed to both subscribers' streams", l, prefix, i)
			}
		}
		if len(lines) != 3 {
			t.Fatalf("the publisher published %d records, want 3", len(lines))
		}
	}
	received := func(program string, lines []string) []string {
		t.Helper()
		return values(parseLines(t, program, lines, "received"), "value")
	}

	// Both subscribers up: both get a-0..a-2.
	durable := startExample(t, "pubsub", server, "-role=durable", "-name=billing", "-count=3")
	durable.waitCount("ready", 1)
	live := startExample(t, "pubsub", server, "-role=ephemeral", "-name=screen")
	live.waitCount("ready", 1)
	publish("a")
	want := []string{"a-0", "a-1", "a-2"}
	if got := received("durable subscriber", durable.wait()); !slices.Equal(got, want) {
		t.Fatalf("durable subscriber got %q, want %q", got, want)
	}
	live.waitCount("received", 3)
	if got := received("ephemeral subscriber", live.stop()); !slices.Equal(got, want) {
		t.Fatalf("ephemeral subscriber got %q, want %q", got, want)
	}

	// Both down: b-0..b-2 wait in the durable subscriber's stream only.
	publish("b")

	// Both back, then c-0..c-2.
	live = startExample(t, "pubsub", server, "-role=ephemeral", "-name=screen")
	live.waitCount("ready", 1)
	durable = startExample(t, "pubsub", server, "-role=durable", "-name=billing", "-count=6")
	durable.waitCount("ready", 1)
	publish("c")
	want = []string{"b-0", "b-1", "b-2", "c-0", "c-1", "c-2"}
	if got := received("durable subscriber", durable.wait()); !slices.Equal(got, want) {
		t.Fatalf("durable subscriber back got %q, want what it missed and what followed, once: %q", got, want)
	}
	live.waitCount("received", 3)
	want = []string{"c-0", "c-1", "c-2"}
	if got := received("ephemeral subscriber", live.stop()); !slices.Equal(got, want) {
		t.Fatalf("ephemeral subscriber back got %q, want only what was published while it ran: %q", got, want)
	}
}

// TestPatternFirehose: the async producer publishes 20,000 events of 50
// keys into 8 partitions; a group consumer gets every one of them once,
// each key's in the order sent and from one partition, and the group has
// no lag left.
func TestPatternFirehose(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	server := "-server=" + srv.addr
	const events, keys = 20000, 50
	produced := parseLines(t, "producer", example(t, "firehose", server, "-role=produce", "-partitions=8",
		"-n="+strconv.Itoa(events), "-keys="+strconv.Itoa(keys), "-size=64"), "produced")
	if len(produced) != 1 || produced[0].get("records") != strconv.Itoa(events) || produced[0].get("errors") != "0" {
		t.Fatalf("producer printed %+v", produced)
	}
	t.Logf("producer: %s events/s", produced[0].get("rate"))

	lines := parseLines(t, "consumer", example(t, "firehose", server, "-role=consume", "-group=analytics",
		"-count="+strconv.Itoa(events), "-print"), "event", "consumed")
	next := make(map[string]int)
	partitionOf := make(map[string]string)
	var summary printed
	for _, l := range lines {
		if l.verb == "consumed" {
			summary = l
			continue
		}
		key := l.get("key")
		seq, err := strconv.Atoi(l.get("seq"))
		if err != nil {
			t.Fatalf("event line %+v", l)
		}
		if seq != next[key] {
			t.Fatalf("key %s: event %d where %d was due", key, seq, next[key])
		}
		next[key]++
		if p, ok := partitionOf[key]; ok && p != l.get("partition") {
			t.Fatalf("key %s in partitions %s and %s", key, p, l.get("partition"))
		}
		partitionOf[key] = l.get("partition")
	}
	if len(next) != keys {
		t.Fatalf("consumer saw %d keys, want %d", len(next), keys)
	}
	for key, n := range next {
		if n != events/keys {
			t.Errorf("key %s: %d events, want %d", key, n, events/keys)
		}
	}
	if summary.get("records") != strconv.Itoa(events) || summary.get("out-of-order") != "0" || summary.get("keys") != strconv.Itoa(keys) {
		t.Errorf("consumer summary %+v", summary)
	}
	t.Logf("consumer: %s events/s", summary.get("rate"))
	g, err := c.DescribeGroup(t.Context(), "analytics")
	if err != nil || g.Lag() != 0 || len(g.Offsets) != 8 {
		t.Errorf("group after the consumer: %+v, %v; want 8 partitions committed, no lag", g, err)
	}
}

// TestPatternRequestReply: two responders serve 40 concurrent requests;
// each reply answers its own request, with its own correlation id, and
// each request is served once. Without a responder a request times out.
func TestPatternRequestReply(t *testing.T) {
	srv := startServer(t)
	server := "-server=" + srv.addr
	const requests = 40
	var responders []*running
	for _, name := range []string{"r1", "r2"} {
		r := startExample(t, "request-reply", server, "-role=respond", "-queue=rpc", "-name="+name)
		r.waitCount("ready", 1)
		responders = append(responders, r)
	}
	replies := parseLines(t, "requester", example(t, "request-reply", server, "-role=request", "-queue=rpc",
		"-n="+strconv.Itoa(requests), "-concurrency=8", "-timeout=10s"), "reply")
	if len(replies) != requests {
		t.Fatalf("%d replies, want %d", len(replies), requests)
	}
	answeredBy := make(map[string]string)
	correlations := make(map[string]bool)
	for _, r := range replies {
		req := r.get("request")
		if r.get("reply") != strings.ToUpper(req) {
			t.Errorf("request %s got reply %s", req, r.get("reply"))
		}
		if _, dup := answeredBy[req]; dup {
			t.Errorf("request %s answered twice", req)
		}
		answeredBy[req] = r.get("responder")
		corr := r.get("correlation-id")
		if len(corr) != 32 || correlations[corr] {
			t.Errorf("reply to %s has correlation-id %q, not a fresh one", req, corr)
		}
		correlations[corr] = true
	}
	servedBy := make(map[string][]string)
	for i, r := range responders {
		served := parseLines(t, "responder", r.stop(), "served")
		for _, s := range served {
			servedBy[s.get("request")] = append(servedBy[s.get("request")], s.get("responder"))
		}
		t.Logf("responder r%d served %d requests", i+1, len(served))
	}
	for i := range requests {
		req := fmt.Sprintf("hello-%d", i)
		if by := servedBy[req]; len(by) != 1 || by[0] != answeredBy[req] {
			t.Errorf("request %s served by %q, answered by %q", req, by, answeredBy[req])
		}
	}

	// Nobody serves this queue: the request waits its timeout and fails.
	start := time.Now()
	lines, stderr, code := exampleStatus(t, "request-reply", server, "-role=request", "-queue=nobody-home", "-n=1", "-timeout=300ms")
	elapsed := time.Since(start)
	if code != 1 || !slices.Equal(lines, []string{"timeout request=hello-0 after=300ms"}) {
		t.Fatalf("request without a responder: status %d, stdout %q, stderr:\n%s", code, lines, stderr)
	}
	if elapsed > 5*time.Second {
		t.Errorf("a request with a 300ms timeout took %v", elapsed)
	}
	// The request expired with its wait: a responder that comes later
	// does not answer it; the queue drops it.
	late := startExample(t, "request-reply", server, "-role=respond", "-queue=nobody-home", "-name=late")
	late.waitCount("ready", 1)
	waitDepth(t, srv.dial(t), "nobody-home", "nobody-home", 0)
	if served := parseLines(t, "late responder", late.stop(), "served"); len(served) != 0 {
		t.Errorf("a responder answered an expired request: %+v", served)
	}
}

// TestPatternScatterGather: three vendors, the cheapest slow. With a short
// deadline the best of the two quick quotes wins and the slow vendor is
// left out; with time enough all three are gathered and the slow one's
// cheaper quote wins. Through an exchange bound to nothing, no quotes.
func TestPatternScatterGather(t *testing.T) {
	srv := startServer(t)
	server := "-server=" + srv.addr
	vendors := map[string][]string{
		"acme":    {"-price=120", "-delay=0s"},
		"globex":  {"-price=95", "-delay=0s"},
		"initech": {"-price=80", "-delay=2s"},
	}
	procs := make(map[string]*running)
	for name, args := range vendors {
		r := startExample(t, "scatter-gather", append([]string{server, "-role=vendor", "-name=" + name}, args...)...)
		r.waitCount("ready", 1)
		procs[name] = r
	}
	gather := func(item, timeout string) (map[string]string, printed, time.Duration) {
		t.Helper()
		start := time.Now()
		lines := parseLines(t, "requester", example(t, "scatter-gather", server, "-role=request", "-item="+item,
			"-timeout="+timeout, "-replies=3"), "quote", "best")
		elapsed := time.Since(start)
		quotes := make(map[string]string)
		var best printed
		for _, l := range lines {
			if l.verb == "best" {
				best = l
			} else {
				quotes[l.get("vendor")] = l.get("price")
			}
		}
		return quotes, best, elapsed
	}

	// Short deadline: initech, busy for 2s, is left out.
	quotes, best, elapsed := gather("bolts", "1s")
	if !maps.Equal(quotes, map[string]string{"acme": "120", "globex": "95"}) ||
		best.get("vendor") != "globex" || best.get("price") != "95" || best.get("quotes") != "2" {
		t.Fatalf("with a 1s deadline: quotes %v, best %+v; want acme and globex, globex best", quotes, best)
	}
	if elapsed < time.Second {
		t.Errorf("gathering with a 1s deadline for 3 replies ended after %v, before the deadline", elapsed)
	}

	// Time enough: all three, initech cheapest; done once the third came.
	quotes, best, elapsed = gather("nuts", "10s")
	if !maps.Equal(quotes, map[string]string{"acme": "120", "globex": "95", "initech": "80"}) ||
		best.get("vendor") != "initech" || best.get("price") != "80" || best.get("quotes") != "3" {
		t.Fatalf("with a 10s deadline: quotes %v, best %+v; want all three, initech best", quotes, best)
	}
	if elapsed < 2*time.Second || elapsed > 8*time.Second {
		t.Errorf("gathering 3 replies, one 2s slow, took %v", elapsed)
	}

	// Each vendor answered both requests (initech the first too late).
	procs["initech"].waitCount("quoted", 2)
	for name, r := range procs {
		items := values(parseLines(t, name, r.stop(), "quoted"), "item")
		slices.Sort(items)
		if !slices.Equal(items, []string{"bolts", "nuts"}) {
			t.Errorf("vendor %s quoted for %q, want bolts and nuts", name, items)
		}
	}

	lines, stderr, code := exampleStatus(t, "scatter-gather", server, "-role=request", "-exchange=closed-market", "-timeout=300ms")
	if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "no quotes") {
		t.Errorf("scatter-gather with no vendor: status %d, stdout %q, stderr:\n%s", code, lines, stderr)
	}
}

// TestPatternMessageFilter: two shared subscriptions of one stream with
// opposite server-side filters; each consumer gets exactly the records its
// filter selects, and neither subscription holds the others back. A
// filter that does not compile is refused with the server's message.
func TestPatternMessageFilter(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	server := "-server=" + srv.addr
	eu := startExample(t, "message-filter", server, "-role=consume", "-subscription=eu-orders", "-filter=headers['region'] == 'eu'")
	eu.waitCount("ready", 1)
	rest := startExample(t, "message-filter", server, "-role=consume", "-subscription=elsewhere", "-filter=headers['region'] != 'eu'")
	rest.waitCount("ready", 1)
	published := parseLines(t, "publisher", example(t, "message-filter", server, "-role=publish", "-n=30"), "published")
	wantEU, wantRest := make(map[string]string), make(map[string]string)
	for _, p := range published {
		if p.get("region") == "eu" {
			wantEU[p.get("order")] = "eu"
		} else {
			wantRest[p.get("order")] = p.get("region")
		}
	}
	if len(wantEU) != 10 || len(wantRest) != 20 {
		t.Fatalf("published %d eu and %d other orders, want 10 and 20", len(wantEU), len(wantRest))
	}
	eu.waitCount("received", 10)
	rest.waitCount("received", 20)
	// Depth 0: nothing the filters rejected is pending either.
	waitDepth(t, c, "orders", "eu-orders", 0)
	waitDepth(t, c, "orders", "elsewhere", 0)
	for _, sub := range []struct {
		r    *running
		want map[string]string
	}{{eu, wantEU}, {rest, wantRest}} {
		got := make(map[string]string)
		for _, l := range parseLines(t, "consumer", sub.r.stop(), "received") {
			if _, dup := got[l.get("order")]; dup {
				t.Errorf("%s got %s twice", l.get("subscription"), l.get("order"))
			}
			got[l.get("order")] = l.get("region")
		}
		if !maps.Equal(got, sub.want) {
			t.Errorf("subscription %s got %v, want %v", sub.r.cmd.Args[3], got, sub.want)
		}
	}

	_, stderr, code := exampleStatus(t, "message-filter", server, "-role=consume", "-subscription=broken", "-filter=headers['region'] ===")
	if code == 0 || !strings.Contains(stderr, "invalid argument") {
		t.Errorf("a filter that does not compile: status %d, stderr %q", code, stderr)
	}
}

// TestPatternRecipientList: one record to two streams and two exchange
// destinations (one routed, one not) in one call; running it again with
// the same message-id stores nothing twice, and neither does completing a
// list that failed part way.
func TestPatternRecipientList(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	ctx := t.Context()
	server := "-server=" + srv.addr
	createStream(t, c, "audit.eu", 1)
	if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: "audit", Type: weir.ExchangeTopic}); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(ctx, "audit", weir.Binding{Destination: "audit.eu", Key: "order.eu.#"}); err != nil {
		t.Fatal(err)
	}
	args := []string{server, "-id=order-42", "-key=customer-7", "-value=order-42",
		"billing", "shipping", "exchange:audit:order.eu.created", "exchange:audit:order.us.created"}
	for run, dup := range []string{"false", "true"} {
		lines := example(t, "recipient-list", args...)
		want := []string{
			"message-id=order-42",
			"stored dest=billing partition=0 offset=0 duplicate=" + dup,
			"stored dest=shipping partition=0 offset=0 duplicate=" + dup,
			"routed dest=exchange:audit:order.eu.created streams=audit.eu",
			"unroutable dest=exchange:audit:order.us.created",
		}
		if !slices.Equal(lines, want) {
			t.Fatalf("run %d printed\n%s\nwant\n%s", run+1, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, s := range []string{"billing", "shipping", "audit.eu"} {
		res, err := c.Fetch(ctx, s, 0, 0, 0, 0)
		if err != nil || len(res.Records) != 1 {
			t.Fatalf("%s holds %+v (%v), want the record once", s, res, err)
		}
		id, _ := res.Records[0].Header(weir.HeaderMessageID)
		if r := res.Records[0]; string(r.Value) != "order-42" || string(r.Key) != "customer-7" || string(id) != "order-42" {
			t.Errorf("%s holds %q=%q with message-id %q", s, r.Key, r.Value, id)
		}
	}

	// A list with a missing exchange fails; completing it with the same
	// message-id leaves one copy in each stream, wherever the failed
	// call had stored it.
	lines, stderr, code := exampleStatus(t, "recipient-list", server, "-id=order-43", "billing", "invoices", "exchange:no-such-exchange:x")
	if code == 0 || !strings.Contains(stderr, "not found") {
		t.Fatalf("a list with a missing exchange: status %d, stdout %q, stderr %q", code, lines, stderr)
	}
	lines = example(t, "recipient-list", server, "-id=order-43", "billing", "invoices")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "stored dest=billing") || !strings.HasPrefix(lines[2], "stored dest=invoices") {
		t.Fatalf("completing the list printed %q", lines)
	}
	t.Logf("completing the list: %q", lines[1:])
	for s, want := range map[string]int64{"billing": 2, "invoices": 1} {
		info, err := c.DescribeStream(ctx, s)
		if err != nil || info.Records() != want {
			t.Errorf("%s: %+v, %v; want %d records", s, info, err, want)
		}
	}
}

// TestPatternTopicToQueue: a topic exchange bound to three queues with
// patterns, two competing workers on each; every event reaches the queues
// whose patterns match its routing key ("#" matching zero words too), and
// is processed once in each of them.
func TestPatternTopicToQueue(t *testing.T) {
	srv := startServer(t)
	c := srv.dial(t)
	server := "-server=" + srv.addr
	patterns := map[string]string{
		"all-orders": "order.#",
		"eu":         "*.eu.*",
		"paid":       "#.paid",
	}
	// Where each routing key goes, worked out by hand.
	routes := map[string][]string{
		"order.eu.created":   {"all-orders", "eu"},
		"order.us.created":   {"all-orders"},
		"order.eu.paid":      {"all-orders", "eu", "paid"},
		"order.us.shipped":   {"all-orders"},
		"invoice.eu.paid":    {"eu", "paid"},
		"invoice.us.created": nil,
		"paid":               {"paid"},
		"order":              {"all-orders"},
	}
	keys := slices.Sorted(maps.Keys(routes))
	workers := make(map[string][]*running)
	for queue, pattern := range patterns {
		for _, w := range []string{"1", "2"} {
			r := startExample(t, "topic-to-queue", server, "-role=work", "-queue="+queue, "-patterns="+pattern,
				"-name="+queue+"-"+w, "-prefetch=1", "-work=2ms")
			r.waitCount("ready", 1)
			workers[queue] = append(workers[queue], r)
		}
	}
	const events = 40
	published := parseLines(t, "publisher", example(t, "topic-to-queue", server, "-role=publish",
		"-n="+strconv.Itoa(events), "-keys="+strings.Join(keys, ",")), "published", "unroutable")
	if len(published) != events {
		t.Fatalf("the publisher printed %d events, want %d", len(published), events)
	}
	want := make(map[string]map[string]string) // queue -> value -> routing key
	for q := range patterns {
		want[q] = make(map[string]string)
	}
	for i, p := range published {
		key := keys[i%len(keys)]
		if p.get("value") != fmt.Sprintf("event-%d", i) || p.get("routing-key") != key {
			t.Fatalf("published line %d: %+v", i, p)
		}
		var queues []string
		if p.verb == "published" {
			queues = strings.Split(p.get("queues"), ",")
			slices.Sort(queues)
		}
		if !slices.Equal(queues, routes[key]) {
			t.Fatalf("%s routed to %q, want %q", key, queues, routes[key])
		}
		for _, q := range queues {
			want[q][p.get("value")] = key
		}
	}
	for queue, rs := range workers {
		eventually(t, patternTimeout, queue+"'s events processed", func() bool {
			return countPrefix(rs[0].output(), "processed")+countPrefix(rs[1].output(), "processed") >= len(want[queue])
		})
		waitDepth(t, c, queue, queue, 0)
	}
	for queue, rs := range workers {
		got := make(map[string]string)
		for _, r := range rs {
			lines := parseLines(t, "worker", r.stop(), "processed")
			for _, l := range lines {
				if l.get("queue") != queue {
					t.Errorf("a worker of %s printed %+v", queue, l)
				}
				if _, dup := got[l.get("value")]; dup {
					t.Errorf("%s: %s processed twice", queue, l.get("value"))
				}
				got[l.get("value")] = l.get("routing-key")
			}
			t.Logf("%s: worker %s processed %d events", queue, strings.TrimPrefix(r.cmd.Args[5], "-name="), len(lines))
		}
		if !maps.Equal(got, want[queue]) {
			t.Errorf("%s processed %v, want %v", queue, got, want[queue])
		}
	}
}
