package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/weirmq/weir/internal/auth"
)

// TestUserCommands edits a users file with weir user and checks it with
// internal/auth, which the server loads.
func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	run := func(stdin string, env []string, args ...string) (int, string, string) {
		return weirCmd(t, stdin, env, args...)
	}

	code, out, errOut := run("wonderland\n", nil, "user", "add", "alice", "--password-stdin", "--users", users)
	expect(t, code, out, errOut, 0, []string{"added user alice to " + users}, nil)
	if strings.Contains(out, "wonderland") {
		t.Errorf("the password was printed: %s", out)
	}

	// Without --password-stdin a password is generated and printed once.
	code, out, errOut = run("", []string{"WEIR_USERS=" + users}, "user", "add", "bob")
	expect(t, code, out, errOut, 0, []string{"added user bob", "password: "}, nil)
	bobPassword := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)[1]

	code, out, errOut = run("", nil, "user", "add", "alice", "--users", users)
	expect(t, code, out, errOut, 1, nil, []string{"user already exists: alice"})
	code, out, errOut = run("", nil, "user", "add", "a:b", "--users", users)
	expect(t, code, out, errOut, 2, nil, []string{"invalid user name"})
	code, out, errOut = run("", nil, "user", "add", "carol", "--password-stdin", "--users", users)
	expect(t, code, out, errOut, 2, nil, []string{"stdin holds no password"})

	code, out, errOut = run("", nil, "user", "token", "alice", "--users", users)
	expect(t, code, out, errOut, 0, []string{"weir_"}, nil)
	token := strings.TrimSpace(out)
	code, out, errOut = run("", nil, "user", "token", "nobody", "--users", users)
	expect(t, code, out, errOut, 1, nil, []string{"no such user: nobody"})

	// The users option of a server configuration file names the file too.
	config := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(config, []byte("users: "+users+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("", nil, "user", "ls", "--config", config)
	expect(t, code, out, errOut, 0, []string{"NAME", "alice", "bob"}, nil)
	if !regexp.MustCompile(`alice\s+1\s`).MatchString(out) {
		t.Errorf("alice should have one token:\n%s", out)
	}

	data, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"wonderland", bobPassword, token} {
		if strings.Contains(string(data), secret) {
			t.Errorf("the users file holds the secret %q", secret)
		}
	}
	u, err := auth.Load(users)
	if err != nil {
		t.Fatal(err)
	}
	if u.CheckPassword("alice", "wonderland") != nil || u.CheckPassword("bob", bobPassword) != nil {
		t.Error("the file does not hold the passwords given")
	}
	if name, err := u.CheckToken(token); err != nil || name != "alice" {
		t.Errorf("token: %q, %v", name, err)
	}

	code, out, errOut = run("", nil, "user", "rm", "bob", "--users", users)
	expect(t, code, out, errOut, 0, []string{"removed user bob"}, nil)
	code, out, errOut = run("", nil, "user", "rm", "bob", "--users", users)
	expect(t, code, out, errOut, 1, nil, []string{"no such user: bob"})
	code, out, errOut = run("", nil, "user", "token", "alice", "--revoke-all", "--users", users)
	expect(t, code, out, errOut, 0, []string{"revoked 1 token(s) of alice"}, nil)
	code, out, errOut = run("", nil, "user", "ls", "--users", users)
	expect(t, code, out, errOut, 0, []string{"alice"}, nil)
	if strings.Contains(out, "bob") {
		t.Errorf("bob still listed:\n%s", out)
	}

	code, out, errOut = run("", nil, "user", "ls")
	expect(t, code, out, errOut, 2, nil, []string{"no users file"})
	code, out, errOut = run("", nil, "user", "ls", "--users", filepath.Join(dir, "missing.yaml"))
	expect(t, code, out, errOut, 1, nil, []string{"missing.yaml"})
	if err := os.WriteFile(users, []byte("users:\n  - name: alice\n    password: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("", nil, "user", "ls", "--users", users)
	expect(t, code, out, errOut, 1, nil, []string{"line 3", "field password"})
}

// TestClientCommandsWithToken runs a server with a users file: client
// commands without a token are refused, with --token or WEIR_TOKEN they
// work.
func TestClientCommandsWithToken(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.yaml")
	code, out, errOut := weirCmd(t, "pw\n", nil, "user", "add", "alice", "--password-stdin", "--users", users)
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = weirCmd(t, "", nil, "user", "token", "alice", "--users", users)
	expect(t, code, out, errOut, 0, nil, nil)
	token := strings.TrimSpace(out)

	p := startWeir(t, cleanEnv("WEIR_USERS="+users), "serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0",
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=", "--log-level", "warn")
	addr := p.waitForLine(t, "http listening on ")
	defer func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.exit(t); code != 0 {
			t.Errorf("server exit code %d; stderr:\n%s", code, &p.stderr)
		}
	}()

	code, out, errOut = weirCmd(t, "", nil, "stream", "create", "orders", "--server", addr)
	expect(t, code, out, errOut, 1, nil, []string{"unauthenticated"})
	code, out, errOut = weirCmd(t, "", nil, "stream", "create", "orders", "--server", addr, "--token", token+"x")
	expect(t, code, out, errOut, 1, nil, []string{"unauthenticated"})
	code, out, errOut = weirCmd(t, "", nil, "stream", "create", "orders", "--server", addr, "--token", token)
	expect(t, code, out, errOut, 0, nil, nil)
	code, out, errOut = weirCmd(t, "", []string{"WEIR_TOKEN=" + token}, "stream", "ls", "--server", addr)
	expect(t, code, out, errOut, 0, []string{"orders"}, nil)

	// Help never shows the token from the environment.
	code, out, errOut = weirCmd(t, "", []string{"WEIR_TOKEN=" + token}, "stream", "-h")
	if strings.Contains(out+errOut, token) {
		t.Errorf("help shows the token:\n%s", out)
	}
}

// TestServeLoopbackWithoutAuth: with no users file, an address without a
// host binds loopback, the log says so, and a non-loopback host is
// refused unless --insecure-listen-any=true.
func TestServeLoopbackWithoutAuth(t *testing.T) {
	p := startWeir(t, cleanEnv(), "serve", "--data", t.TempDir(), "--http-addr", ":0",
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=")
	addr := p.waitForLine(t, "http listening on ")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("http bound %s, want loopback", addr)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exit(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !strings.Contains(p.stderr.String(), "authentication is off") {
		t.Errorf("the log does not say so:\n%s", &p.stderr)
	}

	code, out, errOut := runWeir(t, "serve", "--data", t.TempDir(), "--http-addr", "192.0.2.1:8080",
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=")
	expect(t, code, out, errOut, 2, nil, []string{"http-addr", "without authentication", "insecure-listen-any"})
}
