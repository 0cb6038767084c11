package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testConfig is a configuration with every listener on a free port of the
// loopback interface and data in a fresh directory.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "nested", "data")
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.AMQPAddr = "127.0.0.1:0"
	cfg.MQTTAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Version = "test-1.2.3"
	return cfg
}

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("cleanup Shutdown: %v", err)
		}
	})
	return s
}

// get fetches url on a connection of its own, so that no connection is
// reused across a shutdown.
func get(url string) (*http.Response, []byte, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestServerLifecycle(t *testing.T) {
	cfg := testConfig(t)
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if info, err := os.Stat(cfg.DataDir); err != nil || !info.IsDir() {
		t.Errorf("data directory %s was not created: %v", cfg.DataDir, err)
	}
	// The broker's state store is there, and the write probe is gone.
	entries, _ := os.ReadDir(cfg.DataDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "state") || slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, ".weir-write-check") }) {
		t.Errorf("data directory holds %q after Start, want the broker's state and no write probe", names)
	}
	if s.Broker() == nil {
		t.Error("Broker() = nil after Start")
	}

	addr := s.Addr("http")
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf(`Addr("http") = %q, want 127.0.0.1 and the port bound`, addr)
	}
	kafkaAddr := s.Addr("kafka")
	if host, port, err := net.SplitHostPort(kafkaAddr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf(`Addr("kafka") = %q, want 127.0.0.1 and the port bound`, kafkaAddr)
	}
	amqpAddr := s.Addr("amqp")
	if host, port, err := net.SplitHostPort(amqpAddr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf(`Addr("amqp") = %q, want 127.0.0.1 and the port bound`, amqpAddr)
	}
	mqttAddr := s.Addr("mqtt")
	if host, port, err := net.SplitHostPort(mqttAddr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf(`Addr("mqtt") = %q, want 127.0.0.1 and the port bound`, mqttAddr)
	}
	if got, want := s.Endpoints(), []Endpoint{{Name: "kafka", Addr: kafkaAddr}, {Name: "amqp", Addr: amqpAddr}, {Name: "mqtt", Addr: mqttAddr}, {Name: "http", Addr: addr}}; !slices.Equal(got, want) {
		t.Errorf("Endpoints() = %v, want %v", got, want)
	}

	resp, body, err := get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	var health healthStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &health) != nil || health.Status != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /healthz Content-Type = %q, want application/json", ct)
	}

	resp, body, err = get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics = %d, want 200", resp.StatusCode)
	}
	wantMetrics := []string{
		`weir_build_info{goversion="` + runtime.Version() + `",version="test-1.2.3"} 1`,
		"go_goroutines ",
	}
	if runtime.GOOS == "linux" {
		wantMetrics = append(wantMetrics, "process_start_time_seconds ")
	}
	for _, want := range wantMetrics {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics does not contain %q", want)
		}
	}

	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, _, err := get("http://" + addr + "/healthz"); err == nil {
		t.Error("GET /healthz after Shutdown succeeded, want the connection refused")
	}
	if got := s.Addr("http"); got != "" {
		t.Errorf(`Addr("http") after Shutdown = %q, want ""`, got)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := s.Start(t.Context()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Shutdown = %v, want ErrStopped", err)
	}
}

func TestStartTwice(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr, cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", "", ""
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if got := s.Endpoints(); len(got) != 0 {
		t.Errorf("Endpoints() with every listener off = %v, want none", got)
	}
}

func TestHealthzPhases(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTPAddr = ""
	s := newTestServer(t, cfg)
	check := func(when string, wantCode int, wantStatus string) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var health healthStatus
		if err := json.Unmarshal(rec.Body.Bytes(), &health); err != nil || rec.Code != wantCode || health.Status != wantStatus {
			t.Errorf("%s: /healthz = %d %q, want %d {\"status\":%q}", when, rec.Code, rec.Body, wantCode, wantStatus)
		}
	}
	check("before Start", http.StatusServiceUnavailable, "starting")
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("serving", http.StatusOK, "ok")
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after Shutdown", http.StatusServiceUnavailable, "shutting down")

	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", rec.Code)
	}
}

