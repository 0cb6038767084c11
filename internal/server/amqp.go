package server

import (
	"context"
	"errors"

	"github.com/weirmq/weir/internal/protocol/amqp"
)

// startAMQP binds the AMQP 0-9-1 listener and serves the AMQP front end on
// it, registered as a component so that Shutdown closes the listener and
// every AMQP connection before the broker.
func (s *Server) startAMQP(ctx context.Context) error {
	as, err := amqp.New(amqp.Config{
		Broker:         s.Broker(),
		Logger:         s.logger.With("listener", "amqp"),
		MaxRecordBytes: int(s.cfg.MaxRecordBytes),
		Version:        s.cfg.Version,
		Authenticator:  s.amqpAuthenticator(),
	})
	if err != nil {
		return err
	}
	ln, err := s.listen(ctx, "amqp", s.cfg.AMQPAddr)
	if err != nil {
		return err
	}
	s.Register(ComponentFunc("amqp", as.Close))
	go func() {
		if err := as.Serve(ln); err != nil && !errors.Is(err, amqp.ErrServerClosed) {
			s.logger.Error("amqp listener stopped", "err", err)
		}
	}()
	return nil
}
