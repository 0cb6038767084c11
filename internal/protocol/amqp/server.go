// Package amqp is Weir's AMQP 0-9-1 front end: unmodified RabbitMQ clients
// declare exchanges and queues, publish (with publisher confirms and
// mandatory returns) and consume (with prefetch, acks, nacks and rejects)
// against a Weir node. AMQP exchanges are the broker's exchanges, AMQP
// queues are the broker's queues (streams with a shared subscription of the
// same name), and an x-queue-type=stream queue is a plain stream.
//
// The codec is in ./wire, generated from the specification XML by
// ./internal/gen. conn.go holds the connection (handshake, frames,
// heartbeats, close), channel.go the channel and its synchronous methods,
// publish.go publishing and confirms, consume.go consumers, acks and
// basic.get, props.go the mapping of basic properties to record headers,
// errors.go the one table from broker errors to reply codes.
package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
	"github.com/weirmq/weir/internal/tracing"
)

// Defaults of Config.
const (
	DefaultFrameMax   = 128 << 10 // RabbitMQ's default
	DefaultChannelMax = 2047
	DefaultHeartbeat  = 60 * time.Second
)

// Authenticator checks a client's credentials. mechanism is "PLAIN" or
// "AMQPLAIN"; it returns the user name, or an error to refuse the
// connection (403 ACCESS_REFUSED).
type Authenticator interface {
	Authenticate(mechanism, user, password string) error
}

// AllowAll accepts any credentials: the default until Weir has users.
type AllowAll struct{}

func (AllowAll) Authenticate(string, string, string) error { return nil }

// Config configures a Server.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger
	// Authenticator checks credentials (nil: AllowAll).
	Authenticator Authenticator
	// FrameMax is the largest frame the server proposes (at least 4096; 0:
	// DefaultFrameMax). ChannelMax likewise (0: DefaultChannelMax).
	FrameMax   uint32
	ChannelMax uint16
	// Heartbeat is the interval the server proposes (0: DefaultHeartbeat;
	// negative: none, unless the client asks for one).
	Heartbeat time.Duration
	// MaxRecordBytes bounds a message's body (0: the broker's default).
	MaxRecordBytes int
	// Version is reported in the server properties.
	Version string
	// Tracer starts a span for each batch of basic.publish stored and
	// each message delivered (nil: no tracing).
	Tracer *tracing.Tracer
}

// Server serves AMQP 0-9-1 on listeners.
type Server struct {
	cfg Config
	b   *broker.Broker
	log *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	tcp      tcpserve.Server[*conn]
	nextConn atomic.Uint64
	stats    serverStats // counters for metrics (stats.go)

	mu     sync.Mutex
	closed bool
	queues map[string]*queueState // exclusive and auto-delete queues, and consumer counts
	// exchangeFlags are the flags exchanges were declared with in this run.
	exchangeFlags map[string]declaredFlags
}

// queueState is what the front end knows of a queue beyond the broker:
// its exclusive owner and auto-delete flag (in memory: see
// docs/PROTOCOLS.md), and how many AMQP consumers it has.
type queueState struct {
	owner      *conn // exclusive to this connection
	autoDelete bool
	consumers  int
	consumed   bool // auto-delete: had a consumer
	// x-expires and x-single-active-consumer, declared flags
	// (queueopts.go).
	opts     queueOpts
	flags    *declaredFlags
	lastUsed time.Time
	expiry   *time.Timer
	// persisted: opts are stored (queuestore.go), for the stream streamID.
	persisted bool
	streamID  [16]byte
	// sacLine holds a single-active-consumer queue's consumers in arrival
	// order; the first is the active one.
	sacLine []*consumer
}

// keep reports whether the state says more than a consumer count.
func (q *queueState) keep() bool {
	return q.owner != nil || q.autoDelete || q.opts != (queueOpts{}) || q.flags != nil || q.consumers > 0
}

// ErrServerClosed is returned by Serve once Close was called.
var ErrServerClosed = tcpserve.ErrClosed

