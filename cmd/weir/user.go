package main

// weir user: edit the users file that turns authentication on (see
// internal/auth and docs/SECURITY.md).

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/weirmq/weir/internal/auth"
	"github.com/weirmq/weir/internal/server"
)

func runUser(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "weir user: missing subcommand\nRun 'weir user -h' for usage.\n")
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		printUserUsage(stdout)
		return exitOK
	case "add":
		return report("user add", userAdd(rest, os.Stdin, stdout), printUserUsage, stdout, stderr)
	case "passwd":
		return report("user passwd", userPasswd(rest, os.Stdin, stdout), printUserUsage, stdout, stderr)
	case "rm", "delete":
		return report("user rm", userRemove(rest, stdout), printUserUsage, stdout, stderr)
	case "ls", "list":
		return report("user ls", userList(rest, stdout), printUserUsage, stdout, stderr)
	case "token":
		return report("user token", userToken(rest, stdout), printUserUsage, stdout, stderr)
	case "vhosts":
		return report("user vhosts", userVhosts(rest, stdout), printUserUsage, stdout, stderr)
	case "grant":
		return report("user grant", userGrant(rest, stdout), printUserUsage, stdout, stderr)
	case "revoke":
		return report("user revoke", userRevoke(rest, stdout), printUserUsage, stdout, stderr)
	case "permissions":
		return report("user permissions", userPermissions(rest, stdout), printUserUsage, stdout, stderr)
	case "limit":
		return report("user limit", userLimit(rest, stdout), printUserUsage, stdout, stderr)
	}
	fmt.Fprintf(stderr, "weir user: unknown subcommand %q\nRun 'weir user -h' for usage.\n", sub)
	return exitUsage
}

// userFileFlags are the flags that locate the users file.
type userFileFlags struct {
	users  string
	config string
}

func bindUserFileFlags(fs *flag.FlagSet) *userFileFlags {
	f := &userFileFlags{}
	fs.StringVar(&f.users, "users", "", "users file (default: env WEIR_USERS, else the users option of --config)")
	fs.StringVar(&f.config, "config", "", "server configuration file whose users option names the users file")
	return f
}

// path is the users file: --users, WEIR_USERS, or the users option of the
// --config file.
// load reads the users file the flags name.
func (f *userFileFlags) load() (string, *auth.Users, error) {
	path, err := f.path()
	if err != nil {
		return "", nil, err
	}
	u, err := auth.Load(path)
	return path, u, err
}

func (f *userFileFlags) path() (string, error) {
	if f.users != "" {
		return f.users, nil
	}
	if env := os.Getenv("WEIR_USERS"); env != "" {
		return env, nil
	}
	if f.config != "" {
		p, err := server.UsersFileFromConfig(f.config)
		if err != nil {
			return "", err
		}
		if p != "" {
			return p, nil
		}
		return "", usagef("%s sets no users file; give --users FILE", f.config)
	}
	return "", usagef("no users file: give --users FILE, WEIR_USERS or --config FILE")
}

// edit loads the users file (empty when it does not exist yet), applies
// change and saves the file.
func (f *userFileFlags) edit(change func(u *auth.Users) error) (string, error) {
	path, err := f.path()
	if err != nil {
		return "", err
	}
	u, err := auth.LoadOrNew(path)
	if err != nil {
		return "", err
	}
	if err := change(u); err != nil {
		return "", err
	}
	return path, u.Save(path)
}

func userAdd(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := auth.CheckName(name); err != nil {
		return usageError{err.Error()}
	}
	password, generated, err := newPassword(*fromStdin, stdin)
	if err != nil {
		return err
	}
	path, err := ff.edit(func(u *auth.Users) error { return u.Add(name, password) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added user %s to %s\n", name, path)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n(shown once: it is not stored)\n", password)
	}
	return nil
}

func userPasswd(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("user passwd", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	password, generated, err := newPassword(*fromStdin, stdin)
	if err != nil {
		return err
	}
	path, err := ff.edit(func(u *auth.Users) error { return u.SetPassword(pos[0], password) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "changed the password of %s in %s\n", pos[0], path)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n(shown once: it is not stored)\n", password)
	}
	return nil
}

// newPassword reads the password from stdin, or generates one (which the
// caller prints once): typing a password as an argument would leave it in
// the shell's history and the process list.
func newPassword(fromStdin bool, stdin io.Reader) (password string, generated bool, err error) {
	if !fromStdin {
		b := make([]byte, 18)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b), true, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read password: %w", err)
	}
	password = strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", false, usagef("--password-stdin: stdin holds no password")
	}
	return password, false, nil
}

