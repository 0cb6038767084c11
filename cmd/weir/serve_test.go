package main

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// blockingServer is a server whose Shutdown blocks until released or until
// its context is done.
type blockingServer struct {
	called  chan struct{}
	release chan struct{}
}

func (s *blockingServer) Shutdown(ctx context.Context) error {
	close(s.called)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newBlockingServer() *blockingServer {
	return &blockingServer{called: make(chan struct{}), release: make(chan struct{})}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func TestAwaitShutdownClean(t *testing.T) {
	srv := newBlockingServer()
	close(srv.release)
	signals := make(chan os.Signal, 2)
	signals <- syscall.SIGTERM
	exit := func(code int) { t.Errorf("exit(%d) called after one signal", code) }
	if code := awaitShutdown(srv, signals, time.Minute, testLogger(t), exit); code != exitOK {
		t.Errorf("awaitShutdown = %d, want %d", code, exitOK)
	}
}

func TestAwaitShutdownTimeout(t *testing.T) {
	srv := newBlockingServer()
	signals := make(chan os.Signal, 2)
	signals <- syscall.SIGINT
	exit := func(code int) { t.Errorf("exit(%d) called after one signal", code) }
	if code := awaitShutdown(srv, signals, 10*time.Millisecond, testLogger(t), exit); code != exitFailure {
		t.Errorf("awaitShutdown with a shutdown past its deadline = %d, want %d", code, exitFailure)
	}
}

func TestAwaitShutdownSecondSignal(t *testing.T) {
	srv := newBlockingServer()
	signals := make(chan os.Signal, 2)
	exited := make(chan int, 1)
	returned := make(chan int, 1)
	go func() {
		returned <- awaitShutdown(srv, signals, time.Minute, testLogger(t), func(code int) { exited <- code })
	}()

	signals <- syscall.SIGTERM
	<-srv.called
	signals <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != exitFailure {
			t.Errorf("exit(%d) after a second signal, want exit(%d)", code, exitFailure)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not exit")
	}
	close(srv.release) // let the goroutine finish; the real exit would not return
	<-returned
}

func TestSignalName(t *testing.T) {
	for sig, want := range map[os.Signal]string{os.Interrupt: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "hangup"} {
		if got := signalName(sig); got != want {
			t.Errorf("signalName(%v) = %q, want %q", sig, got, want)
		}
	}
}
