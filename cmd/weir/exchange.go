package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	weir "github.com/weirmq/weir/client"
)

// exchangeBatch is how many lines of standard input `weir pub --exchange`
// sends per call.
const exchangeBatch = 500

func runExchange(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir exchange: missing subcommand\nRun 'weir exchange -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printExchangeUsage(stdout)
		return exitOK
	case "declare", "create":
		return report("exchange declare", exchangeDeclare(rest, stdout), printExchangeUsage, stdout, stderr)
	case "ls", "list":
		return report("exchange ls", exchangeList(rest, stdout), printExchangeUsage, stdout, stderr)
	case "rm", "delete":
		return report("exchange rm", exchangeRemove(rest, stdout), printExchangeUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir exchange: unknown subcommand %q\nRun 'weir exchange -h' for usage.\n", sub)
	return exitUsage
}

func printExchangeUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir exchange declare NAME --type direct|topic|fanout|headers [--alternate EXCHANGE]
  weir exchange ls
  weir exchange rm NAME

Declares, lists and deletes exchanges: routers of records to streams (queues
are streams) and to other exchanges, by the bindings 'weir bind' adds. A
direct exchange routes a record to the bindings whose key is its routing
key; a topic exchange to those whose pattern matches it ("*" one word, "#"
zero or more, words separated by dots); fanout to every binding; headers to
those whose arguments match its headers. Records no binding matched go to
the alternate exchange, if any, or are unroutable. Declaring an exchange
that exists with the same settings changes nothing. rm deletes the bindings
to the exchange too. Publish with 'weir pub --exchange'.

Flags:
`)
	fs := flag.NewFlagSet("exchange", flag.ContinueOnError)
	bindClientFlags(fs)
	fs.String("type", "", "exchange declare: direct, topic, fanout or headers")
	fs.String("alternate", "", "exchange declare: the `exchange` that receives the records no binding matched")
	printFlags(w, fs)
}

var exchangeTypes = []weir.ExchangeType{weir.ExchangeDirect, weir.ExchangeTopic, weir.ExchangeFanout, weir.ExchangeHeaders}

func exchangeDeclare(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("exchange declare", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	typ := fs.String("type", "", "direct, topic, fanout or headers")
	alt := fs.String("alternate", "", "the exchange that receives the records no binding matched")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if !slices.Contains(exchangeTypes, weir.ExchangeType(*typ)) {
		if *typ == "" {
			return usagef("--type is required: direct, topic, fanout or headers")
		}
		return usagef("--type %q: want direct, topic, fanout or headers", *typ)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		x, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: pos[0], Type: weir.ExchangeType(*typ), AlternateExchange: *alt})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "declared %s exchange %s", x.Config.Type, x.Config.Name)
		if x.Config.AlternateExchange != "" {
			fmt.Fprintf(stdout, "; unmatched records go to %s", x.Config.AlternateExchange)
		}
		fmt.Fprintln(stdout)
		return nil
	})
}

func exchangeList(args []string, stdout io.Writer) error {
	return listCommand("exchange ls", args, stdout, "NAME\tTYPE\tBINDINGS\tUNROUTABLE",
		func(ctx context.Context, c *weir.Client) ([]string, error) {
			xs, err := c.ListExchanges(ctx)
			rows := make([]string, len(xs))
			for i, x := range xs {
				bindings := make([]string, len(x.Bindings))
				for j, b := range x.Bindings {
					bindings[j] = formatBinding(b)
				}
				if len(bindings) == 0 {
					bindings = []string{"-"}
				}
				rows[i] = fmt.Sprintf("%s\t%s\t%s\t%d", x.Config.Name, x.Config.Type, strings.Join(bindings, ", "), x.Unroutable)
			}
			return rows, err
		})
}

// formatBinding writes a binding as `key -> dest`, `{k=v} -> dest` or
// `-> exchange:dest`.
func formatBinding(b weir.Binding) string {
	var s strings.Builder
	if b.Key != "" {
		s.WriteString(b.Key + " ")
	}
	if len(b.Args) > 0 {
		args := make([]string, 0, len(b.Args))
		for _, k := range slices.Sorted(maps.Keys(b.Args)) {
			args = append(args, k+"="+b.Args[k])
		}
		s.WriteString("{" + strings.Join(args, ",") + "} ")
	}
	s.WriteString("-> ")
	if b.ToExchange {
		s.WriteString("exchange:")
	}
	s.WriteString(b.Destination)
	return s.String()
}

func exchangeRemove(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("exchange rm", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		for _, name := range pos {
			if err := c.DeleteExchange(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted exchange %s\n", name)
		}
		return nil
	})
}

func runBind(args []string, stdout, stderr io.Writer) int {
	return report("bind", bindCmd("bind", args, stdout), printBindUsage, stdout, stderr)
}

func runUnbind(args []string, stdout, stderr io.Writer) int {
	return report("unbind", bindCmd("unbind", args, stdout), printBindUsage, stdout, stderr)
}

func printBindUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir bind EXCHANGE DEST [--key K] [--arg name=value ...] [--to-exchange]
  weir unbind EXCHANGE DEST [--key K] [--arg name=value ...] [--to-exchange]

Binds an exchange to a stream (or a queue), or with --to-exchange to another
exchange, so that the records it matches go there; unbind removes the
binding with exactly these settings. --key is the routing key of a direct
exchange or the pattern of a topic exchange (order.*.paid, order.#); --arg
is a header a headers exchange matches, with x-match=any to match any of
them rather than all. Binding twice, or unbinding what is not bound,
changes nothing.

Flags:
`)
	fs := flag.NewFlagSet("bind", flag.ContinueOnError)
	bindClientFlags(fs)
	bindBindFlags(fs)
	printFlags(w, fs)
}

