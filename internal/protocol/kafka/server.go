// Package kafka is Weir's Kafka wire protocol front end: unmodified Kafka
// clients produce, consume and administer against a Weir node. A Kafka topic
// is a Weir stream; a Kafka consumer group is a classic group of the broker
// sharing the committed offsets of Weir's native groups; a Kafka share group
// (KIP-932) is the shared subscription of its name on each topic it reads.
// SASL (PLAIN, SCRAM) is checked against an Authenticator when one is set.
//
// The package translates the wire format (decoded and encoded with franz-go's
// kmsg types) into broker calls and never reaches into storage. There is one
// file per API key; conn.go holds the framing and request order, server.go
// the listener. The supported API keys and versions are in apis.go and
// docs/PROTOCOLS.md.
package kafka

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
	"github.com/weirmq/weir/internal/tracing"
)

// Defaults of Config.
const (
	DefaultMaxRequestBytes = 100 << 20 // Kafka's socket.request.max.bytes
	DefaultPartitions      = 1         // Kafka's num.partitions
)

// Config configures a Server.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger
	// AutoCreateTopics creates a topic a client asks metadata for (when the
	// client allows it), as Kafka's auto.create.topics.enable.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and
	// of CreateTopics with -1 partitions (0: DefaultPartitions).
	DefaultPartitions int32
	// MaxRequestBytes bounds one request frame (0: DefaultMaxRequestBytes).
	// It is checked before anything is allocated for the frame.
	MaxRequestBytes int
	// MaxRecordBytes is the broker's record limit, reported in configurations.
	MaxRecordBytes int
	// ClusterID is reported in Metadata ("" : "weir").
	ClusterID string
	// Observer, when set, is told of connections and requests (the server's
	// metrics).
	Observer Observer
	// Tracer starts a span for each partition a Produce appends to and
	// for each Fetch (nil: no tracing).
	Tracer *tracing.Tracer
	// Authenticator, when set, turns SASL on: every connection must
	// authenticate before its first request other than ApiVersions.
	Authenticator Authenticator
	// ShareSessionTimeout removes a share-group member whose heartbeats
	// stopped for this long, releasing the records it held (0:
	// DefaultShareSessionTimeout, Kafka's share.session.timeout.ms).
	ShareSessionTimeout time.Duration
	// ShareHeartbeatInterval is the heartbeat interval given to share-group
	// members (0: DefaultShareHeartbeatInterval, or a third of
	// ShareSessionTimeout when that is shorter).
	ShareHeartbeatInterval time.Duration
}

// Observer receives the listener's events; internal/server turns them into
// Prometheus metrics. Its methods are called from connection goroutines.
type Observer interface {
	Connected()
	Disconnected()
	// Handled is called once per request with its API key (-1 when the
	// frame did not even hold a header) and whether it failed, closing
	// the connection.
	Handled(apiKey int16, failed bool)
	// Delivered is called once per Fetch or ShareFetch response that
	// carries records: how many (transaction markers excluded) and the
	// bytes of their record batches (delivered.go).
	Delivered(apiKey int16, records, bytes int)
}

type nopObserver struct{}

func (nopObserver) Connected()                {}
func (nopObserver) Disconnected()             {}
func (nopObserver) Handled(int16, bool)       {}
func (nopObserver) Delivered(int16, int, int) {}

// nodeID is the node id Weir reports: a single node.
const nodeID = 0

// Server serves the Kafka protocol on listeners.
type Server struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // cancelled by Close: ends long polls and group waits
	cancel context.CancelFunc

	share *shareCoordinator
	tcp   tcpserve.Server[*conn]

	mu     sync.Mutex // guards closed, and bg's Add against its Wait
	closed bool
	bg     sync.WaitGroup // background goroutines (the share-group reaper)
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.DefaultPartitions <= 0 {
		cfg.DefaultPartitions = DefaultPartitions
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = broker.DefaultMaxRecordBytes
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "weir"
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.ShareSessionTimeout <= 0 {
		cfg.ShareSessionTimeout = DefaultShareSessionTimeout
	}
	if cfg.ShareHeartbeatInterval <= 0 {
		cfg.ShareHeartbeatInterval = min(DefaultShareHeartbeatInterval, cfg.ShareSessionTimeout/3)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel}
	s.share = newShareCoordinator(s)
	return s
}

// ErrServerClosed is returned by Serve once Close was called.
var ErrServerClosed = tcpserve.ErrClosed

// Serve accepts connections on ln until Close, serving each on its own
// goroutines. It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	return s.tcp.Serve(ln, func(nc net.Conn) *conn { return newConn(s, nc) })
}

// Close stops the listeners, ends waiting requests and closes every
// connection, then waits for their goroutines until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if err := s.tcp.Close(ctx, s.cancel); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		s.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
