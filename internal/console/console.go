// Package console is Weir's web console: a few plain HTML, CSS and
// JavaScript files embedded in the binary (nothing is fetched from the
// internet at run time), served on the HTTP port under /console/, and the
// endpoints the native API lacks: a live feed of server-sent events
// (/console/api/live), a record browser that applies a filter
// (/console/api/records) and the lag history of consumer groups
// (/console/api/lag), sampled by the console itself.
//
// Everything else the pages show comes from the native API
// (weir.v1.Weir and weir.v1.Connectors), which the browser calls with the
// Connect protocol's JSON encoding. The console sits beside the protocol
// front ends: it reads records through the broker and gets the server's
// figures (traffic, connections, disk, fsync latency) from a Stats the
// server implements; it never reaches into storage.
package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// Prefix is where the console is mounted; "/" redirects to it.
const Prefix = "/console/"

// apiPrefix is where the console's own endpoints live. Unlike the pages,
// they need credentials when authentication is on.
const apiPrefix = Prefix + "api/"

//go:embed static
var staticFiles embed.FS

// Records is what the record browser reads; *broker.Broker implements it.
type Records interface {
	DescribeStream(name string) (broker.StreamInfo, error)
	ResolveStart(stream string, partition int32, pos broker.StartPosition) (int64, error)
	Fetch(ctx context.Context, stream string, partition int32, offset int64, maxBytes int, maxWait time.Duration) (broker.FetchResult, error)
}

// Options configure the console.
type Options struct {
	Records Records // required
	Stats   Stats   // required
	Logger  *slog.Logger
	// Interval between two live samples; 0: one second.
	Interval time.Duration
	// Groups, when set, is sampled for the lag history of every group's
	// partitions (lag.go): every LagInterval (0: 10 s), LagPoints points
	// kept per partition (0: 360), at most LagSeries partitions (0: 1,024).
	Groups      Groups
	LagInterval time.Duration
	LagPoints   int
	LagSeries   int
}

// Console serves the console's pages and endpoints.
type Console struct {
	records Records
	logger  *slog.Logger
	live    *hub
	lag     *lagHistory
	static  http.Handler
}

// New returns the console; Close stops its sampler.
func New(opts Options) (*Console, error) {
	if opts.Records == nil || opts.Stats == nil {
		return nil, errors.New("console: Records and Stats are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	root, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	lag := newLagHistory(opts.Groups, cmp.Or(opts.LagInterval, defaultLagInterval), cmp.Or(opts.LagPoints, defaultLagPoints), cmp.Or(opts.LagSeries, defaultLagSeries), opts.Logger)
	if opts.Groups != nil {
		go lag.run()
	} else {
		close(lag.done) // nothing to sample: an empty history
	}
	return &Console{
		records: opts.Records,
		logger:  opts.Logger,
		live:    newHub(opts.Stats, opts.Interval, opts.Logger),
		lag:     lag,
		static:  http.StripPrefix(Prefix, http.FileServerFS(root)),
	}, nil
}

// Close ends the live feeds and stops the samplers.
func (c *Console) Close() {
	c.live.close()
	c.lag.close()
}

// Routes are the patterns to mount and their handlers (Server.Handle).
func (c *Console) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /{$}":                     http.RedirectHandler(Prefix, http.StatusFound),
		"GET " + Prefix:                http.HandlerFunc(c.serveStatic),
		"GET " + apiPrefix + "live":    http.HandlerFunc(c.serveLive),
		"GET " + apiPrefix + "records": http.HandlerFunc(c.serveRecords),
		"GET " + apiPrefix + "lag":     http.HandlerFunc(c.serveLag),
		"GET " + apiPrefix:             http.HandlerFunc(notFound),
	}
}

// Public reports whether a request may be served without credentials: the
// redirect and the console's static files, which hold no data (the login
// form is one of them). Its endpoints and the API still need credentials.
func Public(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return p == "/" || (strings.HasPrefix(p, Prefix) && !strings.HasPrefix(p, apiPrefix))
}

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	// The pages change with the binary; they are small.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	c.static.ServeHTTP(w, r)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no console endpoint "+r.Method+" "+r.URL.Path)
}
