package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	Register("amqp", "amqp://guest:guest@localhost:5672/", "queue-type=classic|quorum (x-queue-type; default: the server's), max-length=N (x-max-length), overflow=drop-head|reject-publish|reject-publish-dlx|block (x-overflow; block is Weir's)", openAMQP)
}

// amqpDriver runs workloads over AMQP 0-9-1 with amqp091-go, against Weir's
// AMQP listener or RabbitMQ. A topic with one subscription is a durable
// queue published to through the default exchange; with several, a fanout
// exchange of the topic's name with one durable queue per subscription.
// Records are persistent and confirmed (publisher confirms); consumers ack
// each record.
type amqpDriver struct {
	url       string
	args      amqp.Table // of every queue declared
	admin     *amqp.Connection
	consumers *connPool[*amqp.Connection]
	// fanouts are the topics published through a fanout exchange (those
	// of several subscriptions); the others go through the default one.
	mu      sync.Mutex
	fanouts map[string]bool
}

func (d *amqpDriver) isFanout(topic string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fanouts[topic]
}

func openAMQP(_ context.Context, cfg DriverConfig) (Driver, error) {
	o := newDriverOptions("amqp", cfg.Options)
	args := amqp.Table{}
	switch qt := o.get("queue-type", ""); qt {
	case "":
	case "classic", "quorum":
		args["x-queue-type"] = qt
	default:
		return nil, fmt.Errorf("amqp driver: option queue-type %q: want classic or quorum", qt)
	}
	if v := o.get("max-length", ""); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("amqp driver: option max-length %q: want a positive number of messages", v)
		}
		args["x-max-length"] = int32(n)
	}
	switch v := o.get("overflow", ""); v {
	case "":
	case "drop-head", "reject-publish", "reject-publish-dlx", "block":
		if args["x-max-length"] == nil {
			return nil, fmt.Errorf("amqp driver: option overflow %q needs max-length", v)
		}
		args["x-overflow"] = v
	default:
		return nil, fmt.Errorf("amqp driver: option overflow %q: want drop-head, reject-publish, reject-publish-dlx or block", v)
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	admin, err := amqp.Dial(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("amqp driver: %w", err)
	}
	d := &amqpDriver{url: cfg.URL, args: args, admin: admin, fanouts: map[string]bool{}}
	d.consumers = newConnPool(channelsPerConnection, func() (*amqp.Connection, error) { return amqp.Dial(d.url) }, (*amqp.Connection).Close)
	return d, nil
}

func (d *amqpDriver) Notes() []string {
	notes := []string{"amqp: no partitions and no keys (one queue per subscription); persistent messages, publisher confirms, one ack per record"}
	for _, k := range slices.Sorted(maps.Keys(d.args)) {
		notes = append(notes, fmt.Sprintf("amqp: %s %v", k, d.args[k]))
	}
	return notes
}

func (d *amqpDriver) Close() error {
	d.consumers.close()
	return d.admin.Close()
}

// queueName is the queue of a topic's subscription.
func queueName(t Topic, sub string) string {
	if len(t.Subscriptions) == 1 {
		return t.Name
	}
	return t.Name + "." + sub
}

func (d *amqpDriver) Create(_ context.Context, topics []Topic) error {
	ch, err := d.admin.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, t := range topics {
		if len(t.Subscriptions) == 0 {
			return fmt.Errorf("amqp driver: topic %s: subscriptionsPerTopic 0: %w (a message no queue takes is dropped)", t.Name, ErrUnsupported)
		}
		if len(t.Subscriptions) > 1 {
			d.mu.Lock()
			d.fanouts[t.Name] = true
			d.mu.Unlock()
			if err := ch.ExchangeDeclare(t.Name, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
				return fmt.Errorf("declaring exchange %s: %w", t.Name, err)
			}
		}
		for _, s := range t.Subscriptions {
			q := queueName(t, s)
			if _, err := ch.QueueDeclare(q, true, false, false, false, d.args); err != nil {
				return fmt.Errorf("declaring queue %s: %w", q, err)
			}
			if len(t.Subscriptions) > 1 {
				if err := ch.QueueBind(q, "", t.Name, false, nil); err != nil {
					return fmt.Errorf("binding queue %s: %w", q, err)
				}
			}
		}
	}
	return nil
}

func (d *amqpDriver) Delete(_ context.Context, topics []Topic) error {
	ch, err := d.admin.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, t := range topics {
		for _, s := range t.Subscriptions {
			if _, err := ch.QueueDelete(queueName(t, s), false, false, false); err != nil {
				return err
			}
		}
		if len(t.Subscriptions) > 1 {
			if err := ch.ExchangeDelete(t.Name, false, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// NewProducer opens a connection of its own with one channel in confirm
// mode.
func (d *amqpDriver) NewProducer(context.Context) (Producer, error) {
	conn, err := amqp.Dial(d.url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	p := &amqpProducer{conn: conn, ch: ch, pending: make(chan amqpPending, 1<<16), d: d}
	p.wg.Go(p.confirmLoop)
	return p, nil
}

type amqpPending struct {
	confirm *amqp.DeferredConfirmation
	done    func(error)
}

type amqpProducer struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	pending chan amqpPending
	wg      sync.WaitGroup
	d       *amqpDriver
}

// ErrNacked is the error of a record the AMQP server nacked.
var ErrNacked = errors.New("amqp: the server nacked the message")

// confirmLoop waits for the confirmations in publish order (the server
// confirms in order) and calls each record's done.
func (p *amqpProducer) confirmLoop() {
	for pc := range p.pending {
		<-pc.confirm.Done()
		if pc.confirm.Acked() {
			pc.done(nil)
		} else {
			pc.done(ErrNacked)
		}
	}
}

func (p *amqpProducer) Send(ctx context.Context, topic string, key, value []byte, done func(error)) {
	exchange, routingKey := "", topic
	if p.d.isFanout(topic) {
		exchange, routingKey = topic, ""
	}
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, routingKey, false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Body:         value,
	})
	if err != nil {
		done(err)
		return
	}
	p.pending <- amqpPending{dc, done}
}

func (p *amqpProducer) Close(context.Context) error {
	close(p.pending)
	p.wg.Wait()
	return p.conn.Close()
}

func (d *amqpDriver) NewConsumer(ctx context.Context, t Topic, sub string, prefetch int, handle func([]byte)) (Consumer, error) {
	conn, err := d.consumers.get()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return nil, err
	}
	deliveries, err := ch.Consume(queueName(t, sub), "", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	c := &amqpConsumer{ch: ch}
	c.wg.Go(func() {
		for m := range deliveries {
			handle(m.Body)
			if err := m.Ack(false); err != nil {
				return
			}
		}
	})
	return c, nil
}

type amqpConsumer struct {
	ch *amqp.Channel
	wg sync.WaitGroup
}

func (c *amqpConsumer) Close(context.Context) error {
	err := c.ch.Close() // ends the deliveries
	c.wg.Wait()
	return err
}
