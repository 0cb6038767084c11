package torture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// server is one run of the `weir serve` child.
type server struct {
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's error, after exited

	kafka, amqp, http string // listener addresses
	mqtt              string // when extra arguments turned it on
}

// startServer starts `weir serve` on dataDir with every listener on a free
// loopback port, its log appended to logPath, and waits until it listens.
// With killAfter > 0 it kills the server that long after starting it, in
// the middle of its recovery or, if it listens before, at once: it returns
// nil, nil then. Extra arguments go after the campaign's own (a later flag
// wins: "--mqtt-addr", "127.0.0.1:0" turns MQTT on).
func startServer(ctx context.Context, binary, dataDir, fsync, logPath string, timeout, killAfter time.Duration, extra ...string) (*server, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "serve",
		"--data", dataDir,
		"--fsync", fsync,
		"--kafka-addr", "127.0.0.1:0",
		"--amqp-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--mqtt-addr=",
		"--log-level", "warn",
	)
	cmd.Args = append(cmd.Args, extra...)
	cmd.Env = cleanEnv()
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	fmt.Fprintf(logFile, "--- %s: starting %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	s := &server{cmd: cmd, log: logFile, exited: make(chan struct{})}
	lines := make(chan string, 8)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var killNow <-chan time.Time
	if killAfter > 0 {
		killNow = time.After(killAfter)
	}
	for s.kafka == "" || s.amqp == "" || s.http == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				<-s.exited
				logFile.Close()
				return nil, fmt.Errorf("weir serve exited before listening (%v); see %s", s.err, logPath)
			}
			name, addr, found := strings.Cut(line, " listening on ")
			if !found {
				continue
			}
			switch name {
			case "kafka":
				s.kafka = addr
			case "amqp":
				s.amqp = addr
			case "http":
				s.http = addr
			case "mqtt": // listed before http
				s.mqtt = addr
			}
		case <-killNow:
			s.kill()
			return nil, nil
		case <-deadline.C:
			s.kill()
			return nil, fmt.Errorf("weir serve did not listen within %v; see %s", timeout, logPath)
		case <-ctx.Done():
			s.kill()
			return nil, ctx.Err()
		}
	}
	go func() {
		for range lines { // later lines are not needed; keep the pipe drained
		}
	}()
	if killAfter > 0 {
		s.kill()
		return nil, nil
	}
	return s, nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	fmt.Fprintf(s.log, "--- %s: killed with SIGKILL\n", time.Now().Format(time.RFC3339Nano))
	s.log.Close()
}

// stop asks the server to shut down (SIGTERM) and returns an error unless
// it exits cleanly within timeout.
func (s *server) stop(timeout time.Duration) error {
	defer s.log.Close()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
	case <-time.After(timeout):
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		return fmt.Errorf("weir serve did not shut down within %v", timeout)
	}
	if s.err != nil {
		var exit *exec.ExitError
		if errors.As(s.err, &exit) {
			return fmt.Errorf("weir serve shut down with %v", exit)
		}
		return s.err
	}
	return nil
}

// cleanEnv is the environment without WEIR_* variables, so the caller's
// settings cannot change the server the campaign runs.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "WEIR_") })
}
