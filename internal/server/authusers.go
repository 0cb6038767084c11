package server

// The users file behind each front end: the refusal counts of each
// protocol (weir_auth_refusals_total) and client certificates as users
// (tls-client-cert-user) on every listener, through one mapping
// (auth.CertificateUsers). See docs/SECURITY.md.

import (
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirmq/weir/internal/auth"
)

// Protocol labels of weir_auth_refusals_total.
const (
	refusalKafka = "kafka"
	refusalAMQP  = "amqp"
	refusalMQTT  = "mqtt"
	refusalHTTP  = "http"
)

// RecordRefusal counts the front ends' refusals (auth.RefusalRecorder).
func (k kafkaUsers) RecordRefusal(kind auth.RefusalKind, user string) {
	k.users.Refusals().Add(refusalKafka, kind, user)
}

func (a amqpUsers) RecordRefusal(kind auth.RefusalKind, user string) {
	a.users.Refusals().Add(refusalAMQP, kind, user)
}

func (m mqttUsers) RecordRefusal(kind auth.RefusalKind, user string) {
	m.users.Refusals().Add(refusalMQTT, kind, user)
}

// certificateUsers is the mapping of verified client certificates to users
// when tls-client-cert-user names a field, for every front end.
func (s *Server) certificateUsers() (auth.CertificateUsers, bool) {
	src := s.cfg.TLSClientCertUser
	if s.users == nil || src == "" || src == "none" {
		return auth.CertificateUsers{}, false
	}
	return auth.CertificateUsers{Users: s.users, Source: src}, true
}

// amqpCertUsers is amqpUsers that also logs clients in by their
// certificates (SASL EXTERNAL).
type amqpCertUsers struct {
	amqpUsers
	auth.CertificateUsers
}

// mqttCertUsers is mqttUsers that takes a verified certificate's user
// instead of CONNECT's user name and password.
type mqttCertUsers struct {
	mqttUsers
	auth.CertificateUsers
}

// certificateUser is the user an HTTPS request's verified client
// certificate names, when certificates are users.
func (h *httpAuth) certificateUser(r *http.Request) (string, bool) {
	c, ok := h.server.certificateUsers()
	if !ok || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	user, err := c.CertificateUser(*r.TLS)
	return user, err == nil
}

// refusalsCollector exports the users file's refusal counts: none until
// setupAuth loads a users file.
type refusalsCollector struct {
	users atomic.Pointer[auth.Users]
	desc  *prometheus.Desc
}

func newRefusalsCollector() *refusalsCollector {
	return &refusalsCollector{desc: prometheus.NewDesc("weir_auth_refusals_total",
		"Refused authentications and authorizations, by protocol, kind (authentication, authorization) and user; names that are no user of the users file count as user \""+auth.UnknownUser+"\".",
		[]string{"protocol", "kind", "user"}, nil)}
}

func (c *refusalsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *refusalsCollector) Collect(ch chan<- prometheus.Metric) {
	users := c.users.Load()
	if users == nil {
		return
	}
	for _, n := range users.Refusals().Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n.Count), n.Protocol, string(n.Kind), n.User)
	}
}
