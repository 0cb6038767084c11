// Package mqtt is Weir's MQTT front end: MQTT 3.1, 3.1.1 and 5 clients
// publish and subscribe through the broker's topic exchange "amq.topic"
// (the one the AMQP front end predeclares), so MQTT, AMQP, Kafka and
// native clients meet on the same records.
//
// packet.go, props.go and encode.go are the codec; topic.go maps topics
// and filters onto routing keys; conn.go is a connection (CONNECT,
// sessions, subscriptions); publish.go stores its publishes; deliver.go and
// credit.go deliver records to it and map properties to headers; qos2.go
// and qos2in.go keep the QoS 2 state of sessions (server-sent and received);
// store.go keeps the retained messages and the persistent sessions
// (compacted streams); sys.go publishes the $SYS topics from the counters
// of stats.go; reason.go maps errors to reason codes; websocket.go serves
// MQTT over WebSocket. docs/PROTOCOLS.md ("MQTT front end") has the mapping
// and decisions.
package mqtt

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/protocol/tcpserve"
	"github.com/weirmq/weir/internal/tracing"
)

// Exchange is the topic exchange MQTT topics are routing keys of.
const Exchange = "amq.topic"

// Defaults of Config.
const (
	DefaultMaxPacketSize  = 1<<20 + 1<<10
	DefaultReceiveMaximum = 64
	DefaultConnectTimeout = 10 * time.Second
	// DefaultTopicAliasMaximum is the Topic Alias Maximum of CONNACK: the
	// aliases an MQTT 5 client may set on one connection.
	DefaultTopicAliasMaximum = 64
)

// Authenticator checks the credentials of a CONNECT: the client id, the
// user name (nil: none given) and the password (nil: none given). An error
// refuses the connection (3.1.1 return code 4, MQTT 5 reason 0x86 "bad user
// name or password").
type Authenticator interface {
	Authenticate(clientID string, username *string, password []byte) error
}

// AllowAll accepts any credentials: the default until Weir has users.
type AllowAll struct{}

func (AllowAll) Authenticate(string, *string, []byte) error { return nil }

// Config configures a Server.
type Config struct {
	Broker *broker.Broker
	Logger *slog.Logger
	// Authenticator checks credentials (nil: AllowAll).
	Authenticator Authenticator
	// MaxPacketSize bounds a packet from a client (0: the broker's record
	// limit plus 1 KiB).
	MaxPacketSize int
	// ReceiveMaximum bounds the QoS 1 and 2 messages in flight to one client
	// (0: DefaultReceiveMaximum; an MQTT 5 client may ask for fewer).
	ReceiveMaximum int
	// ConnectTimeout is how long a new connection may take to send
	// CONNECT (0: DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// TopicAliasMaximum bounds the topic aliases of an MQTT 5 client's
	// publishes (0: DefaultTopicAliasMaximum; at most 65535).
	TopicAliasMaximum int
	// SysInterval is how often the $SYS topics are published (0:
	// DefaultSysInterval; negative: never).
	SysInterval time.Duration
	// Version is the server's version, for $SYS/broker/version.
	Version string
	// Tracer starts a span for each batch of PUBLISH packets of a topic
	// stored (nil: no tracing).
	Tracer *tracing.Tracer
}

// Server serves MQTT on listeners.
type Server struct {
	cfg Config
	b   *broker.Broker
	log *slog.Logger

	retained *retainedStore
	sessions *sessionStore
	qos2     *qos2Store
	// sessionLocks make a connection's session setup and the expiry of
	// that session atomic with respect to each other: one lock per stripe
	// of client ids (sessionLock), so that the setups of different
	// clients, each a few broker writes that wait for fsyncs, go in
	// parallel (one lock for all made 1,000 clients connecting at once
	// wait for each other's fsyncs, past their connect timeouts). A stripe
	// comes before mu and is held across broker calls.
	sessionLocks [64]sync.Mutex
	lockSeed     maphash.Seed
	stop         chan struct{} // closed by Close: ends the expiry loop

	tcp      tcpserve.Server[*conn]
	nextConn atomic.Uint64
	counters counters       // Stats
	sys      sysTree        // $SYS topics (sys.go)
	bg       sync.WaitGroup // the session expiry loop and delayed wills being published

	mu       sync.Mutex
	closed   bool
	byClient map[string]*conn       // the live connection of each client id
	wills    map[string]*time.Timer // delayed wills by client id (MQTT 5)
}

// ErrServerClosed is returned by Serve once Close was called.
var ErrServerClosed = tcpserve.ErrClosed

