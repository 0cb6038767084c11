package kafka_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/record"
)

// TestFetchManyPartitionsIntoOneBuffer: a fetch reads all its partitions
// into one buffer, which moves as it grows; each partition's records must
// still be its own, whole and in order, in the first fetch and in the next
// ones, which reuse the buffer of the one before.
func TestFetchManyPartitionsIntoOneBuffer(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	const partitions = 64
	if _, err := w.admin(t).CreateTopic(ctx, partitions, 1, nil, "many"); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	value := func(p, i int) []byte {
		// Partitions of different sizes, so that the buffer grows by
		// different steps along the fetch.
		return bytes.Repeat([]byte(fmt.Sprintf("p%d-r%d.", p, i)), 1+(p*37)%200)
	}
	perPartition := func(p int) int { return 1 + p%5 }
	var recs []*kgo.Record
	for p := range partitions {
		for i := range perPartition(p) {
			recs = append(recs, &kgo.Record{Topic: "many", Partition: int32(p), Value: value(p, i)})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	info, err := w.srv.Broker().DescribeStream("many")
	if err != nil {
		t.Fatal(err)
	}
	cl := w.client(t)
	for round := range 3 {
		fetch := kmsg.NewPtrFetchRequest()
		fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 10, 1, 50<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic, ft.TopicID = "many", info.ID
		for p := range partitions {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes = int32(p), 1<<20
			fp.FetchOffset = int64(round % 2) // from the start, then from 1
			ft.Partitions = append(ft.Partitions, fp)
		}
		fetch.Topics = append(fetch.Topics, ft)
		resp, err := fetch.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				p := int(rp.Partition)
				if rp.ErrorCode != 0 {
					t.Fatalf("round %d partition %d: error %d", round, p, rp.ErrorCode)
				}
				var it record.Iterator
				var r record.Record
				i := 0
				for data := rp.RecordBatches; len(data) > 0; {
					size, err := record.BatchSize(data)
					if err != nil || size > len(data) {
						t.Fatalf("round %d partition %d: a batch of %d bytes in %d: %v", round, p, size, len(data), err)
					}
					it.Reset(data[:size])
					for it.Next(&r) {
						if r.Offset < fetch.Topics[0].Partitions[p].FetchOffset {
							continue // a batch may start before the offset asked
						}
						if want := value(p, int(r.Offset)); !bytes.Equal(r.Value, want) {
							t.Fatalf("round %d partition %d offset %d: %.40q, want %.40q", round, p, r.Offset, r.Value, want)
						}
						i++
					}
					if err := it.Err(); err != nil {
						t.Fatalf("round %d partition %d: %v", round, p, err)
					}
					data = data[size:]
				}
				if want := perPartition(p) - round%2; i != want {
					t.Fatalf("round %d partition %d: %d records, want %d", round, p, i, want)
				}
				seen++
			}
		}
		if seen != partitions {
			t.Fatalf("round %d: %d partitions in the response, want %d", round, seen, partitions)
		}
	}
}
