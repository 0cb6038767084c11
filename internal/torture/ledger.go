package torture

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
)

// Client is a kind of client the campaign drives.
type Client string

// The clients. Each writes records whose value starts with its name, the
// cycle and a sequence number unique within the cycle, so a record read
// back names the send it came from.
const (
	ClientKafka Client = "kafka" // franz-go, idempotent, acks=all
	ClientAMQP  Client = "amqp"  // amqp091-go, publisher confirms, into the queue
	ClientSDK   Client = "sdk"   // the Weir Go SDK's Producer, into a stream
)

// Clients lists the producing clients in report order.
var Clients = []Client{ClientKafka, ClientAMQP, ClientSDK}

// Violation kinds.
const (
	// ViolationLost: an acknowledged (acked, confirmed) record is missing.
	ViolationLost = "acknowledged-record-lost"
	// ViolationDuplicate: a record is stored more than once.
	ViolationDuplicate = "duplicate"
	// ViolationOrder: a producer's records are out of order in a partition.
	ViolationOrder = "order"
	// ViolationPhantom: a stored or delivered record no producer sent.
	ViolationPhantom = "phantom-record"
	// ViolationRedelivered: a queue record whose ack was confirmed stored
	// is delivered again.
	ViolationRedelivered = "redelivered-after-confirmed-ack"
	// ViolationQueueLost: a confirmed queue record, whose ack was never
	// sent, is not delivered by the final drain.
	ViolationQueueLost = "unacked-queue-record-lost"
)

// recordID names one send.
type recordID struct {
	client Client
	cycle  int
	seq    int64
}

func (id recordID) String() string { return fmt.Sprintf("%s/%d/%d", id.client, id.cycle, id.seq) }

// less orders the sends of one client: by cycle, then by sequence.
func (id recordID) less(o recordID) bool {
	if id.cycle != o.cycle {
		return id.cycle < o.cycle
	}
	return id.seq < o.seq
}

// encodeValue is the value of a record: "client|cycle|seq|" and padding.
func encodeValue(id recordID, pad int) []byte {
	b := fmt.Appendf(nil, "%s|%d|%d|", id.client, id.cycle, id.seq)
	return append(b, bytes.Repeat([]byte{'.'}, pad)...)
}

// parseValue reads back what encodeValue wrote.
func parseValue(v []byte) (recordID, bool) {
	parts := bytes.SplitN(v, []byte{'|'}, 4)
	if len(parts) != 4 {
		return recordID{}, false
	}
	cycle, err1 := strconv.Atoi(string(parts[1]))
	seq, err2 := strconv.ParseInt(string(parts[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return recordID{}, false
	}
	return recordID{client: Client(parts[0]), cycle: cycle, seq: seq}, true
}

// maxExamples bounds the violations a report lists one by one.
const maxExamples = 50

// ledger is what the clients were told: every send, every acknowledgement,
// every queue delivery and ack outcome. It is safe for concurrent use.
type ledger struct {
	mu    sync.Mutex
	cycle int // the cycle the clients run in

	sent  map[recordID]bool // send → acknowledged
	acked map[Client]int64

	// Queue consumers.
	deliveries   int64
	redeliveries int64 // deliveries of a record delivered before
	// countedRedeliveries: deliveries with a delivery count above 1 (a
	// first delivery's count is stored only when the record comes back
	// unacknowledged while the server runs: ARCHITECTURE.md).
	countedRedeliveries int64
	delivered           map[recordID]int // deliveries of each record
	ackSent             map[recordID]bool
	ackConfirmed        map[recordID]bool
	ackFailed           int64

	violations map[string]int
	examples   []Violation
}

// Violation is one broken promise.
type Violation struct {
	Cycle  int    `json:"cycle"`
	Kind   string `json:"kind"`
	Client Client `json:"client"`
	Record string `json:"record,omitempty"`
	Detail string `json:"detail"`
}

func newLedger() *ledger {
	return &ledger{
		sent:         make(map[recordID]bool),
		acked:        make(map[Client]int64),
		delivered:    make(map[recordID]int),
		ackSent:      make(map[recordID]bool),
		ackConfirmed: make(map[recordID]bool),
		violations:   make(map[string]int),
	}
}

func (l *ledger) setCycle(c int) {
	l.mu.Lock()
	l.cycle = c
	l.mu.Unlock()
}

// send notes a record about to be sent.
func (l *ledger) send(id recordID) {
	l.mu.Lock()
	l.sent[id] = false
	l.mu.Unlock()
}

// acknowledge notes that the server acknowledged id (acks=all answer,
// publisher confirm, SDK publish result).
func (l *ledger) acknowledge(id recordID) {
	l.mu.Lock()
	if !l.sent[id] {
		l.sent[id] = true
		l.acked[id.client]++
	}
	l.mu.Unlock()
}

func (l *ledger) violate(v Violation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.violateLocked(v)
}

func (l *ledger) violateLocked(v Violation) {
	if v.Cycle == 0 {
		v.Cycle = l.cycle
	}
	l.violations[v.Kind]++
	if len(l.examples) < maxExamples {
		l.examples = append(l.examples, v)
	}
}

// deliver notes a queue delivery of the record with value v; a record
// whose ack was confirmed before is a violation.
func (l *ledger) deliver(v []byte, count int32) (recordID, bool) {
	id, ok := parseValue(v)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries++
	if count > 1 {
		l.countedRedeliveries++
	}
	if _, known := l.sent[id]; !ok || !known || id.client != ClientAMQP {
		l.violateLocked(Violation{Kind: ViolationPhantom, Client: ClientAMQP, Detail: fmt.Sprintf("queue delivered %.60q", v)})
		return id, false
	}
	if l.delivered[id] > 0 {
		l.redeliveries++
	}
	l.delivered[id]++
	if l.ackConfirmed[id] {
		l.violateLocked(Violation{Kind: ViolationRedelivered, Client: ClientAMQP, Record: id.String(),
			Detail: fmt.Sprintf("delivered again (delivery count %d) after its ack was confirmed", count)})
	}
	return id, true
}

// ackQueued notes that a consumer's handler returned nil for id: its ack
// is on its way.
func (l *ledger) ackQueued(id recordID) {
	l.mu.Lock()
	l.ackSent[id] = true
	l.mu.Unlock()
}

// ackOutcome notes what the server answered to the ack of id.
func (l *ledger) ackOutcome(id recordID, err error) {
	l.mu.Lock()
	if err == nil {
		l.ackConfirmed[id] = true
	} else {
		l.ackFailed++
	}
	l.mu.Unlock()
}

// queueExpected returns the queue records that must still be delivered:
// confirmed by the broker, and whose ack was never sent (an ack sent but
// not confirmed may or may not be stored, so its record is in doubt).
func (l *ledger) queueExpected() map[recordID]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[recordID]bool)
	for id, acked := range l.sent {
		if id.client == ClientAMQP && acked && !l.ackSent[id] {
			out[id] = true
		}
	}
	return out
}

// drained reports whether every record of want was acked with
// confirmation.
func (l *ledger) drained(want map[recordID]bool) (missing int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range want {
		if !l.ackConfirmed[id] {
			missing++
		}
	}
	return missing
}

func (l *ledger) isConfirmedAck(id recordID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ackConfirmed[id]
}

// snapshot returns the sends of client and whether each was acknowledged.
func (l *ledger) snapshot(client Client) map[recordID]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[recordID]bool)
	for id, acked := range l.sent {
		if id.client == client {
			out[id] = acked
		}
	}
	return out
}
