package kafka_test

import (
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawFetch sends a Fetch v11 (not flexible) on c and decodes the answer.
func rawFetch(t *testing.T, c net.Conn, corr int32, sessionID, epoch int32, parts map[int32]int64, forget []int32) *kmsg.FetchResponse {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 1, 1<<20
	req.SessionID, req.SessionEpoch = sessionID, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "fs"
		for p, off := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(forget) > 0 {
		req.ForgottenTopics = append(req.ForgottenTopics, kmsg.FetchRequestForgottenTopic{Topic: "fs", Partitions: forget})
	}
	writeFrame(t, c, requestFrame(int16(kmsg.Fetch), 11, corr, "raw", req.AppendTo(nil)))
	got, body := readFrame(t, c)
	if got != corr {
		t.Fatalf("correlation %d, want %d", got, corr)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

// answered lists the partitions of a fetch response and whether each
// carried records.
func answered(resp *kmsg.FetchResponse) map[int32]bool {
	out := make(map[int32]bool)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			out[p.Partition] = len(p.RecordBatches) > 0
		}
	}
	return out
}

// TestFetchSessions drives KIP-227 on one connection: a session is
// created by a full fetch, incremental fetches answer only the partitions
// with news, offsets move by naming the partition, forgotten partitions
// drop out, bad epochs and unknown sessions are refused, and a closed
// session is gone.
func TestFetchSessions(t *testing.T) {
	w := startWeir(t)
	ctx := testContext(t)
	if _, err := w.admin(t).CreateTopic(ctx, 3, 1, nil, "fs"); err != nil {
		t.Fatal(err)
	}
	prod := w.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produceTo := func(p int32) {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "fs", Partition: p, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produceTo(0)
	c := dial(t, w.addr)

	full := rawFetch(t, c, 1, 0, 0, map[int32]int64{0: 0, 1: 0, 2: 0}, nil)
	sid := full.SessionID
	if full.ErrorCode != 0 || sid == 0 || len(answered(full)) != 3 || !answered(full)[0] {
		t.Fatalf("session-creating fetch: code %d, session %d, partitions %v", full.ErrorCode, sid, answered(full))
	}
	// Partition 0 moves past its record: nothing is new anywhere.
	inc := rawFetch(t, c, 2, sid, 1, map[int32]int64{0: 1}, nil)
	if inc.ErrorCode != 0 || inc.SessionID != sid || len(answered(inc)) != 0 {
		t.Fatalf("incremental fetch with nothing new: code %d, partitions %v", inc.ErrorCode, answered(inc))
	}
	produceTo(2)
	inc = rawFetch(t, c, 3, sid, 2, nil, nil)
	if a := answered(inc); len(a) != 1 || !a[2] {
		t.Fatalf("after a record on partition 2: %v, want partition 2 alone, with its record", a)
	}
	// Forget partition 1; the others go on.
	inc = rawFetch(t, c, 4, sid, 3, map[int32]int64{2: 1}, []int32{1})
	if a := answered(inc); len(a) != 0 {
		t.Errorf("after moving partition 2's offset: %v", a)
	}
	produceTo(1)
	inc = rawFetch(t, c, 5, sid, 4, nil, nil)
	if a := answered(inc); len(a) != 0 {
		t.Errorf("a forgotten partition is answered: %v", a)
	}
	if r := rawFetch(t, c, 6, sid, 9, nil, nil); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Errorf("wrong epoch: code %d", r.ErrorCode)
	}
	if r := rawFetch(t, c, 7, sid+1, 1, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Errorf("unknown session: code %d", r.ErrorCode)
	}
	// Close it: a full fetch without a session, then the id is unknown.
	if r := rawFetch(t, c, 8, sid, -1, map[int32]int64{1: 0}, nil); r.ErrorCode != 0 || r.SessionID != 0 || !answered(r)[1] {
		t.Errorf("closing fetch: code %d, session %d, %v", r.ErrorCode, r.SessionID, answered(r))
	}
	if r := rawFetch(t, c, 9, sid, 5, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Errorf("closed session: code %d", r.ErrorCode)
	}
	// A session whose partitions are all forgotten waits MaxWaitMillis and
	// answers nothing.
	empty := rawFetch(t, c, 11, 0, 0, map[int32]int64{0: 0}, nil)
	if r := rawFetch(t, c, 12, empty.SessionID, 1, nil, []int32{0}); r.ErrorCode != 0 || len(answered(r)) != 0 {
		t.Errorf("empty session: code %d, %v", r.ErrorCode, answered(r))
	}
	// Another connection does not know this connection's sessions.
	full = rawFetch(t, c, 10, 0, 0, map[int32]int64{0: 0}, nil)
	if r := rawFetch(t, dial(t, w.addr), 1, full.SessionID, 1, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Errorf("a session used from another connection: code %d", r.ErrorCode)
	}
}
