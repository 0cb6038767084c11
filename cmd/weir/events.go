package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	weir "github.com/weirmq/weir/client"
)

func runEvents(args []string, stdout, stderr io.Writer) int {
	return runEventsWith(args, os.Stdin, stdout, stderr)
}

// runEventsWith is runEvents with the standard input (append reads events
// from it).
func runEventsWith(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir events: missing subcommand\nRun 'weir events -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printEventsUsage(stdout)
		return exitOK
	case "append":
		return report("events append", eventsAppend(rest, stdin, stdout), printEventsUsage, stdout, stderr)
	case "read":
		return report("events read", eventsRead(rest, stdout), printEventsUsage, stdout, stderr)
	case "tail":
		return report("events tail", eventsTail(rest, stdout), printEventsUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir events: unknown subcommand %q\nRun 'weir events -h' for usage.\n", sub)
	return exitUsage
}

func printEventsUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir events append AGGREGATE TYPE [DATA|-] [--expect any|no-stream|exists|VERSION]
                     [--id ID] [--correlation-id ID] [--causation-id ID]
                     [--content-type T] [--metadata M]
  weir events read AGGREGATE [--from-version N] [--format text|json]
  weir events tail [--category C] [--from start|end|POSITION] [--count N]
                   [--no-follow] [--format text|json]

The event store. append adds events of type TYPE to the aggregate (an id
like order-123, whose category is order: the part before the first '-'):
DATA is one event's data; without it, or with -, each line of standard
input is one event's data, and all of them are appended at once, or none.
--expect makes the append conditional: any (the default), no-stream (the
aggregate has no events), exists, or VERSION (it has exactly that many); a
mismatch fails, naming the aggregate's current version. --id sets the id of
a single event (a retry with the same id stores nothing twice).

read prints an aggregate's events from version --from-version (default 1).
tail prints events in their global order from --from (default end: only
new ones), of one --category or all, until interrupted, --count events, or
with --no-follow once it has caught up.

--format text prints POSITION AGGREGATE@VERSION TYPE DATA per event; json an
object per line: {"position","aggregate","version","id","type","time",
"data" (or "data_base64" when not UTF-8),"metadata","content_type",
"correlation_id","causation_id"}.

Flags:
`)
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	bindClientFlags(fs)
	bindEventsFlags(fs)
	printFlags(w, fs)
}

type eventsFlags struct {
	expect, id, correlationID, causationID, contentType, metadata string
	fromVersion                                                   int64
	category, from, format                                        string
	count                                                         int
	noFollow                                                      bool
}

func bindEventsFlags(fs *flag.FlagSet) *eventsFlags {
	f := &eventsFlags{}
	fs.StringVar(&f.expect, "expect", "any", "append: the expected version: any, no-stream, exists or a VERSION")
	fs.StringVar(&f.id, "id", "", "append: the event's id, for a single event (default: a random UUID)")
	fs.StringVar(&f.correlationID, "correlation-id", "", "append: the events' correlation id")
	fs.StringVar(&f.causationID, "causation-id", "", "append: the events' causation id (the id of what caused them)")
	fs.StringVar(&f.contentType, "content-type", "", "append: the data's content type, e.g. application/json")
	fs.StringVar(&f.metadata, "metadata", "", "append: the events' metadata")
	fs.Int64Var(&f.fromVersion, "from-version", 1, "read: the first version to print")
	fs.StringVar(&f.category, "category", "", "tail: only events of aggregates of this category")
	fs.StringVar(&f.from, "from", "end", "tail: start, end or a global POSITION")
	fs.IntVar(&f.count, "count", 0, "tail: exit after this many events (0: no limit)")
	fs.BoolVar(&f.noFollow, "no-follow", false, "tail: exit once every event so far is printed")
	fs.StringVar(&f.format, "format", "text", "read, tail: text or json")
	return f
}

func parseExpect(s string) (weir.ExpectedVersion, error) {
	switch s {
	case "any":
		return weir.AnyVersion, nil
	case "no-stream":
		return weir.NoStream, nil
	case "exists":
		return weir.StreamExists, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, usagef("--expect %q: want any, no-stream, exists or a version (0 or more)", s)
	}
	return weir.ExpectedVersion(v), nil
}

func eventsAppend(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("events append", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	f := bindEventsFlags(fs)
	pos, err := parseArgs(fs, args, 2, 3)
	if err != nil {
		return err
	}
	expected, err := parseExpect(f.expect)
	if err != nil {
		return err
	}
	event := func(data []byte) weir.EventData {
		e := weir.EventData{Type: pos[1], Data: data, ContentType: f.contentType, CorrelationID: f.correlationID, CausationID: f.causationID}
		if f.metadata != "" {
			e.Metadata = []byte(f.metadata)
		}
		return e
	}
	var events []weir.EventData
	if len(pos) == 3 && pos[2] != "-" {
		events = append(events, event([]byte(pos[2])))
	} else {
		scanner := bufio.NewScanner(stdin)
		scanner.Buffer(make([]byte, 64<<10), maxLineBytes)
		for scanner.Scan() {
			events = append(events, event(append([]byte(nil), scanner.Bytes()...)))
		}
		if err := scanner.Err(); err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		if len(events) == 0 {
			return usagef("no events: standard input was empty")
		}
	}
	if f.id != "" {
		if len(events) != 1 {
			return usagef("--id names one event; standard input had %d", len(events))
		}
		events[0].ID = f.id
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		res, err := c.Append(ctx, pos[0], expected, events...)
		if err != nil {
			return err
		}
		versions, positions := strconv.FormatInt(res.FirstVersion, 10), strconv.FormatInt(res.FirstPosition, 10)
		if res.LastVersion != res.FirstVersion {
			versions += "-" + strconv.FormatInt(res.LastVersion, 10)
			positions += "-" + strconv.FormatInt(res.LastPosition, 10)
		}
		if res.Duplicate {
			fmt.Fprintf(stdout, "already stored (same ids) in %s as version %s, position %s\n", pos[0], versions, positions)
			return nil
		}
		fmt.Fprintf(stdout, "appended %d to %s: version %s, position %s\n", len(events), pos[0], versions, positions)
		return nil
	})
}

func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return usagef("--format %q: want text or json", format)
	}
	return nil
}

func eventsRead(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("events read", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	f := bindEventsFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkFormat(f.format); err != nil {
		return err
	}
	if f.fromVersion < 0 {
		return usagef("--from-version %d is negative", f.fromVersion)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		evs, err := c.Read(ctx, pos[0], f.fromVersion)
		if err != nil {
			return err
		}
		out := bufio.NewWriter(stdout)
		for i := range evs {
			if err := printEvent(out, f.format, &evs[i]); err != nil {
				return err
			}
		}
		return out.Flush()
	})
}

func eventsTail(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	f := bindEventsFlags(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	if err := checkFormat(f.format); err != nil {
		return err
	}
	if f.count < 0 {
		return usagef("--count %d is negative", f.count)
	}
	from := weir.FromEnd
	switch f.from {
	case "end":
	case "start":
		from = 0
	default:
		p, err := strconv.ParseInt(f.from, 10, 64)
		if err != nil || p < 0 {
			return usagef("--from %q: want start, end or a position (0 or more)", f.from)
		}
		from = p
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		var sub *weir.EventSubscription
		var err error
		if f.category != "" {
			sub, err = c.SubscribeCategory(ctx, f.category, from)
		} else {
			sub, err = c.SubscribeAll(ctx, from)
		}
		if err != nil {
			return err
		}
		defer sub.Close()
		out := bufio.NewWriter(stdout)
		for printed := 0; f.count == 0 || printed < f.count; printed++ {
			if f.noFollow && sub.CaughtUp() {
				break
			}
			e, err := sub.Next()
			if err != nil {
				if ctx.Err() != nil { // interrupted
					break
				}
				return err
			}
			if err := printEvent(out, f.format, &e); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return fmt.Errorf("writing: %w", err)
			}
		}
		return out.Flush()
	})
}

// eventJSON is an event as --format json prints it.
type eventJSON struct {
	Position      int64  `json:"position"`
	Aggregate     string `json:"aggregate"`
	Version       int64  `json:"version"`
	ID            string `json:"id"`
	Type          string `json:"type"`
	Time          string `json:"time"`
	Data          string `json:"data,omitempty"`
	DataBase64    []byte `json:"data_base64,omitempty"`
	Metadata      string `json:"metadata,omitempty"`
	ContentType   string `json:"content_type,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
}

func printEvent(w io.Writer, format string, e *weir.Event) error {
	if format == "text" {
		_, err := fmt.Fprintf(w, "%d %s@%d %s %s\n", e.Position, e.Aggregate, e.Version, e.Type, e.Data)
		return err
	}
	j := eventJSON{
		Position: e.Position, Aggregate: e.Aggregate, Version: e.Version, ID: e.ID, Type: e.Type,
		Time: e.Time.UTC().Format(time.RFC3339Nano), Metadata: string(e.Metadata),
		ContentType: e.ContentType, CorrelationID: e.CorrelationID, CausationID: e.CausationID,
	}
	if utf8.Valid(e.Data) {
		j.Data = string(e.Data)
	} else {
		j.DataBase64 = e.Data
	}
	line, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	if err != nil {
		return errors.Join(errors.New("writing"), err)
	}
	return nil
}
