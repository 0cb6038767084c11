package server

// TLS on the listeners: the options, the certificate files (loaded at
// Start, reloaded when they change and on SIGHUP), and the TLS side of the
// Kafka, AMQP and MQTT listeners — see docs/SECURITY.md.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirmq/weir/internal/auth"
)

// tlsHandshakeTimeout bounds a TLS handshake on the Kafka, AMQP and MQTT
// listeners, so that a client that connects and says nothing does not hold
// a connection for ever (HTTPS uses the HTTP server's header timeout).
const tlsHandshakeTimeout = 10 * time.Second

// tlsListenerNames are the listeners that speak TLS.
var tlsListenerNames = []string{"kafka-tls", "amqp-tls", "mqtt-tls", "https"}

// clientAuthModes are the values of tls-client-auth.
var clientAuthModes = map[string]tls.ClientAuthType{
	"none":    tls.NoClientCert,
	"request": tls.VerifyClientCertIfGiven,
	"require": tls.RequireAndVerifyClientCert,
}

// tlsVersions are the values of tls-min-version.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

func validClientAuth(v string) error {
	if _, ok := clientAuthModes[v]; !ok {
		return errors.New("want none, request or require")
	}
	return nil
}

// clientAuthOption parses tls-client-auth; Validate has checked it.
func (c *Config) clientAuthOption() (perListener, error) {
	return parsePerListener(c.TLSClientAuth, "none", tlsListenerNames, validClientAuth)
}

// clientAuth is the client-certificate mode of the named TLS listener.
func (c *Config) clientAuth(name string) tls.ClientAuthType {
	p, err := c.clientAuthOption()
	if err != nil {
		return tls.NoClientCert
	}
	return clientAuthModes[p.get(name)]
}

// requiresClientCert reports whether the named listener is a TLS listener
// that lets in only clients with a certificate its CAs signed.
func (c *Config) requiresClientCert(name string) bool {
	return slices.Contains(tlsListenerNames, name) && c.clientAuth(name) == tls.RequireAndVerifyClientCert
}

// validateTLS checks the TLS options: a TLS listener needs a certificate
// and its key, client certificates need the CAs to verify them, and the
// modes and version are known. The files themselves are read by Start.
func (c *Config) validateTLS() error {
	modes, err := c.clientAuthOption()
	if err != nil {
		return invalidValue("tls-client-auth", c.TLSClientAuth, err.Error())
	}
	if _, ok := tlsVersions[c.TLSMinVersion]; !ok {
		return invalidValue("tls-min-version", c.TLSMinVersion, "must be 1.2 or 1.3")
	}
	if c.TLSClientCertUser != "" && !slices.Contains(auth.CertificateUserSources, c.TLSClientCertUser) {
		return invalidValue("tls-client-cert-user", c.TLSClientCertUser, "must be none, cn, san-email or san-dns")
	}
	if c.TLSReloadInterval < 0 {
		return invalidValue("tls-reload-interval", c.TLSReloadInterval.String(), "must not be negative")
	}
	var on string // the address option of a TLS listener that is on
	for _, l := range c.listenerAddrs() {
		if l.Addr != "" && slices.Contains(tlsListenerNames, l.Name) {
			on = l.Name + "-addr"
			break
		}
	}
	switch {
	case on != "" && c.TLSCertFile == "":
		return invalidValue("tls-cert-file", "", "must be set: "+on+" turns a TLS listener on")
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return invalidValue("tls-key-file", "", "must be set with tls-cert-file")
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		return invalidValue("tls-cert-file", "", "must be set with tls-key-file")
	}
	verifies := slices.ContainsFunc(modes.values(), func(m string) bool { return m != "none" })
	switch {
	case verifies && c.TLSClientCAFile == "":
		return invalidValue("tls-client-ca-file", "", "must be set when tls-client-auth is request or require (tls-client-auth is "+c.TLSClientAuth+")")
	case !verifies && c.TLSClientCAFile != "":
		return invalidValue("tls-client-ca-file", c.TLSClientCAFile, "is not used: tls-client-auth is none; set it to request or require")
	}
	return nil
}

// tlsOn reports whether a TLS listener is on.
func (c *Config) tlsOn() bool {
	return c.KafkaTLSAddr != "" || c.AMQPTLSAddr != "" || c.MQTTTLSAddr != "" || c.HTTPSAddr != ""
}

