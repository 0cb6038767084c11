package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	weir "github.com/weirmq/weir/client"
	"github.com/weirmq/weir/internal/broker"
)

// settableFree is a free-space source the test sets: a full disk without
// filling one.
type settableFree struct{ free atomic.Uint64 }

func (f *settableFree) FreeBytes() (uint64, error) { return f.free.Load(), nil }

const (
	diskFloor  = 1 << 30
	diskPlenty = 40 << 30
	diskLow    = 10 << 20
)

// diskServer starts a server whose disk watermark reads free.
func diskServer(t *testing.T) (*Server, *settableFree) {
	t.Helper()
	free := &settableFree{}
	free.free.Store(diskPlenty)
	cfg := testConfig(t)
	cfg.DiskFreeMin = diskFloor
	cfg.FreeSpace = free
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, free
}

// setDisk sets the free space and waits until the watermark took it in.
func setDisk(t *testing.T, s *Server, free *settableFree, bytes uint64) {
	t.Helper()
	free.free.Store(bytes)
	full := bytes < diskFloor
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		st, changed := s.Broker().DiskWatch()
		if st.Full == full {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the watermark did not become full=%v: %+v", full, st)
		}
	}
}

// waitRefused waits until the broker refused more than n publishes.
func waitRefused(t *testing.T, s *Server, n uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("more than %d publishes refused", n), func() bool { return s.Broker().DiskStatus().Refused > n })
}

// streamValueCount counts the values of every partition of a stream.
func streamValueCount(t *testing.T, b *broker.Broker, stream string) map[string]int {
	t.Helper()
	info, err := b.DescribeStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for p := range info.Partitions {
		res, err := b.Fetch(context.Background(), stream, int32(p), 0, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			counts[string(r.Value)]++
		}
	}
	return counts
}

