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

// runTorture runs the crash campaign (internal/torture) and exits non-zero
// on any violation.
func runTorture(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "load" {
		return runTortureLoad(args[1:], stdout, stderr) // torture_load.go
	}
	fs := flag.NewFlagSet("torture", flag.ContinueOnError)
	o := bindTortureFlags(fs)
	binary, dir := &o.binary, &o.dir
	if code, ok := parseFlags(fs, "torture", args, printTortureUsage, stdout, stderr); !ok {
		return code
	}
	if *binary == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "weir torture: %v\n", err)
			return exitFailure
		}
		*binary = exe
	}
	workDir := *dir
	if workDir == "" {
		d, err := os.MkdirTemp("", "weir-torture-")
		if err != nil {
			fmt.Fprintf(stderr, "weir torture: %v\n", err)
			return exitFailure
		}
		workDir = d
	}
	cfg := torture.Config{
		Binary: *binary, Dir: workDir, Cycles: o.cycles, KillMin: o.killMin, KillMax: o.killMax,
		FSync: o.fsync, Partitions: int32(o.partitions), Seed: o.seed, Rate: o.rate, Progress: stderr,
	}
	if o.quiet {
		cfg.Progress = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := torture.Run(ctx, cfg)
	if report != nil {
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
		fmt.Fprintf(stderr, "weir %v\nRun 'weir torture -h' for usage.\n", err)
		if *dir == "" {
			os.RemoveAll(workDir) // the temporary directory made above
		}
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "weir torture: %v (data and server log kept in %s)\n", err, workDir)
		return exitFailure
	case !report.OK():
		fmt.Fprintf(stderr, "weir torture: %d violations (data and server log kept in %s)\n", report.ViolationCount(), workDir)
		return exitFailure
	}
	if *dir == "" && !o.keep {
		os.RemoveAll(workDir)
	}
	return exitOK
}

func printTortureUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir torture [flags]

Runs the crash campaign: starts "weir serve" as a child process on free
loopback ports with a data directory of its own, drives it with a Kafka
idempotent producer (franz-go, acks=all), an AMQP publisher with publisher
confirms into a durable queue (amqp091-go), a Weir SDK producer into a
stream and SDK shared consumers acking the queue, kills it with SIGKILL at a
random moment, restarts it on the same data, and checks after each restart:
every acknowledged record present, each producer's records in order in each
partition, no duplicates, no queue record delivered again after its ack was
confirmed, and (in a final drain) no unacknowledged queue record lost.
Prints the counts; exits 1 on any violation. docs/RELIABILITY.md has the
figures. "weir torture load -h" describes the load campaign.

Flags:
`)
	fs := flag.NewFlagSet("torture", flag.ContinueOnError)
	fs.SetOutput(w)
	bindTortureFlags(fs)
	fs.PrintDefaults()
}

// tortureOptions are the flags of weir torture.
type tortureOptions struct {
	binary, dir, fsync       string
	cycles, partitions, rate int
	killMin, killMax         time.Duration
	seed                     uint64
	keep, json, quiet        bool
}

func bindTortureFlags(fs *flag.FlagSet) *tortureOptions {
	o := &tortureOptions{}
	fs.StringVar(&o.binary, "weir", "", "weir binary run as the server (default: this executable)")
	fs.IntVar(&o.cycles, "cycles", 100, "how many times the server is killed with SIGKILL and restarted")
	fs.DurationVar(&o.killMin, "kill-min", 100*time.Millisecond, "shortest time from the server listening to its kill")
	fs.DurationVar(&o.killMax, "kill-max", 1500*time.Millisecond, "longest time from the server listening to its kill")
	fs.StringVar(&o.fsync, "fsync", "always", "the server's fsync policy: always, interval or never")
	fs.IntVar(&o.rate, "rate", 2000, "records per second each producing client sends at most (0: as fast as it can)")
	fs.IntVar(&o.partitions, "partitions", 3, "partitions of each stream and of the queue")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the kill delays (0: random; the report prints it)")
	fs.StringVar(&o.dir, "dir", "", "directory for the server's data and log (default: a new temporary directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the directory afterwards (it is always kept on a violation or an error)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.quiet, "quiet", false, "no line per cycle on stderr")
	return o
}
