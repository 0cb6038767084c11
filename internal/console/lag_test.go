package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// lagFixture is a broker with a one-partition stream "orders" of 10
// records and two groups: "billing" committed at 3 (lag 7) and "audit" at
// 10 (lag 0).
func lagFixture(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Open(broker.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	if _, err := b.CreateStream(ctx, broker.StreamConfig{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, 10)
	for group, offset := range map[string]int64{"billing": 3, "audit": 10} {
		if err := b.CommitOffsets(ctx, group, "", 0, []broker.OffsetCommit{{Stream: "orders", Partition: 0, Offset: offset}}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func publish(t *testing.T, b *broker.Broker, n int) {
	t.Helper()
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i] = broker.Record{Value: []byte("order")}
	}
	if _, err := b.Publish(context.Background(), "orders", recs); err != nil {
		t.Fatal(err)
	}
}

func everyGroup(string) bool { return true }

// TestLagHistory samples the lag of two groups while records arrive: each
// partition keeps its last points (the bound), oldest first; a deleted
// group's history goes at the next sample; partitions past the series
// bound are not followed.
func TestLagHistory(t *testing.T) {
	b := lagFixture(t)
	h := newLagHistory(b, 10*time.Second, 3, 1024, slog.New(slog.DiscardHandler))
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := range 5 {
		if i > 0 {
			publish(t, b, 1)
		}
		h.sample(t0.Add(time.Duration(i) * 10 * time.Second))
	}
	ans := h.read("", everyGroup)
	if len(ans.Groups) != 2 || ans.Groups[0].Group != "audit" || ans.Groups[1].Group != "billing" {
		t.Fatalf("groups %+v, want audit and billing", ans.Groups)
	}
	billing := ans.Groups[1].Series
	if len(billing) != 1 || billing[0].Stream != "orders" || billing[0].Partition != 0 {
		t.Fatalf("billing's series %+v, want orders/0", billing)
	}
	// Lag 7, 8, 9, 10, 11 sampled; the last 3 kept, oldest first.
	want := []lagPoint{{t0.Add(20 * time.Second).UnixMilli(), 9}, {t0.Add(30 * time.Second).UnixMilli(), 10}, {t0.Add(40 * time.Second).UnixMilli(), 11}}
	if got := billing[0].Points; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("billing's points %v, want %v", got, want)
	}
	if got := ans.Groups[0].Series[0].Points; len(got) != 3 || got[2].Lag != 4 {
		t.Errorf("audit's points %v, want 3 ending at lag 4", got)
	}
	if ans.IntervalMillis != 10_000 {
		t.Errorf("interval %d ms, want 10000", ans.IntervalMillis)
	}
	if got := h.read("billing", everyGroup); len(got.Groups) != 1 || got.Groups[0].Group != "billing" {
		t.Errorf("read(billing) = %+v, want billing alone", got.Groups)
	}
	if got := h.read("", func(g string) bool { return g == "audit" }); len(got.Groups) != 1 || got.Groups[0].Group != "audit" {
		t.Errorf("read with audit visible only = %+v", got.Groups)
	}

	// The group goes: its history too.
	if err := b.DeleteGroup(context.Background(), "billing"); err != nil {
		t.Fatal(err)
	}
	h.sample(t0.Add(50 * time.Second))
	if got := h.read("", everyGroup); len(got.Groups) != 1 || got.Groups[0].Group != "audit" {
		t.Errorf("after billing was deleted: %+v, want audit alone", got.Groups)
	}
	h.mu.Lock()
	n := len(h.series)
	h.mu.Unlock()
	if n != 1 {
		t.Errorf("%d series kept, want 1", n)
	}

	// At most maxSeries partitions are followed.
	small := newLagHistory(b, 10*time.Second, 3, 1, slog.New(slog.DiscardHandler))
	if err := b.CommitOffsets(context.Background(), "billing", "", 0, []broker.OffsetCommit{{Stream: "orders", Partition: 0, Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	small.sample(t0)
	if got := small.read("", everyGroup); len(got.Groups) != 1 || got.Skipped != 1 {
		t.Errorf("with room for one series: %+v, want one group and one skipped", got)
	}
}

// TestLagRingBound checks that a ring never holds more than its capacity
// however many points come, and gives them back in order.
func TestLagRingBound(t *testing.T) {
	var r lagRing
	for i := range int64(1000) {
		r.add(lagPoint{Time: i, Lag: i}, 360)
		if len(r.points) > 360 {
			t.Fatalf("%d points held after %d added, want at most 360", len(r.points), i+1)
		}
	}
	got := r.ordered()
	if len(got) != 360 || got[0].Time != 640 || got[359].Time != 999 {
		t.Fatalf("ordered: %d points from %d to %d, want 360 from 640 to 999", len(got), got[0].Time, got[len(got)-1].Time)
	}
	if cap(r.points) > 2*360 {
		t.Errorf("the ring's array holds %d points, want it bounded near 360", cap(r.points))
	}
}

// TestLagEndpoint reads /console/api/lag of a console sampling a broker:
// the history as [time, lag] pairs by group, a group filter, and only the
// groups a caller may see.
func TestLagEndpoint(t *testing.T) {
	b := lagFixture(t)
	c, err := New(Options{Records: b, Groups: b, Stats: &countingStats{}, LagInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.lag.sample(time.Now()) // besides the one the sampler takes at start
	mux := http.NewServeMux()
	for pattern, h := range c.Routes() {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("as") == "nobody" {
			r = r.WithContext(broker.WithIdentity(r.Context(), &broker.Identity{}))
		}
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()

	var ans struct {
		IntervalMillis int64 `json:"intervalMillis"`
		Groups         []struct {
			Group  string `json:"group"`
			Series []struct {
				Stream    string     `json:"stream"`
				Partition int32      `json:"partition"`
				Points    [][2]int64 `json:"points"`
			} `json:"series"`
		} `json:"groups"`
	}
	if code := getJSON(t, srv.URL+"/console/api/lag?group=billing", &ans); code != http.StatusOK {
		t.Fatalf("GET lag: %d", code)
	}
	if ans.IntervalMillis != time.Hour.Milliseconds() || len(ans.Groups) != 1 || ans.Groups[0].Group != "billing" {
		t.Fatalf("answer %+v, want billing's history", ans)
	}
	s := ans.Groups[0].Series
	if len(s) != 1 || s[0].Stream != "orders" || len(s[0].Points) == 0 {
		t.Fatalf("billing's series %+v", s)
	}
	last := s[0].Points[len(s[0].Points)-1]
	if last[1] != 7 || last[0] < time.Now().Add(-time.Minute).UnixMilli() {
		t.Errorf("billing's last point %v, want lag 7 now", last)
	}
	ans.Groups = nil
	if code := getJSON(t, srv.URL+"/console/api/lag", &ans); code != http.StatusOK || len(ans.Groups) != 2 {
		t.Errorf("GET lag of every group: %d %+v, want 2 groups", code, ans.Groups)
	}
	ans.Groups = nil
	if code := getJSON(t, srv.URL+"/console/api/lag?as=nobody", &ans); code != http.StatusOK || len(ans.Groups) != 0 {
		t.Errorf("GET lag as a user without rights: %d %+v, want no groups", code, ans.Groups)
	}
}

// The server closes the console from two goroutines at shutdown; both
// return once the sampler stopped.
func TestLagHistoryCloseTwiceAtOnce(t *testing.T) {
	h := newLagHistory(lagFixture(t), time.Hour, 10, 10, slog.New(slog.DiscardHandler))
	go h.run()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(h.close)
	}
	wg.Wait()
}
