package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testVersion is linked into the binary under test, as a release would be.
const testVersion = "v0.0.0-test"

// weirBinary is the path of the weir binary TestMain builds.
var weirBinary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weir-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	weirBinary = filepath.Join(dir, "weir")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", weirBinary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building weir: %v\n", err)
		return 1
	}
	return m.Run()
}

// cleanEnv is the test's environment without WEIR_* variables, so that the
// developer's settings cannot change what the tests see.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEIR_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runWeir runs the binary to completion and returns its exit code and output.
func runWeir(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weirBinary, args...)
	cmd.Env = cleanEnv()
	cmd.Dir = t.TempDir() // where the default ./weir-data would go
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("weir %q: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// weirProcess is a weir server running in the background.
type weirProcess struct {
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line; closed at EOF
	stdout []string    // the lines read from lines so far
	stderr bytes.Buffer
}

func startWeir(t *testing.T, env []string, args ...string) *weirProcess {
	t.Helper()
	p := &weirProcess{cmd: exec.Command(weirBinary, args...), lines: make(chan string, 16)}
	p.cmd.Env = env
	p.cmd.Dir = t.TempDir()
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			p.lines <- scanner.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			for range p.lines {
			}
			p.cmd.Wait()
		}
	})
	return p
}

// waitForLine reads stdout until a line starts with prefix and returns the
// rest of that line.
func (p *weirProcess) waitForLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("weir closed stdout before printing %q; stdout %q, stderr:\n%s", prefix, p.stdout, &p.stderr)
			}
			p.stdout = append(p.stdout, line)
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-timeout:
			t.Fatalf("weir did not print %q; stdout %q", prefix, p.stdout)
		}
	}
}

// exit waits for the process to exit within a few seconds and returns its
// exit code; -1 means a signal killed it.
func (p *weirProcess) exit(t *testing.T) int {
	t.Helper()
	exited := make(chan struct{})
	go func() {
		for line := range p.lines {
			p.stdout = append(p.stdout, line)
		}
		p.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-exited
		t.Fatalf("weir did not exit within 10s; stderr:\n%s", &p.stderr)
		return 0
	}
}

func TestServeUntilSignal(t *testing.T) {
	tests := []struct {
		name   string
		env    []string
		args   []string
		signal syscall.Signal
	}{
		{
			name:   "serve with flags, SIGTERM",
			args:   []string{"serve", "--http-addr", "127.0.0.1:0", "--kafka-addr=", "--amqp-addr=", "--mqtt-addr="},
			signal: syscall.SIGTERM,
		},
		{
			name:   "no command with environment, SIGINT",
			env:    []string{"WEIR_HTTP_ADDR=127.0.0.1:0", "WEIR_KAFKA_ADDR=", "WEIR_AMQP_ADDR=", "WEIR_MQTT_ADDR="},
			signal: syscall.SIGINT,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			p := startWeir(t, cleanEnv(tt.env...), append(tt.args, "--data", data)...)
			addr := p.waitForLine(t, "http listening on ")

			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatalf("GET /healthz: %v", err)
			}
			var health struct{ Status string }
			err = json.NewDecoder(resp.Body).Decode(&health)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || health.Status != "ok" {
				t.Errorf("GET /healthz = %d %+v (%v), want 200 ok", resp.StatusCode, health, err)
			}
			if info, err := os.Stat(data); err != nil || !info.IsDir() {
				t.Errorf("data directory %s not created: %v", data, err)
			}

			if err := p.cmd.Process.Signal(tt.signal); err != nil {
				t.Fatal(err)
			}
			if code := p.exit(t); code != 0 {
				t.Errorf("exit code after %v = %d, want 0; stderr:\n%s", tt.signal, code, &p.stderr)
			}
			if want := []string{"http listening on " + addr}; !slices.Equal(p.stdout, want) {
				t.Errorf("stdout = %q, want %q", p.stdout, want)
			}
			if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
				t.Error("GET /healthz after exit succeeded")
			}
		})
	}
}

func TestStartupErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	off := []string{"--kafka-addr=", "--amqp-addr=", "--mqtt-addr="}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "port in use",
			args: append([]string{"serve", "--data", t.TempDir(), "--http-addr", busy.Addr().String()}, off...),
			want: []string{"http listener", busy.Addr().String(), "in use"},
		},
		{
			// A protocol listener that cannot bind fails the start too
			// (every listener is implemented; none is skipped).
			name: "mqtt port in use",
			args: []string{"serve", "--data", t.TempDir(), "--http-addr", "127.0.0.1:0", "--kafka-addr=", "--amqp-addr=", "--mqtt-addr", busy.Addr().String()},
			want: []string{"mqtt listener", busy.Addr().String(), "in use"},
		},
		{
			name: "TLS certificate file missing",
			args: append([]string{"serve", "--data", t.TempDir(), "--http-addr=", "--https-addr", "127.0.0.1:0",
				"--tls-cert-file", filepath.Join(notADir, "cert.pem"), "--tls-key-file", notADir}, off...),
			want: []string{"tls-cert-file", filepath.Join(notADir, "cert.pem")},
		},
		{
			name: "data directory cannot be created",
			args: append([]string{"serve", "--data", filepath.Join(notADir, "data"), "--http-addr", "127.0.0.1:0"}, off...),
			want: []string{"data directory", notADir},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runWeir(t, tt.args...)
			if code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "weir: ") {
				t.Fatalf("stderr = %q, want one line starting with \"weir: \"", stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(lines[0], want) {
					t.Errorf("stderr %q does not contain %q", lines[0], want)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runWeir(t, "version")
	if code != 0 || stderr != "" {
		t.Fatalf("weir version: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"weir " + testVersion, runtime.Version()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("weir version = %q, want it to contain %q", stdout, want)
		}
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"serve", "version", "help"}},
		{[]string{"-h"}, []string{"serve", "version", "help"}},
		{[]string{"--help"}, []string{"serve", "version", "help"}},
		{[]string{"help", "serve"}, []string{"--config", "--data", "--kafka-addr", "WEIR_KAFKA_ADDR", "--fsync"}},
		{[]string{"serve", "-h"}, []string{"--config", "--data", "--http-addr", "WEIR_HTTP_ADDR"}},
		{[]string{"help", "version"}, []string{"weir version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runWeir(t, tt.args...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--http-addr"}, "flag needs an argument"},
		{[]string{"version", "--short"}, "flag provided but not defined: -short"},
		{[]string{"serve", "--fsync", "sometimes"}, `fsync "sometimes" (from --fsync)`},
		{[]string{"serve", "--config", "/nonexistent/weir.yaml"}, "/nonexistent/weir.yaml"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runWeir(t, tt.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
		})
	}
}
