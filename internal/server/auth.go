package server

// Authentication: the users file (internal/auth) behind every listener, and
// the safe default without one — see docs/SECURITY.md.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/console"
	"github.com/weirmq/weir/internal/protocol/amqp"
	"github.com/weirmq/weir/internal/protocol/kafka"
	"github.com/weirmq/weir/internal/protocol/mqtt"
)

// loopbackHost is where listeners configured for every interface bind when
// authentication is off.
const loopbackHost = "127.0.0.1"

// validateSafeDefault checks insecure-listen-any and, without a users file,
// that no listener names a host that is not loopback: such an address would
// expose an unauthenticated broker, so it needs insecure-listen-any. An
// address without a host (":9092") or with the unspecified one ("0.0.0.0",
// "::") is allowed: Start binds it on loopback instead. A TLS listener that
// requires client certificates (tls-client-auth require) authenticates its
// clients, so it may bind any address.
func (c *Config) validateSafeDefault() error {
	insecure, err := strconv.ParseBool(c.InsecureListenAny)
	if err != nil {
		return invalidValue("insecure-listen-any", c.InsecureListenAny, "must be true or false")
	}
	if c.Users != "" || insecure {
		return nil
	}
	for _, l := range c.listenerAddrs() {
		if l.Addr == "" || c.requiresClientCert(l.Name) {
			continue
		}
		host, _, _ := net.SplitHostPort(l.Addr) // checked before
		if anyHost(host) || loopback(host) {
			continue
		}
		return invalidValue(l.Name+"-addr", l.Addr,
			"binds a non-loopback address without authentication; set users (a users file, see weir user add), tls-client-auth=require on a TLS listener, or insecure-listen-any=true")
	}
	return nil
}

// anyHost reports whether host means every interface.
func anyHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenerAddrFields are the address options, to rewrite them.
func (c *Config) listenerAddrFields() map[string]*string {
	return map[string]*string{
		"kafka": &c.KafkaAddr, "amqp": &c.AMQPAddr, "mqtt": &c.MQTTAddr, "http": &c.HTTPAddr,
		"kafka-tls": &c.KafkaTLSAddr, "amqp-tls": &c.AMQPTLSAddr, "mqtt-tls": &c.MQTTTLSAddr, "https": &c.HTTPSAddr,
	}
}

// setupAuth runs first in Start. With a users file it loads it and puts it
// behind every listener: Kafka (SASL), AMQP (PLAIN, AMQPLAIN), MQTT (user
// name and password of CONNECT) and HTTP (bearer tokens, Basic). Without
// one it moves the listeners configured for every interface to loopback,
// unless insecure-listen-any is set; logAuth says which, once Start
// succeeded (a failed start prints its error alone).
func (s *Server) setupAuth() error {
	if s.cfg.Users == "" {
		if insecure, _ := strconv.ParseBool(s.cfg.InsecureListenAny); insecure {
			return nil
		}
		for name, addr := range s.cfg.listenerAddrFields() {
			if *addr == "" || s.cfg.requiresClientCert(name) {
				continue
			}
			if host, port, _ := net.SplitHostPort(*addr); anyHost(host) {
				*addr = net.JoinHostPort(loopbackHost, port)
			}
		}
		return nil
	}
	users, err := auth.Load(s.cfg.Users)
	if err != nil {
		return fmt.Errorf("%w: users: %w", ErrInvalidConfig, err)
	}
	s.users = users
	s.metrics.refusals.users.Store(users)
	s.userConns = s.newUserConnections(users)
	if s.cfg.KafkaAuthenticator == nil {
		s.cfg.KafkaAuthenticator = kafkaUsers{users, s.userConns}
		if certs, ok := s.certificateUsers(); ok {
			s.cfg.KafkaAuthenticator = kafkaCertUsers{kafkaUsers{users, s.userConns}, certs}
		}
	}
	return nil
}

// logAuth logs whether authentication is on and, when it is off, where the
// listeners are reachable from.
func (s *Server) logAuth() {
	switch insecure, _ := strconv.ParseBool(s.cfg.InsecureListenAny); {
	case s.users != nil:
		s.logger.Info("authentication on", "users", s.cfg.Users, "count", s.users.Len())
		if s.users.Len() == 0 {
			s.logger.Warn("the users file has no users: no client can log in", "users", s.cfg.Users)
		}
	case insecure:
		s.logger.Warn("authentication is off and insecure-listen-any is true: anyone who reaches a listener can read, write and delete everything")
	default:
		s.logger.Warn("authentication is off (no users file): listening on loopback only; " +
			"set --users FILE to require authentication, or --insecure-listen-any=true to listen on every interface without it")
		for _, l := range s.cfg.listenerAddrs() {
			if l.Addr != "" && s.cfg.requiresClientCert(l.Name) {
				s.logger.Info("this TLS listener requires client certificates: it listens on its configured address", "listener", l.Name, "addr", s.Addr(l.Name))
			}
		}
	}
}

// UsersFileFromConfig returns the users option of the YAML configuration
// file at path (for weir user, which edits that file).
func UsersFileFromConfig(path string) (string, error) {
	cfg := DefaultConfig()
	if _, err := cfg.loadFile(path); err != nil {
		return "", err
	}
	return cfg.Users, nil
}

// kafkaUsers is the users file as a Kafka SASL authenticator.
type kafkaUsers struct {
	users *auth.Users
	*auth.UserConnections
}

// kafkaCertUsers is kafkaUsers that also logs clients in by their
// certificates (tls-client-cert-user).
type kafkaCertUsers struct {
	kafkaUsers
	auth.CertificateUsers
}