type bindFlags struct {
	key        string
	args       argsFlag
	toExchange bool
}

func bindBindFlags(fs *flag.FlagSet) *bindFlags {
	f := &bindFlags{}
	fs.StringVar(&f.key, "key", "", "routing key (direct) or pattern (topic)")
	fs.Var(&f.args, "arg", "a header to match `name=value` (headers exchanges); repeat for more")
	fs.BoolVar(&f.toExchange, "to-exchange", false, "DEST is an exchange, not a stream")
	return f
}

func bindCmd(name string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cf := bindClientFlags(fs)
	bf := bindBindFlags(fs)
	pos, err := parseArgs(fs, args, 2, 2)
	if err != nil {
		return err
	}
	b := weir.Binding{Destination: pos[1], ToExchange: bf.toExchange, Key: bf.key, Args: bf.args}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		if name == "bind" {
			err = c.Bind(ctx, pos[0], b)
		} else {
			err = c.Unbind(ctx, pos[0], b)
		}
		if err != nil {
			return err
		}
		verb := map[string]string{"bind": "bound", "unbind": "unbound"}[name]
		fmt.Fprintf(stdout, "%s %s: %s\n", verb, pos[0], formatBinding(b))
		return nil
	})
}

// argsFlag collects repeated --arg k=v flags.
type argsFlag map[string]string

func (a *argsFlag) String() string {
	parts := make([]string, 0, len(*a))
	for _, k := range slices.Sorted(maps.Keys(*a)) {
		parts = append(parts, k+"="+(*a)[k])
	}
	return strings.Join(parts, ",")
}

func (a *argsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("arg %q: want name=value", s)
	}
	if *a == nil {
		*a = argsFlag{}
	}
	(*a)[k] = v
	return nil
}

// pubExchange is `weir pub --exchange`: MSG, or each line of stdin, in
// batches, routed through the exchange with one routing key.
func pubExchange(ctx context.Context, c *weir.Client, exchange, routingKey string, mandatory bool, msg *string,
	record func([]byte) weir.Record, stdin io.Reader, stdout io.Writer) error {
	reached := map[string]bool{}
	published, unroutable := 0, 0
	send := func(recs []weir.Record) error {
		streams, lost, err := c.PublishExchange(ctx, exchange, routingKey, mandatory, recs...)
		if err != nil {
			return err
		}
		if lost || len(streams) == 0 {
			unroutable += len(recs)
		} else {
			published += len(recs)
		}
		for _, s := range streams {
			reached[s] = true
		}
		return nil
	}
	var err error
	if msg != nil {
		err = send([]weir.Record{record([]byte(*msg))})
	} else {
		var batch []weir.Record
		scanner := bufio.NewScanner(stdin)
		scanner.Buffer(make([]byte, 64<<10), maxLineBytes)
		for scanner.Scan() && err == nil {
			batch = append(batch, record(append([]byte(nil), scanner.Bytes()...)))
			if len(batch) == exchangeBatch {
				err = send(batch)
				batch = nil
			}
		}
		if err == nil && len(batch) > 0 {
			err = send(batch)
		}
		if err == nil && scanner.Err() != nil {
			err = fmt.Errorf("reading standard input: %w", scanner.Err())
		}
	}
	streams := slices.Sorted(maps.Keys(reached))
	if published > 0 {
		fmt.Fprintf(stdout, "published %d records through %s to %s\n", published, exchange, strings.Join(streams, ", "))
	}
	if err == nil && unroutable > 0 {
		if mandatory {
			return fmt.Errorf("%d records unroutable: no binding of %s matched routing key %q; they were not stored", unroutable, exchange, routingKey)
		}
		fmt.Fprintf(stdout, "%d records unroutable through %s (routing key %q): dropped\n", unroutable, exchange, routingKey)
	}
	return err
}
