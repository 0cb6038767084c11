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

func runConnector(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir connector: missing subcommand\nRun 'weir connector -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printConnectorUsage(stdout)
		return exitOK
	case "create":
		return report("connector create", connectorCreate(rest, stdout), printConnectorUsage, stdout, stderr)
	case "ls", "list":
		return report("connector ls", connectorList(rest, stdout), printConnectorUsage, stdout, stderr)
	case "describe":
		return report("connector describe", connectorDescribe(rest, stdout), printConnectorUsage, stdout, stderr)
	case "rm", "delete":
		return report("connector rm", connectorRemove(rest, stdout), printConnectorUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir connector: unknown subcommand %q\nRun 'weir connector -h' for usage.\n", sub)
	return exitUsage
}

func printConnectorUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir connector create postgres --name NAME --dsn DSN (--tables T1,T2 | --publication P)
                                 [--prefix P] [--slot S] [--snapshot initial|never]
                                 [--json string|object] [--partitions N] [--dedup-window D]
                                 [--outbox-table T [--outbox-route R] [--outbox-route-by COL]
                                  [--outbox-headers COL[:HEADER],...] [--outbox-dead-letter STREAM]
                                  [--outbox-dedup-window D]]
  weir connector ls
  weir connector describe NAME
  weir connector rm NAME [--keep-slot]

Change data capture: a postgres connector streams the changes of tables
(logical replication, pgoutput) into the streams PREFIX.SCHEMA.TABLE as
Debezium-style events, after an initial snapshot. The server keeps the
connectors created here and starts them again when it restarts; connectors
of the configuration file (connectors:) are listed too but changed there.
rm drops the connector's replication slot (and its publication, if it
created it) unless --keep-slot.

With --outbox-table, rows inserted into that table (Debezium's outbox
columns: id, aggregatetype, aggregateid, type, payload) become records on
outbox.event.AGGREGATETYPE (--outbox-route, ${routedByValue} being the
--outbox-route-by column) with key aggregateid, message-id id (the stream
drops repeats) and type; its updates and deletes are ignored. A row that
cannot be routed stops the connector unless --outbox-dead-letter names a
stream for it.

