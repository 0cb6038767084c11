package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func openBroker(t testing.TB, dir string) *Broker {
	t.Helper()
	b, err := Open(Config{DataDir: dir, JanitorInterval: -1})
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	return b
}

func createStream(t testing.TB, b *Broker, cfg StreamConfig) StreamInfo {
	t.Helper()
	info, err := b.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatalf("create stream %q: %v", cfg.Name, err)
	}
	return info
}

func publish(t testing.TB, b *Broker, stream string, recs ...Record) []PublishResult {
	t.Helper()
	res, err := b.Publish(context.Background(), stream, recs)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res
}

func fetchAll(t testing.TB, b *Broker, stream string, partition int32, from int64) []Record {
	t.Helper()
	var out []Record
	for {
		res, err := b.Fetch(context.Background(), stream, partition, from, 64<<10, 0)
		if err != nil {
			t.Fatalf("fetch %s/%d at %d: %v", stream, partition, from, err)
		}
		out = append(out, res.Records...)
		if res.NextOffset >= res.HighWater || res.NextOffset == from {
			return out
		}
		from = res.NextOffset
	}
}

func TestMurmur2MatchesKafkaClients(t *testing.T) {
	// franz-go's key partitioner, a real Kafka client's, is the oracle.
	oracle := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		key := make([]byte, rng.IntN(40))
		for j := range key {
			key[j] = byte(rng.IntN(256))
		}
		n := 1 + rng.IntN(64)
		want := oracle.Partition(&kgo.Record{Key: key}, n)
		if got := KeyPartition(key, int32(n)); int(got) != want {
			t.Fatalf("key %d %x over %d partitions: got %d, the Kafka client says %d", i, key, n, got, want)
		}
	}
}

func TestStreamLifecycle(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	info := createStream(t, b, StreamConfig{Name: "orders", Partitions: 4, RetentionAge: time.Hour, Compacted: true})
	if len(info.Partitions) != 4 || info.Config.DedupWindow != DefaultDedupWindow {
		t.Fatalf("created: %+v", info)
	}
	createStream(t, b, StreamConfig{Name: "audit"})
	if _, err := b.CreateStream(ctx, StreamConfig{Name: "orders"}); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	for _, bad := range []StreamConfig{
		{Name: ""}, {Name: "has space"}, {Name: ".."}, {Name: string(make([]byte, 250))},
		{Name: "ok", Partitions: -1}, {Name: "ok", Partitions: MaxPartitions + 1}, {Name: "ok", RetentionAge: -time.Second},
		{Name: "ok", SegmentBytes: 10},
	} {
		if _, err := b.CreateStream(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("create %+v: got %v, want ErrInvalidArgument", bad, err)
		}
	}
	publish(t, b, "orders", Record{Key: []byte("a"), Value: []byte("1")})
	if _, err := b.AddPartitions(ctx, "orders", 6); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPartitions(ctx, "orders", 6); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("shrinking or equal partition count: %v", err)
	}
	streams := b.ListStreams()
	if len(streams) != 2 || streams[0].Config.Name != "audit" || streams[1].Config.Name != "orders" {
		t.Fatalf("list: %+v", streams)
	}
	auditID, err := b.StreamID("audit")
	if err != nil || auditID == ([16]byte{}) || auditID == info.ID {
		t.Fatalf("StreamID(audit) = %x, %v; orders has %x", auditID, err, info.ID)
	}
	if id, err := b.StreamID("orders"); err != nil || id != info.ID {
		t.Fatalf("StreamID(orders) = %x, %v, want %x as described", id, err, info.ID)
	}
	if err := b.DeleteStream(ctx, "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeStream("audit"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("describe deleted: %v", err)
	}
	if _, err := b.StreamID("audit"); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("StreamID of a deleted stream: %v", err)
	}
	b.Close()

	b = openBroker(t, dir)
	defer b.Close()
	got, err := b.DescribeStream("orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Partitions) != 6 || got.ID != info.ID || !got.Config.Compacted || got.Config.RetentionAge != time.Hour {
		t.Fatalf("after restart: %+v", got)
	}
	var total int64
	for _, p := range got.Partitions {
		total += p.EndOffset
	}
	if total != 1 {
		t.Fatalf("records after restart: %d", total)
	}
	if len(b.ListStreams()) != 1 {
		t.Fatal("deleted stream came back after restart")
	}
	// A deleted name can be created again, empty.
	createStream(t, b, StreamConfig{Name: "audit"})
	if d, _ := b.DescribeStream("audit"); d.Partitions[0].EndOffset != 0 {
		t.Fatal("re-created stream is not empty")
	}
	if id, err := b.StreamID("audit"); err != nil || id == auditID {
		t.Fatalf("StreamID of the re-created stream = %x, %v: the deleted one's was %x", id, err, auditID)
	}
}

