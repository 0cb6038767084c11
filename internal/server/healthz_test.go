package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/broker"
)

// TestHealthzReportsStateFailure: once a state store commit fails (a WAL
// fsync error here), the store takes no more writes until a restart, and
// /healthz answers 503 "failed" with the cause, so that a load balancer
// stops sending clients whose acks and commits would all fail; a Kafka
// client's offset commit gets KAFKA_STORAGE_ERROR.
func TestHealthzReportsStateFailure(t *testing.T) {
	var on atomic.Bool
	fs := errorfs.Wrap(pebblevfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			return syscall.EIO
		}
		return nil
	}))
	cfg := testConfig(t)
	cfg.AMQPAddr, cfg.MQTTAddr = "", ""
	s, health := startForHealth(t, cfg, fs)

	ctx := context.Background()
	if _, err := s.broker.CreateStream(ctx, broker.StreamConfig{Name: "s", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	errs, err := s.broker.ClassicCommit(ctx, "g", "", "", -1, []broker.OffsetCommit{{Stream: "s", Partition: 0, Offset: 0}})
	if err == nil && (len(errs) == 0 || errs[0] == nil) {
		t.Fatal("an offset commit under a failing WAL fsync succeeded")
	}
	on.Store(false) // the store stays failed when the fault clears
	// A Kafka client is told the storage failed (retriable), not an
	// unknown error.
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CommitOffsets(ctx, "g", kadm.OffsetsFromRecords(kgo.Record{Topic: "s", Partition: 0, Offset: 0}))
	if err != nil {
		t.Fatalf("kafka commit after the failure: %v", err)
	}
	if err := resp.Error(); !errors.Is(err, kerr.KafkaStorageError) {
		t.Errorf("kafka commit after the failure: %v, want KAFKA_STORAGE_ERROR", err)
	}
	code, h := health()
	if code != http.StatusServiceUnavailable || h.Status != "failed" || !strings.Contains(h.Error, syscall.EIO.Error()) {
		t.Fatalf("/healthz after the failed commit = %d %+v, want 503 failed naming %q", code, h, syscall.EIO.Error())
	}
}

// TestHealthzReportsDataDirGone: a data directory removed under a running
// server makes /healthz answer 503 "failed" with an error that says so,
// rather than one naming a file a write could not find.
func TestHealthzReportsDataDirGone(t *testing.T) {
	cfg := testConfig(t)
	cfg.KafkaAddr, cfg.AMQPAddr, cfg.MQTTAddr = "", "", ""
	cfg.DataDir = t.TempDir() + "/data"
	_, health := startForHealth(t, cfg, nil)
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	code, h := health()
	if code != http.StatusServiceUnavailable || h.Status != "failed" || !strings.Contains(h.Error, cfg.DataDir+" no longer exists") {
		t.Errorf("healthz after removing the data directory = %d %+v, want 503 failed naming it", code, h)
	}
}

// startForHealth starts a server with cfg (and its state store on stateFS,
// nil for the OS's), checks that /healthz answers 200 "ok", and returns it with
// a function that asks /healthz again. The shutdown at the end of the test
// must end even if the server failed (a failed store cannot flush).
func startForHealth(t *testing.T, cfg Config, stateFS pebblevfs.FS) (*Server, func() (int, healthStatus)) {
	t.Helper()
	s, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	s.stateFS = stateFS // nil: the OS's
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); ctx.Err() != nil {
			t.Errorf("Shutdown did not end: %v", err)
		}
	})
	health := func() (int, healthStatus) {
		t.Helper()
		resp, body, err := get("http://" + s.Addr("http") + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var h healthStatus
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("/healthz body %q: %v", body, err)
		}
		return resp.StatusCode, h
	}
	if code, h := health(); code != http.StatusOK || h.Status != "ok" {
		t.Fatalf("/healthz once started = %d %+v, want 200 ok", code, h)
	}
	return s, health
}
