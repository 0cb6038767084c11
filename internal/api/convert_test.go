package api

import (
	"fmt"
	"testing"
	"time"

	weirpb "github.com/weirmq/weir/client/weirpb/v1"
	"github.com/weirmq/weir/internal/broker"
)

// TestRecordsToProto: records converted in one block keep each its own
// fields, timestamp and headers, and a record's header list cannot grow
// into the next one's.
func TestRecordsToProto(t *testing.T) {
	base := time.Date(2026, 11, 23, 23, 45, 1, 123456789, time.UTC)
	headerCounts := []int{0, 2, 0, 1, 3}
	var recs []broker.Record
	for i, n := range headerCounts {
		r := broker.Record{Partition: int32(i % 2), Offset: int64(100 + i), Key: []byte(fmt.Sprint("k", i)),
			Value: []byte(fmt.Sprint("v", i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
		for j := range n {
			r.Headers = append(r.Headers, broker.Header{Key: fmt.Sprint("h", i, j), Value: []byte(fmt.Sprint(i, j))})
		}
		recs = append(recs, r)
	}
	out := recordsToProto("orders", recs)
	if len(out) != len(recs) {
		t.Fatalf("%d records out of %d", len(out), len(recs))
	}
	check := func(out []*weirpb.Record) {
		t.Helper()
		for i, m := range out {
			r := recs[i]
			if m.GetStream() != "orders" || m.GetPartition() != r.Partition || m.GetOffset() != r.Offset ||
				string(m.GetKey()) != string(r.Key) || string(m.GetValue()) != string(r.Value) || !m.GetTimestamp().AsTime().Equal(r.Timestamp) {
				t.Errorf("record %d = %v, want %+v", i, m, r)
			}
			if len(m.GetHeaders()) != len(r.Headers) {
				t.Errorf("record %d has %d headers, want %d", i, len(m.GetHeaders()), len(r.Headers))
				continue
			}
			for j, h := range m.GetHeaders() {
				if h.GetKey() != r.Headers[j].Key || string(h.GetValue()) != string(r.Headers[j].Value) {
					t.Errorf("record %d header %d = %s=%s, want %s=%s", i, j, h.GetKey(), h.GetValue(), r.Headers[j].Key, r.Headers[j].Value)
				}
			}
		}
	}
	check(out)
	out[1].Headers = append(out[1].Headers, &weirpb.Header{Key: "added"})
	out[1].Headers = out[1].Headers[:2]
	check(out)

	ds := []broker.Delivery{{Record: recs[3], DeliveryCount: 2}, {Record: recs[4], DeliveryCount: 1}}
	ev := deliveriesToProto("orders", ds)
	if len(ev.GetRecords()) != 2 || ev.GetRecords()[0].GetOffset() != recs[3].Offset || len(ev.GetRecords()[1].GetHeaders()) != 3 ||
		fmt.Sprint(ev.GetDeliveryCounts()) != "[2 1]" {
		t.Errorf("deliveries = %v", ev)
	}
}