func TestPublishPartitioningAndFetch(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "events", Partitions: 8})
	var recs []Record
	for i := range 200 {
		recs = append(recs, Record{
			Key:     []byte(fmt.Sprintf("user-%d", i%17)),
			Value:   []byte(fmt.Sprintf("event-%d", i)),
			Headers: []Header{{Key: "type", Value: []byte("click")}, {Key: "i", Value: []byte(fmt.Sprint(i))}},
		})
	}
	res := publish(t, b, "events", recs...)
	next := map[int32]int64{}
	for i, r := range res {
		if want := KeyPartition(recs[i].Key, 8); r.Partition != want {
			t.Fatalf("record %d in partition %d, key hashes to %d", i, r.Partition, want)
		}
		if r.Offset != next[r.Partition] {
			t.Fatalf("record %d at offset %d, want %d", i, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
	}
	seen := 0
	for p := range int32(8) {
		got := fetchAll(t, b, "events", p, 0)
		for j, r := range got {
			if r.Offset != int64(j) || r.Partition != p || KeyPartition(r.Key, 8) != p {
				t.Fatalf("partition %d record %d: %+v", p, j, r)
			}
			if len(r.Headers) != 2 || r.Headers[0].Key != "type" || string(r.Headers[0].Value) != "click" {
				t.Fatalf("headers lost: %+v", r.Headers)
			}
		}
		seen += len(got)
	}
	if seen != 200 {
		t.Fatalf("fetched %d records", seen)
	}
	// Without keys: round robin spreads over every partition.
	var noKey []Record
	for range 16 {
		noKey = append(noKey, Record{Value: []byte("x")})
	}
	counts := map[int32]int{}
	for _, r := range publish(t, b, "events", noKey...) {
		counts[r.Partition]++
	}
	if len(counts) != 8 {
		t.Fatalf("round robin used %d partitions", len(counts))
	}
	// Explicit partition.
	pr, err := b.PublishPartition(context.Background(), "events", 3, []Record{{Key: []byte("user-1"), Value: []byte("pinned")}})
	if err != nil || pr[0].Partition != 3 {
		t.Fatalf("explicit partition: %+v, %v", pr, err)
	}
}

func TestPublishErrors(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"unknown stream", ErrStreamNotFound, func() error { _, err := b.Publish(ctx, "nope", []Record{{Value: []byte("x")}}); return err }},
		{"empty", ErrInvalidArgument, func() error { _, err := b.Publish(ctx, "s", nil); return err }},
		{"too large", ErrRecordTooLarge, func() error {
			_, err := b.Publish(ctx, "s", []Record{{Value: make([]byte, DefaultMaxRecordBytes+1)}})
			return err
		}},
		{"bad partition", ErrPartitionNotFound, func() error {
			_, err := b.PublishPartition(ctx, "s", 2, []Record{{Value: []byte("x")}})
			return err
		}},
		{"fetch unknown partition", ErrPartitionNotFound, func() error { _, err := b.Fetch(ctx, "s", 5, 0, 0, 0); return err }},
		{"fetch past end", ErrOffsetOutOfRange, func() error { _, err := b.Fetch(ctx, "s", 0, 10, 0, 0); return err }},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, c.err) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
	if d, _ := b.DescribeStream("s"); d.Partitions[0].EndOffset+d.Partitions[1].EndOffset != 0 {
		t.Fatal("rejected publishes stored something")
	}
}

