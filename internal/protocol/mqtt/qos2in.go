package mqtt

import (
	"context"
	"fmt"
	"strconv"

	"github.com/weirmq/weir/internal/broker"
)

// Inbound QoS 2 across reconnects (docs/PROTOCOLS.md, "MQTT front
// end"): the packet ids of a persistent session's QoS 2 publishes that are
// stored and not released are records of mqtt.qos2, written after the
// message is stored and before PUBREC, removed before PUBCOMP. A resumed
// session starts with them, so a PUBLISH resent with one of them after a
// reconnect or a restart is answered (PUBREC) and not stored again.

func qos2InKey(clientID string, id uint16) []byte {
	return []byte(clientID + "\x00i" + strconv.FormatUint(uint64(id), 16))
}

// loadIn applies a record of a received packet id while the store opens.
func (qs *qos2Store) loadIn(clientID, hexID string, present bool) error {
	id, err := strconv.ParseUint(hexID, 16, 16)
	if err != nil {
		return fmt.Errorf("mqtt: %s packet id %q: %w", qos2Stream, hexID, err)
	}
	if !present {
		delete(qs.in[clientID], uint16(id))
		if len(qs.in[clientID]) == 0 {
			delete(qs.in, clientID)
		}
		return nil
	}
	if qs.in[clientID] == nil {
		qs.in[clientID] = map[uint16]bool{}
	}
	qs.in[clientID][uint16(id)] = true
	return nil
}

// setIn stores (present) or removes received packet ids of a client.
func (qs *qos2Store) setIn(ctx context.Context, clientID string, ids []uint16, present bool) error {
	if len(ids) == 0 {
		return nil
	}
	recs := make([]broker.Record, len(ids))
	for i, id := range ids {
		recs[i] = broker.Record{Key: qos2InKey(clientID, id)}
		if present {
			recs[i].Value = []byte{1}
		}
	}
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if _, err := qs.b.Publish(broker.Bookkeeping(ctx), qos2Stream, recs); err != nil {
		return err
	}
	for _, id := range ids {
		if present {
			if qs.in[clientID] == nil {
				qs.in[clientID] = map[uint16]bool{}
			}
			qs.in[clientID][id] = true
		} else {
			delete(qs.in[clientID], id)
		}
	}
	if len(qs.in[clientID]) == 0 {
		delete(qs.in, clientID)
	}
	return nil
}

// receivedIn returns the packet ids a client's session received at QoS 2
// and has not released.
func (qs *qos2Store) receivedIn(clientID string) []uint16 {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	ids := make([]uint16, 0, len(qs.in[clientID]))
	for id := range qs.in[clientID] {
		ids = append(ids, id)
	}
	return ids
}

// markReceived stores the packet ids of a batch's QoS 2 publishes that
// were stored, before their PUBRECs (persistent sessions only).
func (c *conn) markReceived(batch []*pendingPublish) error {
	if !c.persistent {
		return nil
	}
	var ids []uint16
	for _, pp := range batch {
		if pp.p.QoS == 2 && !pp.resent && !pp.denied && pp.err == nil {
			ids = append(ids, pp.p.PacketID)
		}
	}
	if err := c.s.qos2.setIn(c.ctx, c.clientID, ids, true); err != nil {
		return fmt.Errorf("store QoS 2 state: %w", err)
	}
	return nil
}

// release answers PUBRELs in order: the packet ids are forgotten (for a
// persistent session durably, in one write) before their PUBCOMPs; an id
// not received gets reason 0x92.
func (c *conn) release(ctx context.Context, ids []uint16) error {
	found := make([]bool, len(ids))
	var known []uint16
	c.mu.Lock()
	for i, id := range ids {
		found[i] = c.inQoS2[id]
		delete(c.inQoS2, id)
		if found[i] {
			known = append(known, id)
		}
	}
	c.mu.Unlock()
	if c.persistent {
		if err := c.s.qos2.setIn(ctx, c.clientID, known, false); err != nil {
			return fmt.Errorf("store QoS 2 state: %w", err)
		}
	}
	for i, id := range ids {
		ack := &Ack{Type: typePubcomp, PacketID: id}
		if !found[i] {
			ack.ReasonCode = reasonPacketIDNotFound
		}
		if err := c.writePacket(ack, false); err != nil {
			return err
		}
	}
	return c.flush()
}