// New returns a server for cfg: it declares the exchange, loads the
// retained messages and sessions, and removes the queues of sessions that
// ended without being cleaned up (a crash).
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil {
		return nil, errors.New("mqtt: no broker")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Authenticator == nil {
		cfg.Authenticator = AllowAll{}
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.ReceiveMaximum <= 0 {
		cfg.ReceiveMaximum = DefaultReceiveMaximum
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.TopicAliasMaximum <= 0 {
		cfg.TopicAliasMaximum = DefaultTopicAliasMaximum
	}
	cfg.TopicAliasMaximum = min(cfg.TopicAliasMaximum, 65535)
	if cfg.SysInterval == 0 {
		cfg.SysInterval = DefaultSysInterval
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	ctx := context.Background()
	if _, err := cfg.Broker.DeclareExchange(ctx, broker.ExchangeConfig{Name: Exchange, Type: route.Topic}); err != nil {
		return nil, fmt.Errorf("mqtt: declare %s: %w", Exchange, err)
	}
	retained, err := openRetained(ctx, cfg.Broker)
	if err != nil {
		return nil, err
	}
	sessions, err := openSessions(ctx, cfg.Broker)
	if err != nil {
		return nil, err
	}
	qos2, err := openQoS2(ctx, cfg.Broker)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, b: cfg.Broker, log: cfg.Logger, retained: retained, sessions: sessions, qos2: qos2, stop: make(chan struct{}), lockSeed: maphash.MakeSeed(),
		byClient: map[string]*conn{},
		wills:    map[string]*time.Timer{},
	}
	// QoS 2 state without a session: left by a crash while the session
	// was removed.
	for _, id := range qos2.clients() {
		if _, ok := sessions.get(id); !ok {
			if err := qos2.remove(ctx, id, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := s.expireSessions(ctx); err != nil {
		return nil, err
	}
	s.bg.Add(1)
	go s.expiryLoop()
	s.sys = sysTree{start: time.Now(), values: map[string]string{}}
	if cfg.SysInterval > 0 {
		s.bg.Add(1)
		go s.sysLoop(cfg.SysInterval)
	}
	return s, nil
}

// expiryInterval is how often expired MQTT 5 sessions are looked for.
var expiryInterval = time.Second

func (s *Server) expiryLoop() {
	defer s.bg.Done()
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.expireSessions(context.Background()); err != nil {
				s.log.Warn("session expiry", "err", err)
			}
		}
	}
}

// expireSessions removes the sessions whose expiry interval has passed
// since their connection ended: their queues and records.
func (s *Server) expireSessions(ctx context.Context) error {
	var errs []error
	for _, id := range s.sessions.expired(time.Now()) {
		if err := s.expireSession(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sessionLock is the lock of clientID's stripe (sessionLocks).
func (s *Server) sessionLock(clientID string) *sync.Mutex {
	return &s.sessionLocks[maphash.String(s.lockSeed, clientID)%uint64(len(s.sessionLocks))]
}

// expireSession removes an expired session unless its client connected
// again meanwhile.
func (s *Server) expireSession(ctx context.Context, id string) error {
	lock := s.sessionLock(id)
	lock.Lock()
	defer lock.Unlock()
	if st, ok := s.sessions.get(id); !ok || st.ExpiresAt == 0 || st.ExpiresAt > time.Now().UnixMilli() {
		return nil // gone, or taken up again by a connection
	}
	s.mu.Lock()
	_, live := s.byClient[id]
	s.mu.Unlock()
	if live {
		return nil
	}
	if err := s.b.DeleteStream(ctx, sessionQueue(id)); err != nil && !errors.Is(err, broker.ErrStreamNotFound) {
		return err
	}
	if err := s.qos2.remove(ctx, id, nil); err != nil {
		return err
	}
	if err := s.sessions.remove(ctx, id); err != nil {
		return err
	}
	s.log.Debug("session expired", "client", id)
	return nil
}

// Serve accepts connections on ln until Close, and closes ln when it
// returns.
func (s *Server) Serve(ln net.Listener) error {
	return s.tcp.Serve(ln, s.newConn)
}

// ServeConn serves one connection (a TCP connection, or a WebSocket one
// adapted to net.Conn) on its own goroutine.
func (s *Server) ServeConn(nc net.Conn) {
	s.tcp.Go(s.newConn(nc), nc)
}

func (s *Server) newConn(nc net.Conn) *conn {
	s.counters.connectionsTotal.Add(1)
	return newConn(s, countingConn{nc, &s.counters}, s.nextConn.Add(1))
}

// Close stops the listeners and closes every connection (MQTT 5 clients
// get DISCONNECT "server shutting down"; wills are not published, as the
// clients did nothing wrong), then waits for them until ctx is done.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for id, t := range s.wills {
		t.Stop() // delayed wills are not published at shutdown
		delete(s.wills, id)
	}
	s.mu.Unlock()
	if err := s.tcp.Close(ctx, nil); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeOver makes c the live connection of its client id, closing the one
// before it (session taken over) and waiting until that one has finished.
func (s *Server) takeOver(c *conn) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrServerClosed
		}
		old := s.byClient[c.clientID]
		if old == nil {
			s.byClient[c.clientID] = c
			if t := s.wills[c.clientID]; t != nil {
				t.Stop() // reconnected within the will delay
				delete(s.wills, c.clientID)
			}
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		old.shutdown(reasonSessionTakenOver)
		select {
		case <-old.done:
		case <-time.After(30 * time.Second):
			return errors.New("previous connection of the client id did not end")
		}
	}
}

// liveConns returns the live connection of each client id.
func (s *Server) liveConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.byClient))
	for _, c := range s.byClient {
		conns = append(conns, c)
	}
	return conns
}

// release forgets c as its client id's live connection.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	if s.byClient[c.clientID] == c {
		delete(s.byClient, c.clientID)
	}
	s.mu.Unlock()
}

// scheduleWill publishes a will after delay unless the client id connects
// again first (or the server closes).
func (s *Server) scheduleWill(clientID string, w *Will, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if t := s.wills[clientID]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		s.mu.Lock()
		if s.closed || s.wills[clientID] != t {
			s.mu.Unlock()
			return
		}
		delete(s.wills, clientID)
		s.bg.Add(1)
		s.mu.Unlock()
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.publishWill(ctx, clientID, w); err != nil {
			s.log.Warn("will message not published", "client", clientID, "err", err)
		}
	})
	s.wills[clientID] = t
}
