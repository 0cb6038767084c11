package server

// Connection limits: at most max-connections open connections on all the
// listeners together and max-listener-connections on each; a connection
// beyond them is closed as soon as it is accepted, before any byte of the
// protocol (or of TLS) is read, and counted.

import (
	"errors"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/state"
)

// limitWarnEvery spaces the warnings that a listener refuses connections.
const limitWarnEvery = time.Minute

func validConnectionLimit(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 0 {
		return errors.New("want a number of connections, 0 for no limit")
	}
	return nil
}

// listenerLimits parses max-listener-connections; Validate has checked it.
func (c *Config) listenerLimits() (perListener, error) {
	return parsePerListener(c.MaxListenerConnections, "0", listenerNames(), validConnectionLimit)
}

func (c *Config) validateConnectionLimits() error {
	if c.MaxConnections < 0 {
		return invalidValue("max-connections", strconv.Itoa(c.MaxConnections), "must not be negative (0: no limit)")
	}
	if _, err := c.listenerLimits(); err != nil {
		return invalidValue("max-listener-connections", c.MaxListenerConnections, err.Error())
	}
	if c.MaxConnectionsPerUser < 0 {
		return invalidValue("max-connections-per-user", strconv.Itoa(c.MaxConnectionsPerUser), "must not be negative (0: no limit)")
	}
	if c.MaxStreamsPerConnection < 0 {
		return invalidValue("max-streams-per-connection", strconv.Itoa(c.MaxStreamsPerConnection), "must not be negative (0: no limit)")
	}
	return nil
}

// connLimits counts the open connections of every listener.
type connLimits struct {
	maxTotal int64
	total    atomic.Int64
	metrics  *listenerMetrics
	server   *Server
	// maxFiles is the process's open-file limit (0: none known). A
	// connection is refused when it would leave fewer than fileReserve
	// descriptors beside the connections and the segment files
	// (storage.OpenFiles): out of descriptors, the state store's next log
	// file cannot be created, and Pebble panics (RELIABILITY.md).
	maxFiles  int64
	openFiles func() int64 // storage.OpenFiles; tests replace it
}

// fileReserve is the descriptors kept for everything but connections and
// segment files: the state store's tables (state.MaxOpenFiles), its log
// and manifest, the listeners, directory syncs, index appends, the files
// of a stream being created.
const fileReserve = state.MaxOpenFiles + 256

// openFileLimit is the process's open-file limit (Go raises the soft limit
// to the hard one at start), 0 when it cannot be read.
func openFileLimit() int64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > math.MaxInt64 {
		return 0
	}
	return int64(l.Cur)
}

// listenerMetrics are the connection metrics of every listener:
//
//	weir_connections                  gauge    listener          open connections
//	weir_connections_refused_total    counter  listener, limit   connections closed at once by a limit (limit: listener or total)
type listenerMetrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
	traffic *trafficCollector // bytes received and sent (metrics_traffic.go)
}

func newListenerMetrics() *listenerMetrics {
	return &listenerMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weir_connections",
			Help: "Open connections accepted by the listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weir_connections_refused_total",
			Help: "Connections closed as soon as accepted because the listener's limit (max-listener-connections), the total one (max-connections) or the open-file limit (files) was reached.",
		}, []string{"listener", "limit"}),
		traffic: newTrafficCollector(),
	}
}

func (m *listenerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.open, m.refused, m.traffic}
}

// limit wraps ln, the bound listener named name, so that it counts its
// connections and refuses those beyond the limits.
func (l *connLimits) limit(name string, ln net.Listener) net.Listener {
	perListener, _ := l.server.cfg.listenerLimits() // checked by Validate
	max, _ := strconv.Atoi(perListener.get(name))
	l.metrics.open.WithLabelValues(name) // the series exists from the start
	return &limitListener{Listener: ln, name: name, max: int64(max), limits: l, traffic: l.metrics.traffic.listener(name)}
}

type limitListener struct {
	net.Listener
	name     string
	max      int64
	open     atomic.Int64
	limits   *connLimits
	traffic  *listenerTraffic
	lastWarn atomic.Int64 // unix nanoseconds of the last warning
}

// Accept returns the next connection within the limits, closing those
// beyond them.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if limit := l.admit(); limit != "" {
			nc.Close()
			l.refused(limit, nc.RemoteAddr())
			continue
		}
		l.limits.metrics.open.WithLabelValues(l.name).Inc()
		return &limitConn{Conn: nc, listener: l}, nil
	}
}

// admit counts a new connection, or returns the limit it would exceed:
// "listener", "total" or "files".
func (l *limitListener) admit() string {
	if n := l.open.Add(1); l.max > 0 && n > l.max {
		l.open.Add(-1)
		return "listener"
	}
	n := l.limits.total.Add(1)
	limit := ""
	switch {
	case l.limits.maxTotal > 0 && n > l.limits.maxTotal:
		limit = "total"
	case l.limits.maxFiles > 0 && n+l.limits.openFiles()+fileReserve > l.limits.maxFiles:
		limit = "files"
	}
	if limit != "" {
		l.limits.total.Add(-1)
		l.open.Add(-1)
	}
	return limit
}

func (l *limitListener) release() {
	l.open.Add(-1)
	l.limits.total.Add(-1)
	l.limits.metrics.open.WithLabelValues(l.name).Dec()
}

func (l *limitListener) refused(limit string, remote net.Addr) {
	l.limits.metrics.refused.WithLabelValues(l.name, limit).Inc()
	logger := l.limits.server.logger
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last >= int64(limitWarnEvery) && l.lastWarn.CompareAndSwap(last, now) {
		option, max := "max-listener-connections", l.max
		switch limit {
		case "total":
			option, max = "max-connections", l.limits.maxTotal
		case "files":
			option, max = "the open-file limit (ulimit -n) less the segment files and a reserve", l.limits.maxFiles-l.limits.openFiles()-fileReserve
		}
		logger.Warn("connection limit reached: new connections are closed at once (see weir_connections_refused_total)",
			"listener", l.name, "option", option, "limit", max)
		return
	}
	logger.Debug("connection refused: limit reached", "listener", l.name, "limit", limit, "remote", remote.String())
}

// limitConn is an admitted connection; closing it frees its place.
type limitConn struct {
	net.Conn
	listener *limitListener
	closed   atomic.Bool
}

// Read counts the bytes received (weir_received_bytes_total).
func (c *limitConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.listener.traffic.received.Add(uint64(n))
	return n, err
}

// Write counts the bytes sent (weir_sent_bytes_total).
func (c *limitConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.listener.traffic.sent.Add(uint64(n))
	return n, err
}

func (c *limitConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.listener.release()
	}
	return c.Conn.Close()
}

// http2MaxStreams is max-streams-per-connection as the HTTP/2 server takes
// it: there 0 means Go's default of 250, so "no limit" is 2^31-1.
func (c *Config) http2MaxStreams() int {
	if c.MaxStreamsPerConnection == 0 {
		return math.MaxInt32
	}
	return c.MaxStreamsPerConnection
}
