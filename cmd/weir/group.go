package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	weir "github.com/weirmq/weir/client"
)

func runGroup(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir group: missing subcommand\nRun 'weir group -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printGroupUsage(stdout)
		return exitOK
	case "ls", "list":
		return report("group ls", groupList(rest, stdout), printGroupUsage, stdout, stderr)
	case "describe":
		return report("group describe", groupDescribe(rest, stdout), printGroupUsage, stdout, stderr)
	case "reset":
		return report("group reset", groupReset(rest, stdout), printGroupUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir group: unknown subcommand %q\nRun 'weir group -h' for usage.\n", sub)
	return exitUsage
}

func printGroupUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir group ls
  weir group describe GROUP
  weir group reset GROUP --stream STREAM --to earliest|latest|OFFSET|TIME

Lists consumer groups, describes one (its members, what each reads, its
committed offsets and their lag), or moves its committed offsets in every
partition of a stream (only while the group has no member). TIME is
RFC 3339 or a duration ago (10m).

Flags:
`)
	fs := flag.NewFlagSet("group", flag.ContinueOnError)
	bindClientFlags(fs)
	bindResetFlags(fs)
	printFlags(w, fs)
}

func groupList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("group ls", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		groups, err := c.ListGroups(ctx)
		if err != nil {
			return err
		}
		for _, g := range groups {
			fmt.Fprintln(stdout, g)
		}
		return nil
	})
}

func groupDescribe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("group describe", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		g, err := c.DescribeGroup(ctx, pos[0])
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Group:\t%s\n", g.Group)
		if len(g.Members) > 0 {
			fmt.Fprintf(tw, "Strategy:\t%s\n", g.Strategy)
			fmt.Fprintf(tw, "Generation:\t%d\n", g.Generation)
		}
		fmt.Fprintf(tw, "Members:\t%d\n", len(g.Members))
		fmt.Fprintf(tw, "Lag:\t%d\n", g.Lag())
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(g.Members) > 0 {
			fmt.Fprintln(stdout)
			tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MEMBER\tCLIENT\tPARTITIONS\tLAST HEARTBEAT")
			for _, m := range g.Members {
				var parts []string
				for _, p := range m.Assigned {
					parts = append(parts, fmt.Sprintf("%s/%d", p.Stream, p.Partition))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\n", m.MemberID, m.ClientID, strings.Join(parts, ","),
					time.Since(m.LastHeartbeat).Round(time.Millisecond))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if len(g.Offsets) > 0 {
			fmt.Fprintln(stdout)
			printOffsets(stdout, g.Offsets)
		}
		return nil
	})
}

type resetFlags struct {
	stream string
	to     string
}

func bindResetFlags(fs *flag.FlagSet) *resetFlags {
	f := &resetFlags{}
	fs.StringVar(&f.stream, "stream", "", "group reset: the stream whose offsets move")
	fs.StringVar(&f.to, "to", "", "group reset: earliest, latest, an offset or a time")
	return f
}

func groupReset(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("group reset", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	rf := bindResetFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if rf.stream == "" || rf.to == "" {
		return usagef("--stream and --to are required")
	}
	to, err := parseStart(rf.to, time.Now())
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		g, err := c.ResetOffsets(ctx, pos[0], rf.stream, to)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "reset group %s on %s to %s\n\n", g.Group, rf.stream, to)
		printOffsets(stdout, g.Offsets)
		return nil
	})
}

func printOffsets(w io.Writer, offsets []weir.GroupOffset) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tPARTITION\tOFFSET\tEND\tLAG\tCOMMITTED")
	for _, o := range offsets {
		committed := "-"
		if !o.CommitTime.IsZero() {
			committed = o.CommitTime.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", o.Stream, o.Partition, o.Offset, o.EndOffset, o.Lag, committed)
	}
	tw.Flush()
}
