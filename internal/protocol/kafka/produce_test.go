package kafka_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/record"
	"github.com/weirmq/weir/internal/server"
)

// batch encodes n records as one batch of an idempotent producer.
func batch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	opts := record.DefaultBatchOptions()
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, epoch, seq
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Offset: int64(i), Timestamp: 1000, Value: []byte{byte(seq), byte(i)}}
	}
	b, err := record.AppendBatch(nil, opts, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceRaw sends one Produce request with data for partition 0 of topic
// and returns that partition's answer.
// The topic is named both ways: by name (before v13) and by its id (v13).
func produceRaw(t *testing.T, w *weir, cl *kgo.Client, topic string, data []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	if info, err := w.srv.Broker().DescribeStream(topic); err == nil {
		rt.TopicID = info.ID
	}
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = data
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testContext(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

// TestIdempotentProducer checks producer ids, epochs and sequences: a
// retried batch gets its original offset and is stored once, a gap gets
// OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH.
func TestIdempotentProducer(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	cl := w.client(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
		t.Fatal(err)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	ir, err := init.RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %d", err, ir.ErrorCode)
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	check := func(what string, got kmsg.ProduceResponseTopicPartition, code int16, offset int64) {
		t.Helper()
		if got.ErrorCode != code || (code == 0 && got.BaseOffset != offset) {
			t.Fatalf("%s: error %d offset %d, want error %d offset %d", what, got.ErrorCode, got.BaseOffset, code, offset)
		}
	}
	check("first batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 0, 3)), 0, 0)
	check("second batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 3, 2)), 0, 3)
	check("retry of the first", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 0, 3)), 0, 0)
	check("retry of the second", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 3, 2)), 0, 3)
	check("a gap", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 9, 1)), kerr.OutOfOrderSequenceNumber.Code, 0)
	check("the next batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 5, 1)), 0, 5)
	// Another producer is independent.
	other, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || other.ProducerID == pid {
		t.Fatalf("second producer id %d (first %d): %v", other.ProducerID, pid, err)
	}
	check("another producer", produceRaw(t, w, cl, "idem", batch(t, other.ProducerID, 0, 0, 1)), 0, 6)
	// A bumped epoch fences the old one.
	init.ProducerID, init.ProducerEpoch = pid, epoch
	bumped, err := init.RequestWith(ctx, cl)
	if err != nil || bumped.ProducerID != pid || bumped.ProducerEpoch != epoch+1 {
		t.Fatalf("epoch bump: %+v %v", bumped, err)
	}
	check("new epoch from 0", produceRaw(t, w, cl, "idem", batch(t, pid, epoch+1, 0, 1)), 0, 7)
	check("old epoch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 6, 1)), kerr.InvalidProducerEpoch.Code, 0)
	info, _ := w.srv.Broker().DescribeStream("idem")
	if end := info.Partitions[0].EndOffset; end != 8 {
		t.Errorf("end offset %d, want 8 (retries stored once)", end)
	}
	// Transactional ids are refused.
	tx := kmsg.NewPtrInitProducerIDRequest()
	txid := "tx"
	tx.TransactionalID = &txid
	if r, err := tx.RequestWith(ctx, cl); err == nil && r.ErrorCode == 0 {
		t.Errorf("InitProducerId with a transactional id succeeded: %+v", r)
	}
}

// TestProduceErrors checks the error codes of bad produce input.
func TestProduceErrors(t *testing.T) {
	w := startWeir(t, func(c *server.Config) { c.KafkaAutoCreateTopics = "false" })
	ctx := testContext(t)
	cl := w.client(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "p"); err != nil {
		t.Fatal(err)
	}
	good := batch(t, -1, -1, -1, 2)
	if got := produceRaw(t, w, cl, "missing", good); got.ErrorCode != kerr.UnknownTopicID.Code {
		t.Errorf("unknown topic id (v13): code %d", got.ErrorCode)
	}
	old := w.client(t, kgo.MaxVersions(kversion.V3_0_0()))
	if got := produceRaw(t, w, old, "missing", good); got.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown topic (v9): code %d", got.ErrorCode)
	}
	if got := produceRaw(t, w, old, "p", good); got.ErrorCode != 0 || got.BaseOffset != 0 {
		t.Errorf("produce by name (v9): code %d offset %d", got.ErrorCode, got.BaseOffset)
	}
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	if got := produceRaw(t, w, cl, "p", corrupt); got.ErrorCode != kerr.CorruptMessage.Code {
		t.Errorf("bad CRC: code %d", got.ErrorCode)
	}
	if got := produceRaw(t, w, cl, "p", good[:len(good)-3]); got.ErrorCode != kerr.CorruptMessage.Code {
		t.Errorf("truncated batch: code %d", got.ErrorCode)
	}
	big := make([]byte, 2<<20)
	opts := record.DefaultBatchOptions()
	huge, _ := record.AppendBatch(nil, opts, []record.Record{{Value: big}})
	if got := produceRaw(t, w, cl, "p", huge); got.ErrorCode != kerr.MessageTooLarge.Code {
		t.Errorf("oversize: code %d", got.ErrorCode)
	}
	if got := produceRaw(t, w, cl, "p", good); got.ErrorCode != 0 || got.BaseOffset != 2 {
		t.Errorf("good batch after bad ones: code %d offset %d", got.ErrorCode, got.BaseOffset)
	}
	// Fetch by an unknown topic id, and by a known one.
	info, _ := w.srv.Broker().DescribeStream("p")
	for _, tc := range []struct {
		id   [16]byte
		code int16
	}{{[16]byte{1, 2, 3}, kerr.UnknownTopicID.Code}, {info.ID, 0}} {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.MaxWaitMillis = 10
		ft := kmsg.NewFetchRequestTopic()
		ft.TopicID = tc.id
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.PartitionMaxBytes = 1 << 20
		ft.Partitions = append(ft.Partitions, fp)
		fetch.Topics = append(fetch.Topics, ft)
		fr, err := fetch.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if got := fr.Topics[0].Partitions[0]; got.ErrorCode != tc.code || (tc.code == 0 && (len(got.RecordBatches) == 0 || got.HighWatermark != 4)) {
			t.Errorf("fetch v%d by id %x: code %d, %d bytes, high watermark %d", fetch.Version, tc.id, got.ErrorCode, len(got.RecordBatches), got.HighWatermark)
		}
	}
	// Metadata does not create topics when auto-create is off.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	_ = md
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	name := "not-created"
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	req.AllowAutoTopicCreation = true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("metadata of a missing topic with auto-create off: %v %+v", err, resp)
	}
}

