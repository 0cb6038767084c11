package main

// weir user grant|revoke|permissions|limit: the authorization rules of the
// users file (internal/auth/permissions.go; "Authorization" in
// docs/SECURITY.md).

import (
	"flag"
	"fmt"
	"io"

	"github.com/weirmq/weir/internal/auth"
)

// permissionArgs parses RESOURCE PATTERN [ACTIONS].
func permissionArgs(pos []string, needActions bool) (auth.Permission, error) {
	if len(pos) < 2 || (needActions && len(pos) < 3) {
		return auth.Permission{}, usagef("want RESOURCE PATTERN ACTIONS (e.g. stream 'orders.*' publish,consume)")
	}
	p := auth.Permission{Resource: auth.Resource(pos[0]), Name: pos[1]}
	if len(pos) == 3 {
		acts, err := auth.ParseActions(pos[2])
		if err != nil {
			return p, usagef("%v", err)
		}
		p.Actions = acts
	}
	if needActions {
		if err := auth.CheckPermission(p); err != nil {
			return p, usagef("%v", err)
		}
	}
	return p, nil
}

func userGrant(args []string, stdout io.Writer) error { return userGrantOrRevoke(args, stdout, true) }

func userRevoke(args []string, stdout io.Writer) error { return userGrantOrRevoke(args, stdout, false) }

// userGrantOrRevoke is `weir user grant` (grant) and `weir user revoke`.
func userGrantOrRevoke(args []string, stdout io.Writer, grant bool) error {
	verb, adminHelp := "revoke", "take the user's administrator flag away instead of a rule"
	if grant {
		verb, adminHelp = "grant", "make the user an administrator (allowed everything) instead of adding a rule"
	}
	fs := flag.NewFlagSet("user "+verb, flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	admin := fs.Bool("admin", false, adminHelp)
	pos, err := parseArgs(fs, args, 1, 4)
	if err != nil {
		return err
	}
	name := pos[0]
	if *admin {
		if len(pos) > 1 {
			return usagef("--admin takes no rule")
		}
		path, err := ff.edit(func(u *auth.Users) error { return u.SetAdmin(name, grant) })
		if err != nil {
			return err
		}
		if grant {
			fmt.Fprintf(stdout, "%s is an administrator (%s)\n", name, path)
		} else {
			fmt.Fprintf(stdout, "%s is no longer an administrator (%s)\n", name, path)
		}
		return nil
	}
	p, err := permissionArgs(pos[1:], grant)
	if err != nil {
		return err
	}
	path, err := ff.edit(func(u *auth.Users) error {
		if grant {
			return u.Grant(name, p)
		}
		return u.Revoke(name, p)
	})
	if err != nil {
		return err
	}
	if grant {
		fmt.Fprintf(stdout, "granted %s to %s (%s)\n", p, name, path)
		return nil
	}
	what := "every action"
	if len(p.Actions) > 0 {
		what = pos[3]
	}
	fmt.Fprintf(stdout, "revoked %s on %s %q from %s (%s)\n", what, p.Resource, p.Name, name, path)
	return nil
}

func userPermissions(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user permissions", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	_, u, err := ff.load()
	if err != nil {
		return err
	}
	rules, limited, admin, err := u.Permissions(pos[0])
	if err != nil {
		return err
	}
	switch {
	case admin:
		fmt.Fprintln(stdout, "administrator: allowed everything")
	case !limited:
		fmt.Fprintln(stdout, "no permissions key: allowed everything (weir user grant limits the user to its rules)")
	case len(rules) == 0:
		fmt.Fprintln(stdout, "no rules: allowed nothing")
	}
	for _, r := range rules {
		fmt.Fprintln(stdout, r)
	}
	if n := u.MaxConnections(pos[0]); n > 0 {
		fmt.Fprintf(stdout, "max-connections %d\n", n)
	}
	if produce, consume := u.Quotas(pos[0]); produce > 0 || consume > 0 {
		fmt.Fprintf(stdout, "produce-bytes-per-second %d\nconsume-bytes-per-second %d\n", produce, consume)
	}
	return nil
}

func userLimit(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user limit", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	maxConns := fs.Int("max-connections", 0, "the user's open connections at most (0: the server's max-connections-per-user)")
	produce := fs.Int64("produce-bytes-per-second", 0, "the user's produce byte-rate quota (0: none)")
	consume := fs.Int64("consume-bytes-per-second", 0, "the user's consume byte-rate quota (0: none)")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := ff.edit(func(u *auth.Users) error {
		if err := u.SetMaxConnections(pos[0], *maxConns); err != nil {
			return err
		}
		return u.SetQuotas(pos[0], *produce, *consume)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "max-connections of %s: %d, produce-bytes-per-second: %d, consume-bytes-per-second: %d (%s)\n",
		pos[0], *maxConns, *produce, *consume, path)
	return nil
}
