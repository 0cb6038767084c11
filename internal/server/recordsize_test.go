package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	weir "github.com/weirmq/weir/client"
)

// TestMaxRecordBytesEveryProtocol: one max-record-bytes (4KiB here) holds
// for every protocol, and each refuses a larger record with its own error:
// Kafka MESSAGE_TOO_LARGE, AMQP channel.close 406 PRECONDITION_FAILED (as
// RabbitMQ's max_message_size), MQTT 5 PUBACK 0x95 packet too large, and
// the native API resource exhausted. A record within the limit is stored.
func TestMaxRecordBytesEveryProtocol(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxRecordBytes = 4 << 10
	s := newTestServer(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	small, big := bytes.Repeat([]byte("s"), 2<<10), bytes.Repeat([]byte("b"), 8<<10)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	t.Run("kafka", func(t *testing.T) {
		// As Kafka's message.max.bytes, the limit applies to a batch as the
		// producer sent it: compressed batches count compressed.
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.DefaultProduceTopic("sizes"), kgo.AllowAutoTopicCreation(),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: small}).FirstErr(); err != nil {
			t.Fatalf("small record: %v", err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: big}).FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
			t.Errorf("big record: %v, want MESSAGE_TOO_LARGE", err)
		}
	})
	t.Run("amqp", func(t *testing.T) {
		conn, err := amqp091.Dial("amqp://guest:guest@" + s.Addr("amqp") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("sizes-q", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "sizes-q", false, false, amqp091.Publishing{Body: small})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := confirm.WaitContext(ctx); !ok || err != nil {
			t.Fatalf("small message not confirmed: %v %v", ok, err)
		}
		closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
		if err := ch.PublishWithContext(ctx, "", "sizes-q", false, false, amqp091.Publishing{Body: big}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-closed:
			if e == nil || e.Code != amqp091.PreconditionFailed {
				t.Errorf("channel closed with %v, want 406 PRECONDITION_FAILED", e)
			}
		case <-ctx.Done():
			t.Error("the channel was not closed after a message over the limit")
		}
	})
	t.Run("mqtt 5", func(t *testing.T) {
		nc, err := net.Dial("tcp", s.Addr("mqtt"))
		if err != nil {
			t.Fatal(err)
		}
		c := paho5.NewClient(paho5.ClientConfig{ClientID: "sizes", Conn: nc})
		if _, err := c.Connect(ctx, &paho5.Connect{ClientID: "sizes", CleanStart: true, KeepAlive: 30}); err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(&paho5.Disconnect{})
		if _, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "sizes/#", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		waitRoute(t, s.Broker(), "sizes.x", "mqtt")
		if resp, err := c.Publish(ctx, &paho5.Publish{Topic: "sizes/x", QoS: 1, Payload: small}); err != nil || resp.ReasonCode != 0 {
			t.Fatalf("small message: %+v %v", resp, err)
		}
		resp, err := c.Publish(ctx, &paho5.Publish{Topic: "sizes/x", QoS: 1, Payload: big})
		if resp == nil || resp.ReasonCode != 0x95 {
			t.Errorf("big message: PUBACK %+v, %v; want reason 0x95 packet too large", resp, err)
		}
	})
	t.Run("native API", func(t *testing.T) {
		c, err := weir.Dial(ctx, s.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.CreateStream(ctx, weir.StreamConfig{Name: "sizes-api", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(ctx, "sizes-api", weir.Record{Value: small}); err != nil {
			t.Fatalf("small record: %v", err)
		}
		if _, err := c.Publish(ctx, "sizes-api", weir.Record{Value: big}); !errors.Is(err, weir.ErrResourceExhausted) {
			t.Errorf("big record: %v, want ErrResourceExhausted", err)
		}
	})
}
