package weir

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/client/weirpb/v1/weirpbconnect"
)

// Protocol is the wire protocol a Client speaks to the server.
type Protocol int

const (
	// GRPC is gRPC over HTTP/2 (without TLS for http:// addresses). The default.
	GRPC Protocol = iota
	// ConnectProto is the Connect protocol with binary protobuf messages.
	ConnectProto
	// ConnectJSON is the Connect protocol with JSON messages: what a browser
	// or curl speaks.
	ConnectJSON
)

func (p Protocol) String() string {
	switch p {
	case GRPC:
		return "grpc"
	case ConnectProto:
		return "connect+proto"
	case ConnectJSON:
		return "connect+json"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Client is a connection to a Weir server. It is safe for concurrent use;
// one Client per process and server is usually right, as it multiplexes
// every call over HTTP/2.
type Client struct {
	api          weirpbconnect.WeirClient
	connectors   weirpbconnect.ConnectorsClient // connectors.go
	events       weirpbconnect.EventsClient     // events.go
	baseURL      string
	httpClient   *http.Client
	ownTransport *http.Transport // nil with WithHTTPClient
	timeout      time.Duration
	clientID     string
	logger       *slog.Logger
	backoff      backoff
	tracing      *tracing

	closeOnce sync.Once
	closed    chan struct{}
	closedCtx context.Context // cancelled by Close
	closeCtx  context.CancelFunc

	acks *ackStreams // the shared consumers' acks; nil with WithHTTPClient (which may not speak HTTP/2): Ack calls

	replies replyInbox // Request's inbox, opened at the first request
}

type options struct {
	httpClient *http.Client
	protocol   Protocol
	timeout    time.Duration
	clientID   string
	logger     *slog.Logger
	backoff    backoff
	skipCheck  bool
	gzip       bool
	// authorization is the Authorization header of every call (auth.go).
	authorization string
	tlsConfig     *tls.Config // see WithTLS (tls.go)

	tracerProvider trace.TracerProvider          // see WithTracerProvider
	propagator     propagation.TextMapPropagator // see WithPropagator
}

// Option configures a Client.
type Option func(*options)

// WithHTTPClient makes the Client send its requests with hc, for TLS
// settings, proxies or instrumentation. The default is a client of its own
// that speaks HTTP/2 without TLS to http:// servers and detects dead
// connections with HTTP/2 pings. hc must not have a Timeout: subscriptions
// are long-lived requests. As hc may not speak HTTP/2, which AckStream
// needs, shared consumers send their acks in Ack calls with it.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.httpClient = hc } }

// WithProtocol chooses the wire protocol; the default is GRPC.
func WithProtocol(p Protocol) Option { return func(o *options) { o.protocol = p } }

// WithConnectJSON is WithProtocol(ConnectJSON).
func WithConnectJSON() Option { return WithProtocol(ConnectJSON) }

// WithTimeout bounds each unary call (administration, Publish, Commit)
// whose context has no deadline of its own. Zero, the default, sets none.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithClientID names this client to the server (it shows in group
// descriptions). The default is the host name and process id.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithLogger receives what the client does in the background: reconnects,
// failed automatic commits. The default discards it.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithReconnectBackoff sets the bounds of the exponential, jittered delay
// between reconnection attempts of consumers and publish retries of
// producers. The defaults are 100ms and 5s.
func WithReconnectBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.backoff = backoff{min: minDelay, max: maxDelay} }
}

// WithGzip compresses requests and responses with gzip, for slow links.
// By default nothing is compressed.
func WithGzip() Option { return func(o *options) { o.gzip = true } }

// WithoutDialCheck makes Dial return without calling the server, so that a
// client can be made before its server is up. By default Dial checks that
// the server answers.
func WithoutDialCheck() Option { return func(o *options) { o.skipCheck = true } }

