package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	weir "github.com/weirmq/weir/client"
)

// maxLineBytes bounds a line of `weir pub` input: a record.
const maxLineBytes = 64 << 20

func runPub(args []string, stdout, stderr io.Writer) int {
	return report("pub", pub(args, os.Stdin, stdout), printPubUsage, stdout, stderr)
}

func printPubUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir pub STREAM [--key K] [--header name=value ...] [--delay D] [--ttl D] [MSG | -]
  weir pub --exchange X [--routing-key K] [--mandatory] [--key K] [--header ...] [MSG | -]

Publishes MSG as one record, or, with - or no MSG, each line of standard
input as a record (batched; it prints how many were stored). The headers
and the key apply to every record. --delay holds the records back from
queues and shared subscriptions for a while (a deliver-at header); --ttl
has them dropped if not acknowledged in time (an expires-at header).

With --exchange the records are routed through that exchange, with
--routing-key, to every stream its bindings reach (see 'weir exchange').
Records that reach none are dropped, or with --mandatory returned: nothing
is stored and the command fails.

Flags:
`)
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	bindClientFlags(fs)
	bindPubFlags(fs)
	printFlags(w, fs)
}

type pubFlags struct {
	key        string
	headers    headerFlag
	delay      time.Duration
	ttl        time.Duration
	exchange   string
	routingKey string
	mandatory  bool
}

func bindPubFlags(fs *flag.FlagSet) *pubFlags {
	f := &pubFlags{}
	fs.StringVar(&f.key, "key", "", "record key (records of a key go to one partition, in order)")
	fs.Var(&f.headers, "header", "a record header `name=value`; repeat for more")
	fs.DurationVar(&f.delay, "delay", 0, "deliver the records to queues and shared subscriptions no sooner than this from now")
	fs.DurationVar(&f.ttl, "ttl", 0, "drop the records if no queue or shared subscription acknowledged them within this from now")
	fs.StringVar(&f.exchange, "exchange", "", "publish through this `exchange` instead of to a stream")
	fs.StringVar(&f.routingKey, "routing-key", "", "with --exchange: the records' routing `key`")
	fs.BoolVar(&f.mandatory, "mandatory", false, "with --exchange: fail, storing nothing, when the records reach no stream")
	return f
}

func pub(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pf := bindPubFlags(fs)
	pos, err := parseArgs(fs, args, 0, 2)
	if err != nil {
		return err
	}
	switch {
	case pf.exchange != "" && len(pos) > 1:
		return usagef("unexpected argument %q: --exchange takes no stream", pos[1])
	case pf.exchange == "" && len(pos) == 0:
		return usagef("missing argument: a stream, or --exchange")
	case pf.exchange == "" && (pf.routingKey != "" || pf.mandatory):
		return usagef("--routing-key and --mandatory apply to --exchange only")
	case pf.delay < 0:
		return usagef("--delay %v is negative", pf.delay)
	case pf.ttl < 0:
		return usagef("--ttl %v is negative", pf.ttl)
	}
	record := func(value []byte) weir.Record {
		r := weir.Record{Value: value, Headers: pf.headers}
		if pf.delay > 0 {
			r.Headers = append(slices.Clip(r.Headers), weir.DeliverAfter(pf.delay))
		}
		if pf.ttl > 0 {
			r.Headers = append(slices.Clip(r.Headers), weir.ExpiresAfter(pf.ttl))
		}
		if pf.key != "" {
			r.Key = []byte(pf.key)
		}
		return r
	}
	if pf.exchange != "" {
		var msg *string
		if len(pos) == 1 && pos[0] != "-" {
			msg = &pos[0]
		}
		return cf.run(func(ctx context.Context, c *weir.Client) error {
			return pubExchange(ctx, c, pf.exchange, pf.routingKey, pf.mandatory, msg, record, stdin, stdout)
		})
	}
	stream := pos[0]
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		if len(pos) == 2 && pos[1] != "-" {
			res, err := c.Publish(ctx, stream, record([]byte(pos[1])))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "published to %s partition %d offset %d\n", stream, res[0].Partition, res[0].Offset)
			return nil
		}

		producer := c.NewProducer(stream)
		var mu sync.Mutex
		var firstErr error
		stored := 0
		scanner := bufio.NewScanner(stdin)
		scanner.Buffer(make([]byte, 64<<10), maxLineBytes)
		for scanner.Scan() {
			value := append([]byte(nil), scanner.Bytes()...)
			producer.Send(ctx, record(value), func(_ weir.PublishResult, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				stored++
			})
			mu.Lock()
			failed := firstErr != nil
			mu.Unlock()
			if failed {
				break
			}
		}
		readErr := scanner.Err()
		closeErr := producer.Close(ctx)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "published %d records to %s\n", stored, stream)
		switch {
		case firstErr != nil:
			return firstErr
		case readErr != nil:
			return fmt.Errorf("reading standard input: %w", readErr)
		}
		return closeErr
	})
}

func runSub(args []string, stdout, stderr io.Writer) int {
	return report("sub", sub(args, stdout), printSubUsage, stdout, stderr)
}

func printSubUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir sub STREAM [--group G] [--from earliest|latest|OFFSET|TIME] [--filter EXPR]
                  [--count N] [--format raw|json]
  weir sub QUEUE --shared [SUBSCRIPTION] [--prefetch N] [--count N] [--format raw|json]

Prints the records of a stream as they arrive, until interrupted or --count
records. With --group it is a member of that consumer group (--from applies
to partitions the group has no committed offset for) and commits what it
printed. Without, it reads live records only (--from latest, the default) or
every partition from --from. TIME is RFC 3339 (2026-01-02T15:04:05Z) or a
duration ago (10m). --filter prints only the records a CEL expression
selects (headers['type'] == 'order.paid', key.startsWith('eu-')); the server
does the filtering.

With --shared it is one of the competing consumers of a queue (or, with
SUBSCRIPTION, of a shared subscription of the stream) and acknowledges each
record it printed; it holds up to --prefetch records at a time, and those it
did not print go back to the queue when it exits.

--format raw prints each value on a line; json prints an object per line:
{"stream","partition","offset","timestamp","key","value","headers"}, with
key and value as strings, or as key_base64 and value_base64 when they are
not UTF-8, and with --shared "delivery_count".

Flags:
`)
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	bindClientFlags(fs)
	bindSubFlags(fs)
	printFlags(w, fs)
}

