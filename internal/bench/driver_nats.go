package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	Register("nats", "nats://localhost:4222", "storage=file|memory (default file)", openNATS)
}

// natsDriver runs workloads on NATS JetStream with nats.go. A topic is a
// stream of one subject (its name); a subscription is a durable pull
// consumer whose consumers pull from it in turn. A topic of one shared
// subscription is a work-queue stream (records leave once acknowledged).
type natsDriver struct {
	url       string
	storage   jetstream.StorageType
	admin     *nats.Conn
	js        jetstream.JetStream
	consumers *connPool[*nats.Conn]
}

func openNATS(_ context.Context, cfg DriverConfig) (Driver, error) {
	o := newDriverOptions("nats", cfg.Options)
	storage := jetstream.FileStorage
	switch s := o.get("storage", "file"); s {
	case "file":
	case "memory":
		storage = jetstream.MemoryStorage
	default:
		return nil, fmt.Errorf("nats driver: option storage %q: want file or memory", s)
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("nats driver: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	d := &natsDriver{url: cfg.URL, storage: storage, admin: nc, js: js}
	d.consumers = newConnPool(channelsPerConnection, func() (*nats.Conn, error) { return nats.Connect(d.url) },
		func(c *nats.Conn) error { c.Close(); return nil })
	return d, nil
}

func (d *natsDriver) Notes() []string {
	return []string{"nats: no partitions and no keys (one stream of one subject per topic); group subscriptions are durable pull consumers without acks (AckNone), shared ones ack each record"}
}

func (d *natsDriver) Close() error {
	d.consumers.close()
	d.admin.Close()
	return nil
}

func (d *natsDriver) Create(ctx context.Context, topics []Topic) error {
	return forEach(ctx, len(topics), 16, func(ctx context.Context, i int) error {
		t := topics[i]
		retention := jetstream.LimitsPolicy
		if t.Shared && len(t.Subscriptions) == 1 {
			retention = jetstream.WorkQueuePolicy
		}
		_, err := d.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: t.Name, Subjects: []string{t.Name}, Storage: d.storage, Retention: retention, Replicas: 1,
		})
		if err != nil {
			return fmt.Errorf("creating stream %s: %w", t.Name, err)
		}
		for _, s := range t.Subscriptions {
			cc := jetstream.ConsumerConfig{Durable: s, DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckNonePolicy}
			if t.Shared {
				cc.AckPolicy = jetstream.AckExplicitPolicy
			}
			if _, err := d.js.CreateOrUpdateConsumer(ctx, t.Name, cc); err != nil {
				return fmt.Errorf("creating consumer %s of %s: %w", s, t.Name, err)
			}
		}
		return nil
	})
}

func (d *natsDriver) Delete(ctx context.Context, topics []Topic) error {
	return forEach(ctx, len(topics), 16, func(ctx context.Context, i int) error {
		err := d.js.DeleteStream(ctx, topics[i].Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		return err
	})
}

// NewProducer opens a connection of its own and publishes asynchronously;
// the JetStream context's ack handlers find each record's callback.
func (d *natsDriver) NewProducer(context.Context) (Producer, error) {
	nc, err := nats.Connect(d.url)
	if err != nil {
		return nil, err
	}
	p := &natsProducer{nc: nc, pending: map[*nats.Msg]func(error){}}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(1<<16),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) { p.complete(m, nil) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) { p.complete(m, err) }),
	)
	if err != nil {
		nc.Close()
		return nil, err
	}
	p.js = js
	return p, nil
}

type natsProducer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	mu      sync.Mutex
	pending map[*nats.Msg]func(error)
}

func (p *natsProducer) complete(m *nats.Msg, err error) {
	p.mu.Lock()
	done := p.pending[m]
	delete(p.pending, m)
	p.mu.Unlock()
	if done != nil {
		done(err)
	}
}

func (p *natsProducer) Send(_ context.Context, topic string, _, value []byte, done func(error)) {
	m := &nats.Msg{Subject: topic, Data: value}
	p.mu.Lock()
	p.pending[m] = done
	p.mu.Unlock()
	if _, err := p.js.PublishMsgAsync(m); err != nil {
		p.complete(m, err)
	}
}

func (p *natsProducer) Close(ctx context.Context) error {
	defer p.nc.Close()
	select {
	case <-p.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *natsDriver) NewConsumer(ctx context.Context, t Topic, sub string, prefetch int, handle func([]byte)) (Consumer, error) {
	nc, err := d.consumers.get()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cons, err := js.Consumer(ctx, t.Name, sub)
	if err != nil {
		return nil, err
	}
	ack := t.Shared
	cc, err := cons.Consume(func(m jetstream.Msg) {
		handle(m.Data())
		if ack {
			m.Ack() //nolint:errcheck // a lost ack is redelivered, and counted as such
		}
	}, jetstream.PullMaxMessages(prefetch))
	if err != nil {
		return nil, err
	}
	return natsConsumer{cc}, nil
}

type natsConsumer struct{ cc jetstream.ConsumeContext }

func (c natsConsumer) Close(ctx context.Context) error {
	c.cc.Stop()
	select {
	case <-c.cc.Closed():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
