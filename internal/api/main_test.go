package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/server"
)

// node is a real Weir server on a loopback port, with clients of every
// protocol.
type node struct {
	srv  *server.Server
	base string // http://127.0.0.1:port
	dir  string
	// grpc speaks gRPC over HTTP/2 without TLS; json the Connect protocol
	// with JSON over HTTP/1.1.
	grpc weirpbconnect.WeirClient
	json weirpbconnect.WeirClient
	// h2c and h1 are the HTTP clients under them.
	h2c, h1 *http.Client
}

// startNode starts a server with data in dir (a new temporary directory if
// empty) and shuts it down when the test ends.
func startNode(t *testing.T, dir string) *node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", ""
	cfg.HTTPAddr = "127.0.0.1:0"
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, base: "http://" + srv.Addr("http"), dir: dir}
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	n.h2c = &http.Client{Transport: &http.Transport{Protocols: &h2}}
	n.h1 = &http.Client{Transport: &http.Transport{}}
	n.grpc = weirpbconnect.NewWeirClient(n.h2c, n.base, connect.WithGRPC())
	n.json = weirpbconnect.NewWeirClient(n.h1, n.base, connect.WithProtoJSON())
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop shuts the server down; calling it again does nothing.
func (n *node) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Idle HTTP/2 connections would hold the server's drain up to a second.
	n.h2c.CloseIdleConnections()
	n.h1.CloseIdleConnections()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// clients are the two protocols most tests run over.
func (n *node) clients() map[string]weirpbconnect.WeirClient {
	return map[string]weirpbconnect.WeirClient{"grpc": n.grpc, "connect+json": n.json}
}

func createStream(t *testing.T, c weirpbconnect.WeirClient, name string, partitions int32) {
	t.Helper()
	_, err := c.CreateStream(t.Context(), connect.NewRequest(&weirpb.CreateStreamRequest{
		Config: &weirpb.StreamConfig{Name: name, Partitions: partitions},
	}))
	if err != nil {
		t.Fatalf("CreateStream %s: %v", name, err)
	}
}

// publish publishes one record per value, without keys, to partition p
// (p < 0: round robin).
func publish(t *testing.T, c weirpbconnect.WeirClient, stream string, p int32, values ...string) []*weirpb.PublishResult {
	t.Helper()
	req := &weirpb.PublishRequest{Stream: stream}
	if p >= 0 {
		req.Partition = &p
	}
	for _, v := range values {
		req.Records = append(req.Records, &weirpb.Record{Value: []byte(v)})
	}
	resp, err := c.Publish(t.Context(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return resp.Msg.Results
}

// wantCode fails unless err is a connect error with code.
func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %v", what, code)
		return
	}
	if got := connect.CodeOf(err); got != code {
		t.Errorf("%s: %v, want code %v", what, err, code)
	}
}

// subscriber reads a subscription's events on a goroutine of its own.
type subscriber struct {
	t      *testing.T
	cancel context.CancelFunc
	events chan *weirpb.SubscribeResponse
	done   chan error // the stream's end: nil or its error
	closed chan struct{}

	subscribed *weirpb.Subscribed
	// The events taken while waiting for records.
	assignments []*weirpb.Assignment
}

// subscribe starts a subscription and waits for its Subscribed event.
func subscribe(t *testing.T, c weirpbconnect.WeirClient, req *weirpb.SubscribeRequest) *subscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &subscriber{t: t, cancel: cancel, events: make(chan *weirpb.SubscribeResponse), done: make(chan error, 1), closed: make(chan struct{})}
	stream, err := c.Subscribe(ctx, connect.NewRequest(req))
	if err != nil {
		cancel()
		t.Fatalf("Subscribe: %v", err)
	}
	go func() {
		defer close(s.closed)
		defer stream.Close()
		for stream.Receive() {
			select {
			case s.events <- stream.Msg():
			case <-ctx.Done():
				s.done <- ctx.Err()
				return
			}
		}
		s.done <- stream.Err()
	}()
	t.Cleanup(func() {
		// Let the stream close, so that its connection is idle when the
		// node stops.
		cancel()
		<-s.closed
	})
	ev := s.next(5 * time.Second)
	if ev.GetSubscribed() == nil {
		t.Fatalf("first event %v, want Subscribed", ev)
	}
	s.subscribed = ev.GetSubscribed()
	return s
}

// next returns the next event, failing the test if none comes in time or
// the stream ends.
func (s *subscriber) next(timeout time.Duration) *weirpb.SubscribeResponse {
	s.t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.done:
		s.t.Fatalf("subscription ended: %v", err)
	case <-time.After(timeout):
		s.t.Fatalf("no event within %v", timeout)
	}
	return nil
}

// assignment waits for the next Assignment event, failing on records.
func (s *subscriber) assignment(timeout time.Duration) *weirpb.Assignment {
	s.t.Helper()
	ev := s.next(timeout)
	if ev.GetAssignment() == nil {
		s.t.Fatalf("event %v, want an Assignment", ev)
	}
	s.assignments = append(s.assignments, ev.GetAssignment())
	return ev.GetAssignment()
}

// records collects exactly n records, keeping Assignment events aside.
func (s *subscriber) records(n int, timeout time.Duration) []*weirpb.Record {
	s.t.Helper()
	var out []*weirpb.Record
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		ev := s.next(time.Until(deadline))
		switch {
		case ev.GetRecords() != nil:
			out = append(out, ev.GetRecords().GetRecords()...)
		case ev.GetAssignment() != nil:
			s.assignments = append(s.assignments, ev.GetAssignment())
		default:
			s.t.Fatalf("unexpected event %v", ev)
		}
	}
	if len(out) > n {
		s.t.Fatalf("got %d records, want %d", len(out), n)
	}
	return out
}

// quiet fails if an event arrives within d.
func (s *subscriber) quiet(d time.Duration) {
	s.t.Helper()
	select {
	case ev := <-s.events:
		s.t.Fatalf("unexpected event %v", ev)
	case err := <-s.done:
		s.t.Fatalf("subscription ended: %v", err)
	case <-time.After(d):
	}
}

// end waits for the stream to end and returns its error.
func (s *subscriber) end(timeout time.Duration) error {
	s.t.Helper()
	for {
		select {
		case <-s.events:
		case err := <-s.done:
			return err
		case <-time.After(timeout):
			s.t.Fatalf("subscription did not end within %v", timeout)
			return errors.New("timeout")
		}
	}
}

func values(recs []*weirpb.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.GetValue())
	}
	return out
}

func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