// recorder is a set of components that note the order they are closed in.
type recorder struct {
	mu     sync.Mutex
	closed []string
}

func (r *recorder) component(name string, err error) Component {
	return ComponentFunc(name, func(context.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = append(r.closed, name)
		return err
	})
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.closed)
}

var errCloseFailed = errors.New("close failed")

func TestShutdownClosesComponentsInReverse(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	var rec recorder
	s.Register(rec.component("storage", nil))
	s.Register(rec.component("state", errCloseFailed))
	s.Register(rec.component("broker", nil))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rec.order(); len(got) != 0 {
		t.Fatalf("closed %v while running", got)
	}
	err := s.Shutdown(t.Context())
	if !errors.Is(err, errCloseFailed) || !strings.Contains(err.Error(), "close state") {
		t.Errorf("Shutdown = %v, want the error of state", err)
	}
	if got, want := rec.order(), []string{"broker", "state", "storage"}; !slices.Equal(got, want) {
		t.Errorf("closed %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("Register after Shutdown did not panic")
		}
	}()
	s.Register(rec.component("late", nil))
}

func TestStartFailures(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		modify func(*Config)
		want   []string
	}{
		{
			name:   "port in use",
			modify: func(c *Config) { c.HTTPAddr = busy.Addr().String() },
			want:   []string{"http listener", busy.Addr().String()},
		},
		{
			name:   "data directory cannot be created",
			modify: func(c *Config) { c.DataDir = filepath.Join(notADir, "data") },
			want:   []string{"data directory", notADir},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.modify(&cfg)
			s := newTestServer(t, cfg)
			var rec recorder
			s.Register(rec.component("storage", nil))
			err := s.Start(t.Context())
			if err == nil {
				t.Fatal("Start succeeded, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Start error %q does not contain %q", err, want)
				}
			}
			if got := rec.order(); !slices.Equal(got, []string{"storage"}) {
				t.Errorf("after a failed Start closed %v, want [storage]", got)
			}
			if got := s.Endpoints(); len(got) != 0 {
				t.Errorf("Endpoints() after a failed Start = %v, want none", got)
			}
			if err := s.Start(t.Context()); !errors.Is(err, ErrStopped) {
				t.Errorf("Start after a failed Start = %v, want ErrStopped", err)
			}
		})
	}
}

func TestStartCanceled(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a canceled context = %v, want context.Canceled", err)
	}
}

// TestShutdownDrainsRequests checks that Shutdown waits for a request in
// flight, and that components are closed only after it finished.
func TestShutdownDrainsRequests(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	entered, release := make(chan struct{}), make(chan struct{})
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	var rec recorder
	s.Register(rec.component("broker", nil))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	type result struct {
		body string
		err  error
	}
	requestDone := make(chan result, 1)
	go func() {
		_, body, err := get("http://" + s.Addr("http") + "/slow")
		requestDone <- result{string(body), err}
	}()
	<-entered

	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := rec.order(); len(got) != 0 {
		t.Errorf("closed %v while a request was in flight", got)
	}
	close(release)
	if r := <-requestDone; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request = %q, %v; want it to finish", r.body, r.err)
	}
	if err := <-shutdownDone; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if got := rec.order(); !slices.Equal(got, []string{"broker"}) {
		t.Errorf("closed %v, want [broker]", got)
	}
}

// TestShutdownDeadline checks that a request that outlives the deadline is
// cut off, the deadline is reported, and components are closed anyway.
func TestShutdownDeadline(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	entered := make(chan struct{})
	s.Handle("GET /stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // canceled when the server closes the connection
	}))
	var rec recorder
	s.Register(rec.component("broker", nil))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	go get("http://" + s.Addr("http") + "/stuck")
	<-entered

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "drain http") {
		t.Errorf("Shutdown = %v, want the drain to exceed its deadline", err)
	}
	if got := rec.order(); !slices.Equal(got, []string{"broker"}) {
		t.Errorf("closed %v, want [broker] despite the deadline", got)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.FSync = "sometimes"
	if _, err := New(cfg, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New = %v, want ErrInvalidConfig", err)
	}
}
