package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weirmq/weir/internal/api"
	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/console"
	"github.com/weirmq/weir/internal/state"
	"github.com/weirmq/weir/internal/storage"
)

// Errors returned by Start.
var (
	ErrStarted = errors.New("server already started")
	ErrStopped = errors.New("server shut down")
)

// Endpoint is a listener: its name ("kafka", "amqp", "mqtt", "http")
// and its address.
type Endpoint struct {
	Name string
	Addr string
}

// phase is where a Server is in its life. It only moves forward.
type phase int

const (
	phaseNew      phase = iota
	phaseStarting       // Start is opening components and listeners
	phaseServing        // Start returned nil
	phaseStopped        // Shutdown was called, or Start failed
)

// Server is one Weir node. New configures it, Start opens its components and
// listeners, Shutdown closes them. A Server is started at most once.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	mux     *http.ServeMux
	metrics *metrics

	limits *connLimits // connection counts and limits (limits.go)
	// userConns counts each user's connections; with users (authz.go).
	userConns *auth.UserConnections

	lifecycle   sync.Mutex       // serializes Start and Shutdown; guards the fields below it
	httpServers []httpServing    // the HTTP and HTTPS servers started
	api         *api.Service     // nil until Start opened the broker
	console     *console.Console // nil until Start opened the broker (console.go)
	users       *auth.Users      // nil when authentication is off (auth.go)
	tls         *tlsFiles        // nil when no TLS listener is on (tls.go)
	// tracerProvider exports the front ends' spans; nil when tracing is
	// off (tracing.go).
	tracerProvider *sdktrace.TracerProvider
	// stateFS is the state store's filesystem (nil: the OS's), set by
	// tests to inject faults.
	stateFS state.FS

	mu         sync.Mutex // guards the fields below it
	phase      phase
	components []Component // in the order they were opened
	endpoints  []Endpoint  // bound listeners, in the order they were bound
	broker     *broker.Broker
}

// New returns a server for cfg that logs to logger (nil discards the logs).
// It validates cfg and performs no I/O; Start does.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		logger:  logger,
		mux:     http.NewServeMux(),
		metrics: newMetrics(cfg.Version),
	}
	s.limits = &connLimits{maxTotal: int64(cfg.MaxConnections), metrics: s.metrics.listeners, server: s,
		maxFiles: openFileLimit(), openFiles: storage.OpenFiles}
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.Handle("GET /metrics", newMetricsHandler(s.metrics.registry, logger))
	return s, nil
}

// Start creates the data directory, opens the broker and the native API
// (mounted on the HTTP mux) and binds the listeners that are on, then
// serves. When a step fails it closes every registered component and
// returns an error that says which step failed; the server cannot be
// started again.
func (s *Server) Start(ctx context.Context) (err error) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()

	s.mu.Lock()
	current := s.phase
	if current == phaseNew {
		s.phase = phaseStarting
	}
	s.mu.Unlock()
	switch current {
	case phaseNew:
	case phaseStopped:
		return ErrStopped
	default:
		return ErrStarted
	}

	defer func() {
		if err != nil {
			s.setPhase(phaseStopped)
			err = errors.Join(err, s.stop(context.WithoutCancel(ctx)))
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.setupAuth(); err != nil {
		return err
	}
	if err := s.setupTLS(); err != nil {
		return err
	}
	if err := s.setupTracing(); err != nil {
		return err
	}
	if err := prepareDataDir(s.cfg.DataDir); err != nil {
		return err
	}
	if err := s.openBroker(); err != nil {
		return err
	}
	if err := s.startConnectors(); err != nil {
		return err
	}
	if s.cfg.KafkaAddr != "" || s.cfg.KafkaTLSAddr != "" {
		if err := s.startKafka(ctx); err != nil {
			return err
		}
	}
	if s.cfg.AMQPAddr != "" || s.cfg.AMQPTLSAddr != "" {
		if err := s.startAMQP(ctx); err != nil {
			return err
		}
	}
	if s.cfg.MQTTAddr != "" || s.cfg.MQTTTLSAddr != "" {
		if err := s.startMQTT(ctx); err != nil {
			return err
		}
	}
	if s.cfg.PprofAddr != "" {
		if err := s.startPprof(ctx); err != nil {
			return err
		}
	}
	httpListener := s.cfg.HTTPListener
	if httpListener == nil && s.cfg.HTTPAddr != "" {
		if httpListener, err = s.listen(ctx, "http", s.cfg.HTTPAddr); err != nil {
			return err
		}
	}
	var httpsListener net.Listener
	if s.cfg.HTTPSAddr != "" {
		if httpsListener, err = s.listen(ctx, "https", s.cfg.HTTPSAddr); err != nil {
			if httpListener != s.cfg.HTTPListener {
				httpListener.Close()
			}
			return err
		}
	}
	s.setPhase(phaseServing)
	if httpListener != nil {
		s.serveHTTP("http", httpListener, nil)
	}
	if httpsListener != nil {
		s.serveHTTP("https", httpsListener, s.tls.serverConfig("https"))
	}
	s.logAuth()
	s.logger.Info("weir started", "version", s.cfg.Version, "data", s.cfg.DataDir, "fsync", s.cfg.FSync)
	return nil
}

// Shutdown stops accepting connections, lets in-flight HTTP requests finish
// until ctx is done, then closes the components in the reverse order of
// opening, even when ctx is done, passing them ctx. It returns the errors of
// those steps joined; calling it again returns nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()

	s.mu.Lock()
	stopped := s.phase == phaseStopped
	s.phase = phaseStopped
	s.mu.Unlock()
	if stopped {
		return nil
	}
	s.logger.Info("shutting down")
	err := s.stop(ctx)
	if err != nil {
		s.logger.Error("shut down with errors", "err", err)
	} else {
		s.logger.Info("shut down")
	}
	return err
}

