package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's runtime profiles (net/http/pprof: /debug/pprof/...)
// on their own listener, PprofAddr, so that they are never reachable through
// the API port. It is off unless configured: profiles show the program's
// internals and cost CPU while taken, so operators turn it on, on loopback,
// to diagnose a node.
func (s *Server) startPprof(ctx context.Context) error {
	ln, err := s.listen(ctx, "pprof", s.cfg.PprofAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("pprof server stopped", "err", err)
		}
	}()
	s.Register(ComponentFunc("pprof", func(ctx context.Context) error {
		// A profile under way is cut rather than waited for.
		err := srv.Close()
		<-done
		return err
	}))
	return nil
}
