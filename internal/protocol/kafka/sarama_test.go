package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaHandler consumes and marks every message.
type saramaHandler struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)]++
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *saramaHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// TestSarama produces with sarama's sync producer (keys, headers, gzip) and
// consumes with a sarama consumer group of two members: without ApiVersions
// (as sarama before 1.46: fixed versions chosen from the configured Kafka
// version, here 1.0 and 2.1), and negotiating at Kafka 1.0, sarama's default
// and its newest.
func TestSarama(t *testing.T) {
	for _, tc := range []struct {
		version     sarama.KafkaVersion
		apiVersions bool
	}{
		{sarama.V1_0_0_0, false}, {sarama.V2_1_0_0, false},
		{sarama.V1_0_0_0, true}, {sarama.DefaultVersion, true}, {sarama.MaxVersion, true},
	} {
		name := tc.version.String()
		if !tc.apiVersions {
			name += "-fixed"
		}
		t.Run(name, func(t *testing.T) {
			w := startWeir(t)
			cfg := sarama.NewConfig()
			cfg.Version = tc.version
			cfg.ApiVersionsRequest = tc.apiVersions
			cfg.ClientID = "sarama-test"
			cfg.Producer.Return.Successes = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Compression = sarama.CompressionGZIP
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
			cfg.Consumer.Group.Session.Timeout = 3 * time.Second
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
			cfg.Metadata.Retry.Backoff = 50 * time.Millisecond

			admin, err := sarama.NewClusterAdmin([]string{w.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			if err := admin.CreateTopic("sarama", &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}
			prod, err := sarama.NewSyncProducer([]string{w.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			const n = 200
			for i := range n {
				_, _, err := prod.SendMessage(&sarama.ProducerMessage{
					Topic: "sarama", Key: sarama.StringEncoder("k" + strconv.Itoa(i)), Value: sarama.StringEncoder(strconv.Itoa(i)),
					Headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(i))}},
				})
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			prod.Close()

			h := &saramaHandler{seen: make(map[string]int)}
			ctx, cancel := context.WithCancel(testContext(t))
			var wg sync.WaitGroup
			for m := range 2 {
				g, err := sarama.NewConsumerGroup([]string{w.addr}, "sarama-group", cfg)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer g.Close()
					for ctx.Err() == nil {
						if err := g.Consume(ctx, []string{"sarama"}, h); err != nil && ctx.Err() == nil {
							t.Errorf("member %d: %v", m, err)
							return
						}
					}
				}()
			}
			waitFor(t, fmt.Sprintf("%d messages consumed", n), func() bool { return h.count() == n })
			cancel()
			wg.Wait()
			// Offsets were committed: the lag is 0 in Weir's view.
			waitFor(t, "committed offsets", func() bool {
				info, err := w.srv.Broker().DescribeGroup("sarama-group")
				if err != nil || len(info.Offsets) != 4 {
					return false
				}
				for _, o := range info.Offsets {
					if o.Lag != 0 {
						return false
					}
				}
				return true
			})
		})
	}
}
