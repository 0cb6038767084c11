package mqtt

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/weirmq/weir/internal/broker"
)

// Headers of records the front end writes besides the reserved ones.
const (
	headerQoS           = "mqtt-qos"            // the publisher's QoS
	headerRetain        = "mqtt-retain"         // "1": published with RETAIN
	headerPayloadFormat = "mqtt-payload-format" // MQTT 5 payload format indicator
	headerPublisher     = "mqtt-publisher"      // the publishing client id (for no-local)
)

// toRecord makes the record a PUBLISH is stored as: the key is the routing
// key (as AMQP's publishes to an exchange), MQTT 5 properties become
// headers (docs/PROTOCOLS.md has the table).
func toRecord(p *Publish, clientID string) broker.Record {
	rec := broker.Record{Key: []byte(RoutingKey(p.Topic)), Value: p.Payload}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	hs := []broker.Header{{Key: headerQoS, Value: []byte{'0' + p.QoS}}, {Key: headerPublisher, Value: []byte(clientID)}}
	if p.Retain {
		hs = append(hs, broker.Header{Key: headerRetain, Value: []byte("1")})
	}
	pr := &p.Props
	if pr.Has(propContentType) {
		hs = append(hs, broker.Header{Key: broker.HeaderContentType, Value: []byte(pr.ContentType)})
	}
	if pr.Has(propCorrelationData) {
		hs = append(hs, broker.Header{Key: broker.HeaderCorrelationID, Value: pr.CorrelationData})
	}
	if pr.Has(propResponseTopic) {
		hs = append(hs, broker.Header{Key: broker.HeaderReplyTo, Value: []byte(RoutingKey(pr.ResponseTopic))})
	}
	if pr.Has(propMessageExpiry) {
		at := time.Now().Add(time.Duration(pr.MessageExpiry) * time.Second).UnixMilli()
		hs = append(hs, broker.Header{Key: broker.HeaderExpiresAt, Value: []byte(strconv.FormatInt(at, 10))})
	}
	if pr.Has(propPayloadFormat) {
		hs = append(hs, broker.Header{Key: headerPayloadFormat, Value: []byte{'0' + pr.PayloadFormat}})
	}
	for _, u := range pr.User {
		hs = append(hs, broker.Header{Key: u.Key, Value: []byte(u.Value)})
	}
	rec.Headers = hs
	return rec
}

// fromRecord makes the PUBLISH a record is delivered as (without QoS and
// packet id), with the subscription identifiers of the subscriptions it
// matched. ok is false when the record has expired.
func (c *conn) fromRecord(rec *broker.Record, topic string, retain bool, subIDs []int) (*Publish, bool) {
	p := &Publish{Topic: topic, Payload: rec.Value, Retain: retain}
	v5 := c.version() == Version5
	if len(subIDs) > 0 {
		p.Props.SubscriptionIDs = subIDs
		p.Props.Set(propSubscriptionID)
	}
	for _, h := range rec.Headers {
		switch h.Key {
		case headerQoS, headerRetain, headerPublisher:
		case broker.HeaderExpiresAt:
			ms, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				continue
			}
			left := time.Until(time.UnixMilli(ms))
			if left <= 0 {
				return nil, false
			}
			p.Props.MessageExpiry = uint32((left + time.Second - 1) / time.Second)
			p.Props.Set(propMessageExpiry)
		case broker.HeaderContentType:
			p.Props.ContentType = string(h.Value)
			p.Props.Set(propContentType)
		case broker.HeaderCorrelationID:
			p.Props.CorrelationData = h.Value
			p.Props.Set(propCorrelationData)
		case broker.HeaderReplyTo:
			p.Props.ResponseTopic = TopicOf(string(h.Value))
			p.Props.Set(propResponseTopic)
		case headerPayloadFormat:
			if len(h.Value) == 1 && (h.Value[0] == '0' || h.Value[0] == '1') {
				p.Props.PayloadFormat = h.Value[0] - '0'
				p.Props.Set(propPayloadFormat)
			}
		default:
			if checkUTF8([]byte(h.Key)) == nil && checkUTF8(h.Value) == nil {
				p.Props.User = append(p.Props.User, UserProperty{h.Key, string(h.Value)})
				p.Props.Set(propUserProperty)
			}
		}
	}
	if !v5 {
		p.Props = Properties{}
	}
	return p, true
}

