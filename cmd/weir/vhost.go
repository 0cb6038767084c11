package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/protocol/amqp"
)

// AMQP virtual hosts are namespaces of queues and exchanges (see "Names
// and virtual hosts" in docs/PROTOCOLS.md): a vhost other than "/"
// exists while its amq.direct exchange does, so these commands are
// exchange and stream calls of the native API.

func runVhost(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir vhost: missing subcommand\nRun 'weir vhost -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printVhostUsage(stdout)
		return exitOK
	case "add", "create":
		return report("vhost add", vhostAdd(rest, stdout), printVhostUsage, stdout, stderr)
	case "ls", "list":
		return report("vhost ls", vhostList(rest, stdout), printVhostUsage, stdout, stderr)
	case "rm", "delete":
		return report("vhost rm", vhostRemove(rest, stdout), printVhostUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir vhost: unknown subcommand %q\nRun 'weir vhost -h' for usage.\n", sub)
	return exitUsage
}

func printVhostUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir vhost add NAME
  weir vhost ls
  weir vhost rm NAME

Adds, lists and removes AMQP virtual hosts. The vhost "/" always exists and
its queues and exchanges are the streams and exchanges of the same names;
those of another vhost are kept apart under names starting with
"_amqp.<vhost>." (what 'weir stream ls' and Kafka clients see). add
declares the vhost's amq.* exchanges; rm deletes the vhost and every queue,
stream and exchange in it, with their records.

Flags:
`)
	fs := flag.NewFlagSet("vhost", flag.ContinueOnError)
	bindClientFlags(fs)
	printFlags(w, fs)
}

// vhostArg parses the flags and the one vhost of add and rm, which never
// apply to "/".
func vhostArg(name string, args []string) (*clientFlags, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cf := bindClientFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return nil, "", err
	}
	if pos[0] == amqp.DefaultVhost {
		return nil, "", usagef("the vhost %q always exists and cannot be added or removed", pos[0])
	}
	return cf, pos[0], nil
}

func vhostAdd(args []string, stdout io.Writer) error {
	cf, vhost, err := vhostArg("vhost add", args)
	if err != nil {
		return err
	}
	if err := amqp.ValidateVhost(vhost); err != nil {
		return usagef("%v", err)
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		// The marker last: the vhost exists once all its exchanges do.
		xs := amqp.VhostExchanges(vhost)
		for i := len(xs) - 1; i >= 0; i-- {
			if _, err := c.DeclareExchange(ctx, weir.ExchangeConfig{Name: xs[i].Name, Type: weir.ExchangeType(xs[i].Type)}); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "added vhost %s\n", vhost)
		return nil
	})
}

func vhostList(args []string, stdout io.Writer) error {
	return listCommand("vhost ls", args, stdout, "VHOST\tQUEUES AND STREAMS\tEXCHANGES",
		func(ctx context.Context, c *weir.Client) ([]string, error) {
			xs, err := c.ListExchanges(ctx)
			if err != nil {
				return nil, err
			}
			ss, err := c.ListStreams(ctx)
			if err != nil {
				return nil, err
			}
			vhosts := []string{amqp.DefaultVhost}
			for _, x := range xs {
				if v, ok := amqp.VhostOfMarker(x.Config.Name); ok {
					vhosts = append(vhosts, v)
				}
			}
			slices.Sort(vhosts[1:])
			rows := make([]string, len(vhosts))
			for i, v := range vhosts {
				streams, exchanges := 0, 0
				for _, s := range ss {
					if inVhost(s.Config.Name, v) {
						streams++
					}
				}
				for _, x := range xs {
					if inVhost(x.Config.Name, v) {
						exchanges++
					}
				}
				rows[i] = fmt.Sprintf("%s\t%d\t%d", v, streams, exchanges)
			}
			return rows, nil
		})
}

// inVhost reports whether a broker name is of vhost.
func inVhost(name, vhost string) bool {
	v, _, err := amqp.ParseBrokerName(name)
	return err == nil && v == vhost
}

func vhostRemove(args []string, stdout io.Writer) error {
	cf, vhost, err := vhostArg("vhost rm", args)
	if err != nil {
		return err
	}
	return cf.run(func(ctx context.Context, c *weir.Client) error {
		xs, err := c.ListExchanges(ctx)
		if err != nil {
			return err
		}
		marker := amqp.VhostExchanges(vhost)[0].Name
		if !slices.ContainsFunc(xs, func(x weir.ExchangeInfo) bool { return x.Config.Name == marker }) {
			return fmt.Errorf("no vhost %q", vhost)
		}
		// The marker first: new connections to the vhost are refused
		// while the rest goes.
		if err := c.DeleteExchange(ctx, marker); err != nil {
			return err
		}
		prefix := amqp.VhostPrefix(vhost)
		exchanges, streams := 0, 0
		for _, x := range xs {
			if x.Config.Name != marker && strings.HasPrefix(x.Config.Name, prefix) {
				if err := c.DeleteExchange(ctx, x.Config.Name); err != nil {
					return err
				}
				exchanges++
			}
		}
		ss, err := c.ListStreams(ctx)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if strings.HasPrefix(s.Config.Name, prefix) {
				if err := c.DeleteStream(ctx, s.Config.Name); err != nil {
					return err
				}
				streams++
			}
		}
		fmt.Fprintf(stdout, "removed vhost %s (%d queues and streams, %d exchanges)\n", vhost, streams, exchanges+1)
		return nil
	})
}

// userVhosts shows or sets the vhosts a user of the users file may open.
func userVhosts(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user vhosts", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	all := fs.Bool("all", false, "let the user open every vhost")
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	name, vhosts := pos[0], pos[1:]
	if *all && len(vhosts) > 0 {
		return usagef("--all and a list of vhosts exclude each other")
	}
	path, u, err := ff.load()
	if err != nil {
		return err
	}
	if !*all && len(vhosts) == 0 {
		list, limited, err := u.Vhosts(name)
		if err != nil {
			return err
		}
		if !limited {
			fmt.Fprintf(stdout, "%s may open every vhost\n", name)
		} else {
			fmt.Fprintf(stdout, "%s may open: %s\n", name, strings.Join(list, " "))
		}
		return nil
	}
	if *all {
		vhosts = nil
	}
	if err := u.SetVhosts(name, vhosts); err != nil {
		return err
	}
	if err := u.Save(path); err != nil {
		return err
	}
	if *all {
		fmt.Fprintf(stdout, "%s may open every vhost (restart the server to apply)\n", name)
	} else {
		fmt.Fprintf(stdout, "%s may open: %s (restart the server to apply)\n", name, strings.Join(vhosts, " "))
	}
	return nil
}
