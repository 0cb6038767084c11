package amqp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp"
)

func TestBrokerNames(t *testing.T) {
	cases := []struct{ vhost, name, want string }{
		{"/", "orders", "orders"},
		{"/", "test.integration.queue", "test.integration.queue"},
		{"/", "_inbox.0123", "_inbox.0123"},                           // inboxes are reached from every vhost
		{"shop", "_inbox.0123", "_inbox.0123"},                        //
		{"/", "a/b", "_amqp._2F.a_2Fb"},                               // not a stream name
		{"/", "zero_values", "zero_values"},                           // '_' is fine unencoded
		{"/", "celery@host.pidbox", "_amqp._2F.celery_40host.pidbox"}, //
		{"/", "_amqp.x.y", "_amqp._2F.__amqp.x.y"},                    // the reserved prefix is encoded
		{"/", "_amqpish", "_amqp._2F.__amqpish"},                      //
		{"shop", "orders", "_amqp.shop.orders"},                       // another vhost
		{"shop.eu", "a_b", "_amqp.shop_2Eeu.a__b"},                    // '.' escaped in the vhost only
		{"shop", "", ""},                                              // the default exchange
		{"/", "é", "_amqp._2F._C3_A9"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := amqp.BrokerName(c.vhost, c.name)
		if got != c.want {
			t.Errorf("BrokerName(%q, %q) = %q, want %q", c.vhost, c.name, got, c.want)
		}
		if c.name == "" || strings.HasPrefix(c.name, broker.InboxPrefix) {
			continue
		}
		if err := broker.ValidateStreamName(got); err != nil {
			t.Errorf("BrokerName(%q, %q) = %q: %v", c.vhost, c.name, got, err)
		}
		vhost, name, err := amqp.ParseBrokerName(got)
		if err != nil || vhost != c.vhost || name != c.name {
			t.Errorf("ParseBrokerName(%q) = %q, %q, %v; want %q, %q", got, vhost, name, err, c.vhost, c.name)
		}
		key := c.vhost + "\x00" + c.name
		if prev, ok := seen[got]; ok && prev != key {
			t.Errorf("%q and %q both map to %q", prev, key, got)
		}
		seen[got] = key
	}
	for _, bad := range []string{"_amqp.noDot", "_amqp.shop.a_2", "_amqp.shop.a_ZZb"} {
		if _, _, err := amqp.ParseBrokerName(bad); err == nil {
			t.Errorf("ParseBrokerName(%q) accepted a broken encoding", bad)
		}
	}
}

// FuzzBrokerNames checks that the mapping is one to one and round-trips.
func FuzzBrokerNames(f *testing.F) {
	f.Add("/", "a/b")
	f.Add("shop", "x_y.z")
	f.Add("_", "__")
	f.Fuzz(func(t *testing.T, vhost, name string) {
		if vhost == "" || name == "" || strings.HasPrefix(name, broker.InboxPrefix) {
			return
		}
		bn := amqp.BrokerName(vhost, name)
		v, n, err := amqp.ParseBrokerName(bn)
		if err != nil || v != vhost || n != name {
			t.Fatalf("(%q, %q) → %q → (%q, %q, %v)", vhost, name, bn, v, n, err)
		}
	})
}

// TestQueueNamesOutsideStreamRules: RabbitMQ allows any queue name; Weir
// keeps the ones that are not stream names under an encoded broker name.
func TestQueueNamesOutsideStreamRules(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	names := []string{"orders/eu", "celery@worker-1.pidbox", "with space", "ünïcode", "_amqp.sneaky", strings.Repeat("x", 200) + "/"}
	for _, name := range names {
		q, err := ch.QueueDeclare(name, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("declare %q: %v", name, err)
		}
		if q.Name != name {
			t.Errorf("declare-ok names %q, want %q", q.Name, name)
		}
		if err := ch.QueueBind(name, "rk."+name, "amq.direct", false, nil); err != nil {
			t.Fatalf("bind %q: %v", name, err)
		}
		publishConfirmed(t, ch, "", name, true, amqp091.Publishing{Body: []byte("default " + name)})
		publishConfirmed(t, ch, "amq.direct", "rk."+name, true, amqp091.Publishing{Body: []byte("direct " + name)})
	}
	for _, name := range names {
		bn := amqp.BrokerName("/", name)
		info, err := w.srv.Broker().DescribeSubscription(bn, bn)
		if err != nil || info.Depth != 2 {
			t.Errorf("queue %q as broker queue %q: depth %d, %v", name, bn, info.Depth, err)
		}
		for _, want := range []string{"default " + name, "direct " + name} {
			d, ok, err := ch.Get(name, true)
			if err != nil || !ok || string(d.Body) != want {
				t.Fatalf("get %q: ok=%v err=%v body %q, want %q", name, ok, err, d.Body, want)
			}
			if want == "default "+name && d.RoutingKey != name {
				t.Errorf("routing key %q, want the queue's AMQP name %q", d.RoutingKey, name)
			}
		}
	}
	// A name whose encoding is longer than a stream name may be is refused
	// with a message that says so.
	_, err := ch.QueueDeclare(strings.Repeat("/", 200), true, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed || !strings.Contains(ae.Reason, "too long") {
		t.Errorf("declare of a name too long once encoded: %v", err)
	}
}

// TestQueueTTLGet is the amqp091-go suite's TestRabbitMQQueueTTLGet
// (which runs only against a server calling itself RabbitMQ).
func TestQueueTTLGet(t *testing.T) {
	w := startWeir(t)
	ch := w.channel(t, w.dial(t))
	if _, err := ch.QueueDeclare("ttl-get", true, true, false, false, amqp091.Table{"x-message-ttl": int32(100)}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", "ttl-get", false, false, amqp091.Publishing{Body: []byte("ttl")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if d, ok, err := ch.Get("ttl-get", false); ok || err != nil {
		t.Fatalf("get after the TTL: ok=%v (%q) err=%v, want empty", ok, d.Body, err)
	}
}

// TestNackMultipleRequeue is the suite's TestRabbitMQQueueNackMultipleRequeue.
func TestNackMultipleRequeue(t *testing.T) {
	w := startWeir(t)
	ch := w.channel(t, w.dial(t))
	if _, err := ch.QueueDeclare("nack-multi", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"1", "2"} {
		if err := ch.Publish("", "nack-multi", false, false, amqp091.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(want string) amqp091.Delivery {
		t.Helper()
		d, ok, err := ch.Get("nack-multi", false)
		if err != nil || !ok || string(d.Body) != want {
			t.Fatalf("get: ok=%v err=%v body %q, want %q", ok, err, d.Body, want)
		}
		return d
	}
	get("1")
	m2 := get("2")
	if err := m2.Nack(true, true); err != nil {
		t.Fatal(err)
	}
	// Both come back, in order, marked redelivered.
	for _, want := range []string{"1", "2"} {
		var d amqp091.Delivery
		deadline := time.Now().Add(5 * time.Second)
		for {
			var ok bool
			var err error
			d, ok, err = ch.Get("nack-multi", false)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %s not requeued", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if string(d.Body) != want || !d.Redelivered {
			t.Errorf("after nack: %q redelivered=%v, want %q redelivered", d.Body, d.Redelivered, want)
		}
	}
}

// TestFlowAndRecoverAsRabbitMQ: a client's channel.flow active=false and
// basic.recover requeue=false are 540 NOT_IMPLEMENTED (a connection
// error), as RabbitMQ answers; their other halves work.
func TestFlowAndRecoverAsRabbitMQ(t *testing.T) {
	w := startWeir(t)
	for _, c := range []struct {
		name string
		call func(*amqp091.Channel) error
	}{
		{"flow active=false", func(ch *amqp091.Channel) error { return ch.Flow(false) }},
		{"recover requeue=false", func(ch *amqp091.Channel) error { return ch.Recover(false) }},
	} {
		conn := w.dial(t)
		ch := w.channel(t, conn)
		if err := ch.Flow(true); err != nil {
			t.Fatalf("flow active=true: %v", err)
		}
		if err := ch.Recover(true); err != nil {
			t.Fatalf("recover requeue=true: %v", err)
		}
		err := c.call(ch)
		var ae *amqp091.Error
		if !errors.As(err, &ae) || ae.Code != amqp091.NotImplemented {
			t.Errorf("%s: %v, want 540 NOT_IMPLEMENTED", c.name, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !conn.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !conn.IsClosed() {
			t.Errorf("%s: the connection stays open after a hard error", c.name)
		}
	}
}