// recordQoS is the QoS a record was published with: MQTT's own header, or
// 1 for records from other protocols (they are stored durably).
func recordQoS(rec *broker.Record) byte {
	for _, h := range rec.Headers {
		if h.Key == headerQoS && len(h.Value) == 1 && h.Value[0] >= '0' && h.Value[0] <= '2' {
			return h.Value[0] - '0'
		}
	}
	return 1
}

// headerValue is the first value of a header, or "".
func headerValue(rec *broker.Record, name string) string {
	for _, h := range rec.Headers {
		if h.Key == name {
			return string(h.Value)
		}
	}
	return ""
}

func hasRetainHeader(rec *broker.Record) bool {
	for _, h := range rec.Headers {
		if h.Key == headerRetain && string(h.Value) == "1" {
			return true
		}
	}
	return false
}

// startConsumer starts the delivery loop of a queue (the session's or a
// shared subscription's) unless it runs.
func (c *conn) startConsumer(queue string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.consumers[queue]; ok || c.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.consumers[queue] = cancel
	c.loops.Add(1)
	go func() {
		defer c.loops.Done()
		c.deliverLoop(ctx, queue)
	}()
}

// stopConsumer stops a queue's delivery loop; what it holds unacknowledged
// goes back to the queue.
func (c *conn) stopConsumer(queue string) {
	c.mu.Lock()
	cancel, ok := c.consumers[queue]
	delete(c.consumers, queue)
	for id, m := range c.inflight {
		if m.queue == queue {
			delete(c.inflight, id)
			if m.credit {
				c.credits.put()
			}
		}
	}
	c.mu.Unlock()
	if ok {
		cancel() // the loop gives back what it holds as it ends
	}
}

