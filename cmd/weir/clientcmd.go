package main

// What the client commands (stream, pub, sub, group, bench) share: the
// --server flag, flags mixed with arguments, the connection, and errors.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	weir "github.com/weirmq/weir/client"
)

// defaultServer is the server client commands talk to without --server or
// WEIR_SERVER.
const defaultServer = "localhost:8080"

// callTimeout bounds each administration call of the client commands.
const callTimeout = 30 * time.Second

// clientFlags are the flags of every client command.
type clientFlags struct {
	server string
	token  string // bearer token for a server with authentication on
	tls    tlsFlags
}

func bindClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	server := defaultServer
	if env, ok := os.LookupEnv("WEIR_SERVER"); ok && env != "" {
		server = env
	}
	fs.StringVar(&f.server, "server", server, "Weir server, host:port or URL; https:// or a --tls-* flag for TLS (env WEIR_SERVER)")
	// The default is not taken from WEIR_TOKEN here, so that help never
	// prints the secret; dial reads the variable.
	fs.StringVar(&f.token, "token", "", "bearer token, from 'weir user token', for a server with authentication on (env WEIR_TOKEN)")
	f.tls.bind(fs)
	return f
}

// dial connects to the server. It does not call it: the command's first
// call reports an unreachable server.
func (f *clientFlags) dial(ctx context.Context) (*weir.Client, error) {
	opts := []weir.Option{weir.WithoutDialCheck(), weir.WithTimeout(callTimeout)}
	token := f.token
	if token == "" {
		token = os.Getenv("WEIR_TOKEN")
	}
	if token != "" {
		opts = append(opts, weir.WithToken(token))
	}
	tlsConfig, err := f.tls.config()
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		opts = append(opts, weir.WithTLS(tlsConfig))
	}
	return weir.Dial(ctx, f.server, opts...)
}

// run dials the server and calls fn with a context that SIGINT and SIGTERM
// cancel; the client is closed when fn returns.
func (f *clientFlags) run(fn func(ctx context.Context, c *weir.Client) error) error {
	ctx, cancel := signalContext()
	defer cancel()
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// listCommand runs a client command without arguments that prints a table:
// header and rows are tab-separated columns.
func listCommand(name string, args []string, stdout io.Writer, header string, rows func(ctx context.Context, c *weir.Client) ([]string, error)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cf := bindClientFlags(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		lines, err := rows(ctx, c)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for _, l := range lines {
			fmt.Fprintln(tw, l)
		}
		return tw.Flush()
	})
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parseArgs parses flags that may come before, between or after the
// positional arguments, and checks the count of those.
func parseArgs(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	switch {
	case len(positional) < minArgs:
		return nil, usagef("missing argument")
	case maxArgs >= 0 && len(positional) > maxArgs:
		return nil, usagef("unexpected argument %q", positional[maxArgs])
	}
	return positional, nil
}

// report prints err for the command name and returns the exit code: 0 for
// nil, 2 for a usage error (or the help asked with -h, then printed), 1
// otherwise.
func report(name string, err error, usage func(io.Writer), stdout, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "weir %s: %v\nRun 'weir %s -h' for usage.\n", name, err, name)
		return exitUsage
	}
	fmt.Fprintf(stderr, "weir %s: %v\n", name, err)
	return exitFailure
}

// signalContext is canceled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// parseStart reads a start position: earliest, latest, an offset, an
// RFC 3339 time, or a duration before now ("10m").
func parseStart(s string, now time.Time) (weir.StartPosition, error) {
	switch s {
	case "earliest":
		return weir.Earliest(), nil
	case "latest":
		return weir.Latest(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return weir.StartPosition{}, usagef("offset %d is negative", n)
		}
		return weir.AtOffset(n), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return weir.AtTime(t), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return weir.AtTime(now.Add(-d)), nil
	}
	return weir.StartPosition{}, usagef("position %q: want earliest, latest, an offset, an RFC 3339 time or a duration ago like 10m", s)
}

// headerFlag collects repeated --header k=v flags.
type headerFlag []weir.Header

func (h *headerFlag) String() string {
	parts := make([]string, len(*h))
	for i, x := range *h {
		parts[i] = x.Key + "=" + string(x.Value)
	}
	return strings.Join(parts, ",")
}

func (h *headerFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("header %q: want name=value", s)
	}
	*h = append(*h, weir.Header{Key: k, Value: []byte(v)})
	return nil
}

// printFlags writes the flags of fs in the style of serve's usage.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n\t%s%s\n", f.Name, name, usage, def)
	})
}
