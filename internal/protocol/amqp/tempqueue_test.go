package amqp_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/server"
)

// bindingsOf lists the destinations an exchange's bindings name.
func bindingsOf(t *testing.T, b *broker.Broker, exchange string) []string {
	t.Helper()
	for _, x := range b.ListExchanges() {
		if x.Config.Name == exchange {
			var out []string
			for _, bd := range x.Bindings {
				out = append(out, bd.Destination)
			}
			slices.Sort(out)
			return out
		}
	}
	t.Fatalf("no exchange %s", exchange)
	return nil
}

func TestTemporaryQueuesDoNotSurviveRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	sameDir := func(c *server.Config) { c.DataDir = dataDir }
	w := startWeir(t, sameDir)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("events", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	excl, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name             string
		durable, autoDel bool
	}{{"keep", true, false}, {"gone-auto", true, true}} {
		if _, err := ch.QueueDeclare(q.name, q.durable, q.autoDel, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"keep", "gone-auto", excl.Name} {
		if err := ch.QueueBind(q, "a.#", "events", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := w.srv.Broker()
	for _, q := range []string{"gone-auto", excl.Name} {
		if tmp, err := b.IsTemporary(q); err != nil || !tmp {
			t.Fatalf("queue %s: temporary=%v (%v), want a temporary queue", q, tmp, err)
		}
	}
	if tmp, _ := b.IsTemporary("keep"); tmp {
		t.Fatal("a durable queue was made temporary")
	}
	// Redeclaring cannot turn one kind into the other.
	for _, redeclare := range []func(*amqp091.Channel) error{
		func(c *amqp091.Channel) error {
			_, err := c.QueueDeclare("keep", true, true, false, false, nil)
			return err
		},
		func(c *amqp091.Channel) error {
			_, err := c.QueueDeclare("keep", true, false, true, false, nil)
			return err
		},
		func(c *amqp091.Channel) error {
			_, err := c.QueueDeclare("gone-auto", true, false, false, false, nil)
			return err
		},
		// Durability is checked against the declaration of this run.
		func(c *amqp091.Channel) error {
			_, err := c.QueueDeclare("gone-auto", false, true, false, false, nil)
			return err
		},
	} {
		c := w.channel(t, conn)
		var ae *amqp091.Error
		if err := redeclare(c); !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
			t.Fatalf("redeclaring with another kind: %v, want 406", err)
		}
	}
	if _, err := ch.QueueDeclare("gone-auto", true, true, false, false, nil); err != nil {
		t.Fatalf("redeclaring as declared: %v", err)
	}
	publishConfirmed(t, ch, "events", "a.b", true, amqp091.Publishing{Body: []byte("one")})
	for _, q := range []string{"keep", "gone-auto", excl.Name} {
		if d, ok, err := ch.Get(q, false); err != nil || !ok || string(d.Body) != "one" {
			t.Fatalf("get %s: %q ok=%v %v", q, d.Body, ok, err)
		}
	}
	if got := bindingsOf(t, b, "events"); len(got) != 3 {
		t.Fatalf("bindings %v, want 3", got)
	}

	// A restart: the server stops with the connection open and the
	// auto-delete queue never consumed (so the front end never deleted it).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	w = startWeir(t, sameDir)
	b = w.srv.Broker()
	for _, q := range []string{"gone-auto", excl.Name} {
		if _, err := b.DescribeStream(q); !errors.Is(err, broker.ErrStreamNotFound) {
			t.Fatalf("temporary queue %s after a restart: %v, want not found", q, err)
		}
	}
	if got := bindingsOf(t, b, "events"); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("bindings after a restart %v, want only keep's", got)
	}
	conn = w.dial(t)
	ch = w.channel(t, conn)
	_, err = ch.QueueDeclarePassive("gone-auto", true, true, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
		t.Fatalf("passive declare of the auto-delete queue after a restart: %v, want 404", err)
	}
	ch = w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, "events", "a.c", false, amqp091.Publishing{Body: []byte("two")})
	// The durable queue kept its unacknowledged message (redelivered) and
	// got the new one.
	var bodies []string
	for range 2 {
		d, ok, err := ch.Get("keep", true)
		if err != nil || !ok {
			t.Fatalf("get keep: ok=%v %v", ok, err)
		}
		bodies = append(bodies, string(d.Body))
	}
	if !slices.Equal(bodies, []string{"one", "two"}) {
		t.Fatalf("keep holds %v, want one and two", bodies)
	}
}
