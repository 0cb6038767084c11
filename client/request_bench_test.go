package weir_test

import (
	"context"
	"testing"

	weir "github.com/weirmq/weir/client"
)

// BenchmarkRequestReply measures request-reply round trips through a queue
// with one responder (prefetch 100), over loopback, from concurrent
// requesters (b.RunParallel: GOMAXPROCS goroutines; -cpu sets how many).
func BenchmarkRequestReply(b *testing.B) {
	srv := startServer(b)
	ctx := context.Background()
	c := srv.dial(b)
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "rpc", Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	resp, err := c.Respond(ctx, "rpc", func(ctx context.Context, req *weir.Message) (weir.Record, error) {
		return weir.Record{Value: req.Value}, nil
	}, weir.Prefetch(100))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Close(ctx)
	requester := srv.dial(b)
	req := weir.Record{Value: make([]byte, 100)}
	if _, err := requester.Request(ctx, weir.ToStream("rpc"), req); err != nil {
		b.Fatal(err) // opens the inbox
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := requester.Request(ctx, weir.ToStream("rpc"), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