func (kafkaUsers) Mechanisms() []string {
	return []string{kafka.MechanismSCRAMSHA512, kafka.MechanismSCRAMSHA256, kafka.MechanismPlain}
}

func (k kafkaUsers) Plain(user, password string) error {
	if err := k.users.CheckPassword(user, password); err != nil {
		return kafka.ErrAuthenticationFailed
	}
	return nil
}

func (k kafkaUsers) SCRAM(mechanism, user string) (kafka.SCRAMCredentials, error) {
	keys, err := k.users.SCRAM(mechanism, user)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return kafka.SCRAMCredentials{}, kafka.ErrAuthenticationFailed
	}
	if err != nil {
		return kafka.SCRAMCredentials{}, err
	}
	return keys, nil
}

// amqpUsers is the users file as an AMQP authenticator (PLAIN, AMQPLAIN).
type amqpUsers struct {
	users *auth.Users
	*auth.UserConnections
}

func (a amqpUsers) Authenticate(_, user, password string) error {
	return a.users.CheckPassword(user, password)
}

// AllowVhost applies the user's vhosts list (amqp.VhostAuthorizer).
func (a amqpUsers) AllowVhost(user, vhost string) bool { return a.users.AllowVhost(user, vhost) }

// amqpAuthenticator is the AMQP front end's authenticator: nil (everyone
// in) when authentication is off.
func (s *Server) amqpAuthenticator() amqp.Authenticator {
	if s.users == nil {
		return nil
	}
	if certs, ok := s.certificateUsers(); ok {
		return amqpCertUsers{amqpUsers{s.users, s.userConns}, certs}
	}
	return amqpUsers{s.users, s.userConns}
}

// mqttUsers is the users file as an MQTT authenticator: a CONNECT must
// carry a user name and its password.
type mqttUsers struct {
	users *auth.Users
	*auth.UserConnections
}

func (m mqttUsers) Authenticate(_ string, username *string, password []byte) error {
	if username == nil || password == nil {
		return errors.New("user name and password required")
	}
	return m.users.CheckPassword(*username, string(password))
}

// mqttAuthenticator is the MQTT front end's authenticator: nil (everyone
// in) when authentication is off.
func (s *Server) mqttAuthenticator() mqtt.Authenticator {
	if s.users == nil {
		return nil
	}
	if certs, ok := s.certificateUsers(); ok {
		return mqttCertUsers{mqttUsers{s.users, s.userConns}, certs}
	}
	return mqttUsers{s.users, s.userConns}
}

// httpHandler is the handler of the HTTP listener: the mux, behind
// authentication when it is on.
func (s *Server) httpHandler() http.Handler {
	if s.users == nil {
		return s.mux
	}
	return &httpAuth{users: s.users, next: s.mux, errors: connect.NewErrorWriter(), server: s}
}

// httpAuth requires "Authorization: Bearer <token>" or Basic credentials on
// every request but /healthz and /mqtt. A refused native API call gets connect's
// Unauthenticated in the protocol it used (gRPC, gRPC-Web, Connect); any
// other request gets 401 with the two challenges.
type httpAuth struct {
	users  *auth.Users
	next   http.Handler
	errors *connect.ErrorWriter
	server *Server
}

func (h *httpAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// /healthz is for load balancers; /mqtt carries MQTT over WebSocket,
	// whose CONNECT is authenticated by the MQTT front end (browsers cannot
	// set headers on a WebSocket).
	// The console's pages hold no data (one is its login form); what they
	// show comes from calls that need credentials.
	if r.URL.Path == "/healthz" || r.URL.Path == "/mqtt" || console.Public(r) {
		h.next.ServeHTTP(w, r)
		return
	}
	if user, err := h.authenticate(r); err == nil {
		h.next.ServeHTTP(w, r.WithContext(h.server.withPrincipal(r.Context(), user)))
		return
	}
	h.server.logger.Debug("http request refused: not authenticated", "remote", r.RemoteAddr, "path", r.URL.Path)
	// A script's request (the console's, marked X-Requested-With) gets no
	// challenge: browsers would answer Basic with their own password dialog
	// instead of letting the page show its login form.
	if r.Header.Get("X-Requested-With") == "" {
		w.Header().Add("WWW-Authenticate", `Bearer realm="weir"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="weir", charset="UTF-8"`)
	}
	refusal := "authentication required: send Authorization: Bearer <token> (weir user token) or Basic user:password"
	if h.errors.IsSupported(r) {
		_ = h.errors.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New(refusal)))
		return
	}
	http.Error(w, refusal, http.StatusUnauthorized)
}

// authenticate returns the user a request's Authorization header names,
// or without one, its verified client certificate (tls-client-cert-user).
// A refusal is counted against the user Basic named, else as unknown.
func (h *httpAuth) authenticate(r *http.Request) (string, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		if user, ok := h.certificateUser(r); ok {
			return user, nil
		}
	}
	user, err := h.checkAuthorization(header)
	if err != nil {
		h.users.Refusals().Add(refusalHTTP, auth.RefusalAuthentication, user)
	}
	return user, err
}

// checkAuthorization returns the user an Authorization header value names
// (Basic's user name even when it is refused).
func (h *httpAuth) checkAuthorization(header string) (string, error) {
	scheme, credential, ok := strings.Cut(header, " ")
	if !ok {
		return "", auth.ErrUnauthenticated
	}
	credential = strings.TrimSpace(credential)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return h.users.CheckToken(credential)
	case strings.EqualFold(scheme, "Basic"):
		user, password, ok := auth.ParseBasic(credential)
		if !ok {
			return "", auth.ErrUnauthenticated
		}
		return user, h.users.CheckBasic(user, password)
	}
	return "", auth.ErrUnauthenticated
}
