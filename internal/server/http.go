package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handle mounts handler on the HTTP listener for pattern, in the syntax of
// http.ServeMux ("GET /api/v1/streams", "/console/"). It is how the native
// API and the console are added; like ServeMux.Handle it panics when pattern
// conflicts with one already mounted.
func (s *Server) Handle(pattern string, handler http.Handler) {
	s.mux.Handle(pattern, handler)
}

type healthStatus struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"` // why the node is "failed"
}

// handleHealthz answers 200 {"status":"ok"} while the server is serving and
// 503 otherwise, so that load balancers stop routing to a node that is
// starting or shutting down, whose state store failed, or whose data
// directory was removed under it.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	phase, b := s.phase, s.broker
	s.mu.Unlock()
	code, health := http.StatusOK, healthStatus{Status: "ok"}
	switch phase {
	case phaseServing:
		if err := s.dataDirGone(); err != nil {
			// Every write fails from now on, with errors that name files
			// rather than the cause.
			code, health = http.StatusServiceUnavailable, healthStatus{Status: "failed", Error: err.Error()}
		} else if err := b.StateErr(); err != nil {
			// The state store takes no writes until a restart: acks,
			// offset commits and catalog changes all fail.
			code, health = http.StatusServiceUnavailable, healthStatus{Status: "failed", Error: err.Error()}
		}
	case phaseStopped:
		code, health.Status = http.StatusServiceUnavailable, "shutting down"
	default:
		code, health.Status = http.StatusServiceUnavailable, "starting"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(health) // the client may have gone; nothing to do
}

func newMetricsHandler(registry *prometheus.Registry, logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry: registry, // counts its own errors in promhttp_metric_handler_errors_total
	})
}

// dataDirGone is the error of a data directory that no longer exists (it
// was removed, or renamed, while the server ran), nil while it exists.
func (s *Server) dataDirGone() error {
	if _, err := os.Stat(s.cfg.DataDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the data directory %s no longer exists: it was removed while the server ran; writes fail until the server is restarted with its data", s.cfg.DataDir)
	}
	return nil
}
