// Command saramaold runs an old sarama release (Shopify/sarama v1.27, from
// before sarama sent ApiVersions: it uses fixed request versions chosen from
// the configured Kafka version) against a Kafka listener: it creates a
// topic, produces n keyed messages with headers, and consumes them with a
// consumer group of two members, committing offsets. It prints "ok" and
// exits 0 when every message was consumed exactly once.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

type handler struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		if len(m.Headers) != 1 || string(m.Headers[0].Key) != "n" || string(m.Headers[0].Value) != string(m.Value) {
			return fmt.Errorf("message %s: headers %v", m.Value, m.Headers)
		}
		h.mu.Lock()
		h.seen[string(m.Value)]++
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func main() {
	broker := flag.String("broker", "127.0.0.1:9092", "Kafka listener")
	topic := flag.String("topic", "sarama-old", "topic to create and use")
	group := flag.String("group", "sarama-old-group", "consumer group")
	version := flag.String("version", "2.1.0", "Kafka version sarama is configured for")
	n := flag.Int("n", 100, "messages")
	flag.Parse()
	if err := run(*broker, *topic, *group, *version, *n); err != nil {
		fmt.Fprintln(os.Stderr, "saramaold:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func run(broker, topic, group, version string, n int) error {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		return err
	}
	cfg := sarama.NewConfig()
	cfg.Version = v
	cfg.ClientID = "sarama-old"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond

	admin, err := sarama.NewClusterAdmin([]string{broker}, cfg)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	prod, err := sarama.NewSyncProducer([]string{broker}, cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	for i := range n {
		_, _, err := prod.SendMessage(&sarama.ProducerMessage{
			Topic: topic, Key: sarama.StringEncoder("k" + strconv.Itoa(i)), Value: sarama.StringEncoder(strconv.Itoa(i)),
			Headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(i))}},
		})
		if err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	prod.Close()

	h := &handler{seen: make(map[string]int)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		g, err := sarama.NewConsumerGroup([]string{broker}, group, cfg)
		if err != nil {
			return fmt.Errorf("consumer group: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Close()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		}()
	}
	for {
		h.mu.Lock()
		got := len(h.seen)
		h.mu.Unlock()
		if got == n {
			break
		}
		select {
		case err := <-errs:
			cancel()
			wg.Wait()
			return fmt.Errorf("consume: %w", err)
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("consumed %d of %d messages", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	wg.Wait()
	for v, c := range h.seen {
		if c != 1 {
			return fmt.Errorf("message %s consumed %d times", v, c)
		}
	}
	return nil
}