// tlsFiles holds what the TLS listeners serve, read from the files the
// options name: one tls.Config per listener, swapped as a whole when the
// files are read again, so that a handshake sees either the old files or
// the new ones and never a certificate with the other's key.
type tlsFiles struct {
	cfg    *Config
	logger *slog.Logger

	mu      sync.Mutex  // serializes loads; guards stamps
	stamps  []fileStamp // of the files when they were last read
	current atomic.Pointer[map[string]*tls.Config]
	stop    chan struct{} // closed by close; ends watch
	done    chan struct{} // closed when watch returned
}

// fileStamp is what tells that a file changed: replacing it (a rename, as
// certificate tools and Kubernetes secrets do) or writing it changes its
// identity, modification time or size.
type fileStamp struct {
	path string
	info os.FileInfo // nil when it could not be read
}

func stampFiles(paths []string) []fileStamp {
	out := make([]fileStamp, 0, len(paths))
	for _, p := range paths {
		fi, _ := os.Stat(p) // a missing file is a change too; read reports it
		out = append(out, fileStamp{path: p, info: fi})
	}
	return out
}

func sameStamp(a, b fileStamp) bool {
	if a.path != b.path || (a.info == nil) != (b.info == nil) {
		return false
	}
	return a.info == nil || os.SameFile(a.info, b.info) && a.info.ModTime().Equal(b.info.ModTime()) && a.info.Size() == b.info.Size()
}

// openTLS reads the TLS files at Start; its error names the option and
// the file.
func openTLS(cfg *Config, logger *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{cfg: cfg, logger: logger.With("component", "tls")}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *tlsFiles) paths() []string {
	paths := []string{f.cfg.TLSCertFile, f.cfg.TLSKeyFile}
	if f.cfg.TLSClientCAFile != "" {
		paths = append(paths, f.cfg.TLSClientCAFile)
	}
	return paths
}

// load reads the files and, when they are good, makes them what new
// handshakes use.
func (f *tlsFiles) load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Stamped before reading, so that a change during the read is seen
	// by the next check rather than lost.
	f.stamps = stampFiles(f.paths())
	configs, err := f.read()
	if err != nil {
		return err
	}
	f.current.Store(&configs)
	return nil
}

// changed reports whether a file differs from when it was last read.
func (f *tlsFiles) changed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !slices.EqualFunc(stampFiles(f.paths()), f.stamps, sameStamp)
}

// read reads and checks the certificate, its key and the client CAs, and
// makes each TLS listener's configuration of them.
func (f *tlsFiles) read() (map[string]*tls.Config, error) {
	certPEM, err := readOptionFile("tls-cert-file", f.cfg.TLSCertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readOptionFile("tls-key-file", f.cfg.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: tls-cert-file %s with tls-key-file %s: %w", ErrInvalidConfig, f.cfg.TLSCertFile, f.cfg.TLSKeyFile, err)
	}
	now := time.Now()
	if leaf := cert.Leaf; leaf != nil {
		switch {
		case now.After(leaf.NotAfter):
			f.logger.Warn("the TLS certificate has expired: clients will refuse it", "file", f.cfg.TLSCertFile, "not_after", leaf.NotAfter)
		case now.Before(leaf.NotBefore):
			f.logger.Warn("the TLS certificate is not valid yet: clients will refuse it", "file", f.cfg.TLSCertFile, "not_before", leaf.NotBefore)
		case leaf.NotAfter.Sub(now) < 14*24*time.Hour:
			f.logger.Warn("the TLS certificate expires soon", "file", f.cfg.TLSCertFile, "not_after", leaf.NotAfter)
		}
	}
	var clientCAs *x509.CertPool
	if f.cfg.TLSClientCAFile != "" {
		caPEM, err := readOptionFile("tls-client-ca-file", f.cfg.TLSClientCAFile)
		if err != nil {
			return nil, err
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%w: tls-client-ca-file %s: no PEM certificate in it", ErrInvalidConfig, f.cfg.TLSClientCAFile)
		}
	}
	configs := make(map[string]*tls.Config, len(tlsListenerNames))
	for _, name := range tlsListenerNames {
		c := &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tlsVersions[f.cfg.TLSMinVersion],
			ClientAuth:   f.cfg.clientAuth(name),
			ClientCAs:    clientCAs,
		}
		if name == "https" {
			c.NextProtos = []string{"h2", "http/1.1"} // HTTP/2 by ALPN
		}
		configs[name] = c
	}
	return configs, nil
}

