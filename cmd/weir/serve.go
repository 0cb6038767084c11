package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weirmq/weir/internal/server"
)

// shutdownTimeout bounds a graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 30 * time.Second

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configFlags := server.BindFlags(fs)
	if code, ok := parseFlags(fs, "serve", args, printServeUsage, stdout, stderr); !ok {
		return code
	}
	cfg, err := configFlags.Load(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return exitUsage
	}
	cfg.Version = buildVersion()
	logger, err := server.NewLogger(stderr, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return exitUsage
	}
	srv, err := server.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return exitUsage
	}

	// Catch signals before starting, so that one that arrives during
	// startup leads to a clean shutdown rather than an abrupt exit.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	if err := srv.Start(context.Background()); err != nil {
		fmt.Fprintf(stderr, "weir: %v\n", err)
		return exitFailure
	}
	for _, e := range srv.Endpoints() {
		fmt.Fprintf(stdout, "%s listening on %s\n", e.Name, e.Addr)
	}
	defer reloadOnHangup(srv)()
	return awaitShutdown(srv, signals, shutdownTimeout, logger, os.Exit)
}

// reloadOnHangup reloads the TLS files of srv on each SIGHUP (the server
// logs the outcome) until the function it returns is called.
func reloadOnHangup(srv *server.Server) (stop func()) {
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hangups:
				_ = srv.ReloadTLS() // logged by the server
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hangups)
		close(done)
	}
}

// shutdowner is the part of *server.Server awaitShutdown uses.
type shutdowner interface {
	Shutdown(ctx context.Context) error
}

// awaitShutdown waits for a signal, then shuts srv down within timeout and
// returns the exit code. A second signal during the shutdown calls
// exit(exitFailure) at once.
func awaitShutdown(srv shutdowner, signals <-chan os.Signal, timeout time.Duration, logger *slog.Logger, exit func(int)) int {
	sig := <-signals
	logger.Info("received signal, shutting down; a second signal exits at once", "signal", signalName(sig))

	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case sig := <-signals:
			logger.Error("received second signal, exiting without finishing the shutdown", "signal", signalName(sig))
			exit(exitFailure)
		case <-finished:
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("shutdown failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

func printServeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir serve [flags]
  weir [flags]

Runs a Weir node until SIGINT or SIGTERM, then shuts it down gracefully
(within 30s; a second signal exits at once). SIGHUP reloads the TLS
certificate, key and client CA files. Each option is taken from, in
increasing precedence: its default, the YAML file given with --config, its
WEIR_* environment variable, its flag. An empty address (--kafka-addr= or
WEIR_KAFKA_ADDR=) turns that listener off.

Flags:
`)
	server.BindFlags(flag.NewFlagSet("serve", flag.ContinueOnError)).PrintUsage(w)
}
