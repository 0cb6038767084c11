package server

import (
	"context"

	"github.com/weirmq/weir/internal/protocol/amqp"
	"github.com/weirmq/weir/internal/tracing"
)

// startAMQP binds the AMQP 0-9-1 listeners (plain and amqps, those that
// are on) and serves the AMQP front end on them, registered as a component
// so that Shutdown closes the listeners and every AMQP connection before
// the broker.
func (s *Server) startAMQP(ctx context.Context) error {
	as, err := amqp.New(amqp.Config{
		Broker:         s.Broker(),
		Logger:         s.logger.With("listener", "amqp"),
		MaxRecordBytes: int(s.cfg.MaxRecordBytes),
		Version:        s.cfg.Version,
		Authenticator:  s.amqpAuthenticator(),
		Tracer:         tracing.New(s.tracing(), "amqp"),
	})
	if err != nil {
		return err
	}
	s.metrics.amqp.set(as)
	s.Register(ComponentFunc("amqp", as.Close))
	return s.serveFrontEnd(ctx, "amqp", s.cfg.AMQPAddr, s.cfg.AMQPTLSAddr, as.Serve, amqp.ErrServerClosed)
}
