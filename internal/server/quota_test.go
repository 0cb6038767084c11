package server

// Byte-rate quotas on AMQP, MQTT and the native API, with real clients.
// Only lower bounds of time are asserted (the machine may be loaded): with
// a quota of R bytes a second, a loop that paces after each batch has sent
// its last batch no sooner than (M - last batch - R) / R seconds after the
// first, M being the bytes of all batches (the bucket starts with one
// second's worth). The exact arithmetic is tested with testing/synctest in
// internal/auth (TestPace*).

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/auth"
)

// quotaRate is the quota of the slow users, in bytes a second.
const quotaRate = 10_000

// startQuotaServer starts a server whose users file has admin (no rules,
// no quota) and slow users with a consume or a produce quota of
// quotaRate, one per test so that none shares another's bucket.
func startQuotaServer(t *testing.T) *Server {
	t.Helper()
	u := auth.New()
	for _, n := range []string{"admin", "amqpslow", "getslow", "mqttslow", "sdkslow", "groupslow", "pubslow", "hbslow"} {
		if err := u.Add(n, "pw-"+n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"amqpslow", "getslow", "mqttslow", "sdkslow", "groupslow", "hbslow"} {
		if err := u.SetQuotas(n, 0, quotaRate); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.SetQuotas("pubslow", quotaRate, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := u.Save(path); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Users = path
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// atLeast fails the test when elapsed is below the lower bound of sending
// total bytes in batches of at most batch at quotaRate.
func atLeast(t *testing.T, what string, elapsed time.Duration, total, batch int) {
	t.Helper()
	// Less 10 ms: the bucket's arithmetic is in floating point.
	bound := time.Duration(float64(total-batch-quotaRate)/quotaRate*float64(time.Second)) - 10*time.Millisecond
	if elapsed < bound {
		t.Errorf("%s: %d bytes in %v at %d B/s, want at least %v", what, total, elapsed, quotaRate, bound)
	}
	t.Logf("%s: %d bytes in %v (lower bound %v)", what, total, elapsed, bound)
}

// TestAMQPConsumeQuota: amqp091-go as a user with a consume quota receives
// 40 KB through basic.consume (prefetch 5) at no more than the quota, then
// through basic.get; the connection stays open. admin, without a quota,
// receives the same way.
func TestAMQPConsumeQuota(t *testing.T) {
	s := startQuotaServer(t)
	url := func(user string) string { return "amqp://" + user + ":pw-" + user + "@" + s.Addr("amqp") + "/" }
	dial := func(user string) (*amqp091.Connection, *amqp091.Channel) {
		conn, err := amqp091.Dial(url(user))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return conn, ch
	}
	_, admin := dial("admin")
	if err := admin.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const count, size = 40, 1000
	fill := func(queue string, n int) {
		if _, err := admin.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		for i := range n {
			dc, err := admin.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp091.Publishing{Body: make([]byte, size), MessageId: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := dc.WaitContext(ctx); !ok || err != nil {
				t.Fatalf("confirm: %v %v", ok, err)
			}
		}
	}
	consume := func(ch *amqp091.Channel, queue string) time.Duration {
		if err := ch.Qos(5, 0, false); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ds, err := ch.Consume(queue, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range count {
			select {
			case d, ok := <-ds:
				if !ok {
					t.Fatal("deliveries ended: the channel or connection closed")
				}
				if err := d.Ack(false); err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Minute):
				t.Fatal("no delivery within a minute")
			}
		}
		return time.Since(start)
	}

	fill("quota.fast", count)
	_, fast := dial("admin")
	consume(fast, "quota.fast") // no quota: everything arrives

	fill("quota.slow", count)
	slowConn, slow := dial("amqpslow")
	atLeast(t, "basic.consume", consume(slow, "quota.slow"), count*size, 5*size)
	if slowConn.IsClosed() {
		t.Fatal("the paced connection closed")
	}
	if _, err := slow.QueueDeclarePassive("quota.slow", true, false, false, false, nil); err != nil {
		t.Fatalf("the paced channel no longer answers: %v", err)
	}

	fill("quota.get", count)
	getConn, get := dial("getslow")
	start := time.Now()
	for got := 0; got < count; {
		_, ok, err := get.Get("quota.get", true)
		if err != nil {
			t.Fatalf("basic.get: %v", err)
		}
		if ok {
			got++
		}
	}
	atLeast(t, "basic.get", time.Since(start), count*size, size)
	if getConn.IsClosed() {
		t.Fatal("the paced connection closed")
	}

	// basic.get holds the connection's reader: with a heartbeat of 1 s, a
	// 3 s hold after a 40 KB message must not close the connection as
	// silent.
	const big = 40_000
	if _, err := admin.QueueDeclare("quota.big", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := admin.Publish("", "quota.big", false, false, amqp091.Publishing{Body: make([]byte, big)}); err != nil {
			t.Fatal(err)
		}
	}
	hbConn, err := amqp091.DialConfig(url("hbslow"), amqp091.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer hbConn.Close()
	hb, err := hbConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for got := 0; got < 2; {
		_, ok, err := hb.Get("quota.big", true)
		if err != nil {
			t.Fatalf("basic.get with a 1 s heartbeat: %v", err)
		}
		if ok {
			got++
		}
	}
	atLeast(t, "basic.get of 40 KB messages", time.Since(start), 2*big, big)
	if _, err := hb.QueueDeclarePassive("quota.big", true, false, false, false, nil); err != nil || hbConn.IsClosed() {
		t.Fatalf("the held connection no longer answers: %v", err)
	}
}

// TestMQTTConsumeQuota: paho (MQTT 3.1.1) as a user with a consume quota
// receives 80 KB published at QoS 1 at no more than the quota and stays
// connected.
func TestMQTTConsumeQuota(t *testing.T) {
	s := startQuotaServer(t)
	connect := func(user string) paho.Client {
		c := paho.NewClient(pahoOptions("tcp://"+s.Addr("mqtt"), user+"-client").SetUsername(user).SetPassword("pw-" + user))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	const count, size = 80, 1000
	var got atomic.Int64
	all := make(chan struct{})
	slow := connect("mqttslow")
	if tok := slow.Subscribe("quota/#", 1, func(_ paho.Client, m paho.Message) {
		if got.Add(1) == count {
			close(all)
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	admin := connect("admin")
	start := time.Now()
	for i := range count {
		if tok := admin.Publish(fmt.Sprintf("quota/%d", i), 1, false, make([]byte, size)); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%d of %d messages within 2 minutes", got.Load(), count)
	}
	// A delivery loop sends at most 32 records at once.
	atLeast(t, "PUBLISH to a subscriber", time.Since(start), count*size, 32*size)
	if !slow.IsConnectionOpen() {
		t.Fatal("the paced client was disconnected")
	}
}

// TestSDKQuotas: the SDK as a user with a consume quota receives 40 KB from
// a queue (shared mode, prefetch 5) and from a stream (group mode, 5
// credits) at no more than the quota, each record once (a reconnect would
// deliver the queue's held records again); a user with a produce quota
// publishes 40 KB no faster than it.
func TestSDKQuotas(t *testing.T) {
	s := startQuotaServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dial := func(user string) *weir.Client {
		c, err := weir.Dial(ctx, s.Addr("http"), weir.WithBasicAuth(user, "pw-"+user))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	admin := dial("admin")
	const count, size = 40, 1000
	if _, err := admin.CreateQueue(ctx, weir.QueueConfig{Name: "quota.q"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStream(ctx, weir.StreamConfig{Name: "quota.s", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"quota.q", "quota.s"} {
		for range count {
			if _, err := admin.Publish(ctx, name, weir.Record{Value: make([]byte, size)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	receive := func(user, what string, opts ...weir.ConsumeOption) {
		var got, redelivered atomic.Int64
		all := make(chan struct{})
		start := time.Now()
		cons, err := dial(user).Consume(ctx, what, func(ctx context.Context, m *weir.Message) error {
			if m.DeliveryCount > 1 {
				redelivered.Add(1)
			}
			if got.Add(1) == count {
				close(all)
			}
			return nil
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-all:
		case <-cons.Done():
			t.Fatalf("%s: the consumer ended: %v", what, cons.Wait())
		case <-ctx.Done():
			t.Fatalf("%s: %d of %d records", what, got.Load(), count)
		}
		atLeast(t, what, time.Since(start), count*size, 5*size)
		if n := redelivered.Load(); n > 0 {
			t.Errorf("%s: %d records delivered again: the subscription was broken", what, n)
		}
		if err := cons.Close(ctx); err != nil {
			t.Errorf("%s: close: %v", what, err)
		}
	}
	receive("sdkslow", "quota.q", weir.Shared("quota.q"), weir.Prefetch(5))
	receive("groupslow", "quota.s", weir.Group("g"), weir.Start(weir.Earliest()), weir.Credits(5))

	pub := dial("pubslow")
	start := time.Now()
	for range count {
		if _, err := pub.Publish(ctx, "quota.s", weir.Record{Value: make([]byte, size)}); err != nil {
			t.Fatalf("paced publish: %v", err)
		}
	}
	// Each call answers once its own debt is paid: no last batch is left.
	atLeast(t, "Publish", time.Since(start), count*size, 0)
}

// TestAMQPProduceQuota: amqp091-go as a user with a produce quota and a
// heartbeat of 1 s publishes more messages than the channel's publish queue
// holds; the paced publisher fills it and stops the connection's reader for
// seconds, which must not close the connection as silent. Every message is
// confirmed, no sooner than the quota allows.
func TestAMQPProduceQuota(t *testing.T) {
	s := startQuotaServer(t)
	url := "amqp://pubslow:pw-pubslow@" + s.Addr("amqp") + "/"
	conn, err := amqp091.DialConfig(url, amqp091.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("quota.pub", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// More than the publish queue (1,024) and a batch (256) hold, and
	// batches whose pacing (256 × 100 B at 10 kB/s: 2.6 s) outlasts two
	// heartbeats while the full queue stops the reader.
	const count, size = 1600, 100
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var last *amqp091.DeferredConfirmation
	for range count {
		if last, err = ch.PublishWithDeferredConfirm("", "quota.pub", false, false, amqp091.Publishing{Body: make([]byte, size)}); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	if ok, err := last.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("last confirm: ok %v, %v (connection closed: %v)", ok, err, conn.IsClosed())
	}
	atLeast(t, "AMQP publish", time.Since(start), count*size, 256*size)
	st, err := ch.QueueDeclarePassive("quota.pub", true, false, false, false, nil)
	if err != nil || conn.IsClosed() {
		t.Fatalf("the paced connection no longer answers: %v", err)
	}
	if st.Messages != count {
		t.Fatalf("queue holds %d messages, want %d", st.Messages, count)
	}
}