// readOptionFile reads the file an option names; its error names both.
func readOptionFile(option, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, option, err)
	}
	return data, nil
}

// serverConfig is the tls.Config of the named TLS listener: each handshake
// takes the configuration of the files read last.
func (f *tlsFiles) serverConfig(name string) *tls.Config {
	return &tls.Config{
		MinVersion: tlsVersions[f.cfg.TLSMinVersion],
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return (*f.current.Load())[name], nil
		},
	}
}

// reload reads the files again, keeping the ones in use when they are not
// good, and logs what happened; why is "SIGHUP" or "files changed".
func (f *tlsFiles) reload(why string) error {
	if err := f.load(); err != nil {
		f.logger.Error("TLS files not reloaded; the listeners keep the certificate they had", "reason", why, "err", err)
		return err
	}
	f.logger.Info("TLS files reloaded", "reason", why, "cert", f.cfg.TLSCertFile)
	return nil
}

// watch checks the files every interval until close, and reloads them
// when they changed.
func (f *tlsFiles) watch(interval time.Duration) {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-f.stop:
				return
			case <-ticker.C:
				if f.changed() {
					_ = f.reload("files changed") // logged
				}
			}
		}
	}()
}

// close stops watch, if it runs.
func (f *tlsFiles) close(context.Context) error {
	if f.stop != nil {
		close(f.stop)
		<-f.done
	}
	return nil
}

// setupTLS reads the TLS files when a TLS listener is on and starts
// watching them; it runs in Start before the listeners are bound.
func (s *Server) setupTLS() error {
	if !s.cfg.tlsOn() {
		if s.cfg.TLSCertFile != "" {
			s.logger.Warn("tls-cert-file is set but no TLS listener is on: set kafka-tls-addr, amqp-tls-addr, mqtt-tls-addr or https-addr")
		}
		return nil
	}
	f, err := openTLS(&s.cfg, s.logger)
	if err != nil {
		return err
	}
	s.tls = f
	if s.cfg.TLSReloadInterval > 0 {
		f.watch(s.cfg.TLSReloadInterval)
		s.Register(ComponentFunc("tls", f.close))
	}
	return nil
}

// ReloadTLS reads the TLS certificate, key and client CA files again (the
// program calls it on SIGHUP). New connections use them; open ones keep
// what they were set up with. When the files are not good the listeners
// keep serving the previous ones and the error says why.
func (s *Server) ReloadTLS() error {
	s.lifecycle.Lock()
	f := s.tls
	s.lifecycle.Unlock()
	if f == nil {
		return nil
	}
	return f.reload("SIGHUP")
}

// listener makes ln, a bound TCP listener, a TLS listener named name.
func (f *tlsFiles) listener(name string, ln net.Listener) net.Listener {
	return &tlsListener{Listener: ln, config: f.serverConfig(name), name: name, logger: f.logger}
}

// tlsListener is a TLS listener for the Kafka, AMQP and MQTT front ends.
// Like tls.NewListener's, its connections handshake on their first read
// or write, on the connection's own goroutine, so that a slow client does
// not hold up the accept loop; unlike them, the handshake has a deadline.
type tlsListener struct {
	net.Listener
	config *tls.Config
	name   string
	logger *slog.Logger
}

func (l *tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsConn{Conn: tls.Server(nc, l.config), listener: l}, nil
}

type tlsConn struct {
	*tls.Conn
	listener   *tlsListener
	handshaken atomic.Bool
}

// handshake runs the TLS handshake once, within tlsHandshakeTimeout.
// Concurrent callers wait for the first (crypto/tls serializes them).
func (c *tlsConn) handshake() error {
	if c.handshaken.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		c.listener.logger.Debug("TLS handshake failed", "listener", c.listener.name, "remote", c.RemoteAddr().String(), "err", err)
		return err
	}
	c.handshaken.Store(true)
	return nil
}

func (c *tlsConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *tlsConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// httpErrorLog is the HTTP servers' error log: warnings, except failed TLS
// handshakes, which are logged at debug as on the other TLS listeners (a
// load balancer's TCP health check or a port scan fails one each time).
func (s *Server) httpErrorLog() *log.Logger {
	return log.New(httpErrorWriter{s.logger}, "", 0)
}

type httpErrorWriter struct{ logger *slog.Logger }

func (w httpErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}
