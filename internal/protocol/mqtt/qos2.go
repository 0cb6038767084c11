package mqtt

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/weirmq/weir/internal/broker"
)

// Server-sent QoS 2 (docs/PROTOCOLS.md, "MQTT front end"). A QoS 2
// message sent to a client is an outEntry of its session from the PUBLISH
// until PUBCOMP. A persistent session's entries are records of the
// compacted stream mqtt.qos2, written before the packet they make due:
// the entry with the message before the PUBLISH, the released state
// before the PUBREL, a tombstone after PUBCOMP. The queue record is
// acknowledged at PUBREC, once the released state is durable: from then
// on the client has the message and only the packet id's PUBREL remains,
// so a reconnect resends PUBREL and never the message. A reconnecting
// session resends its unreleased entries (PUBLISH, DUP, the same packet
// id, from the entry: expiry no longer applies) and PUBRELs first; when
// the queue hands back a record an entry still holds it is kept (not sent
// again) until PUBREC, or acknowledged if the entry was released.

const qos2Stream = "mqtt.qos2"

// outRecord is an outEntry as stored.
type outRecord struct {
	Seq      uint64          `json:"-"`
	PacketID uint16          `json:"id"`
	Released bool            `json:"rel,omitempty"` // PUBREC received: PUBREL due
	Topic    string          `json:"topic,omitempty"`
	Retain   bool            `json:"retain,omitempty"`
	Payload  []byte          `json:"payload,omitempty"`
	Headers  []broker.Header `json:"headers,omitempty"`
	SubIDs   []int           `json:"subIds,omitempty"`
	// The queue record it was sent from (none for a retained message):
	// the queue's stream ID and the offset, and whether it is known to be
	// acknowledged.
	QueueID string `json:"qid,omitempty"`
	Offset  int64  `json:"off,omitempty"`
	Acked   bool   `json:"acked,omitempty"`
}

// outEntry is a QoS 2 message sent to the connection's session and not
// completed. Fields other than outRecord's are guarded by conn.mu.
type outEntry struct {
	outRecord
	acked bool // the queue record is acknowledged (or there is none)
	held  bool // the record is held by this connection's consumer
	done  bool // PUBCOMP received: forgotten once acked
}

// hasRef reports whether e's queue record is one of queueID's.
func (e *outEntry) hasRef(queueID string) bool { return e.QueueID != "" && e.QueueID == queueID }

// qos2Store keeps the QoS 2 state of persistent sessions: in memory, and
// in mqtt.qos2. The entries of messages sent (key: client id, NUL,
// sequence number in hex) and the packet ids of messages received and not
// released (key: client id, NUL, "i", packet id in hex; qos2in.go).
type qos2Store struct {
	b  *broker.Broker
	mu sync.Mutex // held across a write, so the stream and the map agree
	m  map[string]map[uint64]outRecord
	in map[string]map[uint16]bool
}

func qos2Key(clientID string, seq uint64) []byte {
	return []byte(clientID + "\x00" + strconv.FormatUint(seq, 16))
}

func openQoS2(ctx context.Context, b *broker.Broker) (*qos2Store, error) {
	qs := &qos2Store{b: b, m: map[string]map[uint64]outRecord{}, in: map[string]map[uint16]bool{}}
	err := openCompacted(ctx, b, qos2Stream, func(rec broker.Record) error {
		k := string(rec.Key)
		i := strings.LastIndexByte(k, 0)
		if i < 0 {
			return fmt.Errorf("mqtt: %s key %q", qos2Stream, k)
		}
		client := k[:i]
		if id, ok := strings.CutPrefix(k[i+1:], "i"); ok {
			return qs.loadIn(client, id, rec.Value != nil)
		}
		seq, err := strconv.ParseUint(k[i+1:], 16, 64)
		if err != nil {
			return fmt.Errorf("mqtt: %s key %q: %w", qos2Stream, k, err)
		}
		if rec.Value == nil {
			delete(qs.m[client], seq)
			return nil
		}
		var or outRecord
		if err := json.Unmarshal(rec.Value, &or); err != nil {
			return fmt.Errorf("mqtt: %s record %q: %w", qos2Stream, k, err)
		}
		or.Seq = seq
		if qs.m[client] == nil {
			qs.m[client] = map[uint64]outRecord{}
		}
		qs.m[client][seq] = or
		return nil
	})
	return qs, err
}

