package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchResponse is a fetch response of the given version over topics ×
// partitions, each partition carrying recordBytes of records and, for the
// read-committed case, aborted transactions.
func fetchResponse(version int16, topics, partitions, recordBytes, aborted int) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = version
	for t := range topics {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = fmt.Sprintf("a-rather-long-topic-name-%d", t)
		rt.TopicID = [16]byte{byte(t + 1)}
		for p := range partitions {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition = int32(p)
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = 1<<40, 1<<40, 0
			rp.RecordBatches = make([]byte, recordBytes)
			for range aborted {
				rp.AbortedTransactions = append(rp.AbortedTransactions,
					kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: 1 << 50, FirstOffset: 1 << 40})
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// The size hint is never below what a fetch response encodes to, in any
// version Weir answers, so a response is encoded without growing its buffer.
func TestResponseSizeHintCoversFetchResponses(t *testing.T) {
	for version := int16(4); version <= 16; version++ {
		for _, c := range []struct{ topics, partitions, recordBytes, aborted int }{
			{0, 0, 0, 0},
			{1, 1, 0, 0},
			{1, 1000, 0, 0},
			{3, 200, 100, 0},
			{2, 50, 1 << 14, 3},
			{1, 16, 300 << 10, 0},
		} {
			resp := fetchResponse(version, c.topics, c.partitions, c.recordBytes, c.aborted)
			req := &request{key: int16(kmsg.Fetch), version: version, correlation: 7, flexible: resp.IsFlexible()}
			hint := responseSizeHint(resp)
			out := appendResponse(make([]byte, 0, hint), req, resp)
			if len(out) > hint {
				t.Errorf("v%d %+v: encoded %d bytes, hint %d", version, c, len(out), hint)
			}
			if cap(out) != hint {
				t.Errorf("v%d %+v: the buffer grew from %d to %d", version, c, hint, cap(out))
			}
		}
	}
	if n := responseSizeHint(kmsg.NewPtrProduceResponse()); n != 0 {
		t.Errorf("hint for a produce response: %d, want 0", n)
	}
}

// A 4 MiB fetch response over 1,000 partitions.
//
//	go test -run XXX -bench EncodeFetchResponse ./internal/protocol/kafka/
func BenchmarkEncodeFetchResponse(b *testing.B) {
	resp := fetchResponse(11, 1, 1000, 4<<10, 0)
	req := &request{key: int16(kmsg.Fetch), version: 11, correlation: 7}
	for _, hinted := range []bool{false, true} {
		b.Run(fmt.Sprintf("hinted=%v", hinted), func(b *testing.B) {
			pooled := make([]byte, 0, 1<<20) // the pool keeps buffers up to 1 MiB
			b.ReportAllocs()
			for b.Loop() {
				dst := pooled[:0]
				if need := responseSizeHint(resp); hinted && need > cap(dst) {
					dst = make([]byte, 0, need)
				}
				out := appendResponse(dst, req, resp)
				b.SetBytes(int64(len(out)))
			}
		})
	}
}
