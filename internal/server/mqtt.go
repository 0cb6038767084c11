package server

import (
	"context"
	"time"

	"github.com/weirmq/weir/internal/protocol/mqtt"
	"github.com/weirmq/weir/internal/tracing"
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
		SysInterval:   mqttSysInterval(s.cfg.MQTTSysInterval),
		Version:       s.cfg.Version,
		Tracer:        tracing.New(s.tracing(), "mqtt"),
	})
	if err != nil {
		return err
	}
	s.metrics.mqtt.set(ms)
	s.Register(ComponentFunc("mqtt", ms.Close))
	// MQTT over WebSocket on the HTTP and HTTPS ports (WSS), at /mqtt.
	s.mux.Handle("GET /mqtt", ms.WebSocketHandler())
	return s.serveFrontEnd(ctx, "mqtt", s.cfg.MQTTAddr, s.cfg.MQTTTLSAddr, ms.Serve, mqtt.ErrServerClosed)
}

// mqttSysInterval is the option mqtt-sys-interval as mqtt.Config takes it:
// there 0 is the default and a negative interval turns $SYS off.
func mqttSysInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
