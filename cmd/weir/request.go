package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"sync/atomic"
	"time"

	weir "github.com/weirmq/weir/client"
)

func runRequest(args []string, stdout, stderr io.Writer) int {
	return report("request", request(args, stdout), printRequestUsage, stdout, stderr)
}

func printRequestUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir request STREAM MSG [--timeout D] [--key K] [--header name=value ...] [--format raw|json]
  weir request --exchange X [--routing-key K] MSG [...]

Sends MSG as a request to a stream or queue (or through an exchange) with
reply-to and correlation-id headers, waits for the reply and prints it.
Replies arrive in a temporary inbox that exists while the command runs.
It fails when no reply comes within --timeout, or when the exchange routes
the request nowhere. Serve requests with 'weir respond' or the SDK's
Respond.

Flags:
`)
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	bindClientFlags(fs)
	bindRequestFlags(fs)
	printFlags(w, fs)
}

type requestFlags struct {
	timeout    time.Duration
	key        string
	headers    headerFlag
	exchange   string
	routingKey string
	format     string
}

func bindRequestFlags(fs *flag.FlagSet) *requestFlags {
	f := &requestFlags{}
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the reply")
	fs.StringVar(&f.key, "key", "", "the request's key")
	fs.Var(&f.headers, "header", "a request header `name=value`; repeat for more")
	fs.StringVar(&f.exchange, "exchange", "", "send the request through this `exchange` instead of to a stream")
	fs.StringVar(&f.routingKey, "routing-key", "", "with --exchange: the request's routing `key`")
	fs.StringVar(&f.format, "format", "raw", "output format of the reply: raw (its value) or json")
	return f
}

func request(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	rf := bindRequestFlags(fs)
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	var dest weir.Destination
	switch {
	case rf.exchange != "" && len(pos) != 1:
		return usagef("with --exchange, give only the message")
	case rf.exchange == "" && len(pos) != 2:
		return usagef("give a stream and a message, or --exchange and a message")
	case rf.exchange == "" && rf.routingKey != "":
		return usagef("--routing-key applies to --exchange only")
	case rf.timeout <= 0:
		return usagef("--timeout %v must be positive", rf.timeout)
	case rf.format != "raw" && rf.format != "json":
		return usagef("--format %q: want raw or json", rf.format)
	case rf.exchange != "":
		dest = weir.ToExchange(rf.exchange, rf.routingKey)
	default:
		dest = weir.ToStream(pos[0])
	}
	rec := weir.Record{Value: []byte(pos[len(pos)-1]), Headers: rf.headers}
	if rf.key != "" {
		rec.Key = []byte(rf.key)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		ctx, cancel := context.WithTimeout(ctx, rf.timeout)
		defer cancel()
		reply, err := c.Request(ctx, dest, rec)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no reply within %v", rf.timeout)
		}
		if err != nil {
			return err
		}
		return printRecord(stdout, rf.format, &weir.Message{Record: reply})
	})
}

func runRespond(args []string, stdout, stderr io.Writer) int {
	return report("respond", respond(args, stdout, stderr), printRespondUsage, stdout, stderr)
}

func printRespondUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir respond QUEUE REPLY [--count N]
  weir respond QUEUE --exec 'COMMAND' [--count N]

Serves requests arriving in a queue (as one of its competing consumers, or
of the shared subscription --shared names): answers each with REPLY, or
with what COMMAND (run by /bin/sh with the request's value on its standard
input) prints. A COMMAND that fails leaves the request to be delivered
again. It prints each request's value as it answers it.

Flags:
`)
	fs := flag.NewFlagSet("respond", flag.ContinueOnError)
	bindClientFlags(fs)
	bindRespondFlags(fs)
	printFlags(w, fs)
}

type respondFlags struct {
	command string
	shared  string
	count   int
}

func bindRespondFlags(fs *flag.FlagSet) *respondFlags {
	f := &respondFlags{}
	fs.StringVar(&f.command, "exec", "", "answer with the output of this shell `command`")
	fs.StringVar(&f.shared, "shared", "", "consume through this shared `subscription` (default: the queue's own)")
	fs.IntVar(&f.count, "count", 0, "exit after answering this many requests (0: run until interrupted)")
	return f
}

func respond(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("respond", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	rf := bindRespondFlags(fs)
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	switch {
	case rf.command == "" && len(pos) != 2:
		return usagef("give a queue and a reply, or a queue and --exec")
	case rf.command != "" && len(pos) != 1:
		return usagef("with --exec, give only the queue")
	case rf.count < 0:
		return usagef("--count %d is negative", rf.count)
	}
	queue := pos[0]
	sub := queue
	if rf.shared != "" {
		sub = rf.shared
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		var answered atomic.Int64
		enough := make(chan struct{})
		cons, err := c.Respond(ctx, queue, func(ctx context.Context, req *weir.Message) (weir.Record, error) {
			if rf.count > 0 && answered.Load() >= int64(rf.count) {
				// Delivered before Close stopped the consumer: for others.
				return weir.Record{}, errors.New("this responder is stopping")
			}
			reply := weir.Record{}
			if rf.command == "" {
				reply.Value = []byte(pos[1])
			} else {
				cmd := exec.CommandContext(ctx, "/bin/sh", "-c", rf.command)
				cmd.Stdin = bytes.NewReader(req.Value)
				cmd.Stderr = stderr
				out, err := cmd.Output()
				if err != nil {
					return reply, fmt.Errorf("%s: %w", rf.command, err)
				}
				reply.Value = bytes.TrimSuffix(out, []byte("\n"))
			}
			fmt.Fprintf(stdout, "%s\n", req.Value)
			if n := answered.Add(1); n == int64(rf.count) {
				close(enough)
			}
			return reply, nil
		}, weir.Shared(sub), weir.Prefetch(1))
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-enough:
		case <-cons.Done():
		}
		// Close lets the answer under way be sent.
		closeCtx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return cons.Close(closeCtx)
	})
}