// TestDiskWatermarkKafka: below the watermark a franz-go producer gets
// KAFKA_STORAGE_ERROR; an idempotent producer with the default retries
// keeps retrying it and succeeds, once, when space returns.
func TestDiskWatermarkKafka(t *testing.T) {
	s, free := diskServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	seed := kgo.SeedBrokers(s.Addr("kafka"))
	admin, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("disk-k"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	setDisk(t, s, free, diskLow)
	once, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("disk-k"), kgo.RecordRetries(1), kgo.DisableIdempotentWrite(), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer once.Close()
	err = once.ProduceSync(ctx, &kgo.Record{Value: []byte("refused")}).FirstErr()
	if !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("produce below the watermark: %v, want KAFKA_STORAGE_ERROR", err)
	}

	refused := s.Broker().DiskStatus().Refused
	// franz-go retries KAFKA_STORAGE_ERROR after a metadata refresh, which
	// it spaces by MetadataMinAge (5 s by default): shortened here.
	retrying, err := kgo.NewClient(seed, kgo.DefaultProduceTopic("disk-k"), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer retrying.Close()
	done := make(chan error, 1)
	retrying.Produce(ctx, &kgo.Record{Value: []byte("retried")}, func(_ *kgo.Record, err error) { done <- err })
	waitRefused(t, s, refused+1) // refused at least twice: it retries
	select {
	case err := <-done:
		t.Fatalf("the produce ended below the watermark: %v", err)
	default:
	}
	setDisk(t, s, free, diskPlenty)
	if err := <-done; err != nil {
		t.Fatalf("the retried produce after space returned: %v", err)
	}
	counts := streamValueCount(t, s.Broker(), "disk-k")
	if counts["before"] != 1 || counts["retried"] != 1 || counts["refused"] != 0 {
		t.Errorf("topic holds %v, want before and retried once each", counts)
	}
}

// TestDiskWatermarkAMQP: an amqp091-go publisher with confirms gets
// connection.blocked ("low on disk") at its first publish below the
// watermark, no confirm while blocked, then connection.unblocked when
// space returns, and every held message confirmed and stored once. A
// consumer on its own connection drains and acks while publishing is
// blocked.
func TestDiskWatermarkAMQP(t *testing.T) {
	s, free := diskServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	url := "amqp://guest:guest@" + s.Addr("amqp") + "/"
	pubConn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer pubConn.Close()
	blocked := pubConn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	pub, err := pubConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.QueueDeclare("disk-q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const before = 20
	for i := range before {
		c, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", "disk-q", false, false, amqp091.Publishing{Body: fmt.Appendf(nil, "before-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("confirm before the watermark: %v %v", ok, err)
		}
	}

	setDisk(t, s, free, diskLow)
	const held = 10
	var confirms []*amqp091.DeferredConfirmation
	for i := range held {
		c, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", "disk-q", false, false, amqp091.Publishing{Body: fmt.Appendf(nil, "held-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		confirms = append(confirms, c)
	}
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on disk" {
			t.Fatalf("got %+v, want connection.blocked low on disk", b)
		}
	case <-ctx.Done():
		t.Fatal("no connection.blocked")
	}

	// A consumer on another connection drains and acks meanwhile.
	consConn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer consConn.Close()
	cons, err := consConn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := cons.Consume("disk-q", "drain", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		select {
		case d := <-deliveries:
			if want := fmt.Sprintf("before-%d", i); string(d.Body) != want {
				t.Fatalf("delivery %d: %q, want %q", i, d.Body, want)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d deliveries below the watermark", i, before)
		}
	}
	eventually(t, "the acks stored below the watermark", func() bool {
		info, err := s.Broker().DescribeSubscription("disk-q", "disk-q")
		return err == nil && info.Depth == 0
	})
	for i, c := range confirms {
		select {
		case <-c.Done():
			t.Fatalf("publish %d was answered while blocked", i)
		default:
		}
	}

	setDisk(t, s, free, diskPlenty)
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("got %+v, want connection.unblocked", b)
		}
	case <-ctx.Done():
		t.Fatal("no connection.unblocked")
	}
	for i, c := range confirms {
		if ok, err := c.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("held publish %d: confirmed %v, %v", i, ok, err)
		}
	}
	for i := range held {
		select {
		case d := <-deliveries:
			if want := fmt.Sprintf("held-%d", i); string(d.Body) != want {
				t.Fatalf("held delivery %d: %q, want %q", i, d.Body, want)
			}
			d.Ack(false)
		case <-ctx.Done():
			t.Fatalf("only %d of %d held messages delivered", i, held)
		}
	}
}

// TestDiskWatermarkMQTT: an MQTT 5 QoS 1 publish below the watermark gets
// PUBACK 0x97 (quota exceeded); an MQTT 3.1.1 one, which has no reason
// codes, is held unacknowledged and stored when space returns.
func TestDiskWatermarkMQTT(t *testing.T) {
	s, free := diskServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	nc, err := net.Dial("tcp", s.Addr("mqtt"))
	if err != nil {
		t.Fatal(err)
	}
	v5 := paho5.NewClient(paho5.ClientConfig{ClientID: "disk-v5", Conn: nc})
	if _, err := v5.Connect(ctx, &paho5.Connect{ClientID: "disk-v5", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	defer v5.Disconnect(&paho5.Disconnect{})
	if _, err := v5.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "disk/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, s.Broker(), "disk.x", "mqtt")

	opts := paho.NewClientOptions().AddBroker("tcp://" + s.Addr("mqtt")).SetClientID("disk-v311").
		SetProtocolVersion(4).SetKeepAlive(5 * time.Minute).SetAutoReconnect(false)
	v311 := paho.NewClient(opts)
	if tok := v311.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 connect: %v", tok.Error())
	}
	defer v311.Disconnect(100)

	setDisk(t, s, free, diskLow)
	resp, err := v5.Publish(ctx, &paho5.Publish{Topic: "disk/x", QoS: 1, Payload: []byte("v5 refused")})
	if resp == nil || resp.ReasonCode != 0x97 {
		t.Fatalf("MQTT 5 publish below the watermark: PUBACK %+v, %v; want 0x97 quota exceeded", resp, err)
	}
	refused := s.Broker().DiskStatus().Refused
	tok := v311.Publish("disk/x", 1, false, "v311 held")
	waitRefused(t, s, refused)
	if tok.WaitTimeout(0) {
		t.Fatalf("MQTT 3.1.1 publish answered below the watermark: %v", tok.Error())
	}

	setDisk(t, s, free, diskPlenty)
	if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 publish after space returned: %v", tok.Error())
	}
	if resp, err := v5.Publish(ctx, &paho5.Publish{Topic: "disk/x", QoS: 1, Payload: []byte("v5 after")}); err != nil || resp.ReasonCode != 0 {
		t.Fatalf("MQTT 5 publish after space returned: %+v, %v", resp, err)
	}
}

