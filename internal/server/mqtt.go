package server

import (
	"context"
	"errors"

	"github.com/weirmq/weir/internal/protocol/mqtt"
)

// startMQTT binds the MQTT listener and serves the MQTT front end on it
// and, over WebSocket, at /mqtt of the HTTP port; registered as a
// component so that Shutdown closes the listener and every MQTT connection
// before the broker.
func (s *Server) startMQTT(ctx context.Context) error {
	ms, err := mqtt.New(mqtt.Config{
		Broker:        s.Broker(),
		Logger:        s.logger.With("listener", "mqtt"),
		MaxPacketSize: int(s.cfg.MaxRecordBytes) + 64<<10,
		Authenticator: s.mqttAuthenticator(),
	})
	if err != nil {
		return err
	}
	ln, err := s.listen(ctx, "mqtt", s.cfg.MQTTAddr)
	if err != nil {
		return err
	}
	s.Register(ComponentFunc("mqtt", ms.Close))
	// MQTT over WebSocket on the HTTP port, at /mqtt.
	s.mux.Handle("GET /mqtt", ms.WebSocketHandler())
	go func() {
		if err := ms.Serve(ln); err != nil && !errors.Is(err, mqtt.ErrServerClosed) {
			s.logger.Error("mqtt listener stopped", "err", err)
		}
	}()
	return nil
}
