package mqtt

import "encoding/binary"

// Property identifiers of MQTT 5 (section 2.2.2.2).
const (
	propPayloadFormat        = 0x01
	propMessageExpiry        = 0x02
	propContentType          = 0x03
	propResponseTopic        = 0x08
	propCorrelationData      = 0x09
	propSubscriptionID       = 0x0B
	propSessionExpiry        = 0x11
	propAssignedClientID     = 0x12
	propServerKeepAlive      = 0x13
	propAuthMethod           = 0x15
	propAuthData             = 0x16
	propRequestProblemInfo   = 0x17
	propWillDelay            = 0x18
	propRequestResponseInfo  = 0x19
	propResponseInfo         = 0x1A
	propServerReference      = 0x1C
	propReasonString         = 0x1F
	propReceiveMaximum       = 0x21
	propTopicAliasMaximum    = 0x22
	propTopicAlias           = 0x23
	propMaximumQoS           = 0x24
	propRetainAvailable      = 0x25
	propUserProperty         = 0x26
	propMaximumPacketSize    = 0x27
	propWildcardSubAvailable = 0x28
	propSubIDAvailable       = 0x29
	propSharedSubAvailable   = 0x2A
	propMax                  = 0x2A
)

// propKind is how a property's value is encoded.
type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarint
	kindString
	kindBinary
	kindPair
)

var propKinds = [propMax + 1]propKind{
	propPayloadFormat: kindByte, propMessageExpiry: kindUint32, propContentType: kindString,
	propResponseTopic: kindString, propCorrelationData: kindBinary, propSubscriptionID: kindVarint,
	propSessionExpiry: kindUint32, propAssignedClientID: kindString, propServerKeepAlive: kindUint16,
	propAuthMethod: kindString, propAuthData: kindBinary, propRequestProblemInfo: kindByte,
	propWillDelay: kindUint32, propRequestResponseInfo: kindByte, propResponseInfo: kindString,
	propServerReference: kindString, propReasonString: kindString, propReceiveMaximum: kindUint16,
	propTopicAliasMaximum: kindUint16, propTopicAlias: kindUint16, propMaximumQoS: kindByte,
	propRetainAvailable: kindByte, propUserProperty: kindPair, propMaximumPacketSize: kindUint32,
	propWildcardSubAvailable: kindByte, propSubIDAvailable: kindByte, propSharedSubAvailable: kindByte,
}

// UserProperty is a name-value pair of MQTT 5.
type UserProperty struct{ Key, Value string }

// Properties are the MQTT 5 properties of a packet. Numeric properties are
// meaningful only when Has says they were present.
type Properties struct {
	set uint64 // bit i: property i present

	PayloadFormat       byte
	MessageExpiry       uint32
	ContentType         string
	ResponseTopic       string
	CorrelationData     []byte
	SubscriptionIDs     []int
	SessionExpiry       uint32
	AssignedClientID    string
	ServerKeepAlive     uint16
	AuthMethod          string
	AuthData            []byte
	RequestProblemInfo  byte
	WillDelay           uint32
	RequestResponseInfo byte
	ResponseInfo        string
	ServerReference     string
	ReasonString        string
	ReceiveMaximum      uint16
	TopicAliasMaximum   uint16
	TopicAlias          uint16
	MaximumQoS          byte
	RetainAvailable     byte
	User                []UserProperty
	MaximumPacketSize   uint32
	WildcardSubAvail    byte
	SubIDAvailable      byte
	SharedSubAvailable  byte
}

// Has reports whether property id was present (or was set with Set).
func (p *Properties) Has(id byte) bool { return p.set&(1<<id) != 0 }

// Set marks property id present; its field must hold the value.
func (p *Properties) Set(id byte) { p.set |= 1 << id }

// Clear marks property id absent.
func (p *Properties) Clear(id byte) { p.set &^= 1 << id }

