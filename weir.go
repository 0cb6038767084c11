// Package weir embeds a Weir node in a Go program: the whole broker on a data
// directory, with or without network listeners, and SDK clients connected to
// it in-process. Tests and single-process deployments use it the way NATS
// users embed nats-server.
//
//	import (
//		"github.com/weirmq/weir"
//		client "github.com/weirmq/weir/client" // the SDK, package weir
//	)
//
//	node, err := weir.Open(ctx, weir.Options{Dir: "./data"})
//	...
//	defer node.Close(ctx)
//	c, err := node.Client(ctx) // an SDK client over an in-memory pipe
//	c.CreateStream(ctx, client.StreamConfig{Name: "orders", Partitions: 3})
package weir

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	client "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/memnet"
	"github.com/weirmq/weir/internal/server"
)

// Options configure an embedded node. Only Dir is required.
type Options struct {
	// Dir is the data directory.
	Dir string
	// FSync is "always" (the default: an acknowledged publish is on disk),
	// "interval" or "never".
	FSync string
	// HTTPAddr, when set, also serves the native API, /healthz and /metrics
	// on that address (e.g. "127.0.0.1:8080"); empty means in-process only.
	HTTPAddr string
	// MaxRecordBytes bounds one record (0: 1 MiB).
	MaxRecordBytes int64
	// Logger receives the node's logs (nil: discarded).
	Logger *slog.Logger
}

// Node is a running embedded Weir node.
type Node struct {
	srv *server.Server
	mem *memnet.Listener
}

// Open starts a node on opts.Dir. Close it to flush and release the
// directory.
func Open(ctx context.Context, opts Options) (*Node, error) {
	if opts.Dir == "" {
		return nil, errors.New("weir: Options.Dir is required")
	}
	cfg := server.DefaultConfig()
	cfg.DataDir = opts.Dir
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", ""
	cfg.HTTPAddr = opts.HTTPAddr
	if opts.FSync != "" {
		cfg.FSync = server.FSyncMode(opts.FSync)
	}
	if opts.MaxRecordBytes > 0 {
		cfg.MaxRecordBytes = server.ByteSize(opts.MaxRecordBytes)
	}
	n := &Node{}
	if opts.HTTPAddr == "" {
		// No socket: the API is served on an in-memory listener only.
		n.mem = memnet.Listen()
		cfg.HTTPListener = n.mem
	}
	srv, err := server.New(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	n.srv = srv
	return n, nil
}

// Addr is the node's HTTP address, or "" when it serves in-process only.
func (n *Node) Addr() string { return n.srv.Addr("http") }

// Client returns an SDK client connected to the node: in-process when the
// node has no HTTP address, over loopback otherwise.
func (n *Node) Client(ctx context.Context, opts ...client.Option) (*client.Client, error) {
	if n.mem == nil {
		return client.Dial(ctx, n.Addr(), opts...)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	transport := &http.Transport{
		DialContext:     n.mem.Dial,
		Protocols:       &protocols,
		IdleConnTimeout: time.Minute,
	}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: transport})}, opts...)
	return client.Dial(ctx, "http://weir.in-process", opts...)
}

// Close stops the node: open subscriptions end, every partition is flushed.
func (n *Node) Close(ctx context.Context) error {
	return n.srv.Shutdown(ctx)
}
