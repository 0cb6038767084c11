package weir_test

// The tests of this package run against a real Weir server: TestMain builds
// ./cmd/weir of the server module (the parent directory) once, and each test
// starts its own process with a temporary data directory, reading the HTTP
// address it prints, and stops it with SIGTERM.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	weir "github.com/weirmq/weir/client"
)

var (
	// binDir holds the binaries TestMain builds: weir and the examples.
	binDir string
	// weirBinary is the server; empty when it could not be built.
	weirBinary string
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weir-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if mod, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.Contains(mod, []byte("module github.com/weirmq/weir\n")) {
		fmt.Fprintln(os.Stderr, "the server module is not in the parent directory; tests that need a server are skipped")
		return m.Run()
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "weir"), "./cmd/weir")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building the weir server: %v\n", err)
		return 1
	}
	weirBinary = filepath.Join(dir, "weir")
	return m.Run()
}

// testServer is a weir server process.
type testServer struct {
	t    testing.TB
	data string
	addr string // host:port of the HTTP listener

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
}

// startServer starts a server with a fresh data directory on a free port.
func startServer(t testing.TB) *testServer {
	t.Helper()
	if weirBinary == "" {
		t.Skip("no weir server binary")
	}
	s := &testServer{t: t, data: t.TempDir()}
	s.start("127.0.0.1:0")
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *testServer) start(addr string) {
	t := s.t
	t.Helper()
	cmd := exec.Command(weirBinary, "serve", "--data", s.data, "--http-addr", addr,
		"--kafka-addr=", "--amqp-addr=", "--mqtt-addr=", "--log-level", "warn")
	cmd.Env = cleanEnv()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 8)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	deadline := time.After(20 * time.Second)
	for listening := ""; listening == ""; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("weir exited before listening; stderr:\n%s", stderr)
			}
			if rest, found := strings.CutPrefix(line, "http listening on "); found {
				listening, s.addr = rest, rest
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("weir did not print its address; stderr:\n%s", stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	s.mu.Lock()
	s.cmd, s.stderr, s.exited = cmd, stderr, exited
	s.mu.Unlock()
}

// stop sends SIGTERM and waits for the exit.
func (s *testServer) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		s.t.Errorf("weir did not stop within 30s of SIGTERM; stderr:\n%s", s.stderr)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Errorf("weir exited with %d; stderr:\n%s", code, s.stderr)
	}
}

// restart stops the server and starts it again on the same address and
// data directory.
func (s *testServer) restart() {
	s.t.Helper()
	s.stop()
	s.start(s.addr)
}

// dial returns a client of the server, closed at the end of the test.
func (s *testServer) dial(t testing.TB, opts ...weir.Option) *weir.Client {
	t.Helper()
	return dialAt(t, s.addr, opts...)
}

// dialAt dials the server (or proxy) at addr, closing the client when the
// test ends.
func dialAt(t testing.TB, addr string, opts ...weir.Option) *weir.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := weir.Dial(ctx, addr, append([]weir.Option{weir.WithReconnectBackoff(20*time.Millisecond, 500*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cleanEnv is the environment without WEIR_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WEIR_") {
			env = append(env, kv)
		}
	}
	return env
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// createStream creates a stream or fails the test.
func createStream(t *testing.T, c *weir.Client, name string, partitions int32) {
	t.Helper()
	if _, err := c.CreateStream(t.Context(), weir.StreamConfig{Name: name, Partitions: partitions}); err != nil {
		t.Fatalf("CreateStream(%q): %v", name, err)
	}
}

// eventually retries cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