// TestDiskWatermarkNativeAPI: the SDK's publish below the watermark fails
// with ErrResourceExhausted saying why; a shared consumer drains and has
// its acks confirmed stored meanwhile; publishing resumes with space.
func TestDiskWatermarkNativeAPI(t *testing.T) {
	s, free := diskServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := weir.Dial(ctx, s.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateQueue(ctx, weir.QueueConfig{Name: "disk-api", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := c.Publish(ctx, "disk-api", weir.Record{Value: fmt.Appendf(nil, "r%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	setDisk(t, s, free, diskLow)
	_, err = c.Publish(ctx, "disk-api", weir.Record{Value: []byte("refused")})
	if !errors.Is(err, weir.ErrResourceExhausted) || !strings.Contains(err.Error(), "disk free space below the watermark") {
		t.Fatalf("publish below the watermark: %v, want ErrResourceExhausted about the disk", err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var failed []error
	cons, err := c.Consume(ctx, "disk-api", func(context.Context, *weir.Message) error { return nil },
		weir.Shared(""), weir.OnAcked(func(m *weir.Message, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			acked[string(m.Value)] = true
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	eventually(t, "every ack confirmed below the watermark", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)+len(failed) >= n
	})
	if len(failed) > 0 {
		t.Fatalf("acks failed below the watermark: %v", failed)
	}
	if st := s.Broker().DiskStatus(); !st.Full {
		t.Fatalf("the disk watermark lifted during the test: %+v", st)
	}

	setDisk(t, s, free, diskPlenty)
	if _, err := c.Publish(ctx, "disk-api", weir.Record{Value: []byte("after")}); err != nil {
		t.Fatalf("publish after space returned: %v", err)
	}
}

// TestDiskFreeMinOption: the option is read like every size, and the
// server's watermark uses it.
func TestDiskFreeMinOption(t *testing.T) {
	cfg, _, err := loadConfig(t, "disk-free-min: 2GiB\n", nil)
	if err != nil || cfg.DiskFreeMin != 2<<30 {
		t.Fatalf("from the file: %v, %v", cfg.DiskFreeMin, err)
	}
	cfg, _, err = loadConfig(t, "", map[string]string{"WEIR_DISK_FREE_MIN": "512MiB"})
	if err != nil || cfg.DiskFreeMin != 512<<20 {
		t.Fatalf("from the environment: %v, %v", cfg.DiskFreeMin, err)
	}
	cfg, _, err = loadConfig(t, "", nil, "--disk-free-min", "0")
	if err != nil || cfg.DiskFreeMin != 0 {
		t.Fatalf("from a flag: %v, %v", cfg.DiskFreeMin, err)
	}
	if _, _, err := loadConfig(t, "", nil, "--disk-free-min", "lots"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a bad size: %v, want ErrInvalidConfig", err)
	}
	if DefaultConfig().DiskFreeMin != 256<<20 {
		t.Errorf("default %v, want 256MiB", DefaultConfig().DiskFreeMin)
	}
}