// TestIdempotentProducerAcrossRestart retries batches after the server
// restarted: the producer state is rebuilt from the stored batches, so a
// retry gets its original offset and is not stored twice, the next
// sequence is accepted, a gap and an old epoch are refused.
func TestIdempotentProducerAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	w := startWeirIn(t, dir)
	ctx := testContext(t)
	cl := w.client(t)
	if _, err := w.admin(t).CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
		t.Fatal(err)
	}
	ir, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || ir.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", err)
	}
	other, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || other.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v", err)
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	check := func(what string, got kmsg.ProduceResponseTopicPartition, code int16, offset int64) {
		t.Helper()
		if got.ErrorCode != code || (code == 0 && got.BaseOffset != offset) {
			t.Fatalf("%s: error %d offset %d, want error %d offset %d", what, got.ErrorCode, got.BaseOffset, code, offset)
		}
	}
	check("first batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 0, 3)), 0, 0)
	check("second batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 3, 2)), 0, 3)
	check("another producer", produceRaw(t, w, cl, "idem", batch(t, other.ProducerID, 0, 0, 4)), 0, 5)
	// Six more batches of the first producer: its first two fall out of
	// the five remembered.
	for i := range 6 {
		check("more", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, int32(5+i), 1)), 0, int64(9+i))
	}
	cl.Close()
	w.stop(t)

	w = startWeirIn(t, dir)
	cl = w.client(t)
	check("retry after the restart", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 10, 1)), 0, 14)
	check("retry of an older batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 6, 1)), 0, 10)
	check("retry of the other producer", produceRaw(t, w, cl, "idem", batch(t, other.ProducerID, 0, 0, 4)), 0, 5)
	check("a gap", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 20, 1)), kerr.OutOfOrderSequenceNumber.Code, 0)
	check("a batch no longer remembered", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 0, 3)), kerr.OutOfOrderSequenceNumber.Code, 0)
	check("an old epoch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch-1, 11, 1)), kerr.InvalidProducerEpoch.Code, 0)
	check("the next batch", produceRaw(t, w, cl, "idem", batch(t, pid, epoch, 11, 1)), 0, 15)
	check("the other's next batch", produceRaw(t, w, cl, "idem", batch(t, other.ProducerID, 0, 4, 1)), 0, 16)
	info, _ := w.srv.Broker().DescribeStream("idem")
	if end := info.Partitions[0].EndOffset; end != 17 {
		t.Errorf("end offset %d, want 17 (retries stored once)", end)
	}
}

