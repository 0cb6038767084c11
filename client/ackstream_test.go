package weir_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"sync"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

// procedureProxy stands between the SDK and a server on HTTP/2 without
// TLS, counting the calls of each procedure and answering those in refuse
// with 404, as a server that does not have them does.
type procedureProxy struct {
	addr   string
	mu     sync.Mutex
	calls  map[string]int
	refuse map[string]bool
}

func startProcedureProxy(t *testing.T, target string, refuse ...string) *procedureProxy {
	t.Helper()
	p := &procedureProxy{calls: make(map[string]int), refuse: make(map[string]bool)}
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
		name := path.Base(r.URL.Path)
		p.mu.Lock()
		p.calls[name]++
		p.mu.Unlock()
		if p.refuse[name] {
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

func (p *procedureProxy) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[name]
}

// TestSharedAckStream: a shared consumer's acks go over one AckStream per
// session, not in Ack calls; against a server without AckStream they go in
// Ack calls, after one try. Either way every record is handled once and
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
