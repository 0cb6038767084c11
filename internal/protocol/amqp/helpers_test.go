package amqp_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/server"
)

// weir is a node started in-process with the AMQP listener on a free
// loopback port (and the Kafka and HTTP listeners for interop tests).
type weir struct {
	srv *server.Server
	url string
}

func startWeir(t testing.TB, opts ...func(*server.Config)) *weir {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.AMQPAddr = "127.0.0.1:0"
	cfg.KafkaAddr, cfg.MQTTAddr, cfg.HTTPAddr = "", "", ""
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
	w := &weir{srv: srv, url: "amqp://guest:guest@" + srv.Addr("amqp") + "/"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return w
}

func (w *weir) dial(t testing.TB) *amqp091.Connection {
	t.Helper()
	conn, err := amqp091.Dial(w.url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (w *weir) channel(t testing.TB, conn *amqp091.Connection) *amqp091.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// receive waits for one delivery.
func receive(t testing.TB, deliveries <-chan amqp091.Delivery, within time.Duration) amqp091.Delivery {
	t.Helper()
	select {
	case d, ok := <-deliveries:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return d
	case <-time.After(within):
		t.Fatalf("no delivery within %v", within)
	}
	return amqp091.Delivery{}
}

// noDelivery checks that nothing arrives for a while.
func noDelivery(t testing.TB, deliveries <-chan amqp091.Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d := <-deliveries:
		t.Fatalf("unexpected delivery %q", d.Body)
	case <-time.After(wait):
	}
}

func publishConfirmed(t testing.TB, ch *amqp091.Channel, exchange, key string, mandatory bool, msg amqp091.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, msg)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil || !ok {
		t.Fatalf("confirm: ok=%v err=%v", ok, err)
	}
}
