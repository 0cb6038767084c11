package weir_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// procedureProxy stands between the SDK and a server on HTTP/2 without
// TLS, counting the calls of each procedure and answering those in refuse
// with 404, as a server that does not have them does.
type procedureProxy struct {
	addr   string
	refuse map[string]bool
	callCounts
}

func startProcedureProxy(t *testing.T, target string, refuse ...string) *procedureProxy {
	t.Helper()
	p := &procedureProxy{refuse: make(map[string]bool)}
	for _, name := range refuse {
		p.refuse[name] = true
	}
	to := &url.URL{Scheme: "http", Host: target}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(to) },
		Transport:     httpClient().Transport,
		FlushInterval: -1,
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.add(r.URL.Path)
		if p.refuse[path.Base(r.URL.Path)] {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// TestSharedAckStream: a shared consumer's acks go over an AckStream, not
// in Ack calls; against a server without AckStream they go in Ack calls,
// after one try. Either way every record is handled once and
// its ack reported stored.
func TestSharedAckStream(t *testing.T) {
	srv := startServer(t)
	for _, tt := range []struct {
		name        string
		refuse      []string
		ackStreams  int
		ackCallsMin int
	}{
		{"AckStream", nil, 1, 0},
		{"server without AckStream", []string{"AckStream"}, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startProcedureProxy(t, srv.addr, tt.refuse...)
			c := srv.dial(t)
			ctx := t.Context()
			queue := "acks-" + strconv.Itoa(len(tt.refuse))
			createQueue(t, c, weir.QueueConfig{Name: queue, Partitions: 2})
			values := make([]string, 1000)
			for i := range values {
				values[i] = strconv.Itoa(i)
			}
			publishValues(t, c, queue, nil, values...)

			consumer := dialAt(t, proxy.addr)
			var mu sync.Mutex
			handled := make(map[string]int)
			stored := make(map[string]int)
			cons, err := consumer.Consume(ctx, queue, func(_ context.Context, m *weir.Message) error {
				mu.Lock()
				handled[string(m.Value)]++
				mu.Unlock()
				return nil
			}, weir.Shared(""), weir.Prefetch(100), weir.OnAcked(func(m *weir.Message, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("ack of %s: %v", m.Value, err)
					return
				}
				stored[string(m.Value)]++
			}))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "every ack stored", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(stored) == len(values)
			})
			if err := cons.Close(ctx); err != nil {
				t.Fatal(err)
			}
			waitDepth(t, c, queue, queue, 0)
			mu.Lock()
			defer mu.Unlock()
			for _, v := range values {
				if handled[v] != 1 || stored[v] != 1 {
					t.Errorf("record %s handled %d times, its ack stored %d times; want 1 and 1", v, handled[v], stored[v])
				}
			}
			streams, calls := proxy.count("AckStream"), proxy.count("Ack")
			if streams != tt.ackStreams || calls < tt.ackCallsMin || tt.ackCallsMin == 0 && calls != 0 {
				t.Errorf("%d AckStream and %d Ack calls; want %d AckStream and at least %d Ack calls (none if 0)", streams, calls, tt.ackStreams, tt.ackCallsMin)
			}
			t.Logf("1000 records acked with %d AckStream and %d Ack calls", streams, calls)
		})
	}
}

// TestAckStreamShared: the consumers of one client share four AckStreams,
// which end on the server when the last of their consumers stops; the next
// consumer opens another.
func TestAckStreamShared(t *testing.T) {
	srv := startServer(t)
	proxy := startProcedureProxy(t, srv.addr)
	c := dialAt(t, proxy.addr)
	ctx := t.Context()
	queues := []string{"q1", "q2", "q3", "q4", "q5", "q6"}
	var acked atomic.Int64
	handler := func(context.Context, *weir.Message) error { return nil }
	onAcked := weir.OnAcked(func(m *weir.Message, err error) {
		if err != nil {
			t.Errorf("ack of %s: %v", m.Value, err)
		}
		acked.Add(1)
	})
	var consumers []*weir.Consumer
	for _, q := range queues {
		createQueue(t, c, weir.QueueConfig{Name: q})
		publishValues(t, c, q, nil, "a", "b", "c", "d")
		cons, err := c.Consume(ctx, q, handler, weir.Shared(""), onAcked)
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, cons)
	}
	eventually(t, 10*time.Second, "24 acks", func() bool { return acked.Load() == 24 })
	if n, calls := proxy.count("AckStream"), proxy.count("Ack"); n != 4 || calls != 0 {
		t.Errorf("six consumers made %d AckStream and %d Ack calls, want 4 and 0", n, calls)
	}
	if n := openAckStreams(t, srv.addr); n != 4 {
		t.Errorf("%d AckStreams open on the server while consuming, want 4", n)
	}
	for _, cons := range consumers {
		if err := cons.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the AckStream ended on the server", func() bool { return openAckStreams(t, srv.addr) == 0 })

	cons, err := c.Consume(ctx, "q1", handler, weir.Shared(""), onAcked)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	publishValues(t, c, "q1", nil, "e")
	eventually(t, 10*time.Second, "25 acks", func() bool { return acked.Load() == 25 })
	if n := proxy.count("AckStream"); n != 5 {
		t.Errorf("%d AckStream calls after a consumer started again, want 5", n)
	}
}

// openAckStreams reads the server's count of open AckStream calls from
// its metrics.
func openAckStreams(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	const series = `weir_api_streams{procedure="weir.v1.Weir/AckStream"} `
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return n
		}
	}
	return 0
}