// TestProduceIntoHeldQueueTimesOut: a produce into a queue at its max
// length with overflow block waits at most the request's timeout and then
// answers REQUEST_TIMED_OUT (retriable), storing nothing; once a consumer
// settles a record, a produce is stored again.
func TestProduceIntoHeldQueueTimesOut(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	b := w.srv.Broker()
	if _, err := b.CreateQueue(ctx, broker.QueueConfig{Name: "held", Partitions: 1,
		Subscription: broker.SubscriptionConfig{MaxLength: 1, Overflow: broker.OverflowBlock}}); err != nil {
		t.Fatal(err)
	}
	cl := w.client(t, kgo.MaxVersions(kversion.V3_0_0())) // Produce by topic name
	produce := func(timeout int32) (int16, time.Duration) {
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, timeout
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "held"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(t, -1, -1, -1, 1)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].ErrorCode, time.Since(start)
	}
	if code, _ := produce(5000); code != 0 {
		t.Fatalf("first produce: %v", kerr.ErrorForCode(code))
	}
	code, took := produce(300)
	if code != kerr.RequestTimedOut.Code {
		t.Fatalf("produce into the full queue: %v, want REQUEST_TIMED_OUT", kerr.ErrorForCode(code))
	}
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("the held produce answered after %v, want about its 300 ms timeout", took)
	}
	// A request that also carries records for a stream that takes them:
	// those are stored at once, whatever the held partition does.
	if _, err := b.CreateStream(ctx, broker.StreamConfig{Name: "free", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 300
	for _, name := range []string{"held", "free"} {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = name
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch(t, -1, -1, -1, 1)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if held, free := resp.Topics[0].Partitions[0], resp.Topics[1].Partitions[0]; held.ErrorCode != kerr.RequestTimedOut.Code || free.ErrorCode != 0 || free.BaseOffset != 0 {
		t.Fatalf("a request for the held queue and a free stream: held %v, free %v at %d; want REQUEST_TIMED_OUT and stored at 0",
			kerr.ErrorForCode(held.ErrorCode), kerr.ErrorForCode(free.ErrorCode), free.BaseOffset)
	}
	if info, err := b.DescribeStream("held"); err != nil || info.Partitions[0].EndOffset != 1 {
		t.Fatalf("after the timed-out produce: %+v, %v; want 1 record stored", info, err)
	}
	ds, err := b.Receive(ctx, "held", "held", "c", 1, time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v, %v", ds, err)
	}
	if err := b.Ack(ctx, "held", "held", "c", []broker.DeliveryRef{{Partition: 0, Offset: ds[0].Offset}}); err != nil {
		t.Fatal(err)
	}
	if code, _ := produce(5000); code != 0 {
		t.Fatalf("produce after the ack: %v", kerr.ErrorForCode(code))
	}
}