type subFlags struct {
	group    string
	shared   sharedFlag
	filter   string
	prefetch int
	from     string
	count    int
	format   string
}

// sharedFlag is --shared: a flag that may stand alone (the queue's own
// subscription, or the subscription named by the next argument) or take a
// value (--shared=NAME).
type sharedFlag struct {
	set  bool
	name string
}

func (f *sharedFlag) String() string   { return f.name }
func (f *sharedFlag) IsBoolFlag() bool { return true }

func (f *sharedFlag) Set(s string) error {
	switch s {
	case "true":
		f.set, f.name = true, ""
	case "false":
		f.set, f.name = false, ""
	default:
		f.set, f.name = true, s
	}
	return nil
}

func bindSubFlags(fs *flag.FlagSet) *subFlags {
	f := &subFlags{}
	fs.StringVar(&f.group, "group", "", "consume as a member of this consumer group")
	fs.Var(&f.shared, "shared", "consume as one of the competing consumers of the queue, or of the shared `subscription` named")
	fs.StringVar(&f.filter, "filter", "", "print only the records this CEL `expression` selects (not with --shared)")
	fs.IntVar(&f.prefetch, "prefetch", 0, "with --shared: records held unacknowledged at most (0: --count, at most 100)")
	fs.StringVar(&f.from, "from", "", "where to start: earliest, latest, an offset or a time (default latest)")
	fs.IntVar(&f.count, "count", 0, "exit after this many records (0: run until interrupted)")
	fs.StringVar(&f.format, "format", "raw", "output format: raw or json")
	return f
}