func userRemove(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user rm", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, u, err := ff.load()
	if err != nil {
		return err
	}
	if err := u.Remove(pos[0]); err != nil {
		return err
	}
	if err := u.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed user %s from %s\n", pos[0], path)
	return nil
}

func userList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user ls", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	if _, err := parseArgs(fs, args, 0, 0); err != nil {
		return err
	}
	_, u, err := ff.load()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTOKENS\tCREATED")
	for _, x := range u.Info() {
		created := "-"
		if !x.Created.IsZero() {
			created = x.Created.Format("2006-01-02T15:04:05Z07:00")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Name, strconv.Itoa(x.Tokens), created)
	}
	return tw.Flush()
}

func userToken(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("user token", flag.ContinueOnError)
	ff := bindUserFileFlags(fs)
	revoke := fs.Bool("revoke-all", false, "remove every token of the user instead of creating one")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, u, err := ff.load()
	if err != nil {
		return err
	}
	if *revoke {
		n, err := u.RevokeTokens(pos[0])
		if err != nil {
			return err
		}
		if err := u.Save(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d token(s) of %s (a running server keeps accepting them until restarted)\n", n, pos[0])
		return nil
	}
	tok, err := u.NewToken(pos[0])
	if err != nil {
		return err
	}
	if err := u.Save(path); err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func printUserUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  weir user add NAME [--password-stdin]
  weir user passwd NAME [--password-stdin]
  weir user rm NAME
  weir user ls
  weir user token NAME [--revoke-all]
  weir user vhosts NAME [VHOST ...] [--all]
  weir user grant NAME RESOURCE PATTERN ACTIONS | --admin
  weir user revoke NAME RESOURCE PATTERN [ACTIONS] | --admin
  weir user permissions NAME
  weir user limit NAME [--max-connections N] [--produce-bytes-per-second B] [--consume-bytes-per-second B]

Edits the users file, which turns authentication on when the server's users
option names it (--users FILE, WEIR_USERS, or users: in the YAML file).
The file keeps salted hashes only: an argon2id hash of each password, the
SCRAM-SHA-256 and SCRAM-SHA-512 stored keys, and the SHA-256 of each bearer
token. It is created with mode 0600 by the first add.

add and passwd read the password from the first line of stdin with
--password-stdin, and otherwise generate one and print it once. token
creates a bearer token for the HTTP API and the SDK and prints it once
('weir stream ls --token TOKEN', WEIR_TOKEN, weir.WithToken). A running
server reads the file when it starts: restart it after editing.

vhosts limits the AMQP virtual hosts the user may open to those named (a
new user may open all); --all lifts the limit; with neither it prints them.

grant adds a rule: RESOURCE is stream, queue, exchange, subscription, group,
topic (MQTT) or *; PATTERN a name or a glob ('orders.*'; '*' matches any
run of characters); ACTIONS a comma list of publish, consume, manage. A
user without any rule may do everything; its first grant limits it to its
rules. revoke removes actions (all without ACTIONS) from the rule of exactly
that RESOURCE and PATTERN; revoking the last rule leaves a user allowed
nothing. --admin makes a user an administrator (allowed everything).
limit sets the user's own connection limit and byte-rate quotas (each flag
left out is set to 0: the server's limit, no quota).

Flags:
`)
	fs := flag.NewFlagSet("user", flag.ContinueOnError)
	bindUserFileFlags(fs)
	fs.Bool("password-stdin", false, "user add, user passwd: read the password from the first line of stdin")
	fs.Bool("revoke-all", false, "user token: remove every token of the user instead of creating one")
	fs.Bool("all", false, "user vhosts: let the user open every vhost")
	fs.Bool("admin", false, "user grant, user revoke: the administrator flag instead of a rule")
	fs.Int("max-connections", 0, "user limit: the user's open connections at most (0: the server's max-connections-per-user)")
	fs.Int64("produce-bytes-per-second", 0, "user limit: the user's produce byte-rate quota (0: none)")
	fs.Int64("consume-bytes-per-second", 0, "user limit: the user's consume byte-rate quota (0: none)")
	printFlags(w, fs)
}
