package kafka_test

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/server"
)

// shareConsumer returns a franz-go share consumer of group on topics.
func (w *weir) shareConsumer(t *testing.T, group string, topics ...string) *kgo.Client {
	return w.client(t, kgo.ShareGroup(group), kgo.ConsumeTopics(topics...), kgo.FetchMaxWait(300*time.Millisecond))
}

// describeShareGroup asks for a share group's description.
func describeShareGroup(t *testing.T, ctx context.Context, cl *kgo.Client, group string) kmsg.ShareGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrShareGroupDescribeRequest()
	req.GroupIDs = []string{group}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Groups[0]
}

// waitShareMembers waits until the group has n members.
func waitShareMembers(t *testing.T, ctx context.Context, cl *kgo.Client, group string, n int) {
	t.Helper()
	for {
		g := describeShareGroup(t, ctx, cl, group)
		if g.ErrorCode == 0 && len(g.Members) == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("share group %s: %d members, want %d (error %d)", group, len(g.Members), n, g.ErrorCode)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestShareGroupFranz runs two franz-go share consumers of one share group
// over records produced by a Kafka producer and by the native API: every
// record goes to one consumer at a time; accepted ones are not delivered
// again; released ones are (to either consumer, with delivery count 2);
// rejected ones land on the subscription's dead-letter stream.
func TestShareGroupFranz(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "jobs"); err != nil {
		t.Fatal(err)
	}
	c1 := w.shareConsumer(t, "workers", "jobs")
	c2 := w.shareConsumer(t, "workers", "jobs")
	// The consumers join on their first poll; the group starts at the
	// latest offset (share.auto.offset.reset), so produce once both are in.
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()

	const kafkaRecords, nativeRecords = 200, 100
	type seen struct {
		counts    []int32 // delivery counts, in order
		consumers []int
	}
	var mu sync.Mutex
	deliveries := make(map[string]*seen)
	accepted := make(map[string]bool)
	rejected := make(map[string]bool)
	done := make(chan struct{})
	var doneOnce sync.Once
	want := kafkaRecords + nativeRecords
	// Record i: i%10 == 3 is rejected; i%10 == 5 is released at its first
	// delivery and accepted at the next; the rest are accepted.
	consume := func(id int, cl *kgo.Client) {
		for pollCtx.Err() == nil {
			fs := cl.PollRecords(pollCtx, 50)
			fs.EachError(func(topic string, p int32, err error) {
				if pollCtx.Err() == nil {
					t.Errorf("consumer %d: %s/%d: %v", id, topic, p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				i, err := strconv.Atoi(v[strings.IndexByte(v, '-')+1:])
				if err != nil {
					t.Errorf("record %q", v)
					return
				}
				mu.Lock()
				s := deliveries[v]
				if s == nil {
					s = &seen{}
					deliveries[v] = s
				}
				s.counts = append(s.counts, r.DeliveryCount())
				s.consumers = append(s.consumers, id)
				status := kgo.AckAccept
				switch {
				case i%10 == 3:
					status = kgo.AckReject
					rejected[v] = true
				case i%10 == 5 && r.DeliveryCount() == 1:
					status = kgo.AckRelease
				default:
					accepted[v] = true
				}
				if len(accepted)+len(rejected) == want {
					doneOnce.Do(func() { close(done) })
				}
				mu.Unlock()
				r.Ack(status)
			})
			if err := cl.FlushAcks(pollCtx); err != nil && pollCtx.Err() == nil {
				t.Errorf("consumer %d: FlushAcks: %v", id, err)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { consume(1, c1) })
	wg.Go(func() { consume(2, c2) })
	waitShareMembers(t, ctx, w.client(t), "workers", 2)

	p := w.client(t, kgo.DefaultProduceTopic("jobs"))
	for i := range kafkaRecords {
		p.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: fmt.Appendf(nil, "kafka-%d", i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b := w.srv.Broker()
	native := make([]broker.Record, nativeRecords)
	for i := range native {
		native[i] = broker.Record{Key: []byte(strconv.Itoa(i)), Value: fmt.Appendf(nil, "native-%d", i)}
	}
	if _, err := b.Publish(ctx, "jobs", native); err != nil {
		t.Fatal(err)
	}

	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("settled %d accepted and %d rejected of %d records", len(accepted), len(rejected), want)
	}
	// Give a redelivery of an accepted record time to show up.
	time.Sleep(time.Second)
	stopPolling()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	perConsumer := map[int]int{}
	for v, s := range deliveries {
		i, _ := strconv.Atoi(v[strings.IndexByte(v, '-')+1:])
		for _, id := range s.consumers {
			perConsumer[id]++
		}
		if i%10 == 5 {
			if len(s.counts) != 2 || s.counts[0] != 1 || s.counts[1] != 2 {
				t.Errorf("released record %s: delivery counts %v, want [1 2]", v, s.counts)
			}
			continue
		}
		if len(s.counts) != 1 || s.counts[0] != 1 {
			t.Errorf("record %s: delivery counts %v, want [1]", v, s.counts)
		}
	}
	if len(deliveries) != want {
		t.Errorf("%d distinct records delivered, want %d", len(deliveries), want)
	}
	if perConsumer[1] == 0 || perConsumer[2] == 0 {
		t.Logf("deliveries per consumer: %v (one consumer took everything)", perConsumer)
	}
	wantRejected := 0
	for i := range kafkaRecords {
		if i%10 == 3 {
			wantRejected++
		}
	}
	for i := range nativeRecords {
		if i%10 == 3 {
			wantRejected++
		}
	}
	if len(rejected) != wantRejected {
		t.Errorf("%d rejected, want %d", len(rejected), wantRejected)
	}

	// Every record is settled durably: nothing is left in flight or waiting.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := b.DescribeSubscription("jobs", "workers")
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 && info.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription depth %d, in flight %d after every record was settled", info.Depth, info.InFlight)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The rejected records are on the dead-letter stream, saying why.
	dlq := w.client(t, kgo.ConsumeTopics("jobs.workers.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := make(map[string]bool)
	for len(got) < wantRejected {
		fs := dlq.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("dead-letter stream: %d of %d records", len(got), wantRejected)
		}
		fs.EachRecord(func(r *kgo.Record) {
			reason := ""
			for _, h := range r.Headers {
				if h.Key == broker.HeaderDeadLetterReason {
					reason = string(h.Value)
				}
			}
			if reason != broker.ReasonRejected {
				t.Errorf("dead-lettered %s with reason %q", r.Value, reason)
			}
			if !rejected[string(r.Value)] {
				t.Errorf("dead-lettered %s, which was not rejected", r.Value)
			}
			got[string(r.Value)] = true
		})
	}
}

// TestShareGroupReadsNativeQueue reads a queue created natively (a stream
// with a shared subscription of its name, from its first record) as the
// share group of the same name.
func TestShareGroupReadsNativeQueue(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	b := w.srv.Broker()
	if _, err := b.CreateQueue(ctx, broker.QueueConfig{Name: "tasks", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i] = broker.Record{Value: fmt.Appendf(nil, "task-%d", i), Headers: []broker.Header{{Key: "content-type", Value: []byte("text/plain")}}}
	}
	if _, err := b.Publish(ctx, "tasks", recs); err != nil {
		t.Fatal(err)
	}
	if g := describeShareGroup(t, ctx, w.client(t), "tasks"); g.ErrorCode != 0 || g.GroupState != "Empty" {
		t.Fatalf("describe before any member: error %d, state %q; want Empty", g.ErrorCode, g.GroupState)
	}
	cl := w.shareConsumer(t, "tasks", "tasks")
	got := make(map[string]int)
	for len(got) < n {
		fs := cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records", len(got), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)]++
			if len(r.Headers) != 1 || r.Headers[0].Key != "content-type" || string(r.Headers[0].Value) != "text/plain" {
				t.Errorf("%s: headers %v", r.Value, r.Headers)
			}
			r.Ack(kgo.AckAccept)
		})
	}
	if err := cl.FlushAcks(ctx); err != nil {
		t.Fatal(err)
	}
	for v, c := range got {
		if c != 1 {
			t.Errorf("%s delivered %d times", v, c)
		}
	}
	info, err := b.DescribeSubscription("tasks", "tasks")
	if err != nil {
		t.Fatal(err)
	}
	if info.Depth != 0 || info.InFlight != 0 {
		t.Errorf("queue depth %d, in flight %d after every record was accepted", info.Depth, info.InFlight)
	}
	g := describeShareGroup(t, ctx, w.client(t), "tasks")
	if g.GroupState != "Stable" || len(g.Members) != 1 || len(g.Members[0].Assignment.TopicPartitions) != 1 ||
		g.Members[0].Assignment.TopicPartitions[0].Topic != "tasks" || len(g.Members[0].Assignment.TopicPartitions[0].Partitions) != 2 {
		t.Errorf("describe: %+v", g)
	}
}

// rawMember drives the share APIs by hand through a franz-go client, to
// check the protocol's edges: epochs, sessions, errors.
type rawMember struct {
	cl    *kgo.Client
	group string
	id    string
	epoch int32
	topic [16]byte
	parts []int32
	// maxWait of its fetches in milliseconds (0: 2000).
	maxWait int32
}

func (m *rawMember) heartbeat(t *testing.T, ctx context.Context, topics []string) *kmsg.ShareGroupHeartbeatResponse {
	t.Helper()
	req := kmsg.NewPtrShareGroupHeartbeatRequest()
	req.GroupID, req.MemberID, req.MemberEpoch, req.SubscribedTopicNames = m.group, m.id, m.epoch, topics
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode == 0 {
		m.epoch = resp.MemberEpoch
		if resp.Assignment != nil && len(resp.Assignment.TopicPartitions) > 0 {
			m.topic, m.parts = resp.Assignment.TopicPartitions[0].TopicID, resp.Assignment.TopicPartitions[0].Partitions
		}
	}
	return resp
}

func (m *rawMember) fetch(t *testing.T, ctx context.Context, epoch int32, acks []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch) *kmsg.ShareFetchResponse {
	t.Helper()
	req := kmsg.NewPtrShareFetchRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &m.group, &m.id, epoch
	req.MaxWaitMillis, req.MaxRecords, req.BatchSize = cmp.Or(m.maxWait, 2000), 100, 100
	rt := kmsg.ShareFetchRequestTopic{TopicID: m.topic}
	for i, p := range m.parts {
		rp := kmsg.ShareFetchRequestTopicPartition{Partition: p, PartitionMaxBytes: 1 << 20}
		if i == 0 {
			rp.AcknowledgementBatches = acks
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = []kmsg.ShareFetchRequestTopic{rt}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (m *rawMember) acknowledge(t *testing.T, ctx context.Context, epoch int32, partition int32, acks []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch) *kmsg.ShareAcknowledgeResponse {
	t.Helper()
	req := kmsg.NewPtrShareAcknowledgeRequest()
	req.GroupID, req.MemberID, req.ShareSessionEpoch = &m.group, &m.id, epoch
	req.Topics = []kmsg.ShareAcknowledgeRequestTopic{{TopicID: m.topic, Partitions: []kmsg.ShareAcknowledgeRequestTopicPartition{{Partition: partition, AcknowledgementBatches: acks}}}}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func acquired(resp *kmsg.ShareFetchResponse) (n int, counts []int16) {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			for _, ar := range p.AcquiredRecords {
				n += int(ar.LastOffset - ar.FirstOffset + 1)
				counts = append(counts, ar.DeliveryCount)
			}
		}
	}
	return n, counts
}

// TestShareGroupProtocol checks heartbeat epochs, share session epochs and
// the error codes of the share APIs, and that a member whose heartbeats
// stop has its records released to the others (long before their
// acquisition lock would have run out).
func TestShareGroupProtocol(t *testing.T) {
	w := startWeir(t, func(c *server.Config) { c.KafkaShareSessionTimeout = 2 * time.Second })
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "events"); err != nil {
		t.Fatal(err)
	}
	m := &rawMember{cl: w.client(t), group: "g1", id: "member-a"}

	// Joining needs the topics; the member id is the client's.
	if resp := m.heartbeat(t, ctx, nil); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("join without topics: error %d", resp.ErrorCode)
	}
	if resp := m.heartbeat(t, ctx, []string{"events"}); resp.ErrorCode != 0 || resp.Assignment == nil || resp.MemberEpoch <= 0 || resp.HeartbeatIntervalMillis <= 0 || resp.HeartbeatIntervalMillis > 1000 {
		t.Fatalf("join: %+v", resp)
	}
	if len(m.parts) != 1 {
		t.Fatalf("assignment %v", m.parts)
	}
	stale := &rawMember{cl: m.cl, group: m.group, id: m.id, epoch: m.epoch + 5}
	if resp := stale.heartbeat(t, ctx, nil); resp.ErrorCode != kerr.FencedMemberEpoch.Code {
		t.Fatalf("heartbeat with a wrong epoch: error %d", resp.ErrorCode)
	}
	if resp := m.heartbeat(t, ctx, nil); resp.ErrorCode != 0 || resp.Assignment != nil {
		t.Fatalf("heartbeat: %+v", resp)
	}

	// Session epochs.
	if resp := m.fetch(t, ctx, 3, nil); resp.ErrorCode != kerr.ShareSessionNotFound.Code {
		t.Fatalf("fetch without a session: error %d", resp.ErrorCode)
	}
	if resp := m.acknowledge(t, ctx, 0, 0, nil); resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("acknowledge opening a session: error %d", resp.ErrorCode)
	}
	acceptFirst := []kmsg.ShareFetchRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 0, AcknowledgeTypes: []int8{1}}}
	if resp := m.fetch(t, ctx, 0, acceptFirst); resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("acknowledgements in the opening fetch: error %d", resp.ErrorCode)
	}

	p := w.client(t, kgo.DefaultProduceTopic("events"))
	for i := range 10 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Fetch until the 10 records are acquired (a fetch returns what the
	// subscription has read ahead when the first record is there).
	epoch, total := int32(0), 0
	for total < 10 {
		resp := m.fetch(t, ctx, epoch, nil)
		n, counts := acquired(resp)
		if resp.ErrorCode != 0 || n == 0 || counts[0] != 1 {
			t.Fatalf("fetch at epoch %d: error %d, %d records acquired, counts %v", epoch, resp.ErrorCode, n, counts)
		}
		if resp.AcquisitionLockTimeoutMillis != 30000 {
			t.Errorf("acquisition lock %d ms, want 30000", resp.AcquisitionLockTimeoutMillis)
		}
		total += n
		epoch++
	}
	if total != 10 {
		t.Fatalf("acquired %d records, want 10", total)
	}
	if resp := m.fetch(t, ctx, epoch+5, nil); resp.ErrorCode != kerr.InvalidShareSessionEpoch.Code {
		t.Fatalf("fetch with a wrong session epoch: error %d", resp.ErrorCode)
	}
	// Accept offsets 0 and 1.
	ack := m.acknowledge(t, ctx, epoch, m.parts[0], []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 0, LastOffset: 1, AcknowledgeTypes: []int8{1}}})
	if ack.ErrorCode != 0 || ack.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("acknowledge: %+v", ack)
	}
	// Another member cannot settle m's records.
	b := &rawMember{cl: w.client(t), group: "g1", id: "member-b", maxWait: 1}
	if resp := b.heartbeat(t, ctx, []string{"events"}); resp.ErrorCode != 0 {
		t.Fatalf("join b: error %d", resp.ErrorCode)
	}
	if resp := b.fetch(t, ctx, 0, nil); resp.ErrorCode != 0 {
		t.Fatalf("fetch b: error %d", resp.ErrorCode)
	}
	ack = b.acknowledge(t, ctx, 1, b.parts[0], []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 5, LastOffset: 5, AcknowledgeTypes: []int8{3}}})
	if ack.ErrorCode != 0 || len(ack.Topics) != 1 || len(ack.Topics[0].Partitions) != 1 {
		t.Fatalf("acknowledge b: %+v", ack)
	}
	if got := ack.Topics[0].Partitions[0].ErrorCode; got != kerr.InvalidRecordState.Code {
		t.Fatalf("rejecting a record another member holds: error %d", got)
	}
	ack = m.acknowledge(t, ctx, epoch+1, m.parts[0], []kmsg.ShareAcknowledgeRequestTopicPartitionAcknowledgementBatch{{FirstOffset: 2, LastOffset: 4, AcknowledgeTypes: []int8{1, 9}}})
	if got := ack.Topics[0].Partitions[0].ErrorCode; got != kerr.InvalidRequest.Code {
		t.Fatalf("two types for three offsets: error %d", got)
	}

	// The member stops heartbeating, its connection still open: after the
	// session timeout its 8 records go to another member, counted twice.
	other := w.shareConsumer(t, "g1", "events")
	got := make(map[string]int32)
	for len(got) < 8 {
		fs := other.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("the other member got %d of 8 released records", len(got))
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)] = r.DeliveryCount()
			r.Ack(kgo.AckAccept)
		})
	}
	for v, c := range got {
		if v == "0" || v == "1" {
			t.Errorf("accepted record %s delivered again", v)
		}
		if c != 2 {
			t.Errorf("record %s: delivery count %d, want 2", v, c)
		}
	}
	if resp := m.heartbeat(t, ctx, nil); resp.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat of an expired member: error %d", resp.ErrorCode)
	}
	if resp := m.fetch(t, ctx, epoch+2, nil); resp.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("fetch of an expired member: error %d", resp.ErrorCode)
	}
}