Flags:
`)
	fs := flag.NewFlagSet("connector", flag.ContinueOnError)
	bindClientFlags(fs)
	bindConnectorFlags(fs)
	fs.Bool("keep-slot", false, "rm: leave the replication slot and publication in the database")
	printFlags(w, fs)
}

type connectorFlags struct {
	name, dsn, tables, publication, prefix, slot, snapshot, json string
	partitions                                                   int
	dedupWindow                                                  time.Duration

	outboxTable, outboxRoute, outboxRouteBy, outboxHeaders, outboxDeadLetter string
	outboxDedupWindow                                                        time.Duration
}

func bindConnectorFlags(fs *flag.FlagSet) *connectorFlags {
	f := &connectorFlags{}
	fs.StringVar(&f.name, "name", "", "create: the connector's name (letters, digits, _ and -)")
	fs.StringVar(&f.dsn, "dsn", "", "create: PostgreSQL connection string or URL (the server keeps it; describe hides its password)")
	fs.StringVar(&f.tables, "tables", "", "create: tables to capture, comma-separated, schema.table or table (public)")
	fs.StringVar(&f.publication, "publication", "", "create: publication to read (default weir_NAME, created for --tables)")
	fs.StringVar(&f.prefix, "prefix", "", "create: stream name prefix (default NAME)")
	fs.StringVar(&f.slot, "slot", "", "create: replication slot (default weir_NAME)")
	fs.StringVar(&f.snapshot, "snapshot", "", "create: initial (read the tables first, the default) or never")
	fs.StringVar(&f.json, "json", "", "create: json and jsonb columns as string (the default) or object")
	fs.IntVar(&f.partitions, "partitions", 0, "create: partitions of the streams created (default 1)")
	fs.DurationVar(&f.dedupWindow, "dedup-window", 0, "create: dedup window of the streams created, so the broker drops events a restart writes again (0: none)")
	fs.StringVar(&f.outboxTable, "outbox-table", "", "create: route the rows inserted into this outbox table, schema.table or table (captured even if not in --tables)")
	fs.StringVar(&f.outboxRoute, "outbox-route", "", "create: stream of an outbox event (default outbox.event.${routedByValue})")
	fs.StringVar(&f.outboxRouteBy, "outbox-route-by", "", "create: the column replacing ${routedByValue} (default aggregatetype)")
	fs.StringVar(&f.outboxHeaders, "outbox-headers", "", "create: further outbox columns as headers, comma-separated COLUMN or COLUMN:HEADER")
	fs.StringVar(&f.outboxDeadLetter, "outbox-dead-letter", "", "create: stream for outbox rows that cannot be routed (default: they stop the connector)")
	fs.DurationVar(&f.outboxDedupWindow, "outbox-dedup-window", 0, "create: dedup window of the outbox streams created (0: the server's default, 2m)")
	return f
}

func connectorCreate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("connector create", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	f := bindConnectorFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if pos[0] != "postgres" {
		return usagef("connector type %q: the only type is postgres", pos[0])
	}
	if f.name == "" || f.dsn == "" {
		return usagef("--name and --dsn are required")
	}
	if f.tables == "" && f.publication == "" && f.outboxTable == "" {
		return usagef("give --tables or --publication (or --outbox-table)")
	}
	if f.dedupWindow < 0 {
		return usagef("--dedup-window %v is negative", f.dedupWindow)
	}
	if f.partitions < 0 || f.partitions > 10000 {
		return usagef("--partitions %d: want 1 to 10000", f.partitions)
	}
	cfg := weir.PostgresConnectorConfig{
		DSN: f.dsn, Publication: f.publication, Prefix: f.prefix, Slot: f.slot,
		Snapshot: f.snapshot, JSON: f.json, Partitions: int32(f.partitions), DedupWindow: f.dedupWindow,
	}
	for _, t := range strings.Split(f.tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Tables = append(cfg.Tables, t)
		}
	}
	if f.outboxTable != "" {
		cfg.Outbox = &weir.OutboxRouterConfig{Table: f.outboxTable, Route: f.outboxRoute, RouteBy: f.outboxRouteBy,
			DeadLetter: f.outboxDeadLetter, DedupWindow: f.outboxDedupWindow}
		for _, h := range strings.Split(f.outboxHeaders, ",") {
			if h = strings.TrimSpace(h); h != "" {
				cfg.Outbox.Headers = append(cfg.Outbox.Headers, h)
			}
		}
	} else if f.outboxRoute != "" || f.outboxRouteBy != "" || f.outboxHeaders != "" || f.outboxDeadLetter != "" || f.outboxDedupWindow != 0 {
		return usagef("the --outbox-* flags need --outbox-table")
	}
	if f.outboxDedupWindow < 0 {
		return usagef("--outbox-dedup-window %v is negative", f.outboxDedupWindow)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		info, err := c.CreatePostgresConnector(ctx, f.name, cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created connector %s: publication %s, slot %s, streams %s.<schema>.<table>\n",
			info.Name, info.Postgres.Publication, info.Postgres.Slot, info.Postgres.Prefix)
		if o := info.Postgres.Outbox; o != nil {
			fmt.Fprintf(stdout, "outbox %s routed to %s\n", o.Table, o.Route)
		}
		return nil
	})
}

func connectorList(args []string, stdout io.Writer) error {
	return listCommand("connector ls", args, stdout, "NAME\tTYPE\tORIGIN\tSTATE\tLAG\tBEHIND\tLAST EVENT\tEVENTS",
		func(ctx context.Context, c *weir.Client) ([]string, error) {
			list, err := c.ListConnectors(ctx)
			rows := make([]string, len(list))
			now := time.Now()
			for i, ci := range list {
				rows[i] = fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%v\t%s\t%d", ci.Name, ci.Type, ci.Origin, ci.State,
					humanBytes(int64(ci.LagBytes)), ci.Behind.Round(time.Millisecond), sinceEvent(ci.LastEventTime, now), ci.Events)
			}
			return rows, err
		})
}

// sinceEvent formats the time since the last event: "3s ago", or "-".
func sinceEvent(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func connectorDescribe(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("connector describe", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		ci, err := c.DescribeConnector(ctx, pos[0])
		if err != nil {
			return err
		}
		pg := ci.Postgres
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "Connector:\t%s\n", ci.Name)
		fmt.Fprintf(tw, "Type:\t%s (%s)\n", ci.Type, map[string]string{"config": "configuration file", "api": "created through the API"}[ci.Origin])
		fmt.Fprintf(tw, "State:\t%s\n", ci.State)
		fmt.Fprintf(tw, "DSN:\t%s\n", pg.DSN)
		if len(pg.Tables) > 0 {
			fmt.Fprintf(tw, "Tables:\t%s\n", strings.Join(pg.Tables, ", "))
		}
		fmt.Fprintf(tw, "Publication:\t%s\n", pg.Publication)
		fmt.Fprintf(tw, "Slot:\t%s\n", pg.Slot)
		dedup := "no dedup window"
		if pg.DedupWindow > 0 {
			dedup = "dedup window " + pg.DedupWindow.String()
		}
		fmt.Fprintf(tw, "Streams:\t%s.<schema>.<table> (%d partitions, compacted, %s)\n", pg.Prefix, pg.Partitions, dedup)
		fmt.Fprintf(tw, "Snapshot:\t%s (%d rows read)\n", pg.Snapshot, ci.SnapshotRows)
		fmt.Fprintf(tw, "JSON columns:\tas %s\n", pg.JSON)
		if o := pg.Outbox; o != nil {
			dl := "stop the connector"
			if o.DeadLetter != "" {
				dl = "go to " + o.DeadLetter
			}
			fmt.Fprintf(tw, "Outbox:\t%s routed to %s (by %s; key %s, message-id %s, type %s, value %s", o.Table, o.Route, o.RouteBy,
				o.KeyColumn, o.IDColumn, o.TypeColumn, o.PayloadColumn)
			if len(o.Headers) > 0 {
				fmt.Fprintf(tw, ", headers %s", strings.Join(o.Headers, ", "))
			}
			fmt.Fprintf(tw, "); rows that cannot be routed %s\n", dl)
		}
		fmt.Fprintf(tw, "Events:\t%d in %d transactions since the server started\n", ci.Events, ci.Transactions)
		fmt.Fprintf(tw, "Last event:\t%s\n", sinceEvent(ci.LastEventTime, time.Now()))
		fmt.Fprintf(tw, "Confirmed LSN:\t%s\n", orDash(ci.ConfirmedLSN))
		fmt.Fprintf(tw, "Server WAL LSN:\t%s\n", orDash(ci.ServerWALLSN))
		fmt.Fprintf(tw, "Lag:\t%d bytes (%s) of WAL; %v behind at the last transaction\n", ci.LagBytes, humanBytes(int64(ci.LagBytes)), ci.Behind.Round(time.Millisecond))
		fmt.Fprintf(tw, "Restarts:\t%d\n", ci.Restarts)
		if ci.LastError != "" {
			fmt.Fprintf(tw, "Last error:\t%s (%s)\n", ci.LastError, ci.LastErrorTime.Local().Format(time.RFC3339))
		}
		return tw.Flush()
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func connectorRemove(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("connector rm", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	keep := fs.Bool("keep-slot", false, "leave the replication slot and publication in the database")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		if err := c.DeleteConnector(ctx, pos[0], *keep); err != nil {
			return err
		}
		if *keep {
			fmt.Fprintf(stdout, "deleted connector %s (its replication slot is left: drop it when done, as it keeps WAL)\n", pos[0])
		} else {
			fmt.Fprintf(stdout, "deleted connector %s and its replication slot\n", pos[0])
		}
		return nil
	})
}
