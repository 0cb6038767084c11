package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPprof(t *testing.T) {
	for _, addr := range []string{":6060", "0.0.0.0:6060", "192.0.2.1:6060"} {
		cfg := testConfig(t)
		cfg.PprofAddr = addr
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "pprof-addr") {
			t.Errorf("pprof-addr %q: Validate = %v, want a loopback-only error", addr, err)
		}
	}

	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", ""
	cfg.PprofAddr = "127.0.0.1:0"
	s := newTestServer(t, cfg)
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pprofAddr, httpAddr := s.Addr("pprof"), s.Addr("http")
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("pprof goroutine profile: %d %.200q", code, body)
	}
	if code, _ := get("http://" + httpAddr + "/debug/pprof/"); code == http.StatusOK {
		t.Error("the API port serves /debug/pprof/")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + pprofAddr + "/debug/pprof/"); err == nil {
		t.Error("pprof still served after Shutdown")
	}
}