// properties reads a property list: its length, then the properties.
// A property given twice (other than user properties and subscription
// identifiers) is a protocol error, an unknown one malformed.
func (d *decoder) properties() (Properties, error) {
	var p Properties
	n := d.varint()
	if d.err != nil {
		return p, d.err
	}
	if n > len(d.buf)-d.pos {
		d.fail("the properties")
		return p, d.err
	}
	end := d.pos + n
	sub := &decoder{buf: d.buf[:end], pos: d.pos}
	for sub.err == nil && sub.pos < end {
		id := sub.byte()
		if sub.err != nil {
			break
		}
		if int(id) >= len(propKinds) || propKinds[id] == 0 {
			return p, malformed("unknown property %#x", id)
		}
		if id != propUserProperty && id != propSubscriptionID && p.Has(id) {
			return p, protocolErr("property %#x given twice", id)
		}
		p.Set(id)
		switch id {
		case propPayloadFormat:
			p.PayloadFormat = sub.byte()
			if p.PayloadFormat > 1 {
				return p, protocolErr("payload format indicator %d", p.PayloadFormat)
			}
		case propMessageExpiry:
			p.MessageExpiry = sub.uint32()
		case propContentType:
			p.ContentType = sub.string()
		case propResponseTopic:
			p.ResponseTopic = sub.string()
		case propCorrelationData:
			p.CorrelationData = sub.binary()
		case propSubscriptionID:
			v := sub.varint()
			if sub.err == nil && v == 0 {
				return p, protocolErr("subscription identifier 0")
			}
			p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		case propSessionExpiry:
			p.SessionExpiry = sub.uint32()
		case propAssignedClientID:
			p.AssignedClientID = sub.string()
		case propServerKeepAlive:
			p.ServerKeepAlive = sub.uint16()
		case propAuthMethod:
			p.AuthMethod = sub.string()
		case propAuthData:
			p.AuthData = sub.binary()
		case propRequestProblemInfo:
			p.RequestProblemInfo = sub.byte()
			if p.RequestProblemInfo > 1 {
				return p, protocolErr("request problem information %d", p.RequestProblemInfo)
			}
		case propWillDelay:
			p.WillDelay = sub.uint32()
		case propRequestResponseInfo:
			p.RequestResponseInfo = sub.byte()
			if p.RequestResponseInfo > 1 {
				return p, protocolErr("request response information %d", p.RequestResponseInfo)
			}
		case propResponseInfo:
			p.ResponseInfo = sub.string()
		case propServerReference:
			p.ServerReference = sub.string()
		case propReasonString:
			p.ReasonString = sub.string()
		case propReceiveMaximum:
			p.ReceiveMaximum = sub.uint16()
			if sub.err == nil && p.ReceiveMaximum == 0 {
				return p, protocolErr("receive maximum 0")
			}
		case propTopicAliasMaximum:
			p.TopicAliasMaximum = sub.uint16()
		case propTopicAlias:
			p.TopicAlias = sub.uint16()
		case propMaximumQoS:
			p.MaximumQoS = sub.byte()
		case propRetainAvailable:
			p.RetainAvailable = sub.byte()
		case propUserProperty:
			k := sub.string()
			v := sub.string()
			p.User = append(p.User, UserProperty{k, v})
		case propMaximumPacketSize:
			p.MaximumPacketSize = sub.uint32()
			if sub.err == nil && p.MaximumPacketSize == 0 {
				return p, protocolErr("maximum packet size 0")
			}
		case propWildcardSubAvailable:
			p.WildcardSubAvail = sub.byte()
		case propSubIDAvailable:
			p.SubIDAvailable = sub.byte()
		case propSharedSubAvailable:
			p.SharedSubAvailable = sub.byte()
		}
	}
	if sub.err != nil {
		return p, sub.err
	}
	d.pos = end
	return p, nil
}

// appendProperties appends the property list (length first).
func appendProperties(dst []byte, p *Properties) []byte {
	var body []byte
	for id := byte(1); id <= propMax; id++ {
		if !p.Has(id) {
			continue
		}
		switch id {
		case propUserProperty:
			for _, u := range p.User {
				body = append(body, id)
				body = appendString(body, u.Key)
				body = appendString(body, u.Value)
			}
			continue
		case propSubscriptionID:
			for _, v := range p.SubscriptionIDs {
				body = append(body, id)
				body = appendVarint(body, v)
			}
			continue
		}
		body = append(body, id)
		switch id {
		case propPayloadFormat:
			body = append(body, p.PayloadFormat)
		case propMessageExpiry:
			body = binary.BigEndian.AppendUint32(body, p.MessageExpiry)
		case propContentType:
			body = appendString(body, p.ContentType)
		case propResponseTopic:
			body = appendString(body, p.ResponseTopic)
		case propCorrelationData:
			body = appendBinary(body, p.CorrelationData)
		case propSessionExpiry:
			body = binary.BigEndian.AppendUint32(body, p.SessionExpiry)
		case propAssignedClientID:
			body = appendString(body, p.AssignedClientID)
		case propServerKeepAlive:
			body = binary.BigEndian.AppendUint16(body, p.ServerKeepAlive)
		case propAuthMethod:
			body = appendString(body, p.AuthMethod)
		case propAuthData:
			body = appendBinary(body, p.AuthData)
		case propRequestProblemInfo:
			body = append(body, p.RequestProblemInfo)
		case propWillDelay:
			body = binary.BigEndian.AppendUint32(body, p.WillDelay)
		case propRequestResponseInfo:
			body = append(body, p.RequestResponseInfo)
		case propResponseInfo:
			body = appendString(body, p.ResponseInfo)
		case propServerReference:
			body = appendString(body, p.ServerReference)
		case propReasonString:
			body = appendString(body, p.ReasonString)
		case propReceiveMaximum:
			body = binary.BigEndian.AppendUint16(body, p.ReceiveMaximum)
		case propTopicAliasMaximum:
			body = binary.BigEndian.AppendUint16(body, p.TopicAliasMaximum)
		case propTopicAlias:
			body = binary.BigEndian.AppendUint16(body, p.TopicAlias)
		case propMaximumQoS:
			body = append(body, p.MaximumQoS)
		case propRetainAvailable:
			body = append(body, p.RetainAvailable)
		case propMaximumPacketSize:
			body = binary.BigEndian.AppendUint32(body, p.MaximumPacketSize)
		case propWildcardSubAvailable:
			body = append(body, p.WildcardSubAvail)
		case propSubIDAvailable:
			body = append(body, p.SubIDAvailable)
		case propSharedSubAvailable:
			body = append(body, p.SharedSubAvailable)
		}
	}
	dst = appendVarint(dst, len(body))
	return append(dst, body...)
}
