package amqp

import (
	"context"
	"errors"
	"fmt"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/broker/route"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// Virtual hosts are namespaces (names.go): vhost V's queues and exchanges
// are broker streams and exchanges whose names start with VhostPrefix(V).
// A vhost other than "/" exists while its amq.direct exchange does:
// `weir vhost add` declares its predeclared exchanges (through the native
// API, like any exchange), `weir vhost rm` deletes everything under its
// prefix, marker first. So a vhost needs no registry of its own, and a
// restart keeps it with its exchanges.

// predeclared are the exchanges every AMQP vhost has.
var predeclared = []broker.ExchangeConfig{
	{Name: "amq.direct", Type: route.Direct},
	{Name: "amq.fanout", Type: route.Fanout},
	{Name: "amq.topic", Type: route.Topic},
	{Name: "amq.headers", Type: route.Headers},
	{Name: "amq.match", Type: route.Headers},
}

// markerExchange is the AMQP name of the exchange whose existence makes a
// vhost exist.
const markerExchange = "amq.direct"

// VhostExchanges are the predeclared exchanges of vhost, with their broker
// names; the first is the marker.
func VhostExchanges(vhost string) []broker.ExchangeConfig {
	out := make([]broker.ExchangeConfig, len(predeclared))
	for i, x := range predeclared {
		x.Name = BrokerName(vhost, x.Name)
		out[i] = x
	}
	return out
}

// ValidateVhost checks a vhost name: 1 to 255 bytes (a shortstr), and
// short enough that its queues can have names.
func ValidateVhost(vhost string) error {
	if vhost == "" || len(vhost) > 255 {
		return fmt.Errorf("vhost name must be 1 to 255 bytes, got %d", len(vhost))
	}
	if n := len(BrokerName(vhost, markerExchange)); n > broker.MaxNameLength-32 {
		return fmt.Errorf("vhost name %q is too long: its encoded prefix leaves fewer than 32 characters for names", vhost)
	}
	return nil
}

// VhostOfMarker reports the vhost whose marker exchange has the broker name
// name ("" and false for any other name).
func VhostOfMarker(name string) (string, bool) {
	vhost, n, err := ParseBrokerName(name)
	if err != nil || n != markerExchange || vhost == DefaultVhost || BrokerName(vhost, n) != name {
		return "", false
	}
	return vhost, true
}

// VhostAuthorizer is implemented by an Authenticator that also says which
// vhosts a user may open (connection.open); without it every
// authenticated user may open every vhost.
type VhostAuthorizer interface {
	AllowVhost(user, vhost string) bool
}

// openVhost checks connection.open's vhost: it exists and the user may use
// it (530 NOT_ALLOWED otherwise, as RabbitMQ answers both). It declares
// the predeclared exchanges the vhost lacks.
func (s *Server) openVhost(vhost, user string) *amqpError {
	if vhost != DefaultVhost {
		if _, ok := findExchange(s.b, BrokerName(vhost, markerExchange)); !ok {
			return exception(wire.NotAllowed, nil, "vhost '%s' not found (create it with 'weir vhost add')", vhost)
		}
	}
	if az, ok := s.cfg.Authenticator.(VhostAuthorizer); ok && !az.AllowVhost(user, vhost) {
		return exception(wire.NotAllowed, nil, "access to vhost '%s' refused for user '%s'", vhost, user)
	}
	if vhost != DefaultVhost {
		if err := declarePredeclared(s.b, vhost); err != nil {
			return exception(wire.InternalError, nil, "vhost '%s': %v", vhost, err)
		}
	}
	return nil
}

// declarePredeclared declares the predeclared exchanges of vhost that are
// missing.
func declarePredeclared(b *broker.Broker, vhost string) error {
	for _, x := range VhostExchanges(vhost) {
		if _, ok := findExchange(b, x.Name); ok {
			continue
		}
		if _, err := b.DeclareExchange(context.Background(), x); err != nil && !errors.Is(err, broker.ErrExchangeExists) {
			return fmt.Errorf("declare %s: %w", x.Name, err)
		}
	}
	return nil
}
