package kafka_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirmq/weir/internal/server"
)

// weir is a node started in-process with only the Kafka listener on, on a
// free loopback port.
type weir struct {
	srv  *server.Server
	addr string
	dir  string
}

func startWeir(t testing.TB, opts ...func(*server.Config)) *weir {
	t.Helper()
	return startWeirIn(t, filepath.Join(t.TempDir(), "data"), opts...)
}

func startWeirIn(t testing.TB, dir string, opts ...func(*server.Config)) *weir {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.AMQPAddr, cfg.MQTTAddr, cfg.HTTPAddr = "", "", ""
	cfg.FSync = server.FSyncInterval
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := &weir{srv: srv, addr: srv.Addr("kafka"), dir: dir}
	t.Cleanup(func() { w.stop(t) })
	return w
}

func (w *weir) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// client returns a franz-go client of the node, closed at the end of t.
func (w *weir) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(w.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func (w *weir) admin(t testing.TB) *kadm.Client {
	return kadm.NewClient(w.client(t))
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
