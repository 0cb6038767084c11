package torture

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
	weir "github.com/weirmq/weir/client"
)

// Names of what the campaign creates on the server.
const (
	kafkaTopic = "torture-kafka" // written by the Kafka producer
	sdkStream  = "torture-sdk"   // written by the SDK producer
	queueName  = "torture-queue" // written by AMQP, consumed by SDK shared consumers

	queueConsumers = 2
	valuePadding   = 64
	closeTimeout   = time.Second // the server is dead: nothing is waited for but in-doubt outcomes
)

// pacer holds a client to a rate of records per second (0: no limit),
// sleeping in steps of a few milliseconds rather than per record.
type pacer struct {
	rate  int
	start time.Time
	sent  int64
}

func newPacer(rate int) *pacer { return &pacer{rate: rate, start: time.Now()} }

// wait returns once one more record may go, false when ctx ended first.
func (p *pacer) wait(ctx context.Context) bool {
	p.sent++
	if p.rate <= 0 {
		return ctx.Err() == nil
	}
	for {
		allowed := int64(time.Since(p.start).Seconds() * float64(p.rate))
		if p.sent <= allowed+1 {
			return ctx.Err() == nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// recordKey spreads a client's records over the partitions by key.
func recordKey(seq int64) []byte { return []byte("key-" + strconv.FormatInt(seq%16, 10)) }

// runKafka produces with franz-go (idempotent by default; acks=all made
// explicit) until ctx ends, noting each send and each acknowledgement.
func runKafka(ctx context.Context, addr string, cycle, rate int, l *ledger) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DefaultProduceTopic(kafkaTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(1000),
	)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close() // fails what is still buffered: in doubt
	pace := newPacer(rate)
	for seq := int64(0); pace.wait(ctx); seq++ {
		id := recordID{client: ClientKafka, cycle: cycle, seq: seq}
		l.send(id)
		cl.Produce(ctx, &kgo.Record{Key: recordKey(seq), Value: encodeValue(id, valuePadding)}, func(_ *kgo.Record, err error) {
			if err == nil {
				l.acknowledge(id)
			}
		})
	}
	return nil
}

// runAMQP publishes persistent messages with publisher confirms into the
// queue through the default exchange, up to amqpWindow unconfirmed.
func runAMQP(ctx context.Context, addr string, cycle, rate int, l *ledger) error {
	const amqpWindow = 256
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("amqp dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp confirm.select: %w", err)
	}
	type pending struct {
		id recordID
		dc *amqp.DeferredConfirmation
	}
	confirms := make(chan pending, amqpWindow)
	waitCtx, stopWaiting := context.WithCancel(context.Background())
	defer stopWaiting()
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for p := range confirms {
			// A broken connection resolves outstanding confirmations as
			// not acknowledged: in doubt.
			if ack, err := p.dc.WaitContext(waitCtx); err == nil && ack {
				l.acknowledge(p.id)
			}
		}
	}()
	var publishErr error
	pace := newPacer(rate)
	for seq := int64(0); pace.wait(ctx); seq++ {
		id := recordID{client: ClientAMQP, cycle: cycle, seq: seq}
		l.send(id)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queueName, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			MessageId:    id.String(),
			Body:         encodeValue(id, valuePadding),
		})
		if err != nil {
			publishErr = err
			break
		}
		select {
		case confirms <- pending{id, dc}:
		case <-ctx.Done():
		}
	}
	close(confirms)
	conn.Close()
	select {
	case <-waited:
	case <-time.After(closeTimeout):
		stopWaiting()
		<-waited
	}
	if ctx.Err() == nil {
		return fmt.Errorf("amqp publish: %w", publishErr)
	}
	return nil
}

// runSDK publishes with the Weir SDK's Producer (one batch in flight per
// partition), each record with a message-id so that the stream's dedup
// window makes a retried publish store nothing twice.
func runSDK(ctx context.Context, addr string, cycle, rate int, l *ledger) error {
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("sdk dial: %w", err)
	}
	defer c.Close()
	p := c.NewProducer(sdkStream, weir.Linger(2*time.Millisecond), weir.MaxBuffered(1000))
	pace := newPacer(rate)
	for seq := int64(0); pace.wait(ctx); seq++ {
		id := recordID{client: ClientSDK, cycle: cycle, seq: seq}
		l.send(id)
		rec := weir.Record{Key: recordKey(seq), Value: encodeValue(id, valuePadding),
			Headers: []weir.Header{{Key: weir.HeaderMessageID, Value: []byte(id.String())}}}
		p.Send(ctx, rec, func(_ weir.PublishResult, err error) {
			if err == nil {
				l.acknowledge(id)
			}
		})
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = p.Close(closeCtx) // what it could not deliver is in doubt
	return nil
}

// runConsumers runs queueConsumers SDK shared consumers of the queue until
// ctx ends: each handler notes the delivery and acks (returns nil), and
// OnAcked notes whether the server confirmed the ack stored.
func runConsumers(ctx context.Context, addr string, l *ledger) error {
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("consumer dial: %w", err)
	}
	defer c.Close()
	handler := func(_ context.Context, m *weir.Message) error {
		if id, ok := l.deliver(m.Value, m.DeliveryCount); ok {
			l.ackQueued(id)
		}
		return nil
	}
	onAcked := func(m *weir.Message, err error) {
		if id, ok := parseValue(m.Value); ok {
			l.ackOutcome(id, err)
		}
	}
	var consumers []*weir.Consumer
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		for _, cons := range consumers {
			_ = cons.Close(closeCtx)
		}
	}()
	for range queueConsumers {
		cons, err := c.Consume(ctx, queueName, handler, weir.Shared(""), weir.Prefetch(32), weir.OnAcked(onAcked))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume: %w", err)
		}
		consumers = append(consumers, cons)
	}
	<-ctx.Done()
	return nil
}

// setup creates the streams and the queue on a new data directory.
func setup(ctx context.Context, addr string, partitions int32) error {
	c, err := weir.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, name := range []string{kafkaTopic, sdkStream} {
		_, err := c.CreateStream(ctx, weir.StreamConfig{Name: name, Partitions: partitions})
		if err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
			return fmt.Errorf("create stream %s: %w", name, err)
		}
	}
	_, err = c.CreateQueue(ctx, weir.QueueConfig{Name: queueName, Partitions: partitions,
		// Long enough that a record is delivered again only after a
		// restart or a failed ack, never because a consumer was slow.
		Subscription: weir.SubscriptionConfig{AckTimeout: 10 * time.Minute}})
	if err != nil && !errors.Is(err, weir.ErrAlreadyExists) {
		return fmt.Errorf("create queue %s: %w", queueName, err)
	}
	return nil
}
