package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
)

// subscribeDesc is the Subscribe call as grpc-go sees it: a server stream.
var subscribeDesc = &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}

// openSubscribes opens n Subscribe calls on conn and waits for each one's
// first event (Subscribed); it returns the streams and the first error.
func openSubscribes(ctx context.Context, conn *grpc.ClientConn, stream string, n int) ([]grpc.ClientStream, error) {
	type opened struct {
		s   grpc.ClientStream
		err error
	}
	results := make(chan opened, n)
	for i := range n {
		go func() {
			s, err := conn.NewStream(ctx, subscribeDesc, "/weir.v1.Weir/Subscribe")
			if err == nil {
				err = s.SendMsg(&weirpb.SubscribeRequest{Stream: stream, Mode: &weirpb.SubscribeRequest_Ephemeral{Ephemeral: &weirpb.EphemeralMode{}}, ClientId: fmt.Sprint("c", i)})
			}
			if err == nil {
				err = s.CloseSend()
			}
			if err == nil {
				var first weirpb.SubscribeResponse
				if err = s.RecvMsg(&first); err == nil && first.GetSubscribed() == nil {
					err = fmt.Errorf("first event %v, want subscribed", &first)
				}
			}
			results <- opened{s, err}
		}()
	}
	var streams []grpc.ClientStream
	var firstErr error
	for range n {
		r := <-results
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if r.s != nil && r.err == nil {
			streams = append(streams, r.s)
		}
	}
	return streams, firstErr
}

// TestManyStreamsOnOneGRPCConnection: a grpc-go client keeps every call on
// one connection and waits, rather than opening another, once the server's
// SETTINGS_MAX_CONCURRENT_STREAMS are in use. Go's HTTP/2 server allows
// 250 by default, which left a client's 251st subscription hanging. The
// server now advertises max-streams-per-connection (400 here; 100,000 by
// default).
func TestManyStreamsOnOneGRPCConnection(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxStreamsPerConnection = 400
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, closeIdle := apiClient(t, s)
	defer closeIdle()
	if _, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{Config: &weirpb.StreamConfig{Name: "many", Partitions: 1}})); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+s.Addr("http"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	streams, err := openSubscribes(ctx, conn, "many", 400)
	if err != nil {
		t.Fatalf("%d of 400 subscriptions on one connection opened; first error: %v", len(streams), err)
	}

	// Every subscription receives what is published now.
	if _, err := c.Publish(t.Context(), connect.NewRequest(&weirpb.PublishRequest{Stream: "many", Records: []*weirpb.Record{record("hello", "")}})); err != nil {
		t.Fatal(err)
	}
	for i, st := range streams {
		var ev weirpb.SubscribeResponse
		if err := st.RecvMsg(&ev); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		if recs := ev.GetRecords().GetRecords(); len(recs) != 1 || string(recs[0].GetValue()) != "hello" {
			t.Fatalf("subscription %d got %v, want the record hello", i, &ev)
		}
	}

	// The 401st stream of the connection: grpc-go waits for room, so with
	// a short deadline it fails with DeadlineExceeded instead of hanging.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if more, err := openSubscribes(short, conn, "many", 1); err == nil || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream beyond max-streams-per-connection: %d opened, err %v; want DeadlineExceeded", len(more), err)
	}
	// Another connection has room of its own.
	other, err := grpc.NewClient("passthrough:///"+s.Addr("http"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := openSubscribes(ctx, other, "many", 1); err != nil {
		t.Fatalf("a second connection: %v", err)
	}
}

func TestMaxStreamsPerConnectionValidation(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxStreamsPerConnection = -1
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "max-streams-per-connection") {
		t.Fatalf("Validate with -1 = %v, want an error naming max-streams-per-connection", err)
	}
}
