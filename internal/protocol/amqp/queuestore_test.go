package amqp_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/server"
)

// TestQueueOptionsSurviveRestart: x-expires and x-single-active-consumer
// of durable queues hold after a restart without a new declaration; a
// queue that another protocol deleted and created again does not inherit
// them.
func TestQueueOptionsSurviveRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	sameDir := func(c *server.Config) { c.DataDir = dataDir }
	restart := func(w *weir) *weir {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		return startWeir(t, sameDir)
	}
	const lease = 700 * time.Millisecond
	w := startWeir(t, sameDir)
	ch := w.channel(t, w.dial(t))
	declare := func(ch *amqp091.Channel, name string, exclusive bool, args amqp091.Table) {
		t.Helper()
		if _, err := ch.QueueDeclare(name, true, false, exclusive, false, args); err != nil {
			t.Fatalf("declare %s: %v", name, err)
		}
	}
	declare(ch, "lease", false, amqp091.Table{"x-expires": int32(lease / time.Millisecond)})
	declare(ch, "sac", false, amqp091.Table{"x-single-active-consumer": true})
	declare(ch, "sac-again", false, amqp091.Table{"x-single-active-consumer": true})
	declare(ch, "plain", false, nil)
	declare(ch, "gone", false, amqp091.Table{"x-expires": int32(60000)})
	if _, err := ch.QueueDelete("gone", false, false, false); err != nil {
		t.Fatal(err)
	}

	w = restart(w)
	b := w.srv.Broker()
	conn := w.dial(t)
	// Nobody declares "lease": it expires all the same, its lease counted
	// from the start.
	start := time.Now()
	waitGone(t, b, "lease")
	if time.Since(start) < lease/2 {
		t.Errorf("lease expired %v after the start, before its %v", time.Since(start), lease)
	}
	if _, err := b.DescribeStream("plain"); err != nil {
		t.Errorf("a queue without x-expires: %v", err)
	}
	// Consumers that do not declare "sac" first are still lined up.
	checkSingleActive(t, w, conn, "sac", true)
	// A redeclaration must match the stored options.
	ch = w.channel(t, conn)
	_, err := ch.QueueDeclare("sac", true, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Errorf("redeclare without x-single-active-consumer after a restart: %v, want 406", err)
	}

	// "sac-again" deleted and created again by the native API: a plain
	// queue after the next restart.
	if err := b.DeleteStream(t.Context(), "sac-again"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateQueue(t.Context(), broker.QueueConfig{Name: "sac-again", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	w = restart(w)
	checkSingleActive(t, w, w.dial(t), "sac-again", false)
	checkSingleActive(t, w, w.dial(t), "sac", true)
}

// checkSingleActive consumes queue with two consumers on their own
// channels, without declaring it, and checks whether only the first gets
// messages until it is cancelled.
func checkSingleActive(t *testing.T, w *weir, conn *amqp091.Connection, queue string, single bool) {
	t.Helper()
	pub := w.channel(t, conn)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var ds [2]<-chan amqp091.Delivery
	var chs [2]*amqp091.Channel
	for i := range ds {
		chs[i] = w.channel(t, conn)
		if err := chs[i].Qos(1, 0, false); err != nil {
			t.Fatal(err)
		}
		d, err := chs[i].Consume(queue, "c"+string(rune('0'+i)), false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	for range 4 {
		publishConfirmed(t, pub, "", queue, false, amqp091.Publishing{Body: []byte("m")})
	}
	got := [2]int{}
	deadline := time.After(2 * time.Second)
loop:
	for got[0]+got[1] < 4 {
		select {
		case d := <-ds[0]:
			got[0]++
			d.Ack(false)
		case d := <-ds[1]:
			got[1]++
			d.Ack(false)
		case <-deadline:
			break loop
		}
	}
	if single && (got[0] != 4 || got[1] != 0) {
		t.Errorf("%s: deliveries per consumer %v, want all to the first (single active consumer)", queue, got)
	}
	if !single && (got[0] == 0 || got[1] == 0) {
		t.Errorf("%s: deliveries per consumer %v, want both to receive", queue, got)
	}
	if single {
		// The second takes over when the first goes.
		if err := chs[0].Cancel("c0", false); err != nil {
			t.Fatal(err)
		}
		publishConfirmed(t, pub, "", queue, false, amqp091.Publishing{Body: []byte("after")})
		d := receive(t, ds[1], 5*time.Second)
		d.Ack(false)
	}
	for _, ch := range chs {
		ch.Close()
	}
}
