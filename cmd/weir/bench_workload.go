package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	benchkit "github.com/weirmq/weir/internal/bench"
)

// workloadFlags are the flags of `weir bench --workload`.
type workloadFlags struct {
	workload   string
	driver     string
	url        string
	driverOpts multiFlag
	sets       multiFlag
	out        string
	label      string
	serverPID  int
	catchUp    time.Duration
	topicNames string
}

// multiFlag is a flag that may be repeated.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func bindWorkloadFlags(fs *flag.FlagSet) *workloadFlags {
	f := &workloadFlags{}
	fs.StringVar(&f.workload, "workload", "", "run this workload file (YAML, see docs/BENCHMARKS.md) instead of the built-in publish-then-consume bench")
	fs.StringVar(&f.driver, "driver", "weir", "with --workload: weir (the Go SDK), kafka, amqp or nats")
	fs.StringVar(&f.url, "url", "", "with --workload: the server for the driver (default: --server for weir, the driver's default otherwise)")
	fs.Var(&f.driverOpts, "driver-opt", "with --workload: a driver option key=value (repeatable; see the list below)")
	fs.Var(&f.sets, "set", "with --workload: override a workload field, field=value (repeatable): --set duration=10s --set backlogRecords=100000")
	fs.StringVar(&f.out, "out", "", "with --workload: write result.json, throughput.svg and latency.svg into this directory")
	fs.StringVar(&f.label, "label", "", "with --workload: name of the system under test in the result (default: the driver)")
	fs.IntVar(&f.serverPID, "server-pid", 0, "with --workload: sample this server process's memory and CPU every second (Linux)")
	fs.DurationVar(&f.catchUp, "catch-up", 0, "with --workload: how long consumers may take to receive the rest after the producers stop (default 30s; a backlog drain 10m)")
	fs.StringVar(&f.topicNames, "topic-prefix", "", "with --workload: topics are named PREFIX0, PREFIX1, ... (default bench-RANDOM-)")
	return f
}

// benchWorkload runs `weir bench --workload`.
func benchWorkload(cf *clientFlags, bf *benchFlags, wf *workloadFlags, explicit map[string]bool, stdout, stderr io.Writer) error {
	sets := wf.sets
	if explicit["duration"] { // the classic bench's flag, taken as an override
		sets = append(multiFlag{"duration=" + bf.duration.String()}, sets...)
	}
	w, err := benchkit.LoadWorkload(wf.workload, sets...)
	if err != nil {
		return usagef("--workload: %v", err)
	}
	opts := map[string]string{}
	for _, o := range wf.driverOpts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return usagef("--driver-opt %q: want key=value", o)
		}
		opts[k] = v
	}
	ctx, cancel := signalContext()
	defer cancel()
	var d benchkit.Driver
	url := wf.url
	if wf.driver == "weir" {
		// The native driver dials as every client command does (--server,
		// --token), unless --url names another server.
		if url != "" {
			cf.server = url
		}
		url = cf.server
		if opts["user"] != "" {
			return usagef("--driver-opt user: the weir driver authenticates with --token here")
		}
		c, err := cf.dial(ctx)
		if err != nil {
			return err
		}
		if d, err = benchkit.NewWeirDriver(c, opts); err != nil {
			c.Close()
			return usagef("--driver-opt: %v", err)
		}
	} else {
		d, err = benchkit.Open(ctx, wf.driver, benchkit.DriverConfig{URL: url, Options: opts})
		if err != nil {
			return err
		}
		if url == "" {
			url = "(driver default)"
		}
	}
	defer d.Close()
	bar := newProgressBar(stderr, bf.progress)
	res, err := benchkit.Run(ctx, d, w, benchkit.Options{
		TopicPrefix: wf.topicNames,
		Driver:      wf.driver,
		URL:         url,
		Label:       wf.label,
		ServerPID:   wf.serverPID,
		CatchUp:     wf.catchUp,
		Keep:        bf.keep,
		Phase: func(name string, total int64, dur time.Duration, read func() (int64, int64)) func() {
			if total <= 0 {
				total = -1
			}
			return bar.run(name, total, dur, time.Now(), read)
		},
	})
	if err != nil {
		return err
	}
	if wf.out != "" {
		if err := writeBenchOutput(wf.out, res); err != nil {
			return err
		}
	}
	if bf.json {
		return res.WriteJSON(stdout)
	}
	fmt.Fprint(stdout, res.Summary())
	if wf.out != "" {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(wf.out, "result.json"))
	}
	return nil
}

// writeBenchOutput writes a result and its two charts into dir.
func writeBenchOutput(dir string, res *benchkit.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "result.json"))
	if err != nil {
		return err
	}
	if err := res.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "throughput.svg"), res.ThroughputChart().SVG(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latency.svg"), res.LatencyChart().SVG(), 0o644)
}

func printWorkloadUsage(w io.Writer) {
	fmt.Fprint(w, `
With --workload FILE it runs a workload in the style of the OpenMessaging
Benchmark instead (docs/BENCHMARKS.md describes the fields): producers at a
target rate or at full speed for a warm-up and a duration, latency measured
from each record's intended send time (a stall is not hidden), publish and
end-to-end percentiles (p50 ... p99.99, max), rates and backlog every second,
against Weir through its SDK, over Kafka or AMQP, or NATS JetStream:

  weir bench --workload bench/workloads/firehose-1k.yaml --driver kafka --url localhost:9092 --out /tmp/r

Drivers:
`)
	for _, d := range benchkit.Drivers() {
		fmt.Fprintf(w, "  %s\n", d)
	}
}
