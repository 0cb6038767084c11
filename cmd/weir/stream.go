package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/server"
)

func runStream(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir stream: missing subcommand\nRun 'weir stream -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printStreamUsage(stdout)
		return exitOK
	case "create":
		return report("stream create", streamCreate(rest, stdout), printStreamUsage, stdout, stderr)
	case "ls", "list":
		return report("stream ls", streamList(rest, stdout), printStreamUsage, stdout, stderr)
	case "describe":
		return report("stream describe", streamDescribe(rest, stdout), printStreamUsage, stdout, stderr)
	case "rm", "delete":
		return report("stream rm", streamRemove(rest, stdout), printStreamUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir stream: unknown subcommand %q\nRun 'weir stream -h' for usage.\n", sub)
	return exitUsage
}

func printStreamUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir stream create NAME [--partitions N] [--retention-age D] [--retention-bytes N]
                          [--compacted] [--dedup-window D] [--segment-bytes N]
  weir stream ls
  weir stream describe NAME
  weir stream rm NAME

Creates, lists, describes and deletes streams: durable logs split into
partitions. Sizes take units (512KiB, 1GiB); durations are Go durations
(90s, 24h); --dedup-window off turns deduplication off.

Flags:
`)
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	bindClientFlags(fs)
	bindCreateFlags(fs)
	printFlags(w, fs)
}

type createFlags struct {
	partitions     int
	retentionAge   time.Duration
	retentionBytes string
	compacted      bool
	dedupWindow    string
	segmentBytes   string
}

func bindCreateFlags(fs *flag.FlagSet) *createFlags {
	f := &createFlags{}
	fs.IntVar(&f.partitions, "partitions", 1, "number of partitions")
	fs.DurationVar(&f.retentionAge, "retention-age", 0, "drop records older than this (0: keep them)")
	fs.StringVar(&f.retentionBytes, "retention-bytes", "", "cap each partition's size (empty: no cap)")
	fs.BoolVar(&f.compacted, "compacted", false, "keep only the newest record of each key")
	fs.StringVar(&f.dedupWindow, "dedup-window", "", "how long message-ids are remembered, or off (empty: the server's default, 2m)")
	fs.StringVar(&f.segmentBytes, "segment-bytes", "", "size of segment files (empty: the server's default)")
	return f
}

func (f *createFlags) config(name string) (weir.StreamConfig, error) {
	cfg := weir.StreamConfig{Name: name, Partitions: int32(f.partitions), RetentionAge: f.retentionAge, Compacted: f.compacted}
	if f.partitions < 1 || f.partitions > math.MaxInt32 {
		return cfg, usagef("--partitions %d: want a count from 1", f.partitions)
	}
	if f.retentionAge < 0 {
		return cfg, usagef("--retention-age %v is negative", f.retentionAge)
	}
	for _, s := range []struct {
		flag, value string
		dst         *int64
	}{{"retention-bytes", f.retentionBytes, &cfg.RetentionBytes}, {"segment-bytes", f.segmentBytes, &cfg.SegmentBytes}} {
		if s.value == "" {
			continue
		}
		n, err := server.ParseByteSize(s.value)
		if err != nil {
			return cfg, usagef("--%s %q: %v", s.flag, s.value, err)
		}
		*s.dst = int64(n)
	}
	switch f.dedupWindow {
	case "":
	case "off":
		cfg.DedupWindow = -1
	default:
		d, err := time.ParseDuration(f.dedupWindow)
		if err != nil || d <= 0 {
			return cfg, usagef("--dedup-window %q: want a positive duration or off", f.dedupWindow)
		}
		cfg.DedupWindow = d
	}
	return cfg, nil
}

func streamCreate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stream create", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	create := bindCreateFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cfg, err := create.config(pos[0])
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		info, err := c.CreateStream(ctx, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created stream %s with %d partitions\n", info.Config.Name, len(info.Partitions))
		return nil
	})
}

func streamList(args []string, stdout io.Writer) error {
	return listCommand("stream ls", args, stdout, "NAME\tPARTITIONS\tRECORDS\tSIZE\tRETENTION",
		func(ctx context.Context, c *weir.Client) ([]string, error) {
			streams, err := c.ListStreams(ctx)
			rows := make([]string, len(streams))
			for i, s := range streams {
				rows[i] = fmt.Sprintf("%s\t%d\t%d\t%s\t%s", s.Config.Name, len(s.Partitions), s.Records(), humanBytes(s.Bytes()), retention(s.Config))
			}
			return rows, err
		})
}

func streamDescribe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stream describe", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		s, err := c.DescribeStream(ctx, pos[0])
		if err != nil {
			return err
		}
		cfg := s.Config
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Stream:\t%s\n", cfg.Name)
		fmt.Fprintf(tw, "ID:\t%s\n", s.ID)
		fmt.Fprintf(tw, "Created:\t%s\n", s.CreatedAt.Local().Format(time.RFC3339))
		fmt.Fprintf(tw, "Partitions:\t%d\n", len(s.Partitions))
		fmt.Fprintf(tw, "Retention:\t%s\n", retention(cfg))
		fmt.Fprintf(tw, "Compacted:\t%t\n", cfg.Compacted)
		switch {
		case cfg.DedupWindow < 0:
			fmt.Fprintf(tw, "Dedup window:\toff\n")
		case cfg.DedupWindow == 0:
			fmt.Fprintf(tw, "Dedup window:\tdefault\n")
		default:
			fmt.Fprintf(tw, "Dedup window:\t%v\n", cfg.DedupWindow)
		}
		if cfg.SegmentBytes > 0 {
			fmt.Fprintf(tw, "Segment size:\t%s\n", humanBytes(cfg.SegmentBytes))
		}
		fmt.Fprintf(tw, "Records:\t%d\n", s.Records())
		fmt.Fprintf(tw, "Size:\t%s\n", humanBytes(s.Bytes()))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tDURABLE\tRECORDS\tBYTES\tSEGMENTS\t")
		for _, p := range s.Partitions {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.Partition, p.StartOffset, p.EndOffset, p.DurableOffset, p.EndOffset-p.StartOffset, p.Bytes, p.Segments)
		}
		return tw.Flush()
	})
}

func streamRemove(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stream rm", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		for _, name := range pos {
			if err := c.DeleteStream(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted stream %s\n", name)
		}
		return nil
	})
}

// retention describes a stream's retention settings.
func retention(cfg weir.StreamConfig) string {
	var out string
	switch {
	case cfg.RetentionAge > 0 && cfg.RetentionBytes > 0:
		out = fmt.Sprintf("%v or %s per partition", cfg.RetentionAge, humanBytes(cfg.RetentionBytes))
	case cfg.RetentionAge > 0:
		out = cfg.RetentionAge.String()
	case cfg.RetentionBytes > 0:
		out = humanBytes(cfg.RetentionBytes) + " per partition"
	default:
		out = "forever"
	}
	if cfg.Compacted {
		out += ", compacted"
	}
	return out
}

// humanBytes formats n bytes with a binary unit: 0 B, 512 B, 1.5 KiB.
func humanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
