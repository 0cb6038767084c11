package amqp

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// Record headers the basic properties map to (docs/PROTOCOLS.md, "AMQP
// 0-9-1 front end"). content-type, message-id, correlation-id, reply-to,
// expires-at and type are Weir's reserved names; the others are AMQP's own
// names. timestamp is the record's timestamp.
const (
	headerContentEncoding = "content-encoding"
	headerDeliveryMode    = "delivery-mode"
	headerPriority        = "priority"
	headerUserID          = "user-id"
	headerAppID           = "app-id"
	headerClusterID       = "cluster-id"
)

// propertyHeaders are the header names properties map to; a headers-table
// entry of one of these names is read back as that property.
var propertyHeaders = map[string]bool{
	broker.HeaderContentType: true, headerContentEncoding: true, headerDeliveryMode: true, headerPriority: true,
	broker.HeaderCorrelationID: true, broker.HeaderReplyTo: true, broker.HeaderExpiresAt: true, broker.HeaderMessageID: true,
	broker.HeaderType: true, headerUserID: true, headerAppID: true, headerClusterID: true,
}

// toRecord makes the record an AMQP message is stored as. The routing key
// is the record's key when the message went through a named exchange (the
// default exchange's routing key is only the queue name).
func toRecord(exchange, routingKey string, p *wire.Properties, body []byte, now time.Time) broker.Record {
	rec := broker.Record{Value: body}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	if exchange != "" && routingKey != "" {
		rec.Key = []byte(routingKey)
	}
	hs := make([]broker.Header, 0, 4+len(p.Headers))
	add := func(name, v string) {
		if v != "" {
			hs = append(hs, broker.Header{Key: name, Value: []byte(v)})
		}
	}
	add(broker.HeaderContentType, p.ContentType)
	add(headerContentEncoding, p.ContentEncoding)
	if p.Flags&wire.FlagDeliveryMode != 0 || p.DeliveryMode != 0 {
		add(headerDeliveryMode, strconv.Itoa(int(p.DeliveryMode)))
	}
	if p.Flags&wire.FlagPriority != 0 || p.Priority != 0 {
		add(headerPriority, strconv.Itoa(int(p.Priority)))
	}
	add(broker.HeaderCorrelationID, p.CorrelationID)
	add(broker.HeaderReplyTo, p.ReplyTo)
	if p.Expiration != "" {
		if ms, err := strconv.ParseInt(p.Expiration, 10, 64); err == nil && ms >= 0 {
			add(broker.HeaderExpiresAt, strconv.FormatInt(now.Add(time.Duration(ms)*time.Millisecond).UnixMilli(), 10))
		}
	}
	add(broker.HeaderMessageID, p.MessageID)
	add(broker.HeaderType, p.Type)
	add(headerUserID, p.UserID)
	add(headerAppID, p.AppID)
	add(headerClusterID, p.Reserved)
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		if k != headerAMQPTypes {
			hs = append(hs, broker.Header{Key: k, Value: valueBytes(p.Headers[k])})
		}
	}
	if h, ok := typesHeader(p.Headers); ok {
		hs = append(hs, h)
	}
	if !p.Timestamp.IsZero() {
		rec.Timestamp = p.Timestamp
	}
	rec.Headers = hs
	return rec
}

// valueBytes is a field-table value as a header value: strings and byte
// arrays as they are, numbers in decimal, booleans as true/false,
// timestamps in RFC 3339, decimals as a decimal fraction, arrays and tables
// as JSON.
func valueBytes(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	case nil:
		return []byte{}
	}
	return []byte(valueString(v))
}

func valueString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case wire.Decimal:
		s := strconv.FormatInt(int64(v.Value), 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		if v.Scale > 0 {
			for len(s) <= int(v.Scale) {
				s = "0" + s
			}
			s = s[:len(s)-int(v.Scale)] + "." + s[len(s)-int(v.Scale):]
		}
		if neg {
			s = "-" + s
		}
		return s
	case nil:
		return ""
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return ""
	}
	return string(b)
}

// jsonable turns tables and arrays into what encoding/json takes.
func jsonable(v any) any {
	switch v := v.(type) {
	case wire.Table:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = jsonable(x)
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonable(x)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case wire.Decimal, time.Time:
		return valueString(v)
	}
	return v
}

// stringArgs turns binding arguments into the broker's string map.
func stringArgs(t wire.Table) map[string]string {
	if len(t) == 0 {
		return nil
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = valueString(v)
	}
	return out
}

// fromRecord makes the properties a stored record is delivered with.
func fromRecord(rec *broker.Record, now time.Time) wire.Properties {
	var p wire.Properties
	var death wire.Table
	types := ""
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case headerAMQPTypes:
			types = v
		case broker.HeaderContentType:
			p.ContentType = v
		case headerContentEncoding:
			p.ContentEncoding = v
		case headerDeliveryMode:
			if n, err := strconv.ParseUint(v, 10, 8); err == nil {
				p.DeliveryMode = uint8(n)
				p.Flags |= wire.FlagDeliveryMode
			}
		case headerPriority:
			if n, err := strconv.ParseUint(v, 10, 8); err == nil {
				p.Priority = uint8(n)
				p.Flags |= wire.FlagPriority
			}
		case broker.HeaderCorrelationID:
			p.CorrelationID = v
		case broker.HeaderReplyTo:
			p.ReplyTo = v
		case broker.HeaderExpiresAt:
			if at, ok := parseTime(v); ok {
				p.Expiration = strconv.FormatInt(max(at.Sub(now).Milliseconds(), 0), 10)
			}
		case broker.HeaderMessageID:
			p.MessageID = v
		case broker.HeaderType:
			p.Type = v
		case headerUserID:
			p.UserID = v
		case headerAppID:
			p.AppID = v
		case headerClusterID:
			p.Reserved = v
		default:
			if p.Headers == nil {
				p.Headers = wire.Table{}
			}
			p.Headers[h.Key] = v
			switch h.Key {
			case broker.HeaderDeadLetterReason:
				if death == nil {
					death = wire.Table{}
				}
				death["reason"] = deathReason(v)
			case broker.HeaderDeadLetterStream:
				if death == nil {
					death = wire.Table{}
				}
				death["queue"] = displayName(v)
			case broker.HeaderDeliveryCount:
				if death == nil {
					death = wire.Table{}
				}
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					death["delivery-count"] = n
				}
			}
		}
	}
	if types != "" && p.Headers != nil {
		applyTypes(p.Headers, types)
	}
	if death != nil {
		// RabbitMQ's x-death: one entry per queue and reason, with a count
		// of how often it happened (Weir keeps the latest only).
		death["count"] = int64(1)
		death["exchange"] = ""
		if q, ok := death["queue"].(string); ok {
			death["routing-keys"] = []any{q}
		}
		death["time"] = rec.Timestamp.Truncate(time.Second)
		p.Headers["x-death"] = []any{death}
	}
	if !rec.Timestamp.IsZero() {
		p.Timestamp = rec.Timestamp
	}
	return p
}

func deathReason(weir string) string {
	switch weir {
	case broker.ReasonRejected:
		return "rejected"
	case broker.ReasonExpired:
		return "expired"
	case broker.ReasonMaxLength:
		return "maxlen"
	case broker.ReasonMaxDeliveries:
		return "delivery_limit"
	}
	return weir
}

// parseTime reads a deliver-at / expires-at value: Unix milliseconds or
// RFC 3339.
func parseTime(v string) (time.Time, bool) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms), true
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
