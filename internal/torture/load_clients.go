package torture

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	weir "github.com/weirmq/weir/client"
)

// loadValue is the payload of the load campaign's records.
var loadValue = make([]byte, 256)

// dialTimeout bounds each dial of the campaign's clients.
const dialTimeout = 30 * time.Second

// openIdleConn opens one idle connection of a protocol with its real
// client and returns how to close it:
//   - Kafka: a franz-go client that asked the seed for metadata and sent
//     ApiVersions to the broker it names (two connections, as every
//     franz-go client holds after its first metadata refresh), its
//     idle-connection reaper at franz-go's longest, 15 minutes;
//   - AMQP: an amqp091-go connection (handshake done, heartbeats on);
//   - MQTT: a paho.golang MQTT 5 client connected with a 60 s keep-alive;
//   - native: an SDK client with an ephemeral subscription of a stream
//     nothing is published to (an HTTP/2 connection with a stream open;
//     an HTTP/2 connection with nothing open is closed by the server's
//     2-minute idle timeout, as HTTP servers do).
func openIdleConn(ctx context.Context, proto string, srv *server, i int) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	switch proto {
	case "kafka":
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.ConnIdleTimeout(15*time.Minute))
		if err != nil {
			return nil, err
		}
		// A franz-go client talks to its seed until its first metadata,
		// then to the brokers the metadata names, on a connection of their
		// own: its periodic metadata refresh (every 5 minutes) would open
		// that second connection in the middle of the run, so it is opened
		// now, and the connection count stays flat.
		if _, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest()); err != nil {
			cl.Close()
			return nil, fmt.Errorf("kafka metadata: %w", err)
		}
		for _, b := range cl.DiscoveredBrokers() {
			if _, err := b.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
				cl.Close()
				return nil, fmt.Errorf("kafka api versions: %w", err)
			}
		}
		return cl.Close, nil
	case "amqp":
		conn, err := dialAMQP(srv)
		if err != nil {
			return nil, err
		}
		return func() { conn.Close() }, nil
	case "mqtt":
		c, err := dialMQTT(ctx, srv.mqtt, "load-idle-"+strconv.Itoa(i), nil)
		if err != nil {
			return nil, err
		}
		return func() { c.Disconnect(&paho5.Disconnect{}) }, nil
	case "native":
		c, err := weir.Dial(ctx, srv.http)
		if err != nil {
			return nil, fmt.Errorf("sdk dial: %w", err)
		}
		cons, err := c.Consume(context.Background(), loadIdle, func(context.Context, *weir.Message) error { return nil }, weir.Ephemeral())
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("sdk subscribe: %w", err)
		}
		return func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cons.Close(closeCtx)
			c.Close()
		}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", proto)
}

// dialMQTT connects a paho.golang MQTT 5 client with a clean start.
func dialMQTT(ctx context.Context, addr, clientID string, onPublish func(paho5.PublishReceived) (bool, error)) (*paho5.Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt dial: %w", err)
	}
	cfg := paho5.ClientConfig{ClientID: clientID, Conn: nc}
	if onPublish != nil {
		cfg.OnPublishReceived = []func(paho5.PublishReceived) (bool, error){onPublish}
	}
	c := paho5.NewClient(cfg)
	if _, err := c.Connect(ctx, &paho5.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 60}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("mqtt connect: %w", err)
	}
	return c, nil
}

