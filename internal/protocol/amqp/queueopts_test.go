package amqp_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
)

func TestQueueExpires(t *testing.T) {
	w := startWeir(t)
	b := w.srv.Broker()
	conn := w.dial(t)
	ch := w.channel(t, conn)
	const lease = 400 * time.Millisecond
	args := amqp091.Table{"x-expires": int32(lease / time.Millisecond)}
	for _, q := range []string{"idle", "consumed", "touched"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.Consume("consumed", "c", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// "touched" is declared again (passively) and got from more often than
	// its lease runs.
	for range 10 {
		if _, err := ch.QueueDeclarePassive("touched", true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ch.Get("touched", true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(lease / 4)
	}
	// By now "idle" went unused for twice its lease.
	waitGone(t, b, "idle")
	for _, q := range []string{"consumed", "touched"} {
		if _, err := b.DescribeStream(q); err != nil {
			t.Fatalf("queue %s in use was deleted: %v", q, err)
		}
	}
	// Once its consumer goes, the lease starts.
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	waitGone(t, b, "consumed")
	waitGone(t, b, "touched")

	// x-expires must be a positive number, and a redeclaration must match.
	for _, bad := range []amqp091.Table{{"x-expires": int32(0)}, {"x-expires": "soon"}} {
		ch := w.channel(t, conn)
		_, err := ch.QueueDeclare("bad", true, false, false, false, bad)
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
			t.Fatalf("x-expires %v: %v, want 406", bad, err)
		}
	}
	ch = w.channel(t, conn)
	if _, err := ch.QueueDeclare("lease", true, false, false, false, amqp091.Table{"x-expires": int32(60000)}); err != nil {
		t.Fatal(err)
	}
	_, err := ch.QueueDeclare("lease", true, false, false, false, amqp091.Table{"x-expires": int32(1000)})
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Fatalf("redeclare with another x-expires: %v, want 406", err)
	}
}

func TestSingleActiveConsumer(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	setup := w.channel(t, conn)
	if err := setup.Confirm(false); err != nil {
		t.Fatal(err)
	}
	args := amqp091.Table{"x-single-active-consumer": true}
	if _, err := setup.QueueDeclare("sac", true, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	// Three consumers on their own channels, in this order.
	chans := make([]*amqp091.Channel, 3)
	deliveries := make([]<-chan amqp091.Delivery, 3)
	for i := range chans {
		chans[i] = w.channel(t, conn)
		if err := chans[i].Qos(10, 0, false); err != nil {
			t.Fatal(err)
		}
		var err error
		deliveries[i], err = chans[i].Consume("sac", fmt.Sprintf("c%d", i), false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			publishConfirmed(t, setup, "", "sac", false, amqp091.Publishing{Body: fmt.Appendf(nil, "m%d", i)})
		}
	}
	publish(0, 5)
	for i := range 5 {
		d := receive(t, deliveries[0], 5*time.Second)
		if string(d.Body) != fmt.Sprintf("m%d", i) {
			t.Fatalf("first consumer got %q, want m%d", d.Body, i)
		}
		d.Ack(false)
	}
	noDelivery(t, deliveries[1], 200*time.Millisecond)
	noDelivery(t, deliveries[2], 0)

	// The active consumer goes with two messages unacknowledged: the next
	// in line gets them (redelivered: not necessarily before newer ones,
	// docs/PROTOCOLS.md) and the rest.
	publish(5, 7)
	for i := 5; i < 7; i++ {
		if d := receive(t, deliveries[0], 5*time.Second); string(d.Body) != fmt.Sprintf("m%d", i) {
			t.Fatalf("first consumer got %q, want m%d", d.Body, i)
		}
	}
	if err := chans[0].Close(); err != nil {
		t.Fatal(err)
	}
	publish(7, 9)
	got := map[string]bool{}
	for range 4 {
		d := receive(t, deliveries[1], 5*time.Second)
		got[string(d.Body)] = d.Redelivered
		d.Ack(false)
	}
	for i := 5; i < 9; i++ {
		redelivered, ok := got[fmt.Sprintf("m%d", i)]
		if want := i < 7; !ok || redelivered != want {
			t.Fatalf("second consumer got %v: want m5 to m8, redelivered only m5 and m6", got)
		}
	}
	noDelivery(t, deliveries[2], 200*time.Millisecond)

	// A cancelled active consumer hands over too.
	if err := chans[1].Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	publish(9, 10)
	if d := receive(t, deliveries[2], 5*time.Second); string(d.Body) != "m9" {
		t.Fatalf("third consumer got %q, want m9", d.Body)
	}

	// The argument must match on redeclaration, and be a boolean.
	ch := w.channel(t, conn)
	_, err := ch.QueueDeclare("sac", true, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Fatalf("redeclare without x-single-active-consumer: %v, want 406", err)
	}
	ch = w.channel(t, conn)
	_, err = ch.QueueDeclare("sac2", true, false, false, false, amqp091.Table{"x-single-active-consumer": "yes"})
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Fatalf("x-single-active-consumer as a string: %v, want 406", err)
	}
	if _, err := w.srv.Broker().DescribeStream("sac2"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Fatalf("a refused declaration created the queue: %v", err)
	}
}

// Redeclaring an exchange or a queue with other flags than its declaration
// in this run is 406, as with RabbitMQ (the amqp091-go suite checks it).
func TestRedeclareWithOtherFlags(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.ExchangeDeclare("flags-x", "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("flags-x", "direct", false, true, false, false, nil); err != nil {
		t.Fatalf("same flags: %v", err)
	}
	if _, err := ch.QueueDeclare("flags-q", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, redeclare := range []func(*amqp091.Channel) error{
		func(c *amqp091.Channel) error {
			return c.ExchangeDeclare("flags-x", "direct", true, true, false, false, nil)
		},
		func(c *amqp091.Channel) error {
			return c.ExchangeDeclare("flags-x", "direct", false, false, false, false, nil)
		},
		func(c *amqp091.Channel) error {
			_, err := c.QueueDeclare("flags-q", true, false, false, false, nil)
			return err
		},
	} {
		c := w.channel(t, conn)
		var ae *amqp091.Error
		if err := redeclare(c); !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
			t.Fatalf("redeclare with other flags: %v, want 406", err)
		}
	}
	// Deleted, the name is free for other flags.
	ch = w.channel(t, conn)
	if err := ch.ExchangeDelete("flags-x", false, false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("flags-x", "direct", true, false, false, false, nil); err != nil {
		t.Fatalf("declare after delete: %v", err)
	}
}