func TestDeduplication(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	b, err := Open(Config{DataDir: dir, JanitorInterval: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, b, StreamConfig{Name: "cmds", Partitions: 4, DedupWindow: time.Minute})
	withID := func(id, v string) Record {
		return Record{Value: []byte(v), Headers: []Header{{Key: HeaderMessageID, Value: []byte(id)}}}
	}
	first := publish(t, b, "cmds", withID("m1", "a"), withID("m2", "b"))
	again := publish(t, b, "cmds", withID("m1", "a-retry"), withID("m3", "c"), withID("m3", "c-twice"))
	if !again[0].Duplicate || again[0] != (PublishResult{Partition: first[0].Partition, Offset: first[0].Offset, Duplicate: true}) {
		t.Fatalf("retry of m1: %+v, original %+v", again[0], first[0])
	}
	if again[1].Duplicate || !again[2].Duplicate || again[2].Offset != again[1].Offset || again[2].Partition != again[1].Partition {
		t.Fatalf("same id twice in one call: %+v", again)
	}
	// Concurrent publishers of one id: exactly one stores it.
	var wg sync.WaitGroup
	results := make([]PublishResult, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = publish(t, b, "cmds", withID("race", fmt.Sprint(i)))[0]
		}()
	}
	wg.Wait()
	stored := 0
	for _, r := range results {
		if !r.Duplicate {
			stored++
		}
		if r.Offset != results[0].Offset || r.Partition != results[0].Partition {
			t.Fatalf("concurrent duplicates disagree on the original: %+v", results)
		}
	}
	if stored != 1 {
		t.Fatalf("%d of 20 concurrent publishes of one id stored it", stored)
	}
	count := func(b *Broker) int {
		n := 0
		for p := range int32(4) {
			n += len(fetchAll(t, b, "cmds", p, 0))
		}
		return n
	}
	if n := count(b); n != 4 {
		t.Fatalf("stored %d records, want 4 (m1, m2, m3, race)", n)
	}
	b.Close()

	// After a restart the window is rebuilt from the log.
	b, err = Open(Config{DataDir: dir, JanitorInterval: -1, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if r := publish(t, b, "cmds", withID("m2", "b-after-restart"))[0]; !r.Duplicate || r.Offset != first[1].Offset {
		t.Fatalf("after restart m2: %+v", r)
	}
	// Past the window the id is new again.
	now = now.Add(2 * time.Minute)
	if r := publish(t, b, "cmds", withID("m1", "a-later"))[0]; r.Duplicate {
		t.Fatal("id deduplicated after its window passed")
	}
	if n := count(b); n != 5 {
		t.Fatalf("stored %d records, want 5", n)
	}
	b.Close()
}

func TestFetchLongPoll(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s"})
	start := time.Now()
	res, err := b.Fetch(context.Background(), "s", 0, 0, 0, 50*time.Millisecond)
	if err != nil || len(res.Records) != 0 || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("empty long poll: %+v, %v after %v", res, err, time.Since(start))
	}
	done := make(chan FetchResult, 1)
	go func() {
		res, err := b.Fetch(context.Background(), "s", 0, 0, 0, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	time.Sleep(20 * time.Millisecond)
	publish(t, b, "s", Record{Value: []byte("wake")})
	select {
	case res := <-done:
		if len(res.Records) != 1 || string(res.Records[0].Value) != "wake" {
			t.Fatalf("long poll returned %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll did not return when a record arrived")
	}
}

func TestTailAndReplayFromTime(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	b, err := Open(Config{DataDir: t.TempDir(), JanitorInterval: -1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 3})
	for i := range 30 {
		now = now.Add(time.Second)
		publish(t, b, "s", Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	tail, err := b.Tail("s")
	if err != nil {
		t.Fatal(err)
	}
	if recs, _ := tail.Read(context.Background(), 0, 0); len(recs) != 0 {
		t.Fatalf("tail saw %d old records", len(recs))
	}
	publish(t, b, "s", Record{Key: []byte("new"), Value: []byte("new")})
	recs, err := tail.Read(context.Background(), 0, time.Second)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "new" {
		t.Fatalf("tail after publish: %+v, %v", recs, err)
	}
	// Replay from the time of record 20: each partition starts at its first
	// record at or after it.
	from := time.UnixMilli(1_800_000_000_000).Add(21 * time.Second)
	positions := map[int32]int64{}
	for p := range int32(3) {
		off, err := b.ResolveStart("s", p, StartPosition{Kind: StartTime, Time: from})
		if err != nil {
			t.Fatal(err)
		}
		positions[p] = off
	}
	r, err := b.NewReader("s", positions)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		recs, err := r.Read(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			if rec.Timestamp.Before(from) {
				t.Fatalf("replay returned a record from %v, before %v", rec.Timestamp, from)
			}
			got = append(got, string(rec.Value))
		}
	}
	if len(got) != 11 { // records 20..29 and "new"
		t.Fatalf("replay from time returned %d records: %v", len(got), got)
	}
}

func TestGroupHandoverAndCommits(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 4})
	for i := range 40 {
		publish(t, b, "s", Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")})
	}
	a, err := b.JoinGroup(ctx, JoinOptions{Group: "g", Streams: []string{"s"}, ClientID: "a", Start: StartPosition{Kind: StartEarliest}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Assigned) != 4 {
		t.Fatalf("single member got %d partitions", len(a.Assigned))
	}
	// A commits partition 0 at 3.
	if err := b.CommitOffsets(ctx, "g", a.MemberID, a.Generation, []OffsetCommit{{Stream: "s", Partition: 0, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	c, err := b.JoinGroup(ctx, JoinOptions{Group: "g", Streams: []string{"s"}, ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Assigned) != 0 || len(c.Pending) != 2 {
		t.Fatalf("new member should wait for revocation: %+v", c)
	}
	a, err = b.Heartbeat(ctx, "g", a.MemberID, 0)
	if err != nil || len(a.Revoke) != 2 {
		t.Fatalf("old member's view: %+v, %v", a, err)
	}
	// The revoking member may still commit what it processed.
	rev := a.Revoke[0]
	if err := b.CommitOffsets(ctx, "g", a.MemberID, a.Generation, []OffsetCommit{{Stream: "s", Partition: rev.Partition, Offset: 2}}); err != nil {
		t.Fatalf("commit of a revoking partition: %v", err)
	}
	if err := b.CommitOffsets(ctx, "g", c.MemberID, c.Generation, []OffsetCommit{{Stream: "s", Partition: rev.Partition, Offset: 9}}); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("commit by a member that does not own the partition: %v", err)
	}
	if err := b.CommitOffsets(ctx, "g", a.MemberID, a.Generation-1, []OffsetCommit{{Stream: "s", Partition: a.Assigned[0].Partition, Offset: 1}}); !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("commit with an old generation: %v", err)
	}
	if _, err := b.Heartbeat(ctx, "g", a.MemberID, a.Generation); err != nil {
		t.Fatal(err)
	}
	c, err = b.Heartbeat(ctx, "g", c.MemberID, 0)
	if err != nil || len(c.Assigned) != 2 {
		t.Fatalf("after the ack: %+v, %v", c, err)
	}
	for _, as := range c.Assigned {
		want := int64(0) // no commit and start latest... except the revoked one committed at 2
		if as.Partition == rev.Partition {
			want = 2
		} else {
			d, _ := b.DescribeStream("s")
			want = d.Partitions[as.Partition].EndOffset // latest: c's start position
		}
		if as.Offset != want {
			t.Fatalf("partition %d handed over at %d, want %d", as.Partition, as.Offset, want)
		}
	}
	// Resetting needs the group to be idle.
	if _, err := b.ResetOffsets(ctx, "g", "s", StartPosition{Kind: StartEarliest}); !errors.Is(err, ErrGroupBusy) {
		t.Fatalf("reset of a busy group: %v", err)
	}
	if err := b.LeaveGroup(ctx, "g", a.MemberID); err != nil {
		t.Fatal(err)
	}
	if err := b.LeaveGroup(ctx, "g", c.MemberID); err != nil {
		t.Fatal(err)
	}
	info, err := b.DescribeGroup("g")
	if err != nil || len(info.Members) != 0 || len(info.Offsets) != 2 {
		t.Fatalf("idle group: %+v, %v", info, err)
	}
	for _, o := range info.Offsets {
		if o.Lag != o.EndOffset-o.Offset {
			t.Fatalf("lag: %+v", o)
		}
	}
	b.Close()

	// Offsets survive a restart; a reset moves them.
	b = openBroker(t, dir)
	defer b.Close()
	info, err = b.DescribeGroup("g")
	if err != nil || len(info.Offsets) != 2 || info.Offsets[0].Offset != 3 {
		t.Fatalf("after restart: %+v, %v", info, err)
	}
	offs, err := b.ResetOffsets(ctx, "g", "s", StartPosition{Kind: StartEarliest})
	if err != nil || len(offs) != 4 {
		t.Fatalf("reset: %+v, %v", offs, err)
	}
	for _, o := range offs {
		if o.Offset != 0 {
			t.Fatalf("reset to earliest left %+v", o)
		}
	}
	groups, _ := b.ListGroups()
	if len(groups) != 1 || groups[0] != "g" {
		t.Fatalf("groups: %v", groups)
	}
	// Deleting the stream deletes its offsets.
	if err := b.DeleteStream(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeGroup("g"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("group after its stream was deleted: %v", err)
	}
}

func TestGroupSessionExpiry(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})
	a, err := b.JoinGroup(ctx, JoinOptions{Group: "g", Streams: []string{"s"}, SessionTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.JoinGroup(ctx, JoinOptions{Group: "g", Streams: []string{"s"}, SessionTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// a never heartbeats: after its timeout c owns everything without any ack.
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, err = b.Heartbeat(ctx, "g", c.MemberID, c.Generation)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Assigned) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired member's partitions never moved: %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := b.Heartbeat(ctx, "g", a.MemberID, a.Generation); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("heartbeat of an expired member: %v", err)
	}
	if err := b.CommitOffsets(ctx, "g", a.MemberID, a.Generation, []OffsetCommit{{Stream: "s", Partition: 0, Offset: 0}}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("commit by an expired member: %v", err)
	}
}

func TestRecordsSurviveRestartByteIdentical(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	createStream(t, b, StreamConfig{Name: "s", Partitions: 2})
	want := Record{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 1000), Headers: []Header{{Key: "h", Value: nil}, {Key: "h", Value: []byte{0, 1}}}, Timestamp: time.UnixMilli(1234)}
	res := publish(t, b, "s", want)
	b.Close()
	b = openBroker(t, dir)
	defer b.Close()
	got := fetchAll(t, b, "s", res[0].Partition, 0)
	if len(got) != 1 || !bytes.Equal(got[0].Key, want.Key) || !bytes.Equal(got[0].Value, want.Value) || !got[0].Timestamp.Equal(want.Timestamp) ||
		len(got[0].Headers) != 2 || got[0].Headers[0].Value != nil || !bytes.Equal(got[0].Headers[1].Value, []byte{0, 1}) {
		t.Fatalf("after restart: %+v", got)
	}
}

func TestLargePublishSplitsIntoBatches(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	ctx := context.Background()
	createStream(t, b, StreamConfig{Name: "s", SegmentBytes: 1 << 20})
	big := bytes.Repeat([]byte("x"), 600<<10)
	res, err := b.Publish(ctx, "s", []Record{{Value: big}, {Value: big}, {Value: []byte("small")}})
	if err != nil {
		t.Fatalf("publish of 1.2 MB into 1 MiB segments: %v", err)
	}
	if res[0].Offset != 0 || res[1].Offset != 1 || res[2].Offset != 2 {
		t.Fatalf("results: %+v", res)
	}
	got := fetchAll(t, b, "s", 0, 0)
	if len(got) != 3 || !bytes.Equal(got[1].Value, big) || string(got[2].Value) != "small" {
		t.Fatalf("read back %d records", len(got))
	}
}

func TestFetchOfDeletedStream(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	createStream(t, b, StreamConfig{Name: "s"})
	errc := make(chan error, 1)
	go func() {
		_, err := b.Fetch(context.Background(), "s", 0, 0, 0, 10*time.Second)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := b.DeleteStream(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStreamNotFound) {
			t.Fatalf("long poll on a deleted stream: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("long poll not woken by the delete")
	}
}

func TestStreamNameByID(t *testing.T) {
	dir := t.TempDir()
	b := openBroker(t, dir)
	a := createStream(t, b, StreamConfig{Name: "a", Partitions: 1})
	c := createStream(t, b, StreamConfig{Name: "c", Partitions: 1})
	for _, s := range []StreamInfo{a, c} {
		if name, err := b.StreamNameByID(s.ID); err != nil || name != s.Config.Name {
			t.Fatalf("StreamNameByID(%x) = %q, %v; want %q", s.ID, name, err, s.Config.Name)
		}
	}
	if err := b.DeleteStream(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StreamNameByID(a.ID); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("deleted stream's ID: err = %v, want ErrStreamNotFound", err)
	}
	b.Close()
	b = openBroker(t, dir) // the index is rebuilt from the catalog
	defer b.Close()
	if name, err := b.StreamNameByID(c.ID); err != nil || name != "c" {
		t.Fatalf("after reopening: %q, %v", name, err)
	}
	if _, err := b.StreamNameByID(a.ID); !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("after reopening, deleted stream's ID: err = %v", err)
	}
}
