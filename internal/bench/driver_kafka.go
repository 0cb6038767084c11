package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	Register("kafka", "localhost:9092", "linger=DURATION (default 0), compression=none|snappy|lz4|zstd|gzip (default none), acks=all|leader (default all)", openKafka)
}

// kafkaDriver runs workloads over the Kafka protocol with franz-go, against
// Weir's Kafka listener or any Kafka-compatible server. Topics are topics;
// a group subscription is a consumer group.
type kafkaDriver struct {
	// base returns new options for a client each time: clients made at
	// once must share neither the slice nor the codec options (franz-go
	// fills those in).
	base  func(more ...kgo.Opt) []kgo.Opt
	admin *kgo.Client
}

func openKafka(ctx context.Context, cfg DriverConfig) (Driver, error) {
	o := newDriverOptions("kafka", cfg.Options)
	linger, err := time.ParseDuration(o.get("linger", "0s"))
	if err != nil {
		return nil, fmt.Errorf("kafka driver: option linger: %w", err)
	}
	codecs := map[string]func() kgo.CompressionCodec{
		"none": kgo.NoCompression, "snappy": kgo.SnappyCompression, "lz4": kgo.Lz4Compression,
		"zstd": kgo.ZstdCompression, "gzip": kgo.GzipCompression,
	}
	compression := o.get("compression", "none")
	codec, ok := codecs[compression]
	if !ok {
		return nil, fmt.Errorf("kafka driver: option compression %q: want none, snappy, lz4, zstd or gzip", compression)
	}
	acks := o.get("acks", "all")
	if acks != "all" && acks != "leader" {
		return nil, fmt.Errorf("kafka driver: option acks %q: want all or leader", acks)
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	seeds := strings.Split(strings.TrimPrefix(cfg.URL, "kafka://"), ",")
	base := func(more ...kgo.Opt) []kgo.Opt {
		opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ProducerLinger(linger), kgo.ProducerBatchCompression(codec())}
		if acks == "leader" {
			opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
		}
		return append(opts, more...)
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, fmt.Errorf("kafka driver: %w", err)
	}
	if err := admin.Ping(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("kafka driver: %s: %w", cfg.URL, err)
	}
	return &kafkaDriver{base: base, admin: admin}, nil
}

func (d *kafkaDriver) Notes() []string {
	return []string{"kafka: each subscription is a consumer group that commits its offsets every 5 s (franz-go's default)"}
}

func (d *kafkaDriver) Close() error {
	d.admin.Close()
	return nil
}

func (d *kafkaDriver) Create(ctx context.Context, topics []Topic) error {
	for _, t := range topics {
		if t.Shared {
			return fmt.Errorf("kafka driver: subscriptionType shared: %w (it needs per-record acknowledgement; use the weir or amqp driver)", ErrUnsupported)
		}
	}
	adm := kadm.NewClient(d.admin)
	// One request per partition count, in chunks so that a workload of
	// thousands of topics does not make one huge request.
	const chunk = 500
	for i := 0; i < len(topics); i += chunk {
		batch := topics[i:min(i+chunk, len(topics))]
		byParts := map[int][]string{}
		for _, t := range batch {
			byParts[t.Partitions] = append(byParts[t.Partitions], t.Name)
		}
		for parts, names := range byParts {
			resp, err := adm.CreateTopics(ctx, int32(parts), 1, nil, names...)
			if err != nil {
				return err
			}
			for _, r := range resp.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
					return fmt.Errorf("creating topic %s: %w", r.Topic, r.Err)
				}
			}
		}
	}
	return nil
}

func (d *kafkaDriver) Delete(ctx context.Context, topics []Topic) error {
	adm := kadm.NewClient(d.admin)
	const chunk = 500
	for i := 0; i < len(topics); i += chunk {
		var names []string
		for _, t := range topics[i:min(i+chunk, len(topics))] {
			names = append(names, t.Name)
		}
		resp, err := adm.DeleteTopics(ctx, names...)
		if err != nil {
			return err
		}
		if err := resp.Error(); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return err
		}
	}
	return nil
}

func (d *kafkaDriver) NewProducer(ctx context.Context) (Producer, error) {
	cl, err := kgo.NewClient(d.base(kgo.MaxBufferedRecords(1 << 16))...)
	if err != nil {
		return nil, err
	}
	return &kafkaProducer{cl: cl}, nil
}

type kafkaProducer struct{ cl *kgo.Client }

func (p *kafkaProducer) Send(ctx context.Context, topic string, key, value []byte, done func(error)) {
	p.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, func(_ *kgo.Record, err error) { done(err) })
}

func (p *kafkaProducer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
}

func (d *kafkaDriver) NewConsumer(ctx context.Context, t Topic, sub string, _ int, handle func([]byte)) (Consumer, error) {
	cl, err := kgo.NewClient(d.base(
		kgo.ConsumerGroup(t.Name+"."+sub),
		kgo.ConsumeTopics(t.Name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &kafkaConsumer{cl: cl, cancel: cancel}
	c.wg.Go(func() {
		for pctx.Err() == nil {
			fetches := cl.PollFetches(pctx)
			if fetches.IsClientClosed() {
				return
			}
			fetches.EachRecord(func(r *kgo.Record) { handle(r.Value) })
		}
	})
	return c, nil
}

type kafkaConsumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *kafkaConsumer) Close(ctx context.Context) error {
	c.cancel()
	c.wg.Wait()
	c.cl.Close() // leaves the group, committing what was polled
	return nil
}