func sub(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	cf := bindClientFlags(fs)
	sf := bindSubFlags(fs)
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	opts, err := sf.options(pos)
	if err != nil {
		return err
	}

	return cf.run(func(ctx context.Context, c *weir.Client) error {
		ctx, cancel := context.WithCancel(ctx) // --count reached: stop
		defer cancel()
		out := bufio.NewWriter(stdout)
		var mu sync.Mutex
		printed := 0
		var writeErr error
		handler := func(hctx context.Context, m *weir.Message) error {
			mu.Lock()
			defer mu.Unlock()
			if sf.count > 0 && printed >= sf.count {
				return hctx.Err() // stopping: not printed, so not committed
			}
			if writeErr = printRecord(out, sf.format, m); writeErr == nil {
				writeErr = out.Flush()
			}
			if writeErr != nil {
				return writeErr
			}
			printed++
			if sf.count > 0 && printed == sf.count {
				cancel()
			}
			return nil
		}
		consumer, err := c.Consume(ctx, pos[0], handler, opts...)
		if err != nil {
			return err
		}
		err = consumer.Wait()
		if errors.Is(err, writeErr) && writeErr != nil {
			return fmt.Errorf("writing: %w", writeErr)
		}
		return err
	})
}

// options checks the flags and positional arguments of sub and returns
// the consume options they make.
func (sf *subFlags) options(pos []string) ([]weir.ConsumeOption, error) {
	switch {
	case sf.format != "raw" && sf.format != "json":
		return nil, usagef("--format %q: want raw or json", sf.format)
	case sf.count < 0:
		return nil, usagef("--count %d is negative", sf.count)
	case sf.prefetch < 0:
		return nil, usagef("--prefetch %d is negative", sf.prefetch)
	case len(pos) == 2 && (!sf.shared.set || sf.shared.name != ""):
		return nil, usagef("unexpected argument %q", pos[1])
	}
	if sf.shared.set {
		switch {
		case sf.group != "":
			return nil, usagef("--group and --shared exclude each other")
		case sf.from != "":
			return nil, usagef("--from does not apply to --shared: a shared subscription starts where it was created to")
		case sf.filter != "":
			return nil, usagef("--filter does not apply to --shared: a queue or shared subscription has its own filter (queue create --filter)")
		}
		subscription := sf.shared.name
		if len(pos) == 2 {
			subscription = pos[1]
		}
		prefetch := sf.prefetch
		if prefetch == 0 {
			// Records fetched and not printed go back with a delivery
			// counted: take no more than will be printed.
			prefetch = 100
			if sf.count > 0 {
				prefetch = min(sf.count, prefetch)
			}
		}
		return []weir.ConsumeOption{weir.Shared(subscription), weir.Prefetch(prefetch)}, nil
	}
	if sf.prefetch > 0 {
		return nil, usagef("--prefetch applies to --shared only")
	}
	var opts []weir.ConsumeOption
	switch {
	case sf.group != "":
		opts = append(opts, weir.Group(sf.group))
	case sf.from == "" || sf.from == "latest":
		opts = append(opts, weir.Ephemeral())
	default:
		opts = append(opts, weir.FromPositions(nil))
	}
	if sf.from != "" && (sf.group != "" || sf.from != "latest") {
		start, err := parseStart(sf.from, time.Now())
		if err != nil {
			return nil, err
		}
		opts = append(opts, weir.Start(start))
	}
	if sf.filter != "" {
		opts = append(opts, weir.Filter(sf.filter))
	}
	return opts, nil
}

// jsonRecord is a record in `weir sub --format json`.
type jsonRecord struct {
	Stream      string       `json:"stream"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	Timestamp   time.Time    `json:"timestamp"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   string       `json:"key_base64,omitempty"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 string       `json:"value_base64,omitempty"`
	Headers     []jsonHeader `json:"headers,omitempty"`
	// DeliveryCount: shared mode only.
	DeliveryCount int32 `json:"delivery_count,omitempty"`
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func printRecord(w io.Writer, format string, m *weir.Message) error {
	r := &m.Record
	if format == "raw" {
		_, err := fmt.Fprintf(w, "%s\n", r.Value)
		return err
	}
	j := jsonRecord{Stream: r.Stream, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, DeliveryCount: m.DeliveryCount}
	j.Key, j.KeyBase64 = textOrBase64(r.Key)
	j.Value, j.ValueBase64 = textOrBase64(r.Value)
	for _, h := range r.Headers {
		j.Headers = append(j.Headers, jsonHeader{Key: h.Key, Value: string(h.Value)})
	}
	return json.NewEncoder(w).Encode(j)
}

// textOrBase64 returns b as a string if it is UTF-8, else in base64; nil
// is neither.
func textOrBase64(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}
