package amqp_test

import (
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// TestDeadLetteringFollowsBindings: a dead-letter exchange routes each dead
// letter by its bindings at that moment, with the message's routing key or
// x-dead-letter-routing-key, as RabbitMQ does.
func TestDeadLetteringFollowsBindings(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// The dead-letter exchange need not exist when the queue is declared.
	for _, q := range []struct {
		name string
		args amqp091.Table
	}{
		{"work", amqp091.Table{"x-dead-letter-exchange": "dlx"}},
		{"special", amqp091.Table{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "fixed"}},
		{"d1", nil}, {"d2", nil}, {"d3", nil},
	} {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
			t.Fatalf("declare %s: %v", q.name, err)
		}
	}
	// reject publishes body to queue (through exchange with key, or the
	// default exchange) and rejects it.
	reject := func(exchange, key, queue, body string) {
		t.Helper()
		publishConfirmed(t, ch, exchange, key, false, amqp091.Publishing{Body: []byte(body)})
		d, ok, err := ch.Get(queue, false)
		if err != nil || !ok || string(d.Body) != body {
			t.Fatalf("get %s: %q ok=%v err=%v", queue, d.Body, ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	// expect checks what each dead-letter queue received.
	expect := func(want map[string][]string) {
		t.Helper()
		for _, q := range []string{"d1", "d2", "d3"} {
			var got []string
			deadline := time.Now().Add(3 * time.Second)
			for len(got) < len(want[q]) && time.Now().Before(deadline) {
				d, ok, err := ch.Get(q, true)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				got = append(got, string(d.Body)+"@"+d.RoutingKey)
				deaths, _ := d.Headers["x-death"].([]any)
				if death, _ := deaths[0].(amqp091.Table); len(deaths) != 1 || death["reason"] != "rejected" {
					t.Errorf("%s: x-death %v", q, d.Headers["x-death"])
				}
			}
			if len(want[q]) == 0 {
				time.Sleep(100 * time.Millisecond) // a stray one would have arrived by now
			}
			if d, ok, _ := ch.Get(q, true); ok {
				got = append(got, string(d.Body)+"@"+d.RoutingKey)
			}
			if !slices.Equal(got, want[q]) {
				t.Errorf("%s received %v, want %v", q, got, want[q])
			}
		}
	}

	reject("", "work", "work", "no-exchange-yet") // dropped: the exchange is missing
	expect(nil)

	if err := ch.ExchangeDeclare("dlx", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "no-binding-yet") // dropped: unroutable
	expect(nil)

	if err := ch.QueueBind("d1", "work", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "a") // the original routing key: the queue's name
	expect(map[string][]string{"d1": {"a@work"}})

	if err := ch.QueueBind("d2", "work", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "b")
	expect(map[string][]string{"d1": {"b@work"}, "d2": {"b@work"}})

	if err := ch.QueueUnbind("d1", "work", "dlx", nil); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "c")
	expect(map[string][]string{"d2": {"c@work"}})

	// Published through an exchange: its routing key is kept.
	if err := ch.QueueBind("work", "orders.new", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("d3", "orders.new", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject("amq.direct", "orders.new", "work", "d")
	expect(map[string][]string{"d3": {"d@orders.new"}})

	// x-dead-letter-routing-key replaces it.
	if err := ch.QueueBind("d1", "fixed", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject("", "special", "special", "e")
	expect(map[string][]string{"d1": {"e@fixed"}})

	// Deleting the exchange drops dead letters again; redeclaring it with
	// a binding routes them.
	if err := ch.ExchangeDelete("dlx", false, false); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "f")
	expect(nil)
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("d3", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	reject("", "work", "work", "g")
	expect(map[string][]string{"d3": {"g@work"}})

	// Redeclaring with another dead-letter exchange is inequivalent.
	if _, err := ch.QueueDeclare("work", true, false, false, false, amqp091.Table{"x-dead-letter-exchange": "other"}); err == nil {
		t.Error("redeclare with another x-dead-letter-exchange accepted")
	}
}