// stop drains and closes the HTTP server, then the components. The native
// API's subscriptions and long polls are ended as the drain begins, so that
// they do not hold it up. The caller holds s.lifecycle.
func (s *Server) stop(ctx context.Context) error {
	var errs []error
	drained := make([]error, len(s.httpServers))
	var wg sync.WaitGroup
	for i, h := range s.httpServers {
		wg.Go(func() {
			if err := h.server.Shutdown(ctx); err != nil {
				drained[i] = fmt.Errorf("drain %s: %w", h.name, err)
				h.server.Close() // cut the connections that did not finish in time
			}
			<-h.done
		})
	}
	wg.Wait()
	errs = append(errs, drained...)
	s.httpServers = nil
	s.mu.Lock()
	s.endpoints = nil
	s.mu.Unlock()
	errs = append(errs, s.closeComponents(ctx))
	return errors.Join(errs...)
}

// Addr returns the address the named listener ("http", ...) is bound to,
// with the actual port when ":0" was configured, or "" when it is not
// listening.
func (s *Server) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.endpoints {
		if e.Name == name {
			return e.Addr
		}
	}
	return ""
}

// Endpoints returns the listeners that are bound, in the order they were
// bound.
func (s *Server) Endpoints() []Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Endpoint(nil), s.endpoints...)
}

func (s *Server) setPhase(p phase) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

func (s *Server) currentPhase() phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phase
}

// listen binds a TCP listener for the named endpoint, records the address
// it got and logs it; the listeners of Weir's protocols count their
// connections against the limits (limits.go). Protocol front ends get
// their listeners from here; the caller must hand the listener at once to
// a registered component (or, for HTTP, to serveHTTP) so that Shutdown and
// a failed Start close it.
func (s *Server) listen(ctx context.Context, name, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", name, err)
	}
	if slices.Contains(listenerNames(), name) {
		ln = s.limits.limit(name, ln)
	}
	bound := ln.Addr().String()
	s.mu.Lock()
	s.endpoints = append(s.endpoints, Endpoint{Name: name, Addr: bound})
	s.mu.Unlock()
	s.logger.Info("listening", "listener", name, "addr", bound)
	return ln, nil
}

// httpServing is an HTTP server that serveHTTP started.
type httpServing struct {
	name   string // "http" or "https"
	server *http.Server
	done   chan struct{} // closed when Serve has returned
}

// serveHTTP serves the mux on ln until stop, over TLS when tlsConfig is
// not nil. The caller holds s.lifecycle.
func (s *Server) serveHTTP(name string, ln net.Listener, tlsConfig *tls.Config) {
	// HTTP/1.1, and HTTP/2: over TLS, chosen by ALPN; without TLS, h2c with
	// prior knowledge, which gRPC clients speak to a plain-text port.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if tlsConfig != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		TLSConfig:         tlsConfig,
		Handler:           s.httpHandler(),
		Protocols:         &protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: s.cfg.http2MaxStreams()},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          s.httpErrorLog(),
		ConnState:         s.metrics.connState,
	}
	if s.api != nil {
		srv.RegisterOnShutdown(s.api.Close) // runs on its own goroutine
	}
	if s.console != nil {
		srv.RegisterOnShutdown(s.console.Close) // ends the live feeds
	}
	done := make(chan struct{})
	s.httpServers = append(s.httpServers, httpServing{name: name, server: srv, done: done})
	go func() {
		defer close(done)
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "") // the certificate comes from tlsConfig
		} else {
			err = srv.Serve(readBufferListener{ln})
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "listener", name, "err", err)
		}
	}()
}

// prepareDataDir creates the data directory if needed and checks that files
// can be created in it, so that a bad directory fails at startup rather than
// at the first write.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".weir-write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	name := probe.Name()
	closeErr := probe.Close()
	if err := errors.Join(closeErr, os.Remove(name)); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return nil
}
