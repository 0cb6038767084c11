package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weirmq/weir/internal/torture"
)

// runTortureLoad runs the load campaign (internal/torture, load.go) and
// exits 1 when the server's memory did not stay flat or the campaign could
// not run.
func runTortureLoad(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("torture load", flag.ContinueOnError)
	o := bindTortureLoadFlags(fs)
	if code, ok := parseFlags(fs, "torture load", args, printTortureLoadUsage, stdout, stderr); !ok {
		return code
	}
	if o.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "weir torture load: %v\n", err)
			return exitFailure
		}
		o.binary = exe
	}
	workDir := o.dir
	if workDir == "" {
		d, err := os.MkdirTemp("", "weir-load-")
		if err != nil {
			fmt.Fprintf(stderr, "weir torture load: %v\n", err)
			return exitFailure
		}
		workDir = d
	}
	cfg := torture.LoadConfig{Binary: o.binary, Dir: workDir, Idle: o.idle, Active: o.active, Duration: o.duration,
		Rate: o.rate, Warmup: o.warmup, ServerArgs: o.serverArgs, Progress: stderr}
	if o.quiet {
		cfg.Progress = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := torture.RunLoad(ctx, cfg)
	if report != nil && !errors.Is(err, torture.ErrConfig) {
		// Also after a failure: what was measured until then.
		if o.json {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(report)
		} else {
			report.WriteText(stdout)
		}
	}
	switch {
	case errors.Is(err, torture.ErrConfig):
		fmt.Fprintf(stderr, "weir %v\nRun 'weir torture load -h' for usage.\n", err)
		if o.dir == "" {
			os.RemoveAll(workDir)
		}
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "weir torture load: %v (data and server log kept in %s)\n", err, workDir)
		return exitFailure
	case !report.Flat:
		fmt.Fprintf(stderr, "weir torture load: the server's memory did not stay flat (server log in %s)\n", workDir)
		return exitFailure
	}
	if o.dir == "" && !o.keep {
		os.RemoveAll(workDir)
	}
	return exitOK
}

func printTortureLoadUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir torture load [flags]

Runs the load campaign: starts "weir serve" as a child process on free
loopback ports, opens --idle idle connections spread over Kafka (franz-go),
AMQP (amqp091-go), MQTT 5 (paho.golang) and the native API (the Weir SDK,
each with an ephemeral subscription open), then runs --active clients for
--duration: half producers (--rate records/s each), half consumers, spread
over the same four protocols. It samples the server's resident memory
every second (from /proc), its Go heap and open connections from /metrics
every five seconds, and reports whether
memory stayed flat after the warm-up (the growth of the least-squares slope
over the window at most 10% of the mean or 16 MiB). It raises its own
open-file limit to the hard limit (the server inherits it). Exits 1 when
memory was not flat. docs/RELIABILITY.md has the figures.

Flags:
`)
	fs := flag.NewFlagSet("torture load", flag.ContinueOnError)
	fs.SetOutput(w)
	bindTortureLoadFlags(fs)
	fs.PrintDefaults()
}

// tortureLoadOptions are the flags of weir torture load.
type tortureLoadOptions struct {
	binary, dir        string
	idle, active, rate int
	duration, warmup   time.Duration
	keep, json, quiet  bool
	serverArgs         multiFlag
}

func bindTortureLoadFlags(fs *flag.FlagSet) *tortureLoadOptions {
	o := &tortureLoadOptions{}
	fs.StringVar(&o.binary, "weir", "", "weir binary run as the server (default: this executable)")
	fs.IntVar(&o.idle, "idle", 10000, "idle connections held open for the whole run, spread over Kafka, AMQP, MQTT and the native API")
	fs.IntVar(&o.active, "active", 1000, "active clients: half producers, half consumers, spread over the four protocols")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "how long the active clients run")
	fs.DurationVar(&o.warmup, "warmup", 0, "start of the run left out of the memory slope (default: a fifth of the duration, at most 1m)")
	fs.IntVar(&o.rate, "rate", 10, "records per second of each producer")
	fs.StringVar(&o.dir, "dir", "", "directory for the server's data and log (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the directory afterwards (it is always kept on a failure)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON (with every sample)")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines on stderr")
	fs.Var(&o.serverArgs, "server-arg", "one more argument of the server, as --server-arg=--pprof-addr=127.0.0.1:6060 (repeatable)")
	return o
}
