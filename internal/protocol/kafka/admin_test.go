package kafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAdmin drives topics through kadm: create (with configurations), list
// with topic ids, describe configs, grow, list offsets (earliest, latest,
// by time), commit and fetch group offsets, delete.
func TestAdmin(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	adm := w.admin(t)
	retention := "3600000"
	policy := "compact"
	created, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &retention, "cleanup.policy": &policy}, "admin-a")
	if err != nil || created.Err != nil {
		t.Fatalf("CreateTopic: %v %v", err, created.Err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "admin-a"); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Errorf("creating it again: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "admin-rf"); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Errorf("replication factor 3: %v, want INVALID_REPLICATION_FACTOR", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "bad/name"); !errors.Is(err, kerr.InvalidTopicException) {
		t.Errorf("bad name: %v, want INVALID_TOPIC_EXCEPTION", err)
	}
	bogus := "x"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"no.such.config": &bogus}, "admin-cfg"); !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("unknown config: %v, want INVALID_CONFIG", err)
	}
	details, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := details["admin-a"]
	info, _ := w.srv.Broker().DescribeStream("admin-a")
	if !ok || len(d.Partitions) != 3 || [16]byte(d.ID) != info.ID {
		t.Fatalf("ListTopics: %+v (stream id %x)", d, info.ID)
	}
	if d.Partitions[0].Leader != 0 {
		t.Errorf("leader %d", d.Partitions[0].Leader)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On("admin-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cfg.Configs {
		got[c.Key] = c.MaybeValue()
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "compact" {
		t.Errorf("configs %v", got)
	}
	if _, err := adm.CreatePartitions(ctx, 2, "admin-a"); err != nil {
		t.Fatal(err)
	}
	if info, _ := w.srv.Broker().DescribeStream("admin-a"); len(info.Partitions) != 5 {
		t.Errorf("%d partitions after adding 2, want 5", len(info.Partitions))
	}
	if r, err := adm.UpdatePartitions(ctx, 2, "admin-a"); err == nil && r["admin-a"].Err == nil {
		t.Errorf("shrinking to 2 partitions succeeded")
	}

	// Offsets: earliest, latest and by time.
	cl := w.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		r := &kgo.Record{Topic: "admin-a", Partition: 0, Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	start, err := adm.ListStartOffsets(ctx, "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup("admin-a", 0); o.Offset != 0 {
		t.Errorf("start offset %d", o.Offset)
	}
	if o, _ := end.Lookup("admin-a", 0); o.Offset != 10 {
		t.Errorf("end offset %d, want 10", o.Offset)
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4*time.Minute+time.Second).UnixMilli(), "admin-a")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := at.Lookup("admin-a", 0); o.Offset != 5 || o.Timestamp != base.Add(5*time.Minute).UnixMilli() {
		t.Errorf("offset after minute 4: %d at %d, want 5 at %d", o.Offset, o.Timestamp, base.Add(5*time.Minute).UnixMilli())
	}
	if o, _ := at.Lookup("admin-a", 1); o.Offset != 0 {
		t.Errorf("empty partition by time: %d, want its end (kadm turns Kafka's -1 into it)", o.Offset)
	}

	// Group offsets without members (tools) and reading them back.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "admin-a", Partition: 0, At: 7, LeaderEpoch: -1, Metadata: "m"})
	if r, err := adm.CommitOffsets(ctx, "tools", offs); err != nil || r.Error() != nil {
		t.Fatalf("CommitOffsets: %v %v", err, r.Error())
	}
	fetched, err := adm.FetchOffsets(ctx, "tools")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("admin-a", 0); !ok || o.At != 7 || o.Metadata != "m" {
		t.Errorf("FetchOffsets: %+v", o)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["tools"]; !ok {
		t.Errorf("ListGroups %v lacks the group with offsets", groups.Groups())
	}
	// The native API sees the same offsets.
	native, err := w.srv.Broker().DescribeGroup("tools")
	if err != nil || len(native.Offsets) != 1 || native.Offsets[0].Offset != 7 {
		t.Errorf("native view: %+v %v", native, err)
	}

	// Deleting the group removes its offsets; a second delete finds none.
	if r, err := adm.DeleteGroups(ctx, "tools"); err != nil || r.Error() != nil {
		t.Fatalf("DeleteGroups: %v %v", err, r.Error())
	}
	if _, err := w.srv.Broker().DescribeGroup("tools"); err == nil {
		t.Errorf("group still has offsets after DeleteGroups")
	}
	if r, err := adm.DeleteGroups(ctx, "tools"); err == nil && !errors.Is(r.Error(), kerr.GroupIDNotFound) {
		t.Errorf("deleting a deleted group: %v", r.Error())
	}

	if _, err := adm.DeleteTopics(ctx, "admin-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.srv.Broker().DescribeStream("admin-a"); err == nil {
		t.Errorf("stream still there after DeleteTopics")
	}
	r, err := adm.DeleteTopics(ctx, "admin-a")
	if err == nil && !errors.Is(r["admin-a"].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting a missing topic: %v", r["admin-a"].Err)
	}
}
