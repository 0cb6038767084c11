package amqp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

func TestPublishConsumeWithConfirms(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	props := conn.Properties
	if props["product"] != "Weir" {
		t.Errorf("server product %v", props["product"])
	}
	caps, _ := props["capabilities"].(amqp091.Table)
	for _, c := range []string{"publisher_confirms", "basic.nack", "consumer_cancel_notify", "exchange_exchange_bindings", "connection.blocked", "per_consumer_qos", "direct_reply_to", "authentication_failure_close"} {
		if caps[c] != true {
			t.Errorf("capability %s = %v", c, caps[c])
		}
	}
	ch := w.channel(t, conn)
	q, err := ch.QueueDeclare("orders", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "orders" || q.Messages != 0 {
		t.Errorf("declare-ok %+v", q)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 200))
	ts := time.Unix(1700000000, 0)
	const n = 150
	for i := range n {
		err := ch.PublishWithContext(t.Context(), "", "orders", false, false, amqp091.Publishing{
			ContentType: "application/json", ContentEncoding: "identity", DeliveryMode: amqp091.Persistent, Priority: 3,
			CorrelationId: "corr", ReplyTo: "replies", MessageId: fmt.Sprintf("m-%d", i), Timestamp: ts, Type: "order.created",
			UserId: "guest", AppId: "shop", Headers: amqp091.Table{"tenant": "acme", "attempt": int32(2)},
			Body: fmt.Appendf(nil, `{"n":%d}`, i),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Confirms come in order, each tag once, all positive.
	var next uint64 = 1
	for next <= n {
		select {
		case c := <-confirms:
			if !c.Ack || c.DeliveryTag != next {
				t.Fatalf("confirm %+v, want ack of %d", c, next)
			}
			next++
		case <-time.After(10 * time.Second):
			t.Fatalf("confirms stopped at %d", next)
		}
	}
	// Stored with the properties as Weir headers (what the native API and
	// Kafka read).
	r, err := w.srv.Broker().NewReader("orders", map[int32]int64{0: 0})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.Read(t.Context(), 1<<20, time.Second)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read: %v, %d records", err, len(recs))
	}
	got := map[string]string{}
	for _, h := range recs[0].Headers {
		got[h.Key] = string(h.Value)
	}
	want := map[string]string{"content-type": "application/json", "content-encoding": "identity", "delivery-mode": "2", "priority": "3",
		"correlation-id": "corr", "reply-to": "replies", "message-id": "m-0", "type": "order.created", "user-id": "guest", "app-id": "shop",
		"tenant": "acme", "attempt": "2", "x-amqp-types": `{"attempt":"I"}`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stored header %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if !recs[0].Timestamp.Equal(ts) {
		t.Errorf("stored timestamp %v, want %v", recs[0].Timestamp, ts)
	}

	deliveries, err := ch.Consume("orders", "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		d := receive(t, deliveries, 10*time.Second)
		if string(d.Body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("delivery %d body %q", i, d.Body)
		}
		if i == 0 {
			if d.ContentType != "application/json" || d.ContentEncoding != "identity" || d.DeliveryMode != 2 || d.Priority != 3 ||
				d.CorrelationId != "corr" || d.ReplyTo != "replies" || d.MessageId != "m-0" || !d.Timestamp.Equal(ts) ||
				d.Type != "order.created" || d.UserId != "guest" || d.AppId != "shop" || d.Headers["tenant"] != "acme" || d.Headers["attempt"] != int32(2) || len(d.Headers) != 2 {
				t.Errorf("delivered properties %+v", d)
			}
			if d.ConsumerTag != "c1" || d.Redelivered || d.RoutingKey != "orders" {
				t.Errorf("deliver fields: tag %q redelivered %v key %q", d.ConsumerTag, d.Redelivered, d.RoutingKey)
			}
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	// Everything acknowledged: the queue drains.
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := w.srv.Broker().DescribeSubscription("orders", "orders")
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("depth %d after acking everything", info.Depth)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLargeMessageSplitAcrossFrames(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if _, err := ch.QueueDeclare("big", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	body := []byte(strings.Repeat("0123456789", 60000)) // 600 kB: several 128 KiB frames
	publishConfirmed(t, ch, "", "big", false, amqp091.Publishing{Body: body})
	d, ok, err := ch.Get("big", true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if string(d.Body) != string(body) {
		t.Errorf("body of %d bytes, want %d", len(d.Body), len(body))
	}
	if _, ok, _ := ch.Get("big", true); ok {
		t.Error("second get found a message")
	}
}

func TestAckNackRequeueRejectToDeadLetterExchange(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("dead", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("dead", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("work", true, false, false, false, amqp091.Table{"x-dead-letter-exchange": "dlx"}); err != nil {
		t.Fatal(err)
	}
	// Redeclaring with the same arguments is fine; with others it is not.
	if _, err := ch.QueueDeclare("work", true, false, false, false, amqp091.Table{"x-dead-letter-exchange": "dlx"}); err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	for _, body := range []string{"ack-me", "requeue-me", "reject-me", "nack-me"} {
		publishConfirmed(t, ch, "", "work", false, amqp091.Publishing{Body: []byte(body)})
	}
	deliveries, err := ch.Consume("work", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	requeued := false
	for done := 0; done < 4; {
		d := receive(t, deliveries, 10*time.Second)
		switch string(d.Body) {
		case "ack-me":
			d.Ack(false)
			done++
		case "requeue-me":
			if !requeued {
				if d.Redelivered {
					t.Error("first delivery marked redelivered")
				}
				d.Nack(false, true)
				requeued = true
				continue
			}
			if !d.Redelivered {
				t.Error("requeued message not marked redelivered")
			}
			d.Ack(false)
			done++
		case "reject-me":
			d.Reject(false)
			done++
		case "nack-me":
			d.Nack(false, false)
			done++
		}
	}
	dead, err := ch.Consume("dead", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		d := receive(t, dead, 10*time.Second)
		got[string(d.Body)] = true
		deaths, _ := d.Headers["x-death"].([]any)
		if len(deaths) != 1 {
			t.Fatalf("x-death %v", d.Headers["x-death"])
		}
		death, _ := deaths[0].(amqp091.Table)
		if death["reason"] != "rejected" || death["queue"] != "work" {
			t.Errorf("x-death %v", death)
		}
		d.Ack(false)
	}
	if !got["reject-me"] || !got["nack-me"] {
		t.Errorf("dead-lettered %v", got)
	}

	// A queue without a dead-letter exchange drops rejected messages.
	if _, err := ch.QueueDeclare("plain", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, "", "plain", false, amqp091.Publishing{Body: []byte("drop")})
	d, ok, err := ch.Get("plain", false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	d.Reject(false)
	time.Sleep(200 * time.Millisecond)
	if _, err := w.srv.Broker().DescribeStream("plain.dlq"); !errors.Is(err, broker.ErrStreamNotFound) {
		t.Errorf("a rejected message of a queue without dead-lettering created %v", err)
	}
	if _, ok, _ := ch.Get("plain", true); ok {
		t.Error("rejected message came back")
	}

	// Inequivalent redeclaration closes the channel with 406.
	_, err = ch.QueueDeclare("work", true, false, false, false, amqp091.Table{"x-message-ttl": int32(5)})
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Errorf("inequivalent redeclare: %v", err)
	}
}

func TestPrefetchRespected(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	for i := range 10 {
		publishConfirmed(t, ch, "", "jobs", false, amqp091.Publishing{Body: fmt.Appendf(nil, "%d", i)})
	}
	if err := ch.Qos(3, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume("jobs", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var held []amqp091.Delivery
	for range 3 {
		held = append(held, receive(t, deliveries, 5*time.Second))
	}
	noDelivery(t, deliveries, 500*time.Millisecond)
	held[0].Ack(false)
	held = held[1:]
	held = append(held, receive(t, deliveries, 5*time.Second))
	noDelivery(t, deliveries, 300*time.Millisecond)
	// A multiple ack frees all three.
	held[len(held)-1].Ack(true)
	for range 3 {
		receive(t, deliveries, 5*time.Second)
	}
	noDelivery(t, deliveries, 300*time.Millisecond)
}

func TestMandatoryReturn(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	ch.Confirm(false)
	returns := ch.NotifyReturn(make(chan amqp091.Return, 4))
	publishConfirmed(t, ch, "amq.direct", "nobody", true, amqp091.Publishing{Body: []byte("lost"), MessageId: "r1"})
	select {
	case r := <-returns:
		if r.ReplyCode != amqp091.NoRoute || r.Exchange != "amq.direct" || r.RoutingKey != "nobody" || string(r.Body) != "lost" || r.MessageId != "r1" {
			t.Errorf("return %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return")
	}
	// Not mandatory: dropped silently, still confirmed.
	publishConfirmed(t, ch, "amq.direct", "nobody", false, amqp091.Publishing{Body: []byte("dropped")})
	publishConfirmed(t, ch, "", "no-such-queue", true, amqp091.Publishing{Body: []byte("lost2")})
	select {
	case r := <-returns:
		if string(r.Body) != "lost2" {
			t.Errorf("return %q", r.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no basic.return for the default exchange")
	}
	// Publishing to a missing exchange closes the channel with 404.
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	ch.PublishWithContext(t.Context(), "no-such-exchange", "k", false, false, amqp091.Publishing{Body: []byte("x")})
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp091.NotFound {
			t.Errorf("channel closed with %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed")
	}
	if conn.IsClosed() {
		t.Error("a channel exception closed the connection")
	}
}

func TestTopicExchangeRouting(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if err := ch.ExchangeDeclare("events", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bind := map[string]string{"eu-orders": "orders.*.eu", "all-audit": "#", "errors": "#.error"}
	for q, key := range bind {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q, key, "events", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	// exchange-to-exchange: amq.topic forwards "x.#" to events.
	if err := ch.ExchangeBind("events", "x.#", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	for _, key := range []string{"orders.created.eu", "orders.created.us", "db.error", "orders.eu"} {
		publishConfirmed(t, ch, "events", key, false, amqp091.Publishing{Body: []byte(key)})
	}
	publishConfirmed(t, ch, "amq.topic", "x.error", false, amqp091.Publishing{Body: []byte("x.error")})
	want := map[string][]string{
		"eu-orders": {"orders.created.eu"},
		"all-audit": {"orders.created.eu", "orders.created.us", "db.error", "orders.eu", "x.error"},
		"errors":    {"db.error", "x.error"},
	}
	for q, keys := range want {
		for _, key := range keys {
			d, ok, err := ch.Get(q, true)
			if err != nil || !ok {
				t.Fatalf("%s: get: ok=%v err=%v, want %s", q, ok, err, key)
			}
			if string(d.Body) != key || d.RoutingKey != key {
				t.Errorf("%s: got body %q key %q, want %s", q, d.Body, d.RoutingKey, key)
			}
		}
		if d, ok, _ := ch.Get(q, true); ok {
			t.Errorf("%s: unexpected %q", q, d.Body)
		}
	}
}

func TestExclusiveAndAutoDeleteQueues(t *testing.T) {
	w := startWeir(t)
	b := w.srv.Broker()
	conn1 := w.dial(t)
	ch1 := w.channel(t, conn1)
	q, err := ch1.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.Name, "amq.gen-") {
		t.Errorf("server-named queue %q", q.Name)
	}
	if _, err := b.DescribeStream(q.Name); err != nil {
		t.Fatalf("server-named queue not in the broker: %v", err)
	}
	// Another connection may not use it.
	conn2 := w.dial(t)
	ch2 := w.channel(t, conn2)
	_, err = ch2.QueueDeclarePassive(q.Name, false, true, true, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.ResourceLocked {
		t.Errorf("other connection's passive declare: %v", err)
	}
	conn1.Close()
	waitGone(t, b, q.Name)

	// Auto-delete: deleted when its last consumer goes.
	ch3 := w.channel(t, conn2)
	if _, err := ch3.QueueDeclare("temp", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch3.Consume("temp", "a", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch3.Consume("temp", "b", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch3.Cancel("a", false)
	time.Sleep(100 * time.Millisecond)
	if _, err := b.DescribeStream("temp"); err != nil {
		t.Fatalf("auto-delete queue deleted with a consumer left: %v", err)
	}
	ch3.Cancel("b", false)
	waitGone(t, b, "temp")
}

func waitGone(t *testing.T, b *broker.Broker, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.DescribeStream(name); errors.Is(err, broker.ErrStreamNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still exists", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsumerCancelNotifyOnQueueDelete(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	if _, err := ch.QueueDeclare("doomed", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cancels := ch.NotifyCancel(make(chan string, 1))
	if _, err := ch.Consume("doomed", "watcher", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := w.channel(t, conn)
	if _, err := other.QueueDelete("doomed", false, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case tag := <-cancels:
		if tag != "watcher" {
			t.Errorf("cancelled %q", tag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basic.cancel after the queue was deleted")
	}
}

func TestErrorsAndVhosts(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	ch := w.channel(t, conn)
	_, err := ch.QueueDeclarePassive("missing", false, false, false, false, nil)
	var ae *amqp091.Error
	if !errors.As(err, &ae) || ae.Code != amqp091.NotFound || !strings.HasPrefix(ae.Reason, "NOT_FOUND") {
		t.Errorf("passive declare of a missing queue: %v", err)
	}
	ch = w.channel(t, conn)
	err = ch.ExchangeDeclare("amq.custom", "direct", true, false, false, false, nil)
	if !errors.As(err, &ae) || ae.Code != amqp091.AccessRefused {
		t.Errorf("declare amq.custom: %v", err)
	}
	ch = w.channel(t, conn)
	err = ch.ExchangeDeclare("amq.topic", "topic", true, false, false, false, nil)
	if err != nil {
		t.Errorf("redeclare amq.topic: %v", err)
	}
	err = ch.ExchangeDeclare("amq.topic", "direct", true, false, false, false, nil)
	if !errors.As(err, &ae) || ae.Code != amqp091.PreconditionFailed {
		t.Errorf("redeclare amq.topic as direct: %v", err)
	}
	ch = w.channel(t, conn)
	// basic.ack has no reply: the server answers an unknown tag by closing the channel,
	// which the client reports on NotifyClose (a call made meanwhile may see either the
	// 406 or "channel not open", depending on which arrives first).
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Ack(999, false); err != nil {
		t.Fatal(err)
	}
	select {
	case cerr := <-closed:
		if cerr == nil || cerr.Code != amqp091.PreconditionFailed {
			t.Errorf("unknown delivery tag: %v", cerr)
		}
	case <-time.After(5 * time.Second):
		t.Error("unknown delivery tag: the channel was not closed")
	}
	if conn.IsClosed() {
		t.Fatal("channel errors closed the connection")
	}
	if _, err := amqp091.Dial(strings.TrimSuffix(w.url, "/") + "/other"); err == nil {
		t.Error("vhost /other accepted")
	}
}

func TestDirectReplyTo(t *testing.T) {
	w := startWeir(t)
	conn := w.dial(t)
	server := w.channel(t, conn)
	if _, err := server.QueueDeclare("rpc", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	requests, err := server.Consume("rpc", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range requests {
			server.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, amqp091.Publishing{CorrelationId: d.CorrelationId, Body: append([]byte("re: "), d.Body...)})
			d.Ack(false)
		}
	}()
	client := w.channel(t, conn)
	replies, err := client.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PublishWithContext(t.Context(), "", "rpc", false, false, amqp091.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "42", Body: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	d := receive(t, replies, 10*time.Second)
	if string(d.Body) != "re: ping" || d.CorrelationId != "42" {
		t.Errorf("reply %q correlation %q", d.Body, d.CorrelationId)
	}
}

// rawClient speaks AMQP with Weir's own codec, to send what real clients
// do not.
type rawClient struct {
	nc net.Conn
	fr *wire.FrameReader
}

func dialRaw(t *testing.T, addr string, heartbeat uint16) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{nc: nc, fr: wire.NewFrameReader(bufio.NewReader(nc), 1<<20)}
	nc.Write(wire.ProtocolHeader)
	if _, ok := c.method(t).(*wire.ConnectionStart); !ok {
		t.Fatal("no connection.start")
	}
	c.send(t, 0, &wire.ConnectionStartOk{Mechanism: "PLAIN", Response: []byte("\x00guest\x00guest"), Locale: "en_US"})
	tune, ok := c.method(t).(*wire.ConnectionTune)
	if !ok {
		t.Fatal("no connection.tune")
	}
	c.send(t, 0, &wire.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax, Heartbeat: heartbeat})
	c.send(t, 0, &wire.ConnectionOpen{VirtualHost: "/"})
	if _, ok := c.method(t).(*wire.ConnectionOpenOk); !ok {
		t.Fatal("no connection.open-ok")
	}
	return c
}

func (c *rawClient) send(t *testing.T, channel uint16, m wire.Method) {
	t.Helper()
	b, err := wire.AppendMethod(nil, channel, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// method reads frames until a method, skipping heartbeats.
func (c *rawClient) method(t *testing.T) wire.Method {
	t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Type == wire.FrameHeartbeat {
			continue
		}
		m, err := wire.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func TestWrongProtocolHeader(t *testing.T) {
	w := startWeir(t)
	nc, err := net.Dial("tcp", w.srv.Addr("amqp"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte("AMQP\x01\x01\x00\x0a"))
	got, err := io.ReadAll(nc)
	if err != nil || string(got) != string(wire.ProtocolHeader) {
		t.Errorf("answer %q (%v), want the 0-9-1 header then close", got, err)
	}
}

func TestBadFrameClosesOnlyThatConnection(t *testing.T) {
	w := startWeir(t)
	good := w.dial(t)
	goodCh := w.channel(t, good)
	if _, err := goodCh.QueueDeclare("survivor", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bad := dialRaw(t, w.srv.Addr("amqp"), 0)
	// A method frame without frame-end.
	bad.nc.Write([]byte{wire.FrameMethod, 0, 1, 0, 0, 0, 4, 0, 20, 0, 10, 0x00})
	m := bad.method(t)
	closeM, ok := m.(*wire.ConnectionClose)
	if !ok || closeM.ReplyCode != wire.FrameError {
		t.Errorf("got %#v, want connection.close 501", m)
	}
	bad.send(t, 0, &wire.ConnectionCloseOk{})
	if _, err := bad.fr.ReadFrame(); err == nil {
		t.Error("connection still open after the frame error")
	}
	// A garbled method on an open channel: 502, this connection only.
	bad2 := dialRaw(t, w.srv.Addr("amqp"), 0)
	bad2.send(t, 1, &wire.ChannelOpen{})
	bad2.method(t)
	bad2.nc.Write([]byte{wire.FrameMethod, 0, 1, 0, 0, 0, 5, 0, 50, 0, 10, 0xff, wire.FrameEnd})
	if cm, ok := bad2.method(t).(*wire.ConnectionClose); !ok || cm.ReplyCode != wire.SyntaxError {
		t.Errorf("garbled method: got %#v, want connection.close 502", cm)
	}
	if good.IsClosed() {
		t.Fatal("a bad frame on another connection closed this one")
	}
	goodCh.Confirm(false)
	publishConfirmed(t, goodCh, "", "survivor", false, amqp091.Publishing{Body: []byte("still here")})
}

func TestHeartbeats(t *testing.T) {
	w := startWeir(t)
	// The client asks for 1 s heartbeats and stays idle: the server's
	// heartbeats keep amqp091-go (which closes after 3 silent intervals)
	// connected.
	conn, err := amqp091.DialConfig(w.url, amqp091.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(4 * time.Second)
	if conn.IsClosed() {
		t.Fatal("idle connection closed despite heartbeats")
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel after idling: %v", err)
	}
	ch.Close()

	// A peer that goes silent is closed after two intervals.
	raw := dialRaw(t, w.srv.Addr("amqp"), 1)
	start := time.Now()
	raw.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	heartbeats := 0
	for {
		f, err := raw.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				break
			}
			t.Fatalf("silent peer not closed: %v after %v", err, time.Since(start))
		}
		if f.Type == wire.FrameHeartbeat {
			heartbeats++
		}
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("silent peer closed after %v, want about 2 s", d)
	}
	if heartbeats == 0 {
		t.Error("server sent no heartbeats to the silent peer")
	}
}
