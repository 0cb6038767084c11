package amqp_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/server"
)

// The comparison of issue 7's Performance section: amqp091-go publishers
// with confirms sending 1 KiB persistent messages to one durable queue,
// consumers with manual acks and prefetch 100, against a Weir node and a
// RabbitMQ node (Debian's rabbitmq-server, a durable classic queue: its
// default) started by the benchmark on loopback, one after the other in
// the same run. b.N is the number of messages; run it with a fixed count:
//
//	go test -run '^$' -bench ConfirmsVersusRabbitMQ -benchtime 100000x ./internal/protocol/amqp/
//
// Weir runs in the benchmark's process (with its default fsync policy,
// always), sharing the load generator's runtime and garbage collector;
// RabbitMQ in its own. That favours RabbitMQ, if anything.
const (
	benchPublishers = 2
	benchConsumers  = 2
	benchPrefetch   = 100
	benchWindow     = 256 // unconfirmed messages per publisher
	benchBodySize   = 1024
	benchBound      = 500 // weir-bounded's x-max-length
)

// rabbitmqServer is where Debian's package puts the server script (the
// /usr/sbin one switches to the rabbitmq user and its directories).
const rabbitmqServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

func BenchmarkConfirmsVersusRabbitMQ(b *testing.B) {
	if _, err := os.Stat(rabbitmqServer); err != nil {
		b.Skipf("rabbitmq-server is not installed (%v): apt-get install rabbitmq-server to compare with RabbitMQ", err)
	}
	results := map[string]benchResult{}
	// weir-bounded is Weir with the queue bounded and its publishers held
	// at the bound (Weir's x-overflow "block"), so that they do not run
	// ahead of the consumers on the shared cores.
	bounded := amqp091.Table{"x-max-length": int32(benchBound), "x-overflow": "block"}
	for _, broker := range []struct {
		name  string
		start func(b *testing.B) (url string, pid int)
		args  amqp091.Table
	}{{"weir", startWeirNode, nil}, {"weir-bounded", startWeirNode, bounded}, {"rabbitmq", startRabbitMQ, nil}} {
		url, pid := broker.start(b)
		b.Run("broker="+broker.name, func(b *testing.B) {
			// CPU of the clients and the broker: this process, and the
			// broker's own when it runs in another.
			cpu := func() time.Duration { return processCPU(b, os.Getpid()) + processCPU(b, pid) }
			before := cpu()
			r := runConfirmLoad(b, url, b.N, broker.args)
			b.ReportMetric(float64((cpu()-before).Microseconds())/float64(b.N), "cpu-µs/msg")
			b.ReportMetric(r.throughput, "msgs/s")
			b.ReportMetric(r.confirmP50.Seconds()*1000, "confirm-p50-ms")
			b.ReportMetric(r.confirmP99.Seconds()*1000, "confirm-p99-ms")
			b.ReportMetric(r.e2eP99.Seconds()*1000, "e2e-p99-ms")
			results[broker.name] = r
		})
	}
	for _, name := range []string{"weir", "weir-bounded"} {
		if w, r := results[name], results["rabbitmq"]; w.throughput > 0 && r.throughput > 0 {
			b.Logf("%s/rabbitmq: throughput %.2f×, confirm p99 %v vs %v, end-to-end p99 %v vs %v",
				name, w.throughput/r.throughput, w.confirmP99, r.confirmP99, w.e2eP99, r.e2eP99)
		}
	}
}

type benchResult struct {
	throughput                     float64 // messages consumed and acknowledged per second
	confirmP50, confirmP99, e2eP99 time.Duration
}

