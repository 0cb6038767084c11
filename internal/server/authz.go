package server

// Authorization: the users file's rules, handed to the protocol front ends
// as principals (see "Authorization" in docs/SECURITY.md and
// internal/broker/authz.go).

import (
	"context"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/broker"
)

// withPrincipal returns ctx carrying user's principal, so that the broker
// checks the calls made with it (HTTP requests: the native API). A user
// removed meanwhile gets an empty identity: everything is refused.
func (s *Server) withPrincipal(ctx context.Context, user string) context.Context {
	p, err := s.users.Principal(user)
	if err != nil {
		return broker.WithIdentity(ctx, &broker.Identity{})
	}
	return broker.WithRecordedPrincipal(ctx, p, s.users.Refusals().For(refusalHTTP))
}

// Principal makes the users file a principal source of the Kafka, AMQP
// and MQTT front ends (kafka.PrincipalSource and its twins).
func (k kafkaUsers) Principal(user string) (*auth.Principal, error) { return k.users.Principal(user) }

func (a amqpUsers) Principal(user string) (*auth.Principal, error) { return a.users.Principal(user) }

func (m mqttUsers) Principal(user string) (*auth.Principal, error) { return m.users.Principal(user) }

// newUserConnections counts the connections of each user against its
// max-connections (users file) or max-connections-per-user; each refusal
// is logged as a warning.
func (s *Server) newUserConnections(users *auth.Users) *auth.UserConnections {
	c := auth.NewUserConnections(users, s.cfg.MaxConnectionsPerUser)
	c.Refused = func(user string) {
		s.logger.Warn("connection refused: the user is at its connection limit", "user", user)
	}
	return c
}
