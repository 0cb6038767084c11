package mqtt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/storage"
)

// BenchmarkCompareMosquitto runs one load against Weir and against
// Mosquitto (the Debian package's /usr/sbin/mosquitto, started here on a
// loopback port with a temporary configuration) in the same run: 100
// clients publish QoS 1 messages of 100 bytes (each keeping up to 10
// unacknowledged) to bench/<k>/<client>, and 10 subscribers of persistent
// sessions, one per bench/<k>/#, receive and acknowledge them at QoS 1.
// It reports the messages delivered per second (from the first publish to
// the last delivery), the publishes acknowledged per second, and the
// latency from publish to delivery (p50, p99). Both servers persist:
// Weir with fsync always (its default) and interval, Mosquitto with
// persistence on (autosave every second: Mosquitto has no per-message
// fsync). Run it with a fixed count, e.g.
//
//	go test -run '^$' -bench CompareMosquitto -benchtime 20000x ./internal/protocol/mqtt/
//
// It skips when the mosquitto binary is absent (apt-get install mosquitto).
func BenchmarkCompareMosquitto(b *testing.B) {
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		var lerr error
		if bin, lerr = exec.LookPath("mosquitto"); lerr != nil {
			b.Skip("mosquitto is not installed (Debian package mosquitto): no comparison")
		}
	}
	b.Run("server=weir-fsync-always", func(b *testing.B) {
		n := startNodeWith(b, Config{SysInterval: -1})
		runCompareLoad(b, n.addr)
	})
	b.Run("server=weir-fsync-interval", func(b *testing.B) {
		n := &node{t: b, dir: b.TempDir(), addr: "127.0.0.1:0", cfg: Config{SysInterval: -1},
			bcfg: broker.Config{FSync: storage.FSyncInterval, FSyncInterval: 50 * time.Millisecond}}
		n.start()
		b.Cleanup(n.stop)
		runCompareLoad(b, n.addr)
	})
	b.Run("server=mosquitto-persistence", func(b *testing.B) {
		runCompareLoad(b, startMosquitto(b, bin))
	})
}

