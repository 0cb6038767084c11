package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// countingStats adds 10 records, 1000 bytes in and out and one fsync of
// 2 ms at every sample.
type countingStats struct {
	mu sync.Mutex
	n  float64
}

func (s *countingStats) Sample() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return Sample{RecordsIn: 10 * s.n, BytesIn: 1000 * s.n, RecordsOut: 10 * s.n, BytesOut: 1000 * s.n,
		Connections: map[string]int{"kafka": 2, "http": 1}, DiskUsed: 4096, DiskFree: 1 << 30, FSyncCount: s.n, FSyncSecs: 0.002 * s.n}
}

// newTestConsole opens a broker in a temporary directory and a console over
// it, served by an httptest server with the console's routes.
func newTestConsole(t *testing.T) (*broker.Broker, *httptest.Server) {
	t.Helper()
	b, err := broker.Open(broker.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := New(Options{Records: b, Stats: &countingStats{}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for pattern, h := range c.Routes() {
		mux.Handle(pattern, h)
	}
	// ?as=nobody: the request comes from a user without any rights (the
	// server puts the authenticated user's principal in the context).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("as") == "nobody" {
			r = r.WithContext(broker.WithIdentity(r.Context(), &broker.Identity{}))
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(c.Close) // before srv.Close: ends the live feeds
	return b, srv
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", u, got)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", u, err)
	}
	return resp.StatusCode
}

func TestRecordBrowser(t *testing.T) {
	b, srv := newTestConsole(t)
	ctx := context.Background()
	if _, err := b.CreateStream(ctx, broker.StreamConfig{Name: "orders", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []broker.Record
	for i := range 20 {
		kind := "small"
		if i%4 == 0 {
			kind = "big"
		}
		recs = append(recs, broker.Record{
			Key: []byte("k"), Value: []byte(`{"n":` + string(rune('a'+i)) + `}`),
			Headers:   []broker.Header{{Key: "kind", Value: []byte(kind)}},
			Timestamp: start.Add(time.Duration(i) * time.Minute),
		})
	}
	if _, err := b.PublishPartition(ctx, "orders", 1, recs); err != nil {
		t.Fatal(err)
	}
	browse := func(params url.Values) (browseAnswer, int) {
		var ans browseAnswer
		code := getJSON(t, srv.URL+"/console/api/records?"+params.Encode(), &ans)
		return ans, code
	}

	ans, code := browse(url.Values{"stream": {"orders"}, "partition": {"1"}, "limit": {"5"}})
	if code != 200 || len(ans.Records) != 5 || ans.Records[0].Offset != 0 || ans.NextOffset != 5 || ans.EndOffset != 20 {
		t.Fatalf("first page: %d %+v", code, ans)
	}
	if r := ans.Records[2]; string(r.Key) != "k" || string(r.Value) != `{"n":c}` || len(r.Headers) != 1 || r.Headers[0].Key != "kind" || !r.Timestamp.Equal(start.Add(2*time.Minute)) {
		t.Errorf("record 2 = %+v", r)
	}
	ans, _ = browse(url.Values{"stream": {"orders"}, "partition": {"1"}, "offset": {"18"}})
	if len(ans.Records) != 2 || ans.Records[0].Offset != 18 || ans.NextOffset != 20 {
		t.Errorf("from offset 18: %+v", ans)
	}
	ans, _ = browse(url.Values{"stream": {"orders"}, "partition": {"1"}, "time": {start.Add(10*time.Minute - time.Second).Format(time.RFC3339Nano)}, "limit": {"1"}})
	if len(ans.Records) != 1 || ans.Records[0].Offset != 10 {
		t.Errorf("from time of record 10: %+v", ans)
	}
	ans, _ = browse(url.Values{"stream": {"orders"}, "partition": {"1"}, "filter": {`headers['kind'] == 'big'`}, "limit": {"3"}})
	var offsets []int64
	for _, r := range ans.Records {
		offsets = append(offsets, r.Offset)
	}
	if len(offsets) != 3 || offsets[0] != 0 || offsets[1] != 4 || offsets[2] != 8 || ans.NextOffset != 9 {
		t.Errorf("filtered: offsets %v next %d, want [0 4 8] next 9", offsets, ans.NextOffset)
	}
	ans, _ = browse(url.Values{"stream": {"orders"}, "partition": {"1"}, "offset": {"9"}, "filter": {`headers['kind'] == 'big'`}})
	if len(ans.Records) != 2 || ans.Records[0].Offset != 12 || ans.Scanned != 11 || ans.NextOffset != 20 {
		t.Errorf("filtered from 9: %+v", ans)
	}
	ans, _ = browse(url.Values{"stream": {"orders"}, "from": {"latest"}})
	if len(ans.Records) != 0 || ans.From != 0 {
		t.Errorf("latest of empty partition 0: %+v", ans)
	}

	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"", 400, "stream is required"},
		{"stream=orders&partition=x", 400, "partition"},
		{"stream=orders&limit=0", 400, "limit"},
		{"stream=orders&offset=-1", 400, "offset"},
		{"stream=orders&offset=1&from=latest", 400, "at most one"},
		{"stream=orders&time=yesterday", 400, "RFC 3339"},
		{"stream=orders&from=middle", 400, "earliest or latest"},
		{"stream=orders&filter=" + url.QueryEscape("value_string.contains("), 400, "invalid filter"},
		{"stream=nope", 404, "stream not found"},
		{"stream=orders&partition=2", 404, "no partition 2"},
		{"stream=orders&as=nobody", 403, "forbidden"},
	} {
		var e struct{ Error string }
		code := getJSON(t, srv.URL+"/console/api/records?"+tc.query, &e)
		if code != tc.code || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%q: %d %q, want %d and %q", tc.query, code, e.Error, tc.code, tc.want)
		}
	}
}

