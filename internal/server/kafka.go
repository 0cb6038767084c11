package server

import (
	"context"
	"strconv"

	"github.com/weirmq/weir/internal/protocol/kafka"
	"github.com/weirmq/weir/internal/tracing"
)

// startKafka binds the Kafka listeners (plain and TLS, those that are on)
// and serves the Kafka front end on them, registered as a component so
// that Shutdown closes the listeners and every Kafka connection before the
// broker.
func (s *Server) startKafka(ctx context.Context) error {
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
		Tracer:              tracing.New(s.tracing(), "kafka"),
	})
	s.Register(ComponentFunc("kafka", ks.Close))
	return s.serveFrontEnd(ctx, "kafka", s.cfg.KafkaAddr, s.cfg.KafkaTLSAddr, ks.Serve, kafka.ErrServerClosed)
}