// New returns a server for cfg and declares the predeclared exchanges.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = AllowAll{}
	}
	if cfg.FrameMax == 0 {
		cfg.FrameMax = DefaultFrameMax
	}
	if cfg.FrameMax < wire.FrameMinSize {
		return nil, fmt.Errorf("amqp: frame-max %d is below the minimum %d", cfg.FrameMax, wire.FrameMinSize)
	}
	if cfg.ChannelMax == 0 {
		cfg.ChannelMax = DefaultChannelMax
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = broker.DefaultMaxRecordBytes
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	for _, x := range VhostExchanges(DefaultVhost) {
		if _, err := cfg.Broker.DeclareExchange(context.Background(), x); err != nil {
			return nil, fmt.Errorf("amqp: declare %s: %w", x.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, b: cfg.Broker, log: cfg.Logger, ctx: ctx, cancel: cancel,
		queues:        make(map[string]*queueState),
		exchangeFlags: make(map[string]declaredFlags),
	}
	if err := s.loadQueueOpts(ctx); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Serve accepts connections on ln until Close. It closes ln when it
// returns.
func (s *Server) Serve(ln net.Listener) error {
	return s.tcp.Serve(ln, func(nc net.Conn) *conn { return newConn(s, nc, s.nextConn.Add(1)) })
}

// Close stops the listeners, closes every connection (clients get
// connection.close 320 CONNECTION_FORCED) and waits for their goroutines
// until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.tcp.Close(ctx, s.cancel)
}

// serverProperties is connection.start's server-properties table.
func (s *Server) serverProperties() wire.Table {
	return wire.Table{
		"product":      "Weir",
		"version":      s.cfg.Version,
		"platform":     "Go",
		"cluster_name": "weir",
		"information":  "Weir message broker",
		"capabilities": wire.Table{
			"publisher_confirms":           true,
			"basic.nack":                   true,
			"consumer_cancel_notify":       true,
			"exchange_exchange_bindings":   true,
			"connection.blocked":           true,
			"per_consumer_qos":             true,
			"direct_reply_to":              true,
			"authentication_failure_close": true,
		},
	}
}

// parseCredentials reads the user and password of a start-ok response.
func parseCredentials(mechanism string, response []byte) (user, password string, err error) {
	switch mechanism {
	case "PLAIN":
		// authzid NUL authcid NUL password
		parts := bytes.Split(response, []byte{0})
		if len(parts) != 3 {
			return "", "", errors.New("PLAIN response is not authzid\\0user\\0password")
		}
		return string(parts[1]), string(parts[2]), nil
	case "AMQPLAIN":
		// A field table without its length prefix.
		d := wire.NewDecoder(append([]byte{byte(len(response) >> 24), byte(len(response) >> 16), byte(len(response) >> 8), byte(len(response))}, response...))
		t := d.Table()
		if d.Err() != nil {
			return "", "", d.Err()
		}
		u, _ := t["LOGIN"].(string)
		p, _ := t["PASSWORD"].(string)
		return u, p, nil
	}
	return "", "", fmt.Errorf("mechanism %q not supported (PLAIN, AMQPLAIN)", mechanism)
}

// queueOwner checks that c may use queue name: an exclusive queue belongs
// to one connection.
func (s *Server) queueLocked(name string, c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	return q != nil && q.owner != nil && q.owner != c
}

// queueOwned reports whether queue name is exclusive to a connection.
func (s *Server) queueOwned(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	return q != nil && q.owner != nil
}

// noteQueue records a declared queue's exclusive owner and auto-delete flag.
func (s *Server) noteQueue(name string, owner *conn, autoDelete bool) {
	if owner == nil && !autoDelete {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		q = &queueState{}
		s.queues[name] = q
	}
	if owner != nil {
		q.owner = owner
	}
	q.autoDelete = q.autoDelete || autoDelete
}

// consumerAdded and consumerRemoved count a queue's AMQP consumers; the
// last one going deletes an auto-delete queue.
func (s *Server) consumerAdded(name string, c *consumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[name]
	if q == nil {
		q = &queueState{}
		s.queues[name] = q
	}
	q.consumers++
	q.consumed = true
	s.used(name, q)
	if q.opts.singleActive && !c.stream {
		q.sacLine = append(q.sacLine, c)
		if len(q.sacLine) > 1 {
			return // waits its turn
		}
	}
	close(c.active)
}

func (s *Server) consumerRemoved(name string, c *consumer) {
	s.mu.Lock()
	q := s.queues[name]
	if q == nil {
		s.mu.Unlock()
		return
	}
	q.consumers--
	if i := slices.Index(q.sacLine, c); i >= 0 {
		q.sacLine = slices.Delete(q.sacLine, i, i+1)
		if i == 0 && len(q.sacLine) > 0 {
			close(q.sacLine[0].active) // the next in line takes over
		}
	}
	remove := q.autoDelete && q.consumed && q.consumers <= 0
	if !q.keep() {
		delete(s.queues, name)
	}
	s.used(name, q)
	s.mu.Unlock()
	if remove {
		s.deleteQueue(name, "auto-delete queue lost its last consumer")
	}
}

func (s *Server) consumerCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[name]; q != nil {
		return q.consumers
	}
	return 0
}

// connClosed deletes the exclusive queues of c.
func (s *Server) connClosed(c *conn) {
	s.mu.Lock()
	var names []string
	for name, q := range s.queues {
		if q.owner == c {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	for _, name := range names {
		s.deleteQueue(name, "exclusive queue's connection closed")
	}
}

// deleteQueue deletes a queue the front end manages (exclusive or
// auto-delete) and forgets it.
func (s *Server) deleteQueue(name, why string) {
	s.forgetQueue(name)
	if err := s.b.DeleteStream(context.Background(), name); err != nil && !errors.Is(err, broker.ErrStreamNotFound) && !errors.Is(err, broker.ErrClosed) {
		s.log.Warn("could not delete queue", "queue", name, "why", why, "err", err)
		return
	}
	s.log.Debug("deleted queue", "queue", name, "why", why)
}

// forgetQueue drops what the front end knows of a deleted queue.
func (s *Server) forgetQueue(name string) {
	s.mu.Lock()
	q := s.queues[name]
	if q != nil && q.expiry != nil {
		q.expiry.Stop()
	}
	delete(s.queues, name)
	s.mu.Unlock()
	if q != nil && q.persisted {
		s.writeQueueOpts(name, nil)
	}
}
