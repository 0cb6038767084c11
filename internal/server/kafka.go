package server

import (
	"context"
	"errors"
	"strconv"

	"github.com/weirmq/weir/internal/protocol/kafka"
)

// startKafka binds the Kafka listener and serves the Kafka front end on
// it, registered as a component so that Shutdown closes the listener and
// every Kafka connection before the broker.
func (s *Server) startKafka(ctx context.Context) error {
	ln, err := s.listen(ctx, "kafka", s.cfg.KafkaAddr)
	if err != nil {
		return err
	}
	autoCreate, _ := strconv.ParseBool(s.cfg.KafkaAutoCreateTopics) // checked by Validate
	ks := kafka.New(kafka.Config{
		Broker:           s.Broker(),
		Logger:           s.logger.With("listener", "kafka"),
		AutoCreateTopics: autoCreate,
		MaxRecordBytes:   int(s.cfg.MaxRecordBytes),
		// A request may carry several batches of the largest record size.
		MaxRequestBytes:     max(kafka.DefaultMaxRequestBytes, 8*int(s.cfg.MaxRecordBytes)),
		ShareSessionTimeout: s.cfg.KafkaShareSessionTimeout,
		Authenticator:       s.cfg.KafkaAuthenticator,
		Observer:            s.metrics.kafka,
	})
	s.Register(ComponentFunc("kafka", ks.Close))
	go func() {
		if err := ks.Serve(ln); err != nil && !errors.Is(err, kafka.ErrServerClosed) {
			s.logger.Error("kafka listener stopped", "err", err)
		}
	}()
	return nil
}
