package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	weir "github.com/weirmq/weir/client"
)

func init() {
	Register("weir", "localhost:8080", "linger=DURATION (the SDK producer's; default its own, 5ms), max-length=N and overflow=drop-oldest|reject-publish|dead-letter|block (of the shared subscriptions), user=, password=", openWeir)
}

// weirDriver runs workloads through the Weir Go SDK (the native API).
type weirDriver struct {
	client *weir.Client
	linger []weir.ProducerOption
	// bound is the max length and overflow policy of the shared
	// subscriptions the driver creates.
	bound weir.SubscriptionConfig
}

func openWeir(ctx context.Context, cfg DriverConfig) (Driver, error) {
	var opts []weir.Option
	if user := cfg.Options["user"]; user != "" {
		opts = append(opts, weir.WithBasicAuth(user, cfg.Options["password"]))
	}
	rest := map[string]string{}
	for k, v := range cfg.Options {
		if k != "user" && k != "password" {
			rest[k] = v
		}
	}
	d, err := newWeirDriver(rest) // bad options fail before dialling
	if err != nil {
		return nil, err
	}
	if d.client, err = weir.Dial(ctx, cfg.URL, opts...); err != nil {
		return nil, fmt.Errorf("weir driver: %w", err)
	}
	return d, nil
}

// NewWeirDriver wraps an SDK client (an embedded node's, say), with the
// driver's options but user and password (the client has its own).
func NewWeirDriver(c *weir.Client, options map[string]string) (Driver, error) {
	d, err := newWeirDriver(options)
	if err != nil {
		return nil, err
	}
	d.client = c
	return d, nil
}

// newWeirDriver checks the driver's options; the client is set after.
func newWeirDriver(options map[string]string) (*weirDriver, error) {
	o := newDriverOptions("weir", options)
	var linger []weir.ProducerOption
	if v := o.get("linger", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("weir driver: option linger: %w", err)
		}
		linger = append(linger, weir.Linger(d))
	}
	var bound weir.SubscriptionConfig
	if v := o.get("max-length", ""); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("weir driver: option max-length %q: want a positive number of records", v)
		}
		bound.MaxLength = n
	}
	switch v := weir.Overflow(o.get("overflow", "")); v {
	case "":
	case weir.OverflowDropOldest, weir.OverflowRejectPublish, weir.OverflowDeadLetter, weir.OverflowBlock:
		if bound.MaxLength == 0 {
			return nil, fmt.Errorf("weir driver: option overflow %q needs max-length", v)
		}
		bound.Overflow = v
	default:
		return nil, fmt.Errorf("weir driver: option overflow %q: want drop-oldest, reject-publish, dead-letter or block", v)
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	return &weirDriver{linger: linger, bound: bound}, nil
}

func (d *weirDriver) Notes() []string { return nil }

func (d *weirDriver) Close() error { return d.client.Close() }

func (d *weirDriver) Create(ctx context.Context, topics []Topic) error {
	return forEach(ctx, len(topics), 16, func(ctx context.Context, i int) error {
		t := topics[i]
		parts := int32(t.Partitions)
		// A topic of one shared subscription is a queue: until-acked
		// retention, as the peers' work queues.
		if t.Shared && len(t.Subscriptions) == 1 {
			_, err := d.client.CreateQueue(ctx, weir.QueueConfig{Name: t.Name, Partitions: parts, Subscription: d.bound})
			return err
		}
		if _, err := d.client.CreateStream(ctx, weir.StreamConfig{Name: t.Name, Partitions: parts}); err != nil {
			return err
		}
		if !t.Shared {
			return nil // group subscriptions are made by their consumers
		}
		for _, s := range t.Subscriptions {
			cfg := d.bound
			cfg.Stream, cfg.Name, cfg.Start = t.Name, s, weir.Earliest()
			if _, err := d.client.CreateSubscription(ctx, cfg); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *weirDriver) Delete(ctx context.Context, topics []Topic) error {
	return forEach(ctx, len(topics), 16, func(ctx context.Context, i int) error {
		err := d.client.DeleteStream(ctx, topics[i].Name)
		if errors.Is(err, weir.ErrNotFound) {
			return nil
		}
		return err
	})
}

func (d *weirDriver) NewProducer(context.Context) (Producer, error) {
	return &weirProducer{d: d, producers: map[string]*weir.Producer{}}, nil
}

// weirProducer keeps one SDK producer per topic it publishes to.
type weirProducer struct {
	d         *weirDriver
	mu        sync.Mutex
	producers map[string]*weir.Producer
}

func (p *weirProducer) Send(ctx context.Context, topic string, key, value []byte, done func(error)) {
	p.mu.Lock()
	prod := p.producers[topic]
	if prod == nil {
		prod = p.d.client.NewProducer(topic, p.d.linger...)
		p.producers[topic] = prod
	}
	p.mu.Unlock()
	prod.Send(ctx, weir.Record{Key: key, Value: value}, func(_ weir.PublishResult, err error) { done(err) })
}

func (p *weirProducer) Close(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, prod := range p.producers {
		errs = append(errs, prod.Close(ctx))
	}
	return errors.Join(errs...)
}

func (d *weirDriver) NewConsumer(ctx context.Context, t Topic, sub string, prefetch int, handle func([]byte)) (Consumer, error) {
	handler := func(_ context.Context, m *weir.Message) error {
		handle(m.Value)
		return nil // acks a shared subscription's record; a group commits
	}
	var opts []weir.ConsumeOption
	switch {
	case t.Shared && len(t.Subscriptions) == 1:
		opts = []weir.ConsumeOption{weir.Shared(""), weir.Prefetch(prefetch)}
	case t.Shared:
		opts = []weir.ConsumeOption{weir.Shared(sub), weir.Prefetch(prefetch)}
	default:
		opts = []weir.ConsumeOption{weir.Group(t.Name + "." + sub), weir.Start(weir.Earliest())}
	}
	c, err := d.client.Consume(ctx, t.Name, handler, opts...)
	if err != nil {
		return nil, err
	}
	return weirConsumer{c}, nil
}

type weirConsumer struct{ c *weir.Consumer }

func (c weirConsumer) Close(ctx context.Context) error { return c.c.Close(ctx) }
