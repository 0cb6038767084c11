package torture

import (
	"errors"
	"testing"
)

// The checks must be able to fail: each broken promise, fed to the
// checker, is reported as its kind of violation and nothing else.

func stored(ids ...recordID) []storedRecord {
	out := make([]storedRecord, len(ids))
	for i, id := range ids {
		out[i] = storedRecord{id: id, ok: true, offset: int64(i)}
	}
	return out
}

func TestCheckStreamFindsEachViolation(t *testing.T) {
	k := func(cycle int, seq int64) recordID { return recordID{client: ClientKafka, cycle: cycle, seq: seq} }
	cases := []struct {
		name  string
		parts [][]storedRecord
		want  string // the only violation kind expected; "" for none
	}{
		{"all there", [][]storedRecord{stored(k(1, 0), k(1, 2)), stored(k(1, 1), k(2, 0))}, ""},
		{"acknowledged record lost", [][]storedRecord{stored(k(1, 0)), stored(k(1, 1), k(2, 0))}, ViolationLost},
		{"stored twice", [][]storedRecord{stored(k(1, 0), k(1, 2), k(1, 2)), stored(k(1, 1), k(2, 0))}, ViolationDuplicate},
		{"in-doubt record stored twice", [][]storedRecord{stored(k(1, 0), k(1, 2), k(1, 3)), stored(k(1, 1), k(1, 3), k(2, 0))}, ViolationDuplicate},
		{"out of order", [][]storedRecord{stored(k(1, 2), k(1, 0)), stored(k(1, 1), k(2, 0))}, ViolationOrder},
		{"older cycle after newer", [][]storedRecord{stored(k(1, 0), k(1, 2)), stored(k(2, 0), k(1, 1))}, ViolationOrder},
		{"unknown record", [][]storedRecord{stored(k(1, 0), k(1, 2), k(3, 9)), stored(k(1, 1), k(2, 0))}, ViolationPhantom},
		{"unparsable record", [][]storedRecord{append(stored(k(1, 0), k(1, 2)), storedRecord{value: []byte("junk")}), stored(k(1, 1), k(2, 0))}, ViolationPhantom},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := newLedger()
			for _, id := range []recordID{k(1, 0), k(1, 1), k(1, 2), k(2, 0)} {
				l.send(id)
				l.acknowledge(id)
			}
			l.send(k(1, 3)) // in doubt: may be present or absent, once
			res := l.checkStream(1, ClientKafka, kafkaTopic, c.parts, nil)
			for kind, n := range l.violations {
				if kind != c.want && n > 0 {
					t.Errorf("unexpected %d %s violations: %+v", n, kind, l.examples)
				}
			}
			if c.want != "" && l.violations[c.want] == 0 {
				t.Errorf("no %s violation found; result %+v", c.want, res)
			}
			if c.want == "" && (res.Checked != 4 || res.Absent != 1) {
				t.Errorf("result %+v: want 4 acknowledged checked and the in-doubt one absent", res)
			}
		})
	}
}

func TestQueueChecks(t *testing.T) {
	a := func(seq int64) recordID { return recordID{client: ClientAMQP, cycle: 1, seq: seq} }
	l := newLedger()
	for seq := range int64(3) {
		l.send(a(seq))
		l.acknowledge(a(seq))
	}
	// Record 0 delivered and its ack confirmed; record 1 delivered, ack
	// failed; record 2 never delivered.
	for _, seq := range []int64{0, 1} {
		if id, ok := l.deliver(encodeValue(a(seq), 0), 1); !ok || id != a(seq) {
			t.Fatalf("deliver %d: %v %v", seq, id, ok)
		}
		l.ackQueued(a(seq))
	}
	l.ackOutcome(a(0), nil)
	l.ackOutcome(a(1), errors.New("connection lost"))
	if n := l.violationCount(); n != 0 {
		t.Fatalf("%d violations before any broken promise: %+v", n, l.examples)
	}
	want := l.queueExpected()
	if len(want) != 1 || !want[a(2)] {
		t.Fatalf("drain expects %v, want only record 2 (record 1's ack is in doubt)", want)
	}
	if l.drained(want) != 1 {
		t.Fatal("record 2 counted as drained before any delivery")
	}
	// The queue log may have dropped record 0 (acked), not the others.
	res := l.checkStream(1, ClientAMQP, queueName, [][]storedRecord{stored(a(1), a(2))}, l.isConfirmedAck)
	if res.Checked != 3 || l.violationCount() != 0 {
		t.Fatalf("queue log check: %+v, violations %+v", res, l.examples)
	}
	l.checkStream(1, ClientAMQP, queueName, [][]storedRecord{stored(a(2))}, l.isConfirmedAck)
	if l.violations[ViolationLost] != 1 {
		t.Fatalf("record 1 (ack not confirmed) missing from the queue log not reported: %+v", l.examples)
	}
	// Delivered again after its ack was confirmed: a violation; record 1
	// again: not one.
	l.deliver(encodeValue(a(1), 0), 1)
	if l.violations[ViolationRedelivered] != 0 {
		t.Fatal("redelivery of a record whose ack failed reported")
	}
	l.deliver(encodeValue(a(0), 0), 2)
	if l.violations[ViolationRedelivered] != 1 {
		t.Fatalf("redelivery after a confirmed ack not reported: %+v", l.examples)
	}
	l.deliver([]byte("nobody sent this"), 1)
	if l.violations[ViolationPhantom] != 1 {
		t.Fatalf("phantom delivery not reported: %+v", l.examples)
	}
}

func TestValueRoundTrip(t *testing.T) {
	id := recordID{client: ClientSDK, cycle: 42, seq: 123456}
	got, ok := parseValue(encodeValue(id, 64))
	if !ok || got != id {
		t.Fatalf("parseValue(encodeValue(%v)) = %v, %v", id, got, ok)
	}
	for _, bad := range []string{"", "sdk|1|2", "sdk|x|2|", "sdk|1|y|"} {
		if _, ok := parseValue([]byte(bad)); ok {
			t.Errorf("parseValue(%q) accepted", bad)
		}
	}
}
