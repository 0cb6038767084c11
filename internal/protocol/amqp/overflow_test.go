package amqp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/protocol/amqp"
)

// TestOverflowBlock: a queue declared with x-max-length and Weir's
// x-overflow "block" holds its publishers while full, confirming nothing
// past the bound, until a consumer (on another connection) acks; nothing
// is dropped or refused, and a publisher held long enough for its publish
// queue to fill stops being read (backpressure through TCP).
func TestOverflowBlock(t *testing.T) {
	w := startWeir(t)
	pubConn, err := amqp091.Dial(w.url)
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	// On a failure, deleting the queue frees the held publisher, without
	// which closing its connection would wait for it.
	defer w.srv.Broker().DeleteStream(context.Background(), amqp.BrokerName("/", "held")) //nolint:errcheck
	closed := pubConn.NotifyClose(make(chan *amqp091.Error, 1))
	pub := w.channel(t, pubConn)
	const bound = 5
	if _, err := pub.QueueDeclare("held", true, false, false, false, amqp091.Table{"x-max-length": int32(bound), "x-overflow": "block"}); err != nil {
		t.Fatalf("declare with x-overflow block: %v", err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// More than the publisher's queue and the socket buffers hold, so the
	// reader stops while the queue is full.
	const total = 1500
	body := make([]byte, 32<<10)
	ctx := context.Background()
	confirms := make([]*amqp091.DeferredConfirmation, 0, total)
	published := make(chan error, 1)
	go func() {
		for i := range total {
			copy(body, fmt.Sprintf("%06d", i))
			dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", "held", false, false, amqp091.Publishing{Body: append([]byte(nil), body...)})
			if err != nil {
				published <- err
				return
			}
			confirms = append(confirms, dc)
		}
		published <- nil
	}()
	// Held: only the first bound messages are taken. (Not for long:
	// amqp091-go drops its own connection once its writes have blocked
	// for three heartbeat intervals, as its heartbeat goroutine waits
	// behind the blocked write.)
	time.Sleep(time.Second)
	select {
	case err := <-published:
		t.Fatalf("all %d messages written into a full queue (err %v): the reader did not stop", total, err)
	default:
	}
	select {
	case err := <-closed:
		t.Fatalf("the held publisher's connection was closed: %v", err)
	default:
	}
	q, err := w.channel(t, w.dial(t)).QueueDeclarePassive("held", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The channel's publisher sends up to 256 messages in one broker
	// call, and one call is taken while the queue is below its bound.
	if q.Messages < bound || q.Messages > bound+256 {
		t.Fatalf("a full queue with x-overflow block holds %d messages, want %d to %d", q.Messages, bound, bound+256)
	}

	cons := w.channel(t, w.dial(t))
	if err := cons.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cons.Consume("held", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		d := receive(t, deliveries, 10*time.Second)
		if want := fmt.Sprintf("%06d", i); string(d.Body[:6]) != want {
			t.Fatalf("delivery %d is %q, want %q: a message was lost or reordered", i, d.Body[:6], want)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-published; err != nil {
		t.Fatalf("publish: %v", err)
	}
	for i, dc := range confirms {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := dc.WaitContext(wctx)
		cancel()
		if !ok || err != nil {
			t.Fatalf("confirm %d: ok=%v err=%v", i, ok, err)
		}
	}
	if pubConn.IsClosed() {
		t.Fatal("the publisher's connection closed")
	}
}
