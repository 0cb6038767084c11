package api_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

func TestPublishFetchRoundTrip(t *testing.T) {
	n := startNode(t, "")
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			ctx := t.Context()
			stream := "rt-" + proto[:4]
			createStream(t, c, stream, 4)
			ts := time.UnixMilli(1_700_000_000_123)
			var recs []*weirpb.Record
			for i := range 20 {
				recs = append(recs, &weirpb.Record{
					Key:       []byte(fmt.Sprintf("customer-%d", i%7)),
					Value:     []byte(fmt.Sprintf("order %d", i)),
					Headers:   []*weirpb.Header{{Key: "content-type", Value: []byte("text/plain")}, {Key: "n", Value: []byte{byte(i)}}},
					Timestamp: timestamppb.New(ts),
				})
			}
			recs = append(recs, &weirpb.Record{Value: []byte("no key")}, &weirpb.Record{Key: []byte("tombstone")})
			resp, err := c.Publish(ctx, connect.NewRequest(&weirpb.PublishRequest{Stream: stream, Records: recs}))
			if err != nil {
				t.Fatal(err)
			}
			results := resp.Msg.GetResults()
			if len(results) != len(recs) {
				t.Fatalf("%d results for %d records", len(results), len(recs))
			}
			for i, r := range recs[:20] {
				if want := broker.KeyPartition(r.Key, 4); results[i].GetPartition() != want {
					t.Errorf("record %d with key %s went to partition %d, want %d", i, r.Key, results[i].GetPartition(), want)
				}
			}
			// Read every partition back and compare with what was sent.
			got := make(map[string]*weirpb.Record)
			for p := range int32(4) {
				f, err := c.Fetch(ctx, connect.NewRequest(&weirpb.FetchRequest{Stream: stream, Partition: p}))
				if err != nil {
					t.Fatal(err)
				}
				if f.Msg.GetNextOffset() != f.Msg.GetHighWater() {
					t.Errorf("partition %d: next offset %d, high water %d", p, f.Msg.GetNextOffset(), f.Msg.GetHighWater())
				}
				for _, r := range f.Msg.GetRecords() {
					got[fmt.Sprintf("%d/%d", r.GetPartition(), r.GetOffset())] = r
				}
			}
			for i, want := range recs {
				r := got[fmt.Sprintf("%d/%d", results[i].GetPartition(), results[i].GetOffset())]
				if r == nil {
					t.Errorf("record %d not found at %v", i, results[i])
					continue
				}
				if !bytes.Equal(r.Key, want.Key) || (r.Key == nil) != (want.Key == nil) || !bytes.Equal(r.Value, want.Value) ||
					(r.Value == nil) != (want.Value == nil) || r.GetStream() != stream || len(r.Headers) != len(want.Headers) {
					t.Errorf("record %d = %v, want %v", i, r, want)
					continue
				}
				for j, h := range want.Headers {
					if r.Headers[j].GetKey() != h.GetKey() || !bytes.Equal(r.Headers[j].GetValue(), h.GetValue()) {
						t.Errorf("record %d header %d = %v, want %v", i, j, r.Headers[j], h)
					}
				}
				if want.Timestamp != nil && !r.GetTimestamp().AsTime().Equal(ts) {
					t.Errorf("record %d timestamp %v, want %v", i, r.GetTimestamp().AsTime(), ts)
				}
			}
		})
	}
}

func TestPublishDedup(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "payments", 3)
	rec := func(id, v string) *weirpb.Record {
		return &weirpb.Record{Value: []byte(v), Headers: []*weirpb.Header{{Key: "message-id", Value: []byte(id)}}}
	}
	first, err := n.grpc.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "payments",
		Records: []*weirpb.Record{rec("m-1", "a"), rec("m-2", "b")}}))
	if err != nil {
		t.Fatal(err)
	}
	again, err := n.json.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "payments",
		Records: []*weirpb.Record{rec("m-2", "b again"), rec("m-3", "c")}}))
	if err != nil {
		t.Fatal(err)
	}
	dup, orig := again.Msg.GetResults()[0], first.Msg.GetResults()[1]
	if !dup.GetDuplicate() || dup.GetPartition() != orig.GetPartition() || dup.GetOffset() != orig.GetOffset() {
		t.Errorf("republished m-2 = %v, want a duplicate of %v", dup, orig)
	}
	if again.Msg.GetResults()[1].GetDuplicate() {
		t.Error("m-3 reported as a duplicate")
	}
	info, err := n.grpc.DescribeStream(t.Context(), connect.NewRequest(&weirpb.DescribeStreamRequest{Name: "payments"}))
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range info.Msg.GetPartitions() {
		stored += p.GetEndOffset()
	}
	if stored != 3 {
		t.Errorf("%d records stored, want 3", stored)
	}
}

