package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/weirmq/weir/internal/server"
)

// The smoke tests run every driver against a real server on loopback. A
// server that cannot be started fails the test (CI installs nats-server and
// rabbitmq-server: see .ci/run); it is never skipped.

// startWeir starts a Weir node in the process with its HTTP, Kafka and AMQP
// listeners on free loopback ports.
func startWeir(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.LogLevel = "error"
	srv, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck // the test is over
	})
	return srv
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinary looks for a program on PATH, then in the directories given.
func findBinary(name string, dirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in %s", name, strings.Join(dirs, ", "))
}

// startProcess runs a server in a process group of its own, logging to a
// file, and kills the group when the test ends. Like the start functions
// below, it may run on a goroutine of the test's, so it returns errors
// rather than failing the test.
func startProcess(t *testing.T, logPath string, env []string, name string, args ...string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // it may have exited
		cmd.Wait()                                      //nolint:errcheck
		logFile.Close()
	})
	return nil
}

// waitFor calls ready until it succeeds or the timeout passes, then
// returns the error with the server's log.
func waitFor(what, logPath string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			f, _ := os.Open(logPath)
			var tail []byte
			if f != nil {
				tail, _ = io.ReadAll(f)
				f.Close()
			}
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			return fmt.Errorf("%s did not start within %v: %w\nits log:\n%s", what, timeout, err, tail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startNATS starts nats-server with JetStream in a temporary directory and
// returns its URL. .ci/run installs nats-server with go install.
func startNATS(t *testing.T) (string, error) {
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	bin, err := findBinary("nats-server", filepath.Join(strings.TrimSpace(string(gopath)), "bin"))
	if err != nil {
		return "", fmt.Errorf("%w (install it: go install github.com/nats-io/nats-server/v2@latest)", err)
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n", port, filepath.Join(dir, "js")), 0o644); err != nil {
		return "", err
	}
	logPath := filepath.Join(dir, "nats.log")
	if err := startProcess(t, logPath, nil, bin, "-c", conf); err != nil {
		return "", err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	return url, waitFor("nats-server", logPath, 20*time.Second, func() error {
		d, err := Open(context.Background(), "nats", DriverConfig{URL: url})
		if err == nil {
			d.Close()
		}
		return err
	})
}

// startRabbitMQ starts the rabbitmq-server of the Debian package as a node
// of its own: loopback, free ports, everything in a temporary directory.
// .ci/run installs the package.
func startRabbitMQ(t *testing.T) (string, error) {
	bin, err := findBinary("rabbitmq-server", "/usr/lib/rabbitmq/bin")
	if err != nil {
		return "", fmt.Errorf("%w (install it: apt-get install rabbitmq-server)", err)
	}
	// The Debian wrapper on PATH switches to the rabbitmq user and drops
	// the environment; the script it wraps takes it.
	if real := "/usr/lib/rabbitmq/bin/rabbitmq-server"; fileExists(real) {
		bin = real
	}
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		return "", err
	}
	distPort, err := freePort()
	if err != nil {
		return "", err
	}
	var writeErr error
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			writeErr = err
		}
		return p
	}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		return "", err
	}
	env := []string{
		"HOME=" + filepath.Join(dir, "home"), // the Erlang cookie
		"RABBITMQ_NODENAME=weirbench" + strconv.Itoa(port) + "@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_PLUGINS_EXPAND_DIR=" + filepath.Join(dir, "plugins"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + write("enabled_plugins", "[].\n"),
		"RABBITMQ_CONFIG_FILE=" + write("rabbitmq.conf", fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\n", port)),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
	if writeErr != nil {
		return "", writeErr
	}
	logPath := filepath.Join(dir, "rabbitmq.out")
	if err := startProcess(t, logPath, env, bin); err != nil {
		return "", err
	}
	url := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port)
	return url, waitFor("rabbitmq-server", logPath, 90*time.Second, func() error {
		c, err := amqp.Dial(url)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
