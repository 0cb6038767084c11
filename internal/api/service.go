// Package api is Weir's native API: the weir.v1.Weir service of
// client/weirpb/v1/weir.proto over a *broker.Broker, served with connect-go
// so that one http.Handler answers gRPC, gRPC-Web and the Connect protocol
// (JSON or protobuf, HTTP/1.1 or HTTP/2).
//
// The package translates and validates; the broker does the work. Errors are
// mapped to codes in one table (errors.go) and messages to broker types in
// one file (convert.go). Metrics are reported through the Observer hook, so
// that this package does not depend on a metrics library.
package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
	"github.com/weirmq/weir/internal/broker"
)

// DefaultMaxRequestBytes bounds one request message (a publish batch).
const DefaultMaxRequestBytes = 32 << 20

// Observer is told about the records the API moves, for metrics. Its
// methods are called on the request's goroutine and must be quick and safe
// for concurrent use.
type Observer interface {
	// Published reports records stored by a publish (duplicates excluded)
	// and their size: key, value and headers.
	Published(stream string, records, bytes int)
	// Delivered reports records sent to a client by Fetch or Subscribe.
	Delivered(stream string, records, bytes int)
	// StreamDeleted reports that a stream was deleted, so per-stream series
	// can be dropped.
	StreamDeleted(stream string)
}

type nopObserver struct{}

func (nopObserver) Published(string, int, int) {}
func (nopObserver) Delivered(string, int, int) {}
func (nopObserver) StreamDeleted(string)       {}

// Options configure a Service. The zero value is usable.
type Options struct {
	// Logger receives internal errors and subscription events (nil: discard).
	Logger *slog.Logger
	// Observer is told about published and delivered records (nil: nobody).
	Observer Observer
	// MaxRequestBytes bounds one request message (0: DefaultMaxRequestBytes).
	// Larger messages are rejected with ResourceExhausted.
	MaxRequestBytes int
	// Interceptors wrap every call, in order (internal/server's metrics
	// and tracing).
	Interceptors []connect.Interceptor
	// Version is the server's build version, as ServerInfo reports it
	// ("dev" when empty).
	Version string
}

// Service implements weirpbconnect.WeirHandler over a broker.
type Service struct {
	weirpbconnect.UnimplementedWeirHandler

	broker   *broker.Broker
	logger   *slog.Logger
	observer Observer
	maxBytes int
	wrap     []connect.Interceptor
	version  string

	// ctx is cancelled by Close: subscriptions and long polls watch it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	subs subscriptions
}

var _ weirpbconnect.WeirHandler = (*Service)(nil)

// New returns the service over b.
func New(b *broker.Broker, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Service{
		broker:   b,
		logger:   opts.Logger,
		observer: opts.Observer,
		maxBytes: opts.MaxRequestBytes,
		wrap:     opts.Interceptors,
		version:  cmp.Or(opts.Version, "dev"),
		ctx:      ctx,
		cancel:   cancel,
	}
	s.subs.init()
	return s
}

// Handler returns the path prefix to mount the service on ("/weir.v1.Weir/")
// and its handler. Mount it on a server that speaks HTTP/2 without TLS (h2c)
// as well as HTTP/1.1, so that gRPC clients can reach it.
func (s *Service) Handler() (string, http.Handler) {
	return weirpbconnect.NewWeirHandler(s, connect.WithReadMaxBytes(s.maxBytes), connect.WithInterceptors(s.wrap...))
}

// Close ends every subscription and long poll with Unavailable, so that an
// HTTP server's graceful shutdown is not held up by them, and waits until
// the subscriptions have stopped (and left their groups). Unary calls are
// left to finish. Calling Close again only waits.
func (s *Service) Close() {
	s.subs.close()
	s.cancel(errShuttingDown)
	s.subs.wait()
}

// bind returns a context for a call that also ends when the service is
// closed, with errShuttingDown as its cause.
func (s *Service) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.ctx, func() { cancel(errShuttingDown) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// fail converts err for the client of method (see toConnectError).
func (s *Service) fail(ctx context.Context, method string, err error) error {
	return toConnectError(ctx, s.logger, method, err)
}
