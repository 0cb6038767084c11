package amqp_test

import (
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// A consumer settling each message on its own (amqp091-go's Ack(false),
// Nack and Reject per delivery, as most applications do) has every
// settlement applied, whatever the channel batches into one broker call:
// acked and rejected messages are gone, requeued ones come back once, and
// the queue ends empty with nothing left to deliver.
func TestSettlementsOneByOne(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	pub := w.channel(t, conn)
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	q, err := pub.QueueDeclare("one-by-one", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		publishConfirmed(t, pub, "", q.Name, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: fmt.Appendf(nil, "%d", i)})
	}

	cons := w.channel(t, w.dial(t))
	if err := cons.Qos(100, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := cons.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	acked, rejected := 0, 0
	for acked+rejected < n {
		d := receive(t, ds, 30*time.Second)
		body := string(d.Body)
		seen[body]++
		var i int
		fmt.Sscan(body, &i)
		switch {
		case i%10 == 0 && seen[body] == 1:
			if err := d.Nack(false, true); err != nil {
				t.Fatal(err)
			}
		case i%97 == 0:
			if err := d.Reject(false); err != nil {
				t.Fatal(err)
			}
			rejected++
		default:
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
	for body, times := range seen {
		var i int
		fmt.Sscan(body, &i)
		if want := 1 + btoi(i%10 == 0); times != want {
			t.Errorf("message %s delivered %d times, want %d", body, times, want)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages delivered, want %d", len(seen), n)
	}
	noDelivery(t, ds, 300*time.Millisecond)
	// The settlements are applied before the channel's close completes.
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	after := w.channel(t, w.dial(t))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := after.QueueDeclarePassive(q.Name, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d messages after every one was settled", st.Messages)
		}
		time.Sleep(50 * time.Millisecond)
	}
	again, err := after.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	noDelivery(t, again, 500*time.Millisecond)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