func TestPoint(t *testing.T) {
	then := time.Unix(100, 0)
	prev := Sample{RecordsIn: 100, BytesIn: 1000, RecordsOut: 50, BytesOut: 500, FSyncCount: 10, FSyncSecs: 0.01}
	cur := Sample{RecordsIn: 300, BytesIn: 900, RecordsOut: 150, BytesOut: 1500, FSyncCount: 14, FSyncSecs: 0.018, DiskUsed: 7, DiskFree: 9}
	p := point(prev, cur, then, then.Add(2*time.Second))
	want := Point{Time: then.Add(2 * time.Second), RecordsInPS: 100, BytesInPS: 0, RecordsOutPS: 50, BytesOutPS: 500, DiskUsed: 7, DiskFree: 9, FSyncs: 4, FSyncMeanSecs: 0.002}
	p.Connections = nil
	if p.Time != want.Time || p.RecordsInPS != want.RecordsInPS || p.BytesInPS != 0 || p.RecordsOutPS != 50 || p.BytesOutPS != 500 ||
		p.DiskUsed != 7 || p.DiskFree != 9 || p.FSyncs != 4 || p.FSyncMeanSecs < 0.00199 || p.FSyncMeanSecs > 0.00201 {
		t.Errorf("point = %+v, want %+v", p, want)
	}
	if p := point(prev, prev, then, then); p.RecordsInPS != 0 || p.FSyncs != 0 {
		t.Errorf("no time elapsed: %+v", p)
	}
}

// TestLiveFeed reads the server-sent events: the history, then points
// whose rates come from the Stats' counters.
func TestLiveFeed(t *testing.T) {
	_, srv := newTestConsole(t)
	for round := range 2 { // the second feed starts with the first one's history
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/console/api/live", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		events := readEvents(t, resp.Body, 3)
		cancel()
		resp.Body.Close()
		if events[0].name != "history" {
			t.Fatalf("first event %q, want history", events[0].name)
		}
		var history []Point
		if err := json.Unmarshal([]byte(events[0].data), &history); err != nil {
			t.Fatal(err)
		}
		if round == 1 && len(history) < 2 {
			t.Errorf("second feed: history of %d points, want the first feed's", len(history))
		}
		for _, e := range events[1:] {
			var p Point
			if e.name != "point" {
				t.Fatalf("event %q, want point", e.name)
			}
			if err := json.Unmarshal([]byte(e.data), &p); err != nil {
				t.Fatal(err)
			}
			if p.RecordsInPS <= 0 || p.BytesOutPS <= 0 || p.FSyncs != 1 || p.FSyncMeanSecs < 0.00199 || p.FSyncMeanSecs > 0.00201 ||
				p.Connections["kafka"] != 2 || p.DiskFree != 1<<30 {
				t.Errorf("point %+v", p)
			}
		}
	}
}

type event struct{ name, data string }

func readEvents(t *testing.T, r io.Reader, n int) []event {
	t.Helper()
	var out []event
	var cur event
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			out = append(out, cur)
			cur = event{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
	if len(out) < n {
		t.Fatalf("read %d events, want %d: %v", len(out), n, sc.Err())
	}
	return out
}

func TestStaticFilesAndRedirect(t *testing.T) {
	_, srv := newTestConsole(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != Prefix {
		t.Errorf("GET /: %d to %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), Prefix)
	}
	for path, want := range map[string]string{
		"/console/":            "text/html",
		"/console/console.css": "text/css",
		"/console/js/app.js":   "text/javascript",
		"/console/js/api.js":   "text/javascript",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	var e struct{ Error string }
	if code := getJSON(t, srv.URL+"/console/api/nothing", &e); code != 404 || !strings.Contains(e.Error, "no console endpoint") {
		t.Errorf("unknown endpoint: %d %q", code, e.Error)
	}
}

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		public       bool
	}{
		{"GET", "/", true},
		{"GET", "/console/", true},
		{"GET", "/console/js/app.js", true},
		{"HEAD", "/console/console.css", true},
		{"POST", "/console/", false},
		{"GET", "/console/api/live", false},
		{"GET", "/console/api/records", false},
		{"GET", "/metrics", false},
		{"POST", "/weir.v1.Weir/ListStreams", false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := Public(r); got != tc.public {
			t.Errorf("Public(%s %s) = %v, want %v", tc.method, tc.path, got, tc.public)
		}
	}
}
