package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	weir "github.com/weirmq/weir/client"
)

// isOpen reports whether the server keeps nc open: a connection refused
// by a limit is closed at once, so a read ends with EOF (or a reset)
// rather than waiting for the client to speak.
func isOpen(t *testing.T, nc net.Conn) bool {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := nc.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestConnectionLimits: max-listener-connections and max-connections
// close the connections beyond them at once, real clients included, count
// them in weir_connections_refused_total, and free a place when a
// connection closes.
func TestConnectionLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxConnections = 4
	cfg.MaxListenerConnections = "2,amqp=1,http=0"
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The metrics are read in the process: /metrics is behind the limits too.
	metric := func(series string) float64 {
		rec := httptest.NewRecorder()
		newMetricsHandler(s.metrics.registry, s.logger).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		v, _ := metricValue(rec.Body.String(), series)
		return v
	}
	refused := func(listener, limit string) float64 {
		return metric(fmt.Sprintf(`weir_connections_refused_total{limit=%q,listener=%q}`, limit, listener))
	}
	open := func(listener string) float64 {
		return metric(fmt.Sprintf(`weir_connections{listener=%q}`, listener))
	}

	// AMQP: one connection; amqp091-go's second is refused.
	first, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/"); err == nil {
		conn.Close()
		t.Error("a second AMQP connection was accepted with amqp=1")
	}
	if got := refused("amqp", "listener"); got != 1 {
		t.Errorf("refused amqp/listener = %v, want 1", got)
	}
	first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for open("amqp") != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	again, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
	if err != nil {
		t.Fatalf("after the first closed, a new AMQP connection: %v", err)
	}
	defer again.Close()

	// Kafka: two connections, the third refused by the listener's limit.
	k1, k2 := dialTCP(t, s.Addr("kafka")), dialTCP(t, s.Addr("kafka"))
	if !isOpen(t, k1) || !isOpen(t, k2) {
		t.Fatal("kafka connections within the limit were closed")
	}
	if isOpen(t, dialTCP(t, s.Addr("kafka"))) {
		t.Error("a third kafka connection was kept with a limit of 2")
	}
	if got := refused("kafka", "listener"); got != 1 {
		t.Errorf("refused kafka/listener = %v, want 1", got)
	}
	if got := open("kafka"); got != 2 {
		t.Errorf("weir_connections{listener=kafka} = %v, want 2", got)
	}

	// Four connections are open (amqp 1, kafka 2, and one MQTT now): the
	// total is reached, and the HTTP listener, without a limit of its own,
	// refuses too.
	m1 := dialTCP(t, s.Addr("mqtt"))
	if !isOpen(t, m1) {
		t.Fatal("the fourth connection was closed with max-connections 4")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if c, err := weir.Dial(ctx, s.Addr("http")); err == nil {
		c.Close()
		t.Error("the SDK connected beyond max-connections")
	}
	if got := refused("http", "total"); got < 1 {
		t.Errorf("refused http/total = %v, want at least 1", got)
	}
	k1.Close()
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := weir.Dial(ctx, s.Addr("http"))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a place was freed but the SDK cannot connect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionLimitOptions(t *testing.T) {
	for _, tt := range []struct {
		max, perListener string
		want             []string
	}{
		{"-1", "0", []string{"max-connections", "must not be negative"}},
		{"0", "-5", []string{"max-listener-connections", "want a number"}},
		{"0", "10,smtp=4", []string{"max-listener-connections", `unknown listener "smtp"`}},
		{"0", "lots", []string{"max-listener-connections", `"lots"`}},
		{"0", "10,", []string{"max-listener-connections", "empty item"}},
	} {
		_, _, err := loadConfig(t, "", nil, "--max-connections="+tt.max, "--max-listener-connections="+tt.perListener)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s %s: %v, want ErrInvalidConfig", tt.max, tt.perListener, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s %s: %v, want it to say %q", tt.max, tt.perListener, err, w)
			}
		}
	}
	if _, _, err := loadConfig(t, "", nil, "--max-connections=x"); err == nil || !strings.Contains(err.Error(), "not a whole number") {
		t.Errorf("--max-connections=x: %v", err)
	}
	cfg, _, err := loadConfig(t, "max-connections: 10000\nmax-listener-connections: 5000,https=100\n", nil)
	if err != nil || cfg.MaxConnections != 10000 {
		t.Fatalf("%+v %v", cfg.MaxConnections, err)
	}
	if p, _ := cfg.listenerLimits(); p.get("https") != "100" || p.get("kafka") != "5000" {
		t.Errorf("per listener: %+v", p)
	}
}

// TestConnectionsLeaveFilesForTheStore: with the process's open-file limit
// nearly taken by connections and segment files, a new connection is closed
// at once (limit "files") rather than accepted, so that the state store can
// still create its next log file; a segment file opened meanwhile (a new
// stream) takes a connection's place.
func TestConnectionsLeaveFilesForTheStore(t *testing.T) {
	cfg := testConfig(t)
	s := newTestServer(t, cfg)
	var segments atomic.Int64
	s.limits.openFiles = segments.Load
	s.limits.maxFiles = fileReserve + 2 // room for two connections
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	refused := func() float64 {
		rec := httptest.NewRecorder()
		newMetricsHandler(s.metrics.registry, s.logger).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		v, _ := metricValue(rec.Body.String(), `weir_connections_refused_total{limit="files",listener="kafka"}`)
		return v
	}
	k1, k2 := dialTCP(t, s.Addr("kafka")), dialTCP(t, s.Addr("kafka"))
	if !isOpen(t, k1) || !isOpen(t, k2) {
		t.Fatal("connections within the open-file limit were closed")
	}
	if isOpen(t, dialTCP(t, s.Addr("kafka"))) {
		t.Error("a third connection was accepted with no descriptor left for the store")
	}
	if got := refused(); got != 1 {
		t.Errorf(`refused{limit="files"} = %v, want 1`, got)
	}
	k1.Close()
	segments.Store(1) // a partition opened meanwhile takes the place k1 left
	time.Sleep(100 * time.Millisecond)
	if isOpen(t, dialTCP(t, s.Addr("kafka"))) {
		t.Error("a connection took the descriptor a segment file holds")
	}
	segments.Store(0)
	if !isOpen(t, dialTCP(t, s.Addr("kafka"))) {
		t.Error("a connection was refused with a descriptor free")
	}
}
