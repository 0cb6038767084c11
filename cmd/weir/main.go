// Command weir runs a Weir node: one binary that is a durable, partitioned
// log and a queueing broker, spoken to over Kafka, AMQP 0-9-1, MQTT and HTTP.
//
//	weir [serve] [flags]   run a node (the default)
//	weir stream ...        create, list, describe and delete streams
//	weir queue ...         create, list, describe, purge, redrive and delete queues
//	weir exchange ...      declare, list and delete exchanges
//	weir bind ...          bind an exchange to a stream or an exchange
//	weir unbind ...        remove a binding
//	weir pub ...           publish records to a stream or through an exchange
//	weir sub ...           print records as they arrive
//	weir group ...         list, describe and reset consumer groups
//	weir connector ...     create, list, describe and remove CDC connectors (PostgreSQL)
//	weir events ...        append to, read and tail the event store
//	weir bench ...         measure throughput and latency
//	weir torture ...       crash campaign: SIGKILL under load, check what was acknowledged
//	weir user ...          add, list and remove users and bearer tokens
//	weir version           print the version
//	weir help [command]    show help
//
// The client commands talk to the server given with --server (default
// localhost:8080, or WEIR_SERVER) through the Go SDK.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the version of this build, set with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command failed: startup error, unclean shutdown
	exitUsage   = 2 // the command line or the configuration is wrong
)

// command is a subcommand of weir.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
	usage   func(w io.Writer)
}

// commands lists the subcommands in the order help shows them.
var commands = []command{
	{name: "serve", summary: "run a Weir node (the default when no command is given)", run: runServe, usage: printServeUsage},
	{name: "stream", summary: "create, list, describe and delete streams", run: runStream, usage: printStreamUsage},
	{name: "queue", summary: "create, list, describe, purge, redrive and delete queues", run: runQueue, usage: printQueueUsage},
	{name: "exchange", summary: "declare, list and delete exchanges", run: runExchange, usage: printExchangeUsage},
	{name: "bind", summary: "bind an exchange to a stream or another exchange", run: runBind, usage: printBindUsage},
	{name: "unbind", summary: "remove a binding of an exchange", run: runUnbind, usage: printBindUsage},
	{name: "pub", summary: "publish records to a stream or through an exchange", run: runPub, usage: printPubUsage},
	{name: "sub", summary: "print the records of a stream as they arrive", run: runSub, usage: printSubUsage},
	{name: "request", summary: "send a request and print the reply", run: runRequest, usage: printRequestUsage},
	{name: "respond", summary: "answer the requests arriving in a queue", run: runRespond, usage: printRespondUsage},
	{name: "group", summary: "list, describe and reset consumer groups", run: runGroup, usage: printGroupUsage},
	{name: "connector", summary: "create, list, describe and remove change data capture connectors", run: runConnector, usage: printConnectorUsage},
	{name: "events", summary: "append to, read and tail the event store", run: runEvents, usage: printEventsUsage},
	{name: "bench", summary: "measure publish and consume throughput and latency", run: runBench, usage: printBenchUsage},
	{name: "torture", summary: "crash campaign: kill a server under real clients' load and check what it acknowledged", run: runTorture, usage: printTortureUsage},
	{name: "vhost", summary: "add, list and remove AMQP virtual hosts", run: runVhost, usage: printVhostUsage},
	{name: "user", summary: "add, list and remove users and their tokens (authentication)", run: runUser, usage: printUserUsage},
	{name: "version", summary: "print the version of this build", run: runVersion, usage: printVersionUsage},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the process's exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runServe(nil, stdout, stderr)
	}
	switch name := args[0]; {
	case name == "-h" || name == "-help" || name == "--help":
		printUsage(stdout)
		return exitOK
	case name == "help":
		return runHelp(args[1:], stdout, stderr)
	case strings.HasPrefix(name, "-"):
		return runServe(args, stdout, stderr) // flags with no command are serve's
	}
	cmd, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "weir: unknown command %q\nRun 'weir help' for usage.\n", args[0])
		return exitUsage
	}
	return cmd.run(args[1:], stdout, stderr)
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Weir is a message broker: durable streams, queues and exchanges, spoken to
over Kafka, AMQP 0-9-1, MQTT and HTTP.

Usage:
  weir [command] [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "show this help, or the help of a command")
	fmt.Fprint(w, "\nRun 'weir help <command>' for the flags of a command.\n")
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printUsage(stdout)
		return exitOK
	case 1:
		if cmd, ok := lookupCommand(args[0]); ok {
			cmd.usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "weir help: unknown command %q\nRun 'weir help' for usage.\n", args[0])
	default:
		fmt.Fprintf(stderr, "weir help: want at most one command, got %q\n", args)
	}
	return exitUsage
}

// parseFlags parses args with fs for the command name. It reports whether
// the command should go on; when not, code is the exit code, after -h
// printed the command's usage to stdout or an error went to stderr.
func parseFlags(fs *flag.FlagSet, name string, args []string, usage func(io.Writer), stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard) // errors are reported below, in one place
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			usage(stdout)
			return exitOK, false
		}
		fmt.Fprintf(stderr, "weir %s: %v\nRun 'weir %s -h' for usage.\n", name, err, name)
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "weir %s: unexpected argument %q\nRun 'weir %s -h' for usage.\n", name, fs.Arg(0), name)
		return exitUsage, false
	}
	return exitOK, true
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, "version", args, printVersionUsage, stdout, stderr); !ok {
		return code
	}
	fmt.Fprintf(stdout, "weir %s\nbuilt with %s for %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

func printVersionUsage(w io.Writer) {
	fmt.Fprint(w, "Usage:\n  weir version\n\nPrints the version of this build and the Go version it was built with.\n")
}

// buildVersion is the version set at link time or, failing that, the module
// version recorded by "go install module@version".
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return version
}