// startMosquitto starts mosquitto on a free loopback port with persistence
// in a temporary directory, and returns its address once it accepts
// connections.
func startMosquitto(b *testing.B, bin string) string {
	dir := b.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	// Run as root, mosquitto changes to the user of its "user" option
	// (default "mosquitto"): it stays the user running the benchmark, who
	// owns the persistence directory.
	me, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	conf := fmt.Sprintf(`listener %d 127.0.0.1
user %s
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 1
max_inflight_messages %d
max_queued_messages 0
log_dest stderr
log_type error
`, addr.Port, me.Username, dir, DefaultReceiveMaximum)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			b.Logf("mosquitto: %s", &stderr)
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr.String())
		if err == nil {
			c.Close()
			return addr.String()
		}
		if i == 100 {
			b.Fatalf("mosquitto does not accept connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loadClient is a bare MQTT 3.1.1 client of the load: this package's codec
// on a connection, safe to use from its own goroutines.
type loadClient struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func dialLoad(addr, id string, clean bool) (*loadClient, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &loadClient{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
	c.w.Write(AppendPacket(nil, &Connect{ProtocolName: "MQTT", Version: Version311, ClientID: id, CleanStart: clean, KeepAlive: 300}, Version311))
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	p, err := c.read(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if ack, ok := p.(*Connack); !ok || ack.ReasonCode != 0 {
		return nil, fmt.Errorf("CONNACK %#v", p)
	}
	return c, nil
}

func (c *loadClient) read(timeout time.Duration) (Packet, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	return ReadServerPacket(c.r, Version311, 1<<20)
}

// runCompareLoad runs the load against the server at addr: b.N messages
// (rounded up to a multiple of the publishers).
func runCompareLoad(b *testing.B, addr string) {
	const publishers, subscribers, window, size = 100, 10, 10, 100
	per := (b.N + publishers - 1) / publishers
	total := per * publishers

	// Subscribers: persistent sessions, started clean.
	subs := make([]*loadClient, subscribers)
	for k := range subs {
		id := fmt.Sprint("bench-sub-", k)
		c, err := dialLoad(addr, id, true)
		if err != nil {
			b.Fatal(err)
		}
		c.nc.Close()
		if c, err = dialLoad(addr, id, false); err != nil {
			b.Fatal(err)
		}
		defer c.nc.Close()
		c.w.Write(AppendPacket(nil, &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: fmt.Sprint("bench/", k, "/#"), QoS: 1}}}, Version311))
		c.w.Flush()
		if p, err := c.read(10 * time.Second); err != nil {
			b.Fatal(err)
		} else if sa, ok := p.(*Suback); !ok || sa.Codes[0] != 1 {
			b.Fatalf("SUBACK %#v", p)
		}
		subs[k] = c
	}
	pubs := make([]*loadClient, publishers)
	for i := range pubs {
		c, err := dialLoad(addr, fmt.Sprint("bench-pub-", i), true)
		if err != nil {
			b.Fatal(err)
		}
		defer c.nc.Close()
		pubs[i] = c
	}

	b.SetBytes(size)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, publishers+subscribers)
	latencies := make([][]time.Duration, subscribers)
	var lastDelivery time.Time
	var lastMu sync.Mutex
	for k, c := range subs {
		expect := per * (publishers / subscribers)
		wg.Go(func() {
			lat := make([]time.Duration, 0, expect)
			var buf []byte
			for len(lat) < expect {
				p, err := c.read(2 * time.Minute)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d messages: %w", k, len(lat), err)
					return
				}
				pub, ok := p.(*Publish)
				if !ok {
					continue
				}
				now := time.Now()
				lat = append(lat, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(pub.Payload)))))
				buf = AppendPacket(buf[:0], &Ack{Type: typePuback, PacketID: pub.PacketID}, Version311)
				c.w.Write(buf)
				if c.r.Buffered() == 0 {
					c.w.Flush()
				}
			}
			c.w.Flush()
			latencies[k] = lat
			lastMu.Lock()
			if now := time.Now(); now.After(lastDelivery) {
				lastDelivery = now
			}
			lastMu.Unlock()
		})
	}
	var pubDone sync.WaitGroup
	var lastAck time.Time
	for i, c := range pubs {
		pubDone.Go(func() {
			slots := make(chan struct{}, window)
			acked := make(chan error, 1)
			dead := make(chan struct{}) // closed when the PUBACKs stop
			go func() {
				for range per {
					if _, err := c.read(2 * time.Minute); err != nil {
						acked <- fmt.Errorf("publisher %d: %w", i, err)
						close(dead)
						return
					}
					<-slots
				}
				acked <- nil
			}()
			payload := make([]byte, size)
			topic := fmt.Sprint("bench/", i%subscribers, "/", i)
			var buf []byte
			for j := range per {
				select {
				case slots <- struct{}{}:
				case <-dead:
					errs <- <-acked
					return
				}
				binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
				buf = AppendPacket(buf[:0], &Publish{Topic: topic, QoS: 1, PacketID: uint16(j%60000 + 1), Payload: payload}, Version311)
				if _, err := c.nc.Write(buf); err != nil {
					errs <- fmt.Errorf("publisher %d: %w", i, err)
					return
				}
			}
			if err := <-acked; err != nil {
				errs <- err
				return
			}
			lastMu.Lock()
			if now := time.Now(); now.After(lastAck) {
				lastAck = now
			}
			lastMu.Unlock()
		})
	}
	pubDone.Wait()
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	pct := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(float64(total)/lastDelivery.Sub(start).Seconds(), "delivered/s")
	b.ReportMetric(float64(total)/lastAck.Sub(start).Seconds(), "acked-pubs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