// runLoadProducer sends l.cfg.Rate records a second until ctx ends, counting
// the records sent and acknowledged. It returns an error when its
// connection broke.
func runLoadProducer(ctx context.Context, proto string, l *loadRun, index int, pl *protocolCounters) error {
	pace := newPacer(l.cfg.Rate)
	srv := l.srv
	switch proto {
	case "kafka":
		partition := int32(index) % l.partitions
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka), kgo.DefaultProduceTopic(loadTopic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
		if err != nil {
			return err
		}
		defer cl.Close()
		for pace.wait(ctx) {
			pl.Produced.Add(1)
			cl.Produce(ctx, &kgo.Record{Partition: partition, Value: loadValue}, func(_ *kgo.Record, err error) {
				if err == nil {
					pl.Acknowledged.Add(1)
				} else if ctx.Err() == nil {
					pl.noteError(err)
				}
			})
		}
		return nil
	case "amqp":
		conn, ch, err := dialAMQPChannel(srv)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := ch.Confirm(false); err != nil {
			return err
		}
		acks := ch.NotifyPublish(make(chan amqp.Confirmation, 256))
		go func() {
			for c := range acks {
				if c.Ack {
					pl.Acknowledged.Add(1)
				}
			}
		}()
		for pace.wait(ctx) {
			pl.Produced.Add(1)
			if err := ch.PublishWithContext(ctx, "", loadAMQPQueue, false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: loadValue}); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("amqp publish: %w", err)
			}
		}
		return nil
	case "mqtt":
		c, err := dialMQTT(ctx, srv.mqtt, "load-pub-"+strconv.Itoa(index), nil)
		if err != nil {
			return err
		}
		defer c.Disconnect(&paho5.Disconnect{})
		for pace.wait(ctx) {
			pl.Produced.Add(1)
			resp, err := c.Publish(ctx, &paho5.Publish{Topic: loadMQTTTopic, QoS: 1, Payload: loadValue})
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return fmt.Errorf("mqtt publish: %w", err)
			}
			if resp.ReasonCode < 0x80 {
				pl.Acknowledged.Add(1)
			}
		}
		return nil
	case "native":
		c, err := weir.Dial(ctx, srv.http)
		if err != nil {
			return fmt.Errorf("sdk dial: %w", err)
		}
		defer c.Close()
		p := c.NewProducer(loadSDKQueue, weir.Linger(time.Millisecond))
		for pace.wait(ctx) {
			pl.Produced.Add(1)
			p.Send(ctx, weir.Record{Value: loadValue}, func(_ weir.PublishResult, err error) {
				if err == nil {
					pl.Acknowledged.Add(1)
				} else if ctx.Err() == nil {
					pl.noteError(err)
				}
			})
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Close(closeCtx)
		return nil
	}
	return fmt.Errorf("unknown protocol %q", proto)
}

// runLoadConsumer consumes (and acknowledges) until ctx ends, counting the
// records received: Kafka consumers read a partition each, AMQP and SDK
// consumers share their queue, MQTT consumers a shared subscription.
func runLoadConsumer(ctx context.Context, proto string, l *loadRun, index int, pl *protocolCounters) error {
	srv := l.srv
	switch proto {
	case "kafka":
		partition := int32(index) % l.partitions
		cl, err := kgo.NewClient(kgo.SeedBrokers(srv.kafka),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{loadTopic: {partition: kgo.NewOffset().AtEnd()}}))
		if err != nil {
			return err
		}
		defer cl.Close()
		for ctx.Err() == nil {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil
			}
			fetches.EachError(func(_ string, _ int32, err error) { pl.noteError(err) })
			pl.Consumed.Add(int64(fetches.NumRecords()))
		}
		return nil
	case "amqp":
		conn, ch, err := dialAMQPChannel(srv)
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := ch.Qos(32, 0, false); err != nil {
			return err
		}
		deliveries, err := ch.ConsumeWithContext(ctx, loadAMQPQueue, "", false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("amqp consume: %w", err)
		}
		for {
			select {
			case d, ok := <-deliveries:
				if !ok {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("amqp consumer: the delivery channel closed")
				}
				pl.Consumed.Add(1)
				if err := d.Ack(false); err != nil && ctx.Err() == nil {
					return fmt.Errorf("amqp ack: %w", err)
				}
			case <-ctx.Done():
				return nil
			}
		}
	case "mqtt":
		c, err := dialMQTT(ctx, srv.mqtt, "load-sub-"+strconv.Itoa(index), func(paho5.PublishReceived) (bool, error) {
			pl.Consumed.Add(1)
			return true, nil
		})
		if err != nil {
			return err
		}
		defer c.Disconnect(&paho5.Disconnect{})
		if _, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "$share/load/" + loadMQTTTopic, QoS: 1}}}); err != nil {
			return fmt.Errorf("mqtt subscribe: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return fmt.Errorf("mqtt consumer: the connection ended")
		}
	case "native":
		c, err := weir.Dial(ctx, srv.http)
		if err != nil {
			return fmt.Errorf("sdk dial: %w", err)
		}
		defer c.Close()
		cons, err := c.Consume(ctx, loadSDKQueue, func(context.Context, *weir.Message) error {
			pl.Consumed.Add(1)
			return nil
		}, weir.Shared(""), weir.Prefetch(32))
		if err != nil {
			return fmt.Errorf("sdk consume: %w", err)
		}
		<-ctx.Done()
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cons.Close(closeCtx)
		return nil
	}
	return fmt.Errorf("unknown protocol %q", proto)
}

// dialAMQP opens an AMQP connection to the server as guest.
func dialAMQP(srv *server) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig("amqp://guest:guest@"+srv.amqp+"/", amqp.Config{Dial: amqp.DefaultDial(dialTimeout)})
	if err != nil {
		return nil, fmt.Errorf("amqp dial: %w", err)
	}
	return conn, nil
}

// dialAMQPChannel opens an AMQP connection and a channel on it; closing
// the connection closes both.
func dialAMQPChannel(srv *server) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := dialAMQP(srv)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}