// deliverLoop receives records of a queue, as many at a time as the
// receive maximum has credits (at most 32), and sends them, taking a
// credit for each.
func (c *conn) deliverLoop(ctx context.Context, queue string) {
	// What this connection holds unacknowledged goes back to the queue
	// (to be sent again, as DUP, at the next connection of the session).
	defer c.s.b.CloseConsumer(queue, queue, c.consumerID)
	for {
		n := min(c.credits.available(ctx), 32)
		if n == 0 {
			return // ctx done
		}
		ds, err := c.s.b.Receive(ctx, queue, queue, c.consumerID, n, 5*time.Second)
		if ctx.Err() != nil {
			return // CloseConsumer gives back what Receive handed out
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, broker.ErrSubscriptionNotFound) || errors.Is(err, broker.ErrStreamNotFound) || errors.Is(err, broker.ErrClosed) {
				return
			}
			c.log.Warn("receive failed", "queue", queue, "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		var settled []broker.DeliveryRef
		sent := 0 // payload bytes sent, for the consume quota
		for i := range ds {
			// Others (retained sends, other loops) may have taken the
			// credits seen: wait for PUBACKs to give them back, after
			// sending what is buffered.
			if !c.credits.tryTake() {
				if c.flush() != nil {
					c.shutdown(reasonUnspecified)
					return
				}
				if !c.credits.take(ctx) {
					return
				}
			}
			outcome, n, err := c.deliver(queue, &ds[i])
			sent += n
			if err != nil {
				c.log.Debug("delivery failed", "queue", queue, "err", err)
				c.shutdown(reasonOf(err))
				return
			}
			switch outcome {
			case deliverSettle:
				settled = append(settled, broker.DeliveryRef{Partition: ds[i].Partition, Offset: ds[i].Offset})
				c.credits.put()
			case deliverKept:
				c.credits.put() // its QoS 2 entry holds one
			}
		}
		if err := c.flush(); err != nil {
			c.shutdown(reasonUnspecified)
			return
		}
		if len(settled) > 0 {
			if err := c.s.b.Ack(ctx, queue, queue, c.consumerID, settled); err != nil && ctx.Err() == nil {
				c.log.Warn("ack failed", "queue", queue, "err", err)
			}
		}
		c.paceDeliveries(ctx, sent)
	}
}

// deliverOutcome says what became of a record deliver was given.
type deliverOutcome uint8

const (
	deliverSettle deliverOutcome = iota // needs no acknowledgement from the client: the caller acknowledges it
	deliverSent                         // sent at QoS 1 or 2: acknowledged at PUBACK or PUBREC
	deliverKept                         // the record of a QoS 2 message sent before: kept until its PUBREC
)

// deliver sends one record of a queue and says how many payload bytes it
// sent. It needs no acknowledgement from the client at QoS 0, or when it
// is not for this client (the binding matched but no MQTT filter does, or
// it expired).
func (c *conn) deliver(queue string, d *broker.Delivery) (deliverOutcome, int, error) {
	if d.Key == nil {
		return deliverSettle, 0, nil
	}
	if queue == c.queue {
		if _, found := c.matchQoS2(d); found {
			return deliverKept, 0, nil
		}
	}
	topic := TopicOf(string(d.Key))
	m, ok := c.matching(queue, topic, headerValue(&d.Record, headerPublisher))
	if !ok {
		return deliverSettle, 0, nil
	}
	p, ok := c.fromRecord(&d.Record, topic, m.rap && hasRetainHeader(&d.Record), m.subIDs)
	if !ok {
		return deliverSettle, 0, nil
	}
	// The span carries the record's trace on to the subscriber's side.
	_, span := c.s.cfg.Tracer.StartDeliver(c.ctx, topic, &d.Record)
	defer span.End()
	p.QoS = min(m.qos, recordQoS(&d.Record))
	if queue != c.queue {
		p.QoS = min(p.QoS, 1) // QoS 2 only from the session's queue
	}
	if c.maxOutPacket > 0 && len(AppendPacket(nil, p, c.version())) > c.maxOutPacket {
		return deliverSettle, 0, nil // MQTT 5: discarded as if delivered
	}
	switch p.QoS {
	case 0:
		return deliverSettle, len(p.Payload), c.writePacket(p, false)
	case 2:
		return deliverSent, len(p.Payload), c.sendQoS2(p, &d.Record, m.subIDs, d.Offset)
	}
	p.Dup = d.DeliveryCount > 1
	c.mu.Lock()
	p.PacketID = c.allocID()
	c.inflight[p.PacketID] = inflightMsg{queue: queue, ref: broker.DeliveryRef{Partition: d.Partition, Offset: d.Offset}, credit: true}
	c.mu.Unlock()
	return deliverSent, len(p.Payload), c.writePacket(p, false)
}

// match is what the session's subscriptions matching a message ask of
// its delivery: the highest granted QoS, retain-as-published if one of
// them sets it, their subscription identifiers.
type match struct {
	qos    byte
	rap    bool
	subIDs []int
}

// matching returns what the session's subscriptions that match topic and
// deliver through queue ask (leaving out no-local ones when the client
// published it); ok is false when none matches.
func (c *conn) matching(queue, topic, publisher string) (m match, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for f, st := range c.subs {
		if st.NoLocal && publisher == c.clientID {
			continue // MQTT 5 no local: not the client's own messages
		}
		var match bool
		if st.Group != "" {
			match = queue == shareQueue(st.Group, st.Filter) && MatchTopic(st.Filter, topic)
		} else {
			match = queue == c.queue && MatchTopic(f, topic)
		}
		if match {
			ok = true
			m.qos = max(m.qos, st.QoS)
			m.rap = m.rap || st.RetainAsPublished
			if st.SubID != 0 && !slices.Contains(m.subIDs, st.SubID) {
				m.subIDs = append(m.subIDs, st.SubID)
			}
		}
	}
	slices.Sort(m.subIDs)
	return m, ok
}

// allocID returns a packet identifier not in flight. The caller holds c.mu;
// the receive maximum keeps fewer than 65535 in flight.
func (c *conn) allocID() uint16 {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.inflight[c.nextID]; !used {
			return c.nextID
		}
	}
}

// sendRetained sends a retained message to a new subscription; at QoS 1
// and 2 it waits for a credit of the receive maximum.
func (c *conn) sendRetained(rec broker.Record, granted byte, subIDs []int) error {
	topic := string(rec.Key)
	p, ok := c.fromRecord(&rec, topic, true, subIDs)
	if !ok {
		return nil
	}
	_, span := c.s.cfg.Tracer.StartDeliver(c.ctx, topic, &rec)
	defer span.End()
	p.QoS = min(granted, recordQoS(&rec))
	if c.maxOutPacket > 0 && len(AppendPacket(nil, p, c.version())) > c.maxOutPacket {
		return nil
	}
	if p.QoS > 0 {
		if !c.credits.take(c.ctx) {
			return nil
		}
		if p.QoS == 2 {
			return c.sendQoS2(p, &rec, subIDs, -1)
		}
		c.mu.Lock()
		p.PacketID = c.allocID()
		c.inflight[p.PacketID] = inflightMsg{credit: true}
		c.mu.Unlock()
	}
	c.countDelivered(len(p.Payload))
	return c.write(p)
}
