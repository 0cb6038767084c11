package server

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

// apiClient returns a gRPC client (HTTP/2 without TLS) of s's native API,
// and a function that closes its idle connections (which would otherwise
// hold up the server's drain by up to a second).
func apiClient(t *testing.T, s *Server) (weirpbconnect.WeirClient, func()) {
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	transport := &http.Transport{Protocols: &h2}
	t.Cleanup(transport.CloseIdleConnections)
	client := weirpbconnect.NewWeirClient(&http.Client{Transport: transport}, "http://"+s.Addr("http"), connect.WithGRPC())
	return client, transport.CloseIdleConnections
}

func record(value, messageID string) *weirpb.Record {
	r := &weirpb.Record{Value: []byte(value)}
	if messageID != "" {
		r.Headers = []*weirpb.Header{{Key: "message-id", Value: []byte(messageID)}}
	}
	return r
}

// TestRestartKeepsData stops a node and starts another on its data: the
// streams, their records, the group offsets and the dedup window are there.
func TestRestartKeepsData(t *testing.T) {
	cfg := testConfig(t)
	first := newTestServer(t, cfg)
	if err := first.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, closeIdle := apiClient(t, first)
	ctx := t.Context()
	if _, err := c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "orders", Partitions: 2}})); err != nil {
		t.Fatal(err)
	}
	p := int32(1)
	if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Partition: &p,
		Records: []*weirpb.Record{record("a", "m-a"), record("b", ""), record("c", "")}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, connect.NewRequest(&weirpb.CommitRequest{Group: "billing",
		Offsets: []*weirpb.OffsetCommit{{Stream: "orders", Partition: 1, Offset: 2, Metadata: "note"}}})); err != nil {
		t.Fatal(err)
	}
	closeIdle()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	cfg.HTTPAddr = "127.0.0.1:0"
	second := newTestServer(t, cfg)
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c, _ = apiClient(t, second)
	info, err := c.DescribeStream(ctx, connect.NewRequest(&weirpb.DescribeStreamRequest{Name: "orders"}))
	if err != nil || len(info.Msg.GetPartitions()) != 2 || info.Msg.GetPartitions()[1].GetEndOffset() != 3 {
		t.Fatalf("after restart DescribeStream = %v, %v", info, err)
	}
	fetched, err := c.Fetch(ctx, connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", Partition: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range fetched.Msg.GetRecords() {
		got = append(got, string(r.GetValue()))
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("after restart partition 1 holds %q, want a,b,c", got)
	}
	group, err := c.DescribeGroup(ctx, connect.NewRequest(&weirpb.DescribeGroupRequest{Group: "billing"}))
	if err != nil {
		t.Fatal(err)
	}
	if o := group.Msg.GetOffsets(); len(o) != 1 || o[0].GetOffset() != 2 || o[0].GetMetadata() != "note" || o[0].GetLag() != 1 {
		t.Errorf("after restart the group's offsets are %v, want partition 1 at 2 with lag 1", o)
	}
	dup, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: []*weirpb.Record{record("a again", "m-a")}}))
	if err != nil {
		t.Fatal(err)
	}
	if r := dup.Msg.GetResults()[0]; !r.GetDuplicate() || r.GetPartition() != 1 || r.GetOffset() != 0 {
		t.Errorf("republishing m-a after restart = %v, want a duplicate of 1/0", r)
	}
}

// metricValue returns the value of the sample named by series (name with its
// labels, as exposed) in the exposition text, and whether it is there.
func metricValue(text, series string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func TestMetrics(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, _ := apiClient(t, s)
	ctx := t.Context()
	for _, name := range []string{"orders", "scratch"} {
		if _, err := c.CreateStream(ctx, connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: name}})); err != nil {
			t.Fatal(err)
		}
	}
	// 3 records of 10 bytes each (key, value, header name and value), and
	// a duplicate that is not stored.
	recs := []*weirpb.Record{
		{Key: []byte("k1"), Value: []byte("value1"), Headers: []*weirpb.Header{{Key: "h", Value: []byte("v")}}},
		{Key: []byte("k2"), Value: []byte("value2"), Headers: []*weirpb.Header{{Key: "h", Value: []byte("v")}}},
		{Value: []byte("xxxxxxxxxx")},
		record("dup", "m-1"),
	}
	if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: recs})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "orders", Records: []*weirpb.Record{record("dup", "m-1")}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: "scratch", Records: []*weirpb.Record{record("x", "")}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(ctx, connect.NewRequest(&weirpb.FetchRequest{Stream: "orders", Offset: 1})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Commit(ctx, connect.NewRequest(&weirpb.CommitRequest{Group: "billing",
		Offsets: []*weirpb.OffsetCommit{{Stream: "orders", Partition: 0, Offset: 1}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteStream(ctx, connect.NewRequest(&weirpb.DeleteStreamRequest{Name: "scratch"})); err != nil {
		t.Fatal(err)
	}

	_, body, err := get("http://" + s.Addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for series, want := range map[string]float64{
		`weir_published_records_total{stream="orders"}`:                 4,
		`weir_published_bytes_total{stream="orders"}`:                   10 + 10 + 10 + 3 + 10 + 3, // the last: value, "message-id", "m-1"
		`weir_delivered_records_total{stream="orders"}`:                 3,
		`weir_delivered_bytes_total{stream="orders"}`:                   10 + 10 + 3 + 10 + 3,
		`weir_partition_end_offset{partition="0",stream="orders"}`:      4,
		`weir_group_lag{group="billing",partition="0",stream="orders"}`: 3,
	} {
		if got, ok := metricValue(text, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if n, ok := metricValue(text, "weir_fsync_seconds_count"); !ok || n < 2 {
		t.Errorf("weir_fsync_seconds_count = %v (present %v), want a flush per publish", n, ok)
	}
	if n, ok := metricValue(text, "weir_http_connections"); !ok || n < 1 {
		t.Errorf("weir_http_connections = %v (present %v), want the API client's connection at least", n, ok)
	}
	if strings.Contains(text, `stream="scratch"`) {
		t.Error("/metrics still has series of the deleted stream scratch")
	}
}

// TestHTTPConnectionsGauge checks that the gauge goes down when
// connections close.
func TestHTTPConnectionsGauge(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// get uses a connection of its own and closes it.
	for range 3 {
		if _, _, err := get("http://" + s.Addr("http") + "/healthz"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body, err := get("http://" + s.Addr("http") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := metricValue(string(body), "weir_http_connections"); n == 1 {
			return // the scrape's own connection
		} else if time.Now().After(deadline) {
			t.Fatalf("weir_http_connections = %v after the other connections closed, want 1", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownWithSubscription checks that an open subscription neither
// holds up the drain nor outlives the broker.
func TestShutdownWithSubscription(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, _ := apiClient(t, s)
	if _, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "orders"}})); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Subscribe(t.Context(), connect.NewRequest(&weirpb.SubscribeRequest{Stream: "orders",
		Mode: &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("no Subscribed event: %v", stream.Err())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %v", took)
	}
	for stream.Receive() {
	}
	if connect.CodeOf(stream.Err()) != connect.CodeUnavailable {
		t.Errorf("subscription ended with %v, want Unavailable", stream.Err())
	}
}