// Dial returns a Client of the Weir server at addr, "host:port" or a URL
// ("http://host:port", "https://host/prefix"). Unless WithoutDialCheck is
// given it calls the server once, within ctx, and returns the error if that
// fails.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	o := options{backoff: defaultBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := baseURL(addr)
	if err != nil {
		return nil, err
	}
	if base, err = o.tlsBaseURL(addr, base); err != nil {
		return nil, err
	}
	if o.backoff.min <= 0 || o.backoff.max < o.backoff.min {
		return nil, fmt.Errorf("%w: reconnect backoff %v to %v", ErrInvalidArgument, o.backoff.min, o.backoff.max)
	}
	var connectOpts []connect.ClientOption
	if !o.gzip {
		// Records are usually compressed or incompressible already, and
		// gzip costs the server more CPU than the bytes it saves on a LAN.
		connectOpts = append(connectOpts, connect.WithAcceptCompression("gzip", nil, nil))
	} else {
		connectOpts = append(connectOpts, connect.WithSendGzip())
	}
	switch o.protocol {
	case GRPC:
		connectOpts = append(connectOpts, connect.WithGRPC())
	case ConnectProto:
	case ConnectJSON:
		connectOpts = append(connectOpts, connect.WithProtoJSON())
	default:
		return nil, fmt.Errorf("%w: unknown protocol %v", ErrInvalidArgument, o.protocol)
	}
	c := &Client{
		baseURL:  base,
		timeout:  o.timeout,
		clientID: o.clientID,
		logger:   o.logger,
		backoff:  o.backoff,
		tracing:  newTracing(o.tracerProvider, o.propagator),
		closed:   make(chan struct{}),
	}
	if c.clientID == "" {
		c.clientID = defaultClientID()
	}
	if c.logger == nil {
		c.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.closedCtx, c.closeCtx = context.WithCancel(context.Background())
	c.httpClient = o.httpClient
	if c.httpClient == nil {
		c.ownTransport = newTransport(o.tlsConfig)
		c.httpClient = &http.Client{Transport: c.ownTransport}
		c.acks = newAckStreams(c)
	}
	connectOpts = append(connectOpts, o.authOptions()...)
	c.api = weirpbconnect.NewWeirClient(c.httpClient, base, connectOpts...)
	c.connectors = weirpbconnect.NewConnectorsClient(c.httpClient, base, connectOpts...)
	c.events = weirpbconnect.NewEventsClient(c.httpClient, base, connectOpts...)
	if !o.skipCheck {
		if _, err := c.api.ServerInfo(ctx, connect.NewRequest(&weirpb.ServerInfoRequest{})); err != nil {
			c.Close()
			return nil, wrapError("dial "+base, err)
		}
	}
	return c, nil
}

// newTransport is an HTTP transport that speaks HTTP/2 to every server:
// without TLS (h2c) to http:// URLs, over TLS (with tlsConfig, when not
// nil) to https:// ones. Pings find connections whose peer vanished, so
// that subscriptions reconnect.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        16,
		IdleConnTimeout:     90 * time.Second,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  15 * time.Second,
			PingTimeout:      10 * time.Second,
			MaxReadFrameSize: 256 << 10,
		},
	}
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
	}
	t.Protocols = new(http.Protocols)
	t.Protocols.SetHTTP2(true)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// baseURL turns "host:port" or a URL into the URL the API is served under.
func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("%w: empty server address", ErrInvalidArgument)
	}
	if !strings.Contains(addr, "://") {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("%w: server address %q: want host:port or a URL", ErrInvalidArgument, addr)
		}
		return "http://" + addr, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("%w: server address: %v", ErrInvalidArgument, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: server address %q: want an http:// or https:// URL", ErrInvalidArgument, addr)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Addr is the base URL the client calls.
func (c *Client) Addr() string { return c.baseURL }

// Close releases the client's idle connections. Consumers and producers
// made from it should be closed first; calls made after Close fail with
// ErrClosed.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.closeCtx()
		if c.ownTransport != nil {
			c.ownTransport.CloseIdleConnections()
		}
	})
	return nil
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// unaryContext applies the client's default timeout to ctx.
func (c *Client) unaryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.timeout)
}

// call runs one unary call with the client's timeout and error wrapping.
func call[Req, Resp any](ctx context.Context, c *Client, op string, fn func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error), req *Req) (*Resp, error) {
	if c.isClosed() {
		return nil, fmt.Errorf("%s: %w", op, ErrClosed)
	}
	ctx, cancel := c.unaryContext(ctx)
	defer cancel()
	resp, err := fn(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, wrapError(op, err)
	}
	return resp.Msg, nil
}