// runConfirmLoad sends n messages through a new durable queue, declared
// with args, and consumes them all.
func runConfirmLoad(b *testing.B, url string, n int, args amqp091.Table) benchResult {
	var id [6]byte
	rand.Read(id[:])
	queue := "bench-" + hex.EncodeToString(id[:])
	admin, err := amqp091.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ach.QueueDeclare(queue, true, false, false, false, args); err != nil {
		b.Fatal(err)
	}
	defer ach.QueueDelete(queue, false, false, false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var consumed atomic.Int64
	allConsumed := make(chan struct{})
	e2e := make([][]time.Duration, benchConsumers)
	var wg sync.WaitGroup
	for c := range benchConsumers {
		conn, err := amqp091.Dial(url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Qos(benchPrefetch, 0, false); err != nil {
			b.Fatal(err)
		}
		ds, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case d := <-ds:
					sent := time.Unix(0, int64(binary.BigEndian.Uint64(d.Body)))
					e2e[c] = append(e2e[c], time.Since(sent))
					d.Ack(false)
					if consumed.Add(1) == int64(n) {
						close(allConsumed)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	b.ResetTimer()
	start := time.Now()
	confirms := make([][]time.Duration, benchPublishers)
	var pubWG sync.WaitGroup
	errs := make(chan error, benchPublishers)
	for p := range benchPublishers {
		count := n / benchPublishers
		if p < n%benchPublishers {
			count++
		}
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			lat, err := publishConfirmed1K(ctx, url, queue, count)
			confirms[p] = lat
			errs <- err
		}()
	}
	pubWG.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-allConsumed:
	case <-ctx.Done():
		b.Fatalf("consumed %d of %d messages", consumed.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	wg.Wait()
	return benchResult{
		throughput: float64(n) / elapsed.Seconds(),
		confirmP50: percentile(slices.Concat(confirms...), 0.50),
		confirmP99: percentile(slices.Concat(confirms...), 0.99),
		e2eP99:     percentile(slices.Concat(e2e...), 0.99),
	}
}

// publishConfirmed1K publishes count persistent 1 KiB messages on a
// connection of its own in confirm mode, with at most benchWindow
// unconfirmed, and returns each one's publish-to-confirm latency.
func publishConfirmed1K(ctx context.Context, url, queue string, count int) ([]time.Duration, error) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	acks := ch.NotifyPublish(make(chan amqp091.Confirmation, benchWindow))
	window := make(chan struct{}, benchWindow)
	sent := make([]time.Time, count+1) // by delivery tag
	lat := make([]time.Duration, 0, count)
	done := make(chan error, 1)
	go func() {
		for range count {
			c, ok := <-acks
			if !ok {
				done <- fmt.Errorf("channel closed after %d confirms", len(lat))
				return
			}
			if !c.Ack {
				done <- fmt.Errorf("message %d nacked", c.DeliveryTag)
				return
			}
			lat = append(lat, time.Since(sent[c.DeliveryTag]))
			<-window
		}
		done <- nil
	}()
	body := make([]byte, benchBodySize)
	for i := 1; i <= count; i++ {
		select {
		case window <- struct{}{}:
		case err := <-done:
			return lat, err
		}
		sent[i] = time.Now()
		binary.BigEndian.PutUint64(body, uint64(sent[i].UnixNano()))
		if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: body}); err != nil {
			return lat, err
		}
	}
	return lat, <-done
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(int(float64(len(d))*p), len(d)-1)]
}

// freePort returns a loopback port nothing listens on now.
func freePort(b testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitAMQP waits until an AMQP connection to url opens.
func waitAMQP(b testing.TB, url string, proc *exec.Cmd, logFile string) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		conn, err := amqp091.Dial(url)
		if err == nil {
			conn.Close()
			return
		}
		if proc.ProcessState != nil || time.Now().After(deadline) {
			out, _ := os.ReadFile(logFile)
			b.Fatalf("%s did not start: %v\n%s", proc.Path, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopProcess sends SIGTERM and waits for the process, killing it after
// 30 s.
func stopProcess(cmd *exec.Cmd, waited <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-waited
	}
}

// startProcess starts cmd with its output in logFile; it is stopped when
// the benchmark ends.
func startProcess(b testing.TB, cmd *exec.Cmd, logFile, url string) {
	out, err := os.Create(logFile)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", cmd.Path, err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(waited) }()
	b.Cleanup(func() { stopProcess(cmd, waited) })
	waitAMQP(b, url, cmd, logFile)
}

// startWeirNode starts a Weir node in the benchmark's process with the
// default fsync policy (always: a confirm means the record is on disk).
// Its pid is 0: it runs in this process.
func startWeirNode(b *testing.B) (url string, pid int) {
	return startWeir(b, func(c *server.Config) { c.FSync = server.DefaultConfig().FSync }).url, 0
}

// processCPU is the user and system CPU time process pid has used so far;
// pid 0 has none.
func processCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th, in clock ticks of
	// 1/100 s (Linux's USER_HZ).
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := cmp.Or(err1, err2); err != nil {
		b.Fatal(err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// startRabbitMQ runs a RabbitMQ node of its own (data, logs, cookie and
// epmd port in a temporary directory and on free loopback ports) and
// stops it, and its epmd, when the benchmark ends. pid is the node's
// (the Erlang VM's) process.
func startRabbitMQ(b *testing.B) (url string, pid int) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	port, distPort, epmdPort := freePort(b), freePort(b), freePort(b)
	epmdEnv := fmt.Sprintf("ERL_EPMD_PORT=%d", epmdPort)
	cmd := exec.Command(rabbitmqServer)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, // the Erlang cookie
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_NODENAME=weirbench"+fmt.Sprint(port)+"@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", port),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", distPort),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		epmdEnv, "ERL_EPMD_ADDRESS=127.0.0.1",
	)
	b.Cleanup(func() {
		// The node started an epmd on its own port: stop that one.
		kill := exec.Command("epmd", "-kill")
		kill.Env = append(os.Environ(), epmdEnv)
		kill.Run()
	})
	url = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port)
	startProcess(b, cmd, filepath.Join(dir, "rabbitmq.log"), url)
	// The node writes its pid file once it runs.
	text, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		b.Fatal(err)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(string(text))); err != nil {
		b.Fatalf("RabbitMQ's pid file: %v", err)
	}
	return url, pid
}
