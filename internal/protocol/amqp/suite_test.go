package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// suiteExcluded are the tests of the amqp091-go integration suite that do
// not run against Weir, each with its reason (docs/PROTOCOLS.md lists
// them too). Every other test of the suite must pass.
var suiteExcluded = map[string]string{
	"TestConnectionRecovery": "drops connections through RabbitMQ's management HTTP API on port 15672 (a RabbitMQ tool, like rabbitmqctl)",
	"TestIntegrationRecoverNotImplemented": "checks that the server is RabbitMQ (product property); against any other server it skips " +
		"its check and leaks its connection, which the suite's goleak check reports (Weir answers basic.recover requeue=false " +
		"with 540 as RabbitMQ does: TestRecoverWithoutRequeueIsNotImplemented)",
	"TestRabbitMQQueueTTLGet": "runs only when the server's product property is RabbitMQ and leaks its connection otherwise " +
		"(goleak); TestQueueTTLGet does the same against Weir",
	"TestRabbitMQQueueNackMultipleRequeue": "runs only when the server's product property is RabbitMQ and leaks its connection " +
		"otherwise (goleak); TestNackMultipleRequeue does the same against Weir",
}

// suiteMinPassed guards against an exclusion or a build tag that silently
// skips the suite: v1.16.0 reports about 370 passing tests and subtests.
const suiteMinPassed = 300

// TestAMQP091Suite runs the amqp091-go library's own integration suite
// (`go test -tags integration`, the module version of go.mod, copied out
// of the read-only module cache) with AMQP_URL at a Weir node
// (startWeirBinary). The one test that needs rabbitmqctl skips itself without it.
func TestAMQP091Suite(t *testing.T) {
	if testing.Short() {
		t.Skip("the amqp091-go suite takes about a minute; not in -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to run the amqp091-go suite")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/rabbitmq/amqp091-go").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/rabbitmq/amqp091-go: %v", err)
	}
	src := strings.TrimSpace(string(out))
	if src == "" {
		t.Fatal("amqp091-go is not in the module cache (go mod download github.com/rabbitmq/amqp091-go)")
	}
	dir := filepath.Join(t.TempDir(), "amqp091-go")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	// The module cache is read-only and CopyFS keeps the modes.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if d.IsDir() {
				mode = 0o755
			}
			os.Chmod(p, mode)
		}
		return err
	})

	url := startWeirBinary(t, ctx, goBin)
	var skip []string
	for name := range suiteExcluded {
		skip = append(skip, regexp.QuoteMeta(name))
	}
	run := func(args ...string) suiteRun {
		cmd := exec.CommandContext(ctx, goBin, append([]string{"test", "-tags", "integration", "-count=1", "-v", "-timeout", "5m",
			"-skip", strings.Join(skip, "|")}, append(args, ".")...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "AMQP_URL="+url, "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
		var output bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &output
		err := cmd.Run()
		return parseSuite(output.String(), err)
	}
	r := run()
	for _, line := range r.skipped {
		t.Logf("suite: %s", line)
	}
	t.Logf("amqp091-go suite (%s): %d passed, %d failed, %d skipped", src, r.passed, len(r.failed), len(r.skipped))
	if len(r.failed) > 0 && r.passed >= suiteMinPassed && !strings.Contains(r.output, "\npanic: ") {
		// Some tests of the suite give a delivery 200 ms; on a loaded
		// machine (and with Weir under -race) that can pass. Those that
		// failed run once more on their own; failing again fails.
		t.Logf("suite: %v failed; running them again\n%s", r.failed, tail(r.output, 4000))
		again := run("-run", "^("+strings.Join(r.failed, "|")+")$")
		if len(again.failed) == 0 && again.err == nil && again.passed > 0 {
			r.failed, r.err = nil, nil
		} else {
			r.failed, r.output = again.failed, again.output
		}
	}
	if r.err != nil || len(r.failed) > 0 || r.passed < suiteMinPassed {
		t.Errorf("amqp091-go suite: %v; failed: %v; %d passed (want at least %d); output:\n%s", r.err, r.failed, r.passed, suiteMinPassed, tail(r.output, 20000))
	}
}

// startWeirBinary builds ./cmd/weir without the race detector and runs it
// on a free loopback port. Several tests of the suite give a delivery 200
// ms, which a node built with -race (as `go test -race` builds this
// package) does not always meet on 2 loaded cores; the front end runs
// under the race detector in this package's other tests.
func startWeirBinary(t *testing.T, ctx context.Context, goBin string) string {
	dir := t.TempDir()
	root, err := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	bin := filepath.Join(dir, "weir")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/weir")
	build.Dir = strings.TrimSpace(string(root))
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/weir: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(bin, "serve", "--data", filepath.Join(dir, "data"), "--amqp-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--kafka-addr=", "--mqtt-addr=", "--http-addr=", "--fsync", "interval", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "WEIR_USERS=")
	url := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port)
	startProcess(t, cmd, filepath.Join(dir, "weir.log"), url)
	return url
}

// suiteRun is the outcome of one go test run of the suite.
type suiteRun struct {
	output  string
	err     error
	passed  int
	failed  []string // top-level tests
	skipped []string
}

func parseSuite(output string, err error) suiteRun {
	r := suiteRun{output: output, err: err}
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- PASS"):
			r.passed++
		case strings.HasPrefix(trimmed, "--- SKIP"):
			r.skipped = append(r.skipped, trimmed)
		case strings.HasPrefix(line, "--- FAIL: "):
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "--- FAIL: "), " ")
			r.failed = append(r.failed, regexp.QuoteMeta(name))
		}
	}
	return r
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
