package amqp_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

func TestTransactions(t *testing.T) {
	w := startWeir(t)
	b := w.srv.Broker()
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if _, err := ch.QueueDeclare("txq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	depth := func() int64 {
		t.Helper()
		info, err := b.DescribeSubscription("txq", "txq")
		if err != nil {
			t.Fatal(err)
		}
		return info.Depth
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	pub := func(body string) {
		t.Helper()
		if err := ch.Publish("", "txq", false, false, amqp091.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	// Publishes take effect at commit.
	pub("a")
	pub("b")
	time.Sleep(100 * time.Millisecond)
	if d := depth(); d != 0 {
		t.Fatalf("depth %d before commit, want 0", d)
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if d := depth(); d != 2 {
		t.Fatalf("depth %d after commit, want 2", d)
	}
	// Rollback drops them.
	pub("dropped")
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if err := ch.TxCommit(); err != nil { // an empty transaction
		t.Fatal(err)
	}
	if d := depth(); d != 2 {
		t.Fatalf("depth %d after rollback, want 2", d)
	}

	// Acks take effect at commit; a rolled-back ack leaves the delivery
	// unacknowledged, to be acknowledged again.
	if err := ch.Qos(10, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume("txq", "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := receive(t, msgs, 5*time.Second)
	second := receive(t, msgs, 5*time.Second)
	if string(first.Body) != "a" || string(second.Body) != "b" {
		t.Fatalf("got %q and %q, want a and b", first.Body, second.Body)
	}
	if err := first.Ack(false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if d := depth(); d != 2 {
		t.Fatalf("depth %d after an uncommitted ack, want 2", d)
	}
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	if d := depth(); d != 2 {
		t.Fatalf("depth %d after a rolled-back ack, want 2", d)
	}
	if err := first.Ack(false); err != nil { // known again: no 406
		t.Fatal(err)
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if d := depth(); d != 1 {
		t.Fatalf("depth %d after a committed ack, want 1", d)
	}
	// A committed nack with requeue redelivers.
	if err := second.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	noDelivery(t, msgs, 100*time.Millisecond)
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	again := receive(t, msgs, 5*time.Second)
	if string(again.Body) != "b" || !again.Redelivered {
		t.Fatalf("after a committed nack got %q redelivered=%v", again.Body, again.Redelivered)
	}
	// A publish and an ack in one transaction.
	pub("c")
	if err := again.Ack(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	if d := receive(t, msgs, 5*time.Second); string(d.Body) != "c" {
		t.Fatalf("got %q, want c", d.Body)
	}

	// An unroutable mandatory publish is returned at commit, before
	// commit-ok.
	returns := ch.NotifyReturn(make(chan amqp091.Return, 1))
	if err := ch.Publish("amq.direct", "nowhere", true, false, amqp091.Publishing{Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		t.Fatalf("returned before commit: %q", r.Body)
	case <-time.After(100 * time.Millisecond):
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if string(r.Body) != "lost" || r.ReplyCode != amqp091.NoRoute {
			t.Fatalf("return %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return after commit")
	}

	// A publish to a missing exchange fails the channel at commit (404),
	// without a commit-ok.
	bad := w.channel(t, conn)
	if err := bad.Tx(); err != nil {
		t.Fatal(err)
	}
	if err := bad.Publish("no-such-exchange", "k", false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	var ae *amqp091.Error
	if err := bad.TxCommit(); !errors.As(err, &ae) || ae.Code != amqp091.NotFound {
		t.Fatalf("commit of a publish to a missing exchange: %v, want 404", err)
	}

	// Errors: commit or rollback without tx.select, confirm and tx mixed.
	for _, op := range []func(*amqp091.Channel) error{
		(*amqp091.Channel).TxCommit,
		(*amqp091.Channel).TxRollback,
		func(c *amqp091.Channel) error { c.Confirm(false); return c.Tx() },
		func(c *amqp091.Channel) error { c.Tx(); return c.Confirm(false) },
	} {
		c := w.channel(t, conn)
		if err := op(c); !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
			t.Fatalf("got %v, want 406", err)
		}
	}
}

// A channel's methods are ordered: basic.get, a declare's message count,
// purge and delete see the messages the channel published before them,
// even without confirms (as the amqp091-go integration suite expects).
func TestChannelSeesItsOwnPublishes(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	for i := range 50 {
		q := fmt.Sprintf("own-%d", i)
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := ch.Publish("", q, false, false, amqp091.Publishing{Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok, err := ch.Get(q, true); err != nil || !ok {
			t.Fatalf("get right after publishing: ok=%v %v", ok, err)
		}
		if info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil || info.Messages != 2 {
			t.Fatalf("declare-ok count %d (%v), want 2", info.Messages, err)
		}
		if err := ch.Publish("", q, false, false, amqp091.Publishing{Body: []byte("y")}); err != nil {
			t.Fatal(err)
		}
		if n, err := ch.QueuePurge(q, false); err != nil || n != 3 {
			t.Fatalf("purged %d (%v), want 3", n, err)
		}
	}
}

// Both sides close a channel at once (the server after a failed publish,
// the client on its own): the client's close is answered, and its
// close-ok to the server's close, arriving for a channel already gone, is
// ignored rather than taken for a frame on a closed channel (504).
func TestSimultaneousChannelClose(t *testing.T) {
	w := startWeir(t)
	c := dialRaw(t, w.srv.Addr("amqp"), 0)
	c.send(t, 1, &wire.ChannelOpen{})
	if _, ok := c.method(t).(*wire.ChannelOpenOk); !ok {
		t.Fatal("no channel.open-ok")
	}
	c.send(t, 1, &wire.ExchangeDeclare{Exchange: "no-such", Passive: true})
	if m, ok := c.method(t).(*wire.ChannelClose); !ok || m.ReplyCode != wire.NotFound {
		t.Fatalf("got %#v, want channel.close 404", m)
	}
	// The client had sent its own close before it read the server's.
	c.send(t, 1, &wire.ChannelClose{ReplyCode: 200, ReplyText: "bye"})
	if _, ok := c.method(t).(*wire.ChannelCloseOk); !ok {
		t.Fatal("no channel.close-ok for the client's close")
	}
	c.send(t, 1, &wire.ChannelCloseOk{})
	// The connection is fine: channel 2 works.
	c.send(t, 2, &wire.ChannelOpen{})
	if m, ok := c.method(t).(*wire.ChannelOpenOk); !ok {
		t.Fatalf("got %#v, want channel.open-ok on channel 2", m)
	}
}