func TestPublishStream(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "events", 2)
	createStream(t, n.grpc, "audit", 1)
	stream := n.grpc.PublishStream(t.Context())
	for i := range 5 {
		name := "events"
		if i%2 == 1 {
			name = "audit"
		}
		p := int32(0)
		err := stream.Send(&weirpb.PublishRequest{Stream: name, Partition: &p, Records: []*weirpb.Record{
			{Value: []byte(fmt.Sprint(i, "a"))}, {Value: []byte(fmt.Sprint(i, "b"))},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndReceive()
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, r := range resp.Msg.GetResults() {
		offsets = append(offsets, r.GetOffset())
	}
	if want := []int64{0, 1, 0, 1, 2, 3, 2, 3, 4, 5}; fmt.Sprint(offsets) != fmt.Sprint(want) {
		t.Errorf("offsets %v, want %v", offsets, want)
	}

	// A failing request ends the call with its error; those before it stay.
	stream = n.grpc.PublishStream(t.Context())
	stream.Send(&weirpb.PublishRequest{Stream: "audit", Records: []*weirpb.Record{{Value: []byte("kept")}}})
	stream.Send(&weirpb.PublishRequest{Stream: "missing", Records: []*weirpb.Record{{Value: []byte("lost")}}})
	_, err = stream.CloseAndReceive()
	wantCode(t, "PublishStream to a missing stream", err, connect.CodeNotFound)
	f, err := n.grpc.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: "audit", Offset: 4}))
	if err != nil || len(f.Msg.GetRecords()) != 1 || string(f.Msg.GetRecords()[0].GetValue()) != "kept" {
		t.Errorf("audit after a failed PublishStream: %v, %v", f, err)
	}
}

func TestFetchLongPoll(t *testing.T) {
	n := startNode(t, "")
	createStream(t, n.grpc, "jobs", 1)
	for proto, c := range n.clients() {
		t.Run(proto, func(t *testing.T) {
			info, err := c.DescribeStream(t.Context(), connect.NewRequest(&weirpb.DescribeStreamRequest{Name: "jobs"}))
			if err != nil {
				t.Fatal(err)
			}
			end := info.Msg.GetPartitions()[0].GetEndOffset()
			type result struct {
				resp *connect.Response[weirpb.FetchResponse]
				err  error
				took time.Duration
			}
			done := make(chan result, 1)
			go func() {
				start := time.Now()
				resp, err := c.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{
					Stream: "jobs", Offset: end, MaxWait: durationpb.New(20 * time.Second),
				}))
				done <- result{resp, err, time.Since(start)}
			}()
			select {
			case r := <-done:
				t.Fatalf("Fetch returned before anything was published: %v, %v", r.resp, r.err)
			case <-time.After(300 * time.Millisecond):
			}
			publish(t, n.grpc, "jobs", 0, "wake up")
			select {
			case r := <-done:
				if r.err != nil || len(r.resp.Msg.GetRecords()) != 1 || string(r.resp.Msg.GetRecords()[0].GetValue()) != "wake up" {
					t.Fatalf("Fetch = %v, %v", r.resp, r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Fetch did not return when a record arrived")
			}
		})
	}

	// Without a record it answers empty once max_wait has passed.
	start := time.Now()
	resp, err := n.grpc.Fetch(t.Context(), connect.NewRequest(&weirpb.FetchRequest{Stream: "jobs", Offset: 2, MaxWait: durationpb.New(200 * time.Millisecond)}))
	if err != nil || len(resp.Msg.GetRecords()) != 0 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("Fetch with nothing to read = %v, %v after %v", resp, err, time.Since(start))
	}
}
