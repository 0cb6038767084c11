package kafka

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirmq/weir/internal/record"
)

// Records leaving through Fetch and ShareFetch: counted for the server's
// records-out metrics (Observer.Delivered, once per response) and, with
// tracing on, given a receive span per partition with records
// (tracing.StartReceiveBatches), the child or link of the trace contexts
// the records carry. Counting reads batch headers only; nothing is decoded
// or allocated per record unless tracing is on.

// deliveredCount is what one response carries.
type deliveredCount struct {
	records, bytes int
}

// add counts the records of the batches data of a partition of topic at
// or past from, and starts and ends their receive span.
func (c *conn) addDelivered(ctx context.Context, d *deliveredCount, topic string, partition int32, data []byte, from int64) {
	if len(data) == 0 {
		return
	}
	d.records += countRecords(data, from)
	d.bytes += len(data)
	if tracer := c.s.cfg.Tracer; tracer.Enabled() {
		_, span := tracer.StartReceiveBatches(ctx, topic, partition, data, from)
		span.End()
	}
}

// fetchDelivered accounts for a Fetch response: resp.Topics[i].Partitions[j]
// answers req.Topics[i].Partitions[j], topic names[i] (before a fetch
// session leaves unchanged partitions out).
func (c *conn) fetchDelivered(ctx context.Context, req *kmsg.FetchRequest, names []string, resp *kmsg.FetchResponse) {
	var d deliveredCount
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			rp := &resp.Topics[i].Partitions[j]
			c.addDelivered(ctx, &d, names[i], rp.Partition, rp.RecordBatches, req.Topics[i].Partitions[j].FetchOffset)
		}
	}
	if d.records > 0 {
		c.s.cfg.Observer.Delivered(kmsg.Fetch.Int16(), d.records, d.bytes)
	}
}

// shareFetchDelivered accounts for a ShareFetch response, whose batches
// hold exactly the records acquired; names are the topics by id.
func (c *conn) shareFetchDelivered(resp *kmsg.ShareFetchResponse, names map[[16]byte]string) {
	var d deliveredCount
	for i := range resp.Topics {
		t := &resp.Topics[i]
		for j := range t.Partitions {
			c.addDelivered(c.ctx, &d, names[t.TopicID], t.Partitions[j].Partition, t.Partitions[j].Records, math.MinInt64)
		}
	}
	if d.records > 0 {
		c.s.cfg.Observer.Delivered(kmsg.ShareFetch.Int16(), d.records, d.bytes)
	}
}

// countRecords counts the records of the batches in data at or past from
// from their headers: a batch that begins before from counts the offsets
// from from to its last (exact unless compaction left gaps there).
// Transaction markers (control batches) are not records.
func countRecords(data []byte, from int64) int {
	n := 0
	for pos := 0; pos < len(data); {
		size, err := record.BatchSize(data[pos:])
		if err != nil {
			break
		}
		h, err := record.ParseHeader(data[pos:])
		pos += size
		if err != nil || h.IsControl() || h.LastOffset() < from {
			continue
		}
		count := int(h.RecordCount)
		if h.BaseOffset < from {
			count = min(count, int(h.LastOffset()-from+1))
		}
		n += max(count, 0)
	}
	return n
}
