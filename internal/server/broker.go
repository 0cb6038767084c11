package server

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	"github.com/weirmq/weir/internal/api"
	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/storage"
)

// openBroker opens the broker in the data directory and the native API over
// it, mounts the API on the HTTP mux and registers both as components: the
// API is closed first (ending its subscriptions), the broker last of what
// Start opens (flushing and fsyncing every partition).
func (s *Server) openBroker() error {
	flusher, err := s.openFlusher()
	if err != nil {
		return err
	}
	b, err := broker.Open(broker.Config{
		DataDir:        s.cfg.DataDir,
		FSync:          fsyncPolicy(s.cfg.FSync),
		FSyncInterval:  s.cfg.FSyncInterval,
		Flusher:        flusher,
		MaxRecordBytes: int(s.cfg.MaxRecordBytes),
		Logger:         s.logger,
		OnSync:         s.metrics.observeSync,
		DiskFreeMin:    uint64(s.cfg.DiskFreeMin),
		FreeSpace:      s.freeSpace(),
		StateFS:        s.stateFS,
	})
	if err != nil {
		return fmt.Errorf("open broker: %w", err) // Start's failure closes the flusher
	}
	s.Register(ComponentFunc("broker", func(context.Context) error { return b.Close() }))
	s.metrics.broker.set(b, s.cfg.DataDir)

	svc := api.New(b, api.Options{
		Logger:   s.logger,
		Observer: s.metrics,
		// A publish request may carry a few records of the largest size.
		MaxRequestBytes: max(api.DefaultMaxRequestBytes, 4*int(s.cfg.MaxRecordBytes)),
		Interceptors:    []connect.Interceptor{s.newAPIInterceptor()},
		Version:         s.cfg.Version,
	})
	s.Register(ComponentFunc("api", func(ctx context.Context) error {
		closed := make(chan struct{})
		go func() {
			svc.Close()
			close(closed)
		}()
		select {
		case <-closed:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("subscriptions still running: %w", ctx.Err())
		}
	}))
	s.api = svc
	s.Handle(svc.Handler())
	s.Handle(svc.EventsHandler())
	if err := s.mountConsole(b); err != nil {
		return err
	}

	s.mu.Lock()
	s.broker = b
	s.mu.Unlock()
	return nil
}

// Broker returns the broker Start opened, for programs that embed Weir and
// for tests; nil before Start.
func (s *Server) Broker() *broker.Broker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broker
}

// openFlusher returns the flusher fsync-method asks for, registered to be
// closed after the broker; nil for fdatasync, and for auto where syncfs
// cannot be trusted.
func (s *Server) openFlusher() (*storage.Flusher, error) {
	if s.cfg.FSyncMethod == FSyncMethodFdatasync {
		return nil, nil
	}
	flusher, err := storage.NewFlusher()
	if err != nil {
		if s.cfg.FSyncMethod == FSyncMethodSyncFS {
			return nil, fmt.Errorf("%w: fsync-method syncfs: %w", ErrInvalidConfig, err)
		}
		s.logger.Info("flushing each partition file on its own", "reason", err)
		return nil, nil
	}
	s.Register(ComponentFunc("flusher", func(context.Context) error { return flusher.Close() }))
	return flusher, nil
}

func fsyncPolicy(mode FSyncMode) storage.FSyncPolicy {
	switch mode {
	case FSyncInterval:
		return storage.FSyncInterval
	case FSyncNever:
		return storage.FSyncNever
	}
	return storage.FSyncAlways
}
