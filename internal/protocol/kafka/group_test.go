package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/broker"
)

// produceValues writes the values from..to-1 (unkeyed) to topic and waits.
func produceValues(t *testing.T, cl *kgo.Client, topic string, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if err := cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// groupConsumer is one member of a consumer group, recording what it gets.
type groupConsumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

type seenSet struct {
	mu   sync.Mutex
	seen map[int]int
}

func (s *seenSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func startMember(t *testing.T, w *weir, group, topic string, seen *seenSet, opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(100 * time.Millisecond), kgo.SessionTimeout(3 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond), kgo.AutoCommitInterval(100 * time.Millisecond),
	}, opts...)
	cl := w.client(t, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupConsumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				v, _ := strconv.Atoi(string(r.Value))
				seen.mu.Lock()
				seen.seen[v]++
				seen.mu.Unlock()
			})
		}
	}()
	return m
}

func (m *groupConsumer) stop() {
	m.cancel()
	<-m.done
	m.cl.Close() // commits and leaves the group
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerGroupRebalance runs a group of three franz-go consumers over
// six partitions: members join and leave, partitions move, every record is
// consumed, and the committed offsets end at the partitions' ends — in
// Weir's offsets table, where a native group of the same name reads them.
func TestConsumerGroupRebalance(t *testing.T) {
	for _, balancer := range []struct {
		name string
		opt  kgo.GroupBalancer
	}{
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
		{"range", kgo.RangeBalancer()},
		{"roundrobin", kgo.RoundRobinBalancer()},
	} {
		t.Run(balancer.name, func(t *testing.T) {
			w := startWeir(t)
			ctx := testContext(t)
			if _, err := w.admin(t).CreateTopic(ctx, 6, 1, nil, "events"); err != nil {
				t.Fatal(err)
			}
			prod := w.client(t, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			produceValues(t, prod, "events", 0, 300)
			seen := &seenSet{seen: make(map[int]int)}
			opt := kgo.Balancers(balancer.opt)
			m1 := startMember(t, w, "g", "events", seen, opt)
			waitFor(t, "the first member to consume", func() bool { return seen.count() > 0 })
			m2 := startMember(t, w, "g", "events", seen, opt)
			m3 := startMember(t, w, "g", "events", seen, opt)
			waitFor(t, "three members in the group", func() bool {
				d, err := w.admin(t).DescribeGroups(ctx, "g")
				return err == nil && len(d["g"].Members) == 3 && d["g"].State == "Stable"
			})
			// While Kafka members are in, a native member cannot join.
			if _, err := w.srv.Broker().JoinGroup(ctx, broker.JoinOptions{Group: "g", Streams: []string{"events"}}); !errors.Is(err, broker.ErrGroupBusy) {
				t.Errorf("native join while Kafka members are in: %v, want ErrGroupBusy", err)
			}
			if r, err := w.admin(t).DeleteGroups(ctx, "g"); err == nil && !errors.Is(r.Error(), kerr.NonEmptyGroup) {
				t.Errorf("deleting a group with members: %v", r.Error())
			}
			produceValues(t, prod, "events", 300, 600)
			waitFor(t, "600 records consumed", func() bool { return seen.count() == 600 })
			// Each member owns two partitions.
			d, _ := w.admin(t).DescribeGroups(ctx, "g")
			owned := 0
			for _, m := range d["g"].Members {
				a, _ := m.Assigned.AsConsumer()
				for _, tp := range a.Topics {
					owned += len(tp.Partitions)
				}
			}
			if owned != 6 {
				t.Errorf("members own %d partitions, want 6", owned)
			}
			m2.stop()
			produceValues(t, prod, "events", 600, 900)
			waitFor(t, "900 records consumed after a member left", func() bool { return seen.count() == 900 })
			m1.stop()
			m3.stop()
			// Committed offsets are the partitions' ends, visible to the
			// broker's native view of the group.
			b := w.srv.Broker()
			waitFor(t, "committed offsets at the end", func() bool {
				info, err := b.DescribeGroup("g")
				if err != nil || len(info.Offsets) != 6 {
					return false
				}
				for _, o := range info.Offsets {
					if o.Lag != 0 {
						return false
					}
				}
				return true
			})
			// A native member of the same group resumes at the end: nothing
			// is redelivered.
			st, err := b.JoinGroup(ctx, broker.JoinOptions{Group: "g", Streams: []string{"events"}, Start: broker.StartPosition{Kind: broker.StartEarliest}})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range st.Assigned {
				info, _ := b.DescribeStream("events")
				if a.Offset != info.Partitions[a.Partition].EndOffset {
					t.Errorf("native member starts partition %d at %d, want the end %d", a.Partition, a.Offset, info.Partitions[a.Partition].EndOffset)
				}
			}
			// While it is a member, a Kafka consumer cannot join the group.
			join := kmsg.NewPtrJoinGroupRequest()
			join.Version = 3 // no MEMBER_ID_REQUIRED round trip
			join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "g", 3000, 3000, "consumer"
			join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
			jr, err := join.RequestWith(ctx, prod)
			if err != nil || jr.ErrorCode != kerr.InconsistentGroupProtocol.Code {
				t.Errorf("Kafka join while a native member is in: %v, code %d", err, jr.ErrorCode)
			}
			if err := b.LeaveGroup(ctx, "g", st.MemberID); err != nil {
				t.Fatal(err)
			}
		})
	}
}