// put stores entries of a client durably.
func (qs *qos2Store) put(ctx context.Context, clientID string, ors ...outRecord) error {
	recs := make([]broker.Record, len(ors))
	for i, or := range ors {
		v, err := json.Marshal(or)
		if err != nil {
			return err
		}
		recs[i] = broker.Record{Key: qos2Key(clientID, or.Seq), Value: v}
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if _, err := qs.b.Publish(broker.Bookkeeping(ctx), qos2Stream, recs); err != nil {
		return err
	}
	if qs.m[clientID] == nil {
		qs.m[clientID] = map[uint64]outRecord{}
	}
	for _, or := range ors {
		qs.m[clientID][or.Seq] = or
	}
	return nil
}

// remove forgets entries of a client (all of them, and the packet ids
// received, when seqs is nil).
func (qs *qos2Store) remove(ctx context.Context, clientID string, seqs []uint64) error {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	all := seqs == nil
	have := qs.m[clientID]
	var recs []broker.Record
	if all {
		for seq := range have {
			seqs = append(seqs, seq)
		}
		for id := range qs.in[clientID] {
			recs = append(recs, broker.Record{Key: qos2InKey(clientID, id)})
		}
	}
	for _, seq := range seqs {
		if _, ok := have[seq]; ok {
			recs = append(recs, broker.Record{Key: qos2Key(clientID, seq)})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if _, err := qs.b.Publish(broker.Bookkeeping(ctx), qos2Stream, recs); err != nil {
		return err
	}
	for _, seq := range seqs {
		delete(have, seq)
	}
	if len(have) == 0 {
		delete(qs.m, clientID)
	}
	if all {
		delete(qs.in, clientID)
	}
	return nil
}

// clients returns the client ids that have entries.
func (qs *qos2Store) clients() []string {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	ids := make([]string, 0, len(qs.m))
	for id := range qs.m {
		ids = append(ids, id)
	}
	for id := range qs.in {
		if _, ok := qs.m[id]; !ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// entries returns a client's entries, oldest first.
func (qs *qos2Store) entries(clientID string) []outRecord {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	var out []outRecord
	for _, or := range qs.m[clientID] {
		out = append(out, or)
	}
	slices.SortFunc(out, func(a, b outRecord) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// loadQueueID sets queueID, the stream ID of the session's queue as entries name it.
func (c *conn) loadQueueID() error {
	info, err := c.s.b.DescribeStream(c.queue)
	if err != nil {
		return err
	}
	c.queueID = hex.EncodeToString(info.ID[:])
	return nil
}

// resumeQoS2 takes over a resumed persistent session's entries: their
// packet ids are in flight again (holding credits of the receive maximum,
// even beyond it) and resendQoS2 sends them after CONNACK. Entries whose
// queue was deleted since keep their message but no longer a record.
func (c *conn) resumeQoS2() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, or := range c.s.qos2.entries(c.clientID) {
		e := &outEntry{outRecord: or}
		e.acked = or.Acked || !e.hasRef(c.queueID)
		c.out[e.Seq] = e
		c.nextSeq = max(c.nextSeq, e.Seq+1)
		c.inflight[e.PacketID] = inflightMsg{out: e, credit: true}
		c.credits.takeNow()
	}
}

// resendQoS2 resends what the resumed entries owe, oldest first: PUBREL
// for released ones, the PUBLISH (DUP) for the others.
func (c *conn) resendQoS2() error {
	c.mu.Lock()
	es := make([]*outEntry, 0, len(c.out))
	for _, e := range c.out {
		es = append(es, e)
	}
	c.mu.Unlock()
	slices.SortFunc(es, func(a, b *outEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, e := range es {
		var p Packet = &Ack{Type: typePubrel, PacketID: e.PacketID}
		if !e.Released {
			p = c.resendPublish(e)
		}
		if err := c.write(p); err != nil {
			return err
		}
	}
	return nil
}

// resendPublish is the PUBLISH an unreleased entry is sent again as:
// without an expiry, as its delivery has begun.
func (c *conn) resendPublish(e *outEntry) *Publish {
	rec := broker.Record{Value: e.Payload, Headers: slices.DeleteFunc(slices.Clone(e.Headers),
		func(h broker.Header) bool { return h.Key == broker.HeaderExpiresAt })}
	p, _ := c.fromRecord(&rec, e.Topic, e.Retain, e.SubIDs)
	p.QoS, p.PacketID, p.Dup = 2, e.PacketID, true
	return p
}

// sendQoS2 records a QoS 2 message as an entry (durably for a persistent
// session) and sends it; queueOffset is its queue record's offset (-1:
// none, a retained message).
func (c *conn) sendQoS2(p *Publish, rec *broker.Record, subIDs []int, queueOffset int64) error {
	c.mu.Lock()
	p.PacketID = c.allocID()
	e := &outEntry{outRecord: outRecord{Seq: c.nextSeq, PacketID: p.PacketID, Topic: p.Topic, Retain: p.Retain,
		Payload: rec.Value, Headers: rec.Headers, SubIDs: subIDs}}
	c.nextSeq++
	if queueOffset >= 0 {
		e.QueueID, e.Offset, e.held = c.queueID, queueOffset, true
	} else {
		e.acked = true
	}
	c.out[e.Seq] = e
	c.inflight[p.PacketID] = inflightMsg{out: e, credit: true}
	c.mu.Unlock()
	if c.persistent {
		if err := c.s.qos2.put(c.ctx, c.clientID, e.outRecord); err != nil {
			return fmt.Errorf("store QoS 2 state: %w", err)
		}
	}
	return c.write(p)
}

// matchQoS2 looks for the entry of a record the session queue delivered:
// one the connection (or one before it) sent and that is not settled. An
// unreleased one keeps the record (kept); a released one has its record
// acknowledged now, and is forgotten if completed too.
func (c *conn) matchQoS2(d *broker.Delivery) (kept, found bool) {
	c.mu.Lock()
	var e *outEntry
	for _, x := range c.out {
		if !x.acked && x.hasRef(c.queueID) && x.Offset == d.Offset {
			e = x
			break
		}
	}
	if e != nil {
		e.held = true
	}
	if e == nil || !e.Released {
		c.mu.Unlock()
		return e != nil, e != nil
	}
	c.mu.Unlock()
	ref := broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}
	if err := c.s.b.Ack(c.ctx, c.queue, c.queue, c.consumerID, []broker.DeliveryRef{ref}); err != nil {
		c.log.Debug("ack failed; the record will be delivered again", "queue", c.queue, "err", err)
		return true, true
	}
	c.mu.Lock()
	e.acked = true
	forget := e.done
	c.mu.Unlock()
	if forget {
		c.forgetQoS2(c.ctx, e)
	}
	return true, true
}

// forgetQoS2 removes completed entries.
func (c *conn) forgetQoS2(ctx context.Context, es ...*outEntry) {
	seqs := make([]uint64, len(es))
	c.mu.Lock()
	for i, e := range es {
		seqs[i] = e.Seq
		delete(c.out, e.Seq)
	}
	c.mu.Unlock()
	if c.persistent {
		if err := c.s.qos2.remove(ctx, c.clientID, seqs); err != nil {
			// Harmless: the next connection sends their PUBRELs again.
			c.log.Debug("QoS 2 state not removed", "err", err)
		}
	}
}

// ackHeld acknowledges the queue records of entries this connection
// holds: in one call, or one by one if that fails (a record not held any
// more is delivered again at the next connection, and matched then). It
// returns the entries whose records are acknowledged.
func (c *conn) ackHeld(ctx context.Context, es []*outEntry) map[*outEntry]bool {
	acked := map[*outEntry]bool{}
	if len(es) == 0 {
		return acked
	}
	refs := make([]broker.DeliveryRef, len(es))
	for i, e := range es {
		refs[i] = broker.DeliveryRef{Partition: 0, Offset: e.Offset}
	}
	if c.s.b.Ack(ctx, c.queue, c.queue, c.consumerID, refs) == nil {
		for _, e := range es {
			acked[e] = true
		}
		return acked
	}
	for i, e := range es {
		err := c.s.b.Ack(ctx, c.queue, c.queue, c.consumerID, refs[i:i+1])
		if err != nil {
			c.log.Debug("ack failed", "queue", c.queue, "err", err)
		}
		acked[e] = err == nil
	}
	return acked
}

// handlePubrec: the client has the message. A refusal (reason 0x80 or
// above) completes it; otherwise ackLoop stores the released state,
// acknowledges the record and sends PUBREL.
func (c *conn) handlePubrec(a *Ack) error {
	c.mu.Lock()
	m, ok := c.inflight[a.PacketID]
	if !ok || m.out == nil {
		c.mu.Unlock()
		return c.write(&Ack{Type: typePubrel, PacketID: a.PacketID, ReasonCode: reasonPacketIDNotFound})
	}
	e := m.out
	if a.ReasonCode >= 0x80 {
		delete(c.inflight, a.PacketID)
		e.Released, e.done = true, true
		c.mu.Unlock()
		c.credits.put()
		c.acks <- ackItem{kind: ackRefused, out: e}
		return nil
	}
	released := e.Released
	c.mu.Unlock()
	if released { // PUBREC again: PUBREL again
		return c.write(&Ack{Type: typePubrel, PacketID: a.PacketID})
	}
	c.acks <- ackItem{kind: ackReleased, out: e}
	return nil
}

// handlePubcomp completes a QoS 2 message.
func (c *conn) handlePubcomp(id uint16) {
	c.mu.Lock()
	m, ok := c.inflight[id]
	if !ok || m.out == nil || !m.out.Released {
		c.mu.Unlock()
		return // not one in flight: nothing to do
	}
	delete(c.inflight, id)
	e := m.out
	e.done = true
	forget := e.acked
	c.mu.Unlock()
	c.credits.put()
	if forget {
		c.acks <- ackItem{kind: ackForget, out: e}
	}
}

// settleQoS2 is ackLoop's part for QoS 2. For PUBREC'd entries it
// acknowledges the records this connection holds, stores the released
// state (with whether the record is acknowledged: one write for all), and
// sends their PUBRELs; a record not held yet (the session resumed and the
// queue has not handed it back) is acknowledged when it is (matchQoS2).
// Completed and refused entries whose records are acknowledged are
// forgotten.
func (c *conn) settleQoS2(ctx context.Context, released, forget, refused []*outEntry) error {
	settled := slices.Concat(released, refused)
	var toAck []*outEntry
	c.mu.Lock()
	for _, e := range settled {
		e.Released = true
		e.Payload, e.Headers = nil, nil
		if !e.acked && e.held {
			toAck = append(toAck, e)
		}
	}
	c.mu.Unlock()
	acked := c.ackHeld(ctx, toAck)
	var ors []outRecord
	c.mu.Lock()
	for i, e := range settled {
		e.acked = e.acked || acked[e]
		if e.acked && e.done && !slices.Contains(forget, e) {
			forget = append(forget, e)
		}
		if i < len(released) {
			ors = append(ors, outRecord{Seq: e.Seq, PacketID: e.PacketID, Released: true, QueueID: e.QueueID, Offset: e.Offset, Acked: e.acked})
		}
	}
	c.mu.Unlock()
	if len(ors) > 0 && c.persistent {
		if err := c.s.qos2.put(ctx, c.clientID, ors...); err != nil {
			return fmt.Errorf("store QoS 2 state: %w", err)
		}
	}
	if len(forget) > 0 {
		c.forgetQoS2(ctx, forget...)
	}
	if len(released) == 0 {
		return nil
	}
	for _, e := range released {
		if err := c.writePacket(&Ack{Type: typePubrel, PacketID: e.PacketID}, false); err != nil {
			return err
		}
	}
	return c.flush()
}
