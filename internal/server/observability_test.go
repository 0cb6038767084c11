package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/twmb/franz-go/pkg/kgo"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// scrape returns the samples /metrics serves now.
func scrape(t *testing.T, s *Server) map[string][]sample {
	t.Helper()
	resp, body, err := get("http://" + s.Addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	return parseExposition(t, string(body))
}

// TestKafkaDeliveriesCounted consumes with franz-go, a consumer of a group
// (Fetch) and a share consumer (ShareFetch), and checks that the records
// they got are counted in weir_kafka_delivered_records_total and in the
// console's records out.
func TestKafkaDeliveriesCounted(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stats := consoleStats{s: s, b: s.Broker()}
	before := stats.Sample().RecordsOut

	// Fetch: 7 records produced, consumed from the start.
	const fetched = 7
	producer, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.DefaultProduceTopic("clicks"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := range fetched {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "click %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.ConsumeTopics("clicks"), kgo.ConsumerGroup("counting"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for got := 0; got < fetched; {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", got, fetched, fs.Errors())
		}
		got += fs.NumRecords()
	}

	// ShareFetch: a share group reading a queue of 5 records.
	const shared = 5
	b := s.Broker()
	if _, err := b.CreateQueue(ctx, broker.QueueConfig{Name: "tasks"}); err != nil {
		t.Fatal(err)
	}
	recs := make([]broker.Record, shared)
	for i := range recs {
		recs[i] = broker.Record{Value: fmt.Appendf(nil, "task %d", i)}
	}
	if _, err := b.Publish(ctx, "tasks", recs); err != nil {
		t.Fatal(err)
	}
	sharer, err := kgo.NewClient(kgo.SeedBrokers(s.Addr("kafka")), kgo.ShareGroup("tasks"), kgo.ConsumeTopics("tasks"), kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sharer.Close()
	for got := 0; got < shared; {
		fs := sharer.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("share-consumed %d of %d records: %v", got, shared, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) { got++; r.Ack(kgo.AckAccept) })
	}
	if err := sharer.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, s)
	if n, ok := value(m, "weir_kafka_delivered_records_total", `api="Fetch"`); !ok || n != fetched {
		t.Errorf(`weir_kafka_delivered_records_total{api="Fetch"} = %v (present %v), want %d`, n, ok, fetched)
	}
	if n, ok := value(m, "weir_kafka_delivered_records_total", `api="ShareFetch"`); !ok || n != shared {
		t.Errorf(`weir_kafka_delivered_records_total{api="ShareFetch"} = %v (present %v), want %d`, n, ok, shared)
	}
	for _, api := range []string{"Fetch", "ShareFetch"} {
		// Each record is at least its batch's 61-byte header's share.
		if n, ok := value(m, "weir_kafka_delivered_bytes_total", `api="`+api+`"`); !ok || n < 61 {
			t.Errorf(`weir_kafka_delivered_bytes_total{api=%q} = %v (present %v), want a batch or more`, api, n, ok)
		}
	}
	if out := stats.Sample().RecordsOut - before; out < fetched+shared {
		t.Errorf("the console's records out grew by %v, want at least the %d records Kafka consumers got", out, fetched+shared)
	}
}

// TestConnectorsServiceMetrics checks that calls of the Connectors service
// are counted in weir_api_requests_total as the Weir service's are, with
// their code.
func TestConnectorsServiceMetrics(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := connectorsClient(t, s)
	ctx := t.Context()
	for range 2 {
		if _, err := c.ListConnectors(ctx, connect.NewRequest(&weirpb.ListConnectorsRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.DescribeConnector(ctx, connect.NewRequest(&weirpb.DescribeConnectorRequest{Name: "nowhere"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("DescribeConnector of no connector: %v, want not_found", err)
	}
	m := scrape(t, s)
	if n, ok := value(m, "weir_api_requests_total", `procedure="weir.v1.Connectors/ListConnectors"`, `code="ok"`); !ok || n != 2 {
		t.Errorf("ListConnectors ok = %v (present %v), want 2", n, ok)
	}
	if n, ok := value(m, "weir_api_requests_total", `procedure="weir.v1.Connectors/DescribeConnector"`, `code="not_found"`); !ok || n != 1 {
		t.Errorf("DescribeConnector not_found = %v (present %v), want 1", n, ok)
	}
}
