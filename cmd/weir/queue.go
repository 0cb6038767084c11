package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/server"
)

func runQueue(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir queue: missing subcommand\nRun 'weir queue -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printQueueUsage(stdout)
		return exitOK
	case "create":
		return report("queue create", queueCreate(rest, stdout), printQueueUsage, stdout, stderr)
	case "ls", "list":
		return report("queue ls", queueList(rest, stdout), printQueueUsage, stdout, stderr)
	case "describe":
		return report("queue describe", queueDescribe(rest, stdout), printQueueUsage, stdout, stderr)
	case "purge":
		return report("queue purge", queuePurge(rest, os.Stdin, stdout, stderr), printQueueUsage, stdout, stderr)
	case "rm", "delete":
		return report("queue rm", queueRemove(rest, stdout), printQueueUsage, stdout, stderr)
	case "redrive":
		return report("queue redrive", queueRedrive(rest, stdout), printQueueUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir queue: unknown subcommand %q\nRun 'weir queue -h' for usage.\n", sub)
	return exitUsage
}

func printQueueUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir queue create NAME [--partitions N] [--max-deliveries N] [--ack-timeout D]
                         [--dead-letter STREAM] [--key-ordered] [--ttl D]
                         [--expired-dead-letter] [--filter EXPR]
                         [--max-length N] [--max-length-bytes SIZE]
                         [--overflow drop-oldest|reject-publish|dead-letter|block]
  weir queue ls
  weir queue describe NAME
  weir queue purge NAME [--yes]
  weir queue rm NAME
  weir queue redrive NAME [--max N]

Creates, lists, describes, purges and deletes queues: streams whose records
are dropped once acknowledged, consumed by competing consumers
('weir sub NAME --shared'). A record not acknowledged within --ack-timeout is
delivered again; after --max-deliveries deliveries it goes to the queue's
dead-letter stream (NAME.dlq unless --dead-letter), from which redrive moves
records back. purge drops every record not acknowledged yet; it asks first
unless --yes. rm deletes the queue's stream and records.

--filter is a CEL expression over key, headers, value_string, timestamp,
partition and offset (headers['type'] == 'order.paid'): the queue keeps
only the records it selects. Durations are Go durations (90s, 24h).

--max-length and --max-length-bytes bound the records not acknowledged yet,
in number and in bytes (a record's key, value and headers); past either,
--overflow drops the oldest (the default), refuses publishes, moves the
oldest to the dead-letter stream, or holds publishes until consumers make
room (block). Sizes are bytes or take a unit: 512KiB,
10MiB, 1GB.

Flags:
`)
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	bindClientFlags(fs)
	bindQueueCreateFlags(fs)
	fs.Bool("yes", false, "queue purge: do not ask for confirmation")
	fs.Int64("max", 0, "queue redrive: move at most this many records (0: all)")
	printFlags(w, fs)
}

type queueCreateFlags struct {
	partitions        int
	maxDeliveries     int
	ackTimeout        time.Duration
	deadLetter        string
	keyOrdered        bool
	ttl               time.Duration
	expiredDeadLetter bool
	filter            string
	maxLength         int64
	maxLengthBytes    string
	overflow          string
}

func bindQueueCreateFlags(fs *flag.FlagSet) *queueCreateFlags {
	f := &queueCreateFlags{}
	fs.IntVar(&f.partitions, "partitions", 1, "queue create: number of partitions")
	fs.IntVar(&f.maxDeliveries, "max-deliveries", 0, "queue create: dead-letter a record after this many deliveries (0: never)")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", 0, "queue create: deliver a record again if not acknowledged within this (0: the server's default, 30s)")
	fs.StringVar(&f.deadLetter, "dead-letter", "", "queue create: dead-letter `stream` (empty: NAME.dlq)")
	fs.BoolVar(&f.keyOrdered, "key-ordered", false, "queue create: deliver one record of a key at a time, in order")
	fs.DurationVar(&f.ttl, "ttl", 0, "queue create: drop records not acknowledged within this of their timestamp (0: keep them)")
	fs.BoolVar(&f.expiredDeadLetter, "expired-dead-letter", false, "queue create: dead-letter expired records instead of dropping them")
	fs.StringVar(&f.filter, "filter", "", "queue create: keep only the records this CEL `expression` selects")
	fs.Int64Var(&f.maxLength, "max-length", 0, "queue create: at most this many records not acknowledged (0: no bound)")
	fs.StringVar(&f.maxLengthBytes, "max-length-bytes", "", "queue create: at most this `size` of records not acknowledged, like 10MiB (empty or 0: no bound)")
	fs.StringVar(&f.overflow, "overflow", "", "queue create: past a max length: drop-oldest (the default), reject-publish, dead-letter or block")
	return f
}

func (f *queueCreateFlags) config(name string) (weir.QueueConfig, error) {
	switch {
	case f.partitions < 1 || f.partitions > math.MaxInt32:
		return weir.QueueConfig{}, usagef("--partitions %d: want a count from 1", f.partitions)
	case f.maxDeliveries < 0 || f.maxDeliveries > math.MaxInt32:
		return weir.QueueConfig{}, usagef("--max-deliveries %d: want a count, or 0 for no limit", f.maxDeliveries)
	case f.ackTimeout < 0:
		return weir.QueueConfig{}, usagef("--ack-timeout %v is negative", f.ackTimeout)
	case f.ttl < 0:
		return weir.QueueConfig{}, usagef("--ttl %v is negative", f.ttl)
	case f.maxLength < 0:
		return weir.QueueConfig{}, usagef("--max-length %d is negative", f.maxLength)
	}
	var maxBytes int64
	if f.maxLengthBytes != "" {
		n, err := server.ParseByteSize(f.maxLengthBytes)
		if err != nil {
			return weir.QueueConfig{}, usagef("--max-length-bytes %q: %v", f.maxLengthBytes, err)
		}
		maxBytes = int64(n)
	}
	overflow := weir.Overflow(f.overflow)
	switch overflow {
	case "", weir.OverflowDropOldest, weir.OverflowRejectPublish, weir.OverflowDeadLetter, weir.OverflowBlock:
	default:
		return weir.QueueConfig{}, usagef("--overflow %q: want %s, %s, %s or %s", f.overflow, weir.OverflowDropOldest, weir.OverflowRejectPublish, weir.OverflowDeadLetter, weir.OverflowBlock)
	}
	if overflow != "" && f.maxLength == 0 && maxBytes == 0 {
		return weir.QueueConfig{}, usagef("--overflow needs --max-length or --max-length-bytes")
	}
	return weir.QueueConfig{
		Name:       name,
		Partitions: int32(f.partitions),
		Subscription: weir.SubscriptionConfig{
			Filter:            f.filter,
			AckTimeout:        f.ackTimeout,
			MaxDeliveries:     int32(f.maxDeliveries),
			DeadLetterStream:  f.deadLetter,
			KeyOrdered:        f.keyOrdered,
			MessageTTL:        f.ttl,
			ExpiredDeadLetter: f.expiredDeadLetter,
			MaxLength:         f.maxLength,
			MaxLengthBytes:    maxBytes,
			Overflow:          overflow,
		},
	}, nil
}

func queueCreate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("queue create", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	qf := bindQueueCreateFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cfg, err := qf.config(pos[0])
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		q, err := c.CreateQueue(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created queue %s with %d partitions; dead letters go to %s\n", q.Config.Name, q.Partitions, q.Config.DeadLetterStream)
		return nil
	})
}

func queueList(args []string, stdout io.Writer) error {
	return listCommand("queue ls", args, stdout, "NAME\tDEPTH\tIN FLIGHT\tDELAYED\tDEAD-LETTERED\tCONSUMERS",
		func(ctx context.Context, c *weir.Client) ([]string, error) {
			queues, err := c.ListQueues(ctx)
			rows := make([]string, len(queues))
			for i, q := range queues {
				rows[i] = fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d", q.Config.Name, q.Depth, q.InFlight, q.Delayed, q.DeadLettered, q.Consumers)
			}
			return rows, err
		})
}

func queueDescribe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("queue describe", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		q, err := c.DescribeQueue(ctx, pos[0])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Queue:\t%s\n", q.Config.Name)
		fmt.Fprintf(tw, "Partitions:\t%d\n", q.Partitions)
		printSubscriptionInfo(tw, q)
		return tw.Flush()
	})
}

// printSubscriptionInfo writes the settings and counts of a subscription
// as tab-separated lines.
func printSubscriptionInfo(w io.Writer, s *weir.SubscriptionInfo) {
	cfg := s.Config
	fmt.Fprintf(w, "Depth:\t%d\n", s.Depth)
	fmt.Fprintf(w, "Depth in bytes:\t%d (%s)\n", s.DepthBytes, server.ByteSize(s.DepthBytes))
	fmt.Fprintf(w, "In flight:\t%d\n", s.InFlight)
	fmt.Fprintf(w, "Waiting:\t%d\n", s.Waiting)
	fmt.Fprintf(w, "Delayed:\t%d\n", s.Delayed)
	fmt.Fprintf(w, "Consumers:\t%d\n", s.Consumers)
	fmt.Fprintf(w, "Dead-lettered:\t%d (since the server started)\n", s.DeadLettered)
	fmt.Fprintf(w, "Dead-letter stream:\t%s\n", cfg.DeadLetterStream)
	fmt.Fprintf(w, "Ack timeout:\t%s\n", orDefault(cfg.AckTimeout, "30s"))
	if cfg.MaxDeliveries > 0 {
		fmt.Fprintf(w, "Max deliveries:\t%d\n", cfg.MaxDeliveries)
	} else {
		fmt.Fprintf(w, "Max deliveries:\tunlimited\n")
	}
	b := cfg.Backoff
	fmt.Fprintf(w, "Backoff:\t%s, ×%g, at most %s\n", orDefault(b.Initial, "100ms"), orOne(b.Multiplier), orDefault(b.Max, "1m0s"))
	fmt.Fprintf(w, "Key-ordered:\t%t\n", cfg.KeyOrdered)
	switch {
	case cfg.MessageTTL <= 0:
		fmt.Fprintf(w, "Message TTL:\tnone\n")
	case cfg.ExpiredDeadLetter:
		fmt.Fprintf(w, "Message TTL:\t%v, then dead-lettered\n", cfg.MessageTTL)
	default:
		fmt.Fprintf(w, "Message TTL:\t%v, then dropped\n", cfg.MessageTTL)
	}
	var bounds []string
	if cfg.MaxLength > 0 {
		bounds = append(bounds, fmt.Sprintf("%d records", cfg.MaxLength))
	}
	if cfg.MaxLengthBytes > 0 {
		bounds = append(bounds, server.ByteSize(cfg.MaxLengthBytes).String())
	}
	if len(bounds) == 0 {
		fmt.Fprintf(w, "Max length:\tnone\n")
	} else {
		fmt.Fprintf(w, "Max length:\t%s, then %s\n", strings.Join(bounds, " or "), cfg.Overflow)
	}
	if cfg.Filter != "" {
		fmt.Fprintf(w, "Filter:\t%s\n", cfg.Filter)
	}
}

func orDefault(d time.Duration, def string) string {
	if d <= 0 {
		return def
	}
	return d.String()
}

func orOne(m float64) float64 {
	if m <= 0 {
		return 2
	}
	return m
}

func queuePurge(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("queue purge", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	interactive := isTerminal(stdin)
	if !*yes && !interactive {
		return usagef("purging %s drops its records: confirm with --yes (standard input is not a terminal to ask on)", pos[0])
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		if !*yes {
			q, err := c.DescribeQueue(ctx, pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "Drop the %d records of queue %s that are not acknowledged, in flight included? [y/N] ", q.Depth, pos[0])
			answer, _ := bufio.NewReader(stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(stdout, "nothing purged")
				return nil
			}
		}
		n, err := c.PurgeQueue(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "purged %d records of queue %s\n", n, pos[0])
		return nil
	})
}

func queueRemove(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("queue rm", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		for _, name := range pos {
			if err := c.DeleteQueue(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted queue %s\n", name)
		}
		return nil
	})
}

func queueRedrive(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("queue redrive", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	maxRecords := fs.Int64("max", 0, "move at most this many records (0: all)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *maxRecords < 0 {
		return usagef("--max %d is negative", *maxRecords)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		q, err := c.DescribeQueue(ctx, pos[0])
		if err != nil {
			return err
		}
		n, err := c.Redrive(ctx, pos[0], *maxRecords)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "moved %d records from %s back to queue %s\n", n, q.Config.DeadLetterStream, pos[0])
		return nil
	})
}
