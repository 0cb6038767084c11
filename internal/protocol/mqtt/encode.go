package mqtt

import "encoding/binary"

// AppendPacket appends p encoded for protocol level version (properties
// and reason codes are written for MQTT 5 only).
func AppendPacket(dst []byte, p Packet, version byte) []byte {
	v5 := version == Version5
	var first byte = p.packetType() << 4
	var body []byte
	switch p := p.(type) {
	case *Connect:
		body = appendString(body, p.ProtocolName)
		body = append(body, p.Version)
		var flags byte
		if p.CleanStart {
			flags |= 0x02
		}
		if p.Will != nil {
			flags |= 0x04 | p.Will.QoS<<3
			if p.Will.Retain {
				flags |= 0x20
			}
		}
		if p.Password != nil {
			flags |= 0x40
		}
		if p.Username != nil {
			flags |= 0x80
		}
		body = append(body, flags)
		body = binary.BigEndian.AppendUint16(body, p.KeepAlive)
		if v5 {
			body = appendProperties(body, &p.Props)
		}
		body = appendString(body, p.ClientID)
		if p.Will != nil {
			if v5 {
				body = appendProperties(body, &p.Will.Props)
			}
			body = appendString(body, p.Will.Topic)
			body = appendBinary(body, p.Will.Payload)
		}
		if p.Username != nil {
			body = appendString(body, *p.Username)
		}
		if p.Password != nil {
			body = appendBinary(body, p.Password)
		}
	case *Connack:
		if p.SessionPresent {
			body = append(body, 1)
		} else {
			body = append(body, 0)
		}
		body = append(body, p.ReasonCode)
		if v5 {
			body = appendProperties(body, &p.Props)
		}
	case *Publish:
		first |= p.QoS << 1
		if p.Dup {
			first |= 8
		}
		if p.Retain {
			first |= 1
		}
		body = appendString(body, p.Topic)
		if p.QoS > 0 {
			body = binary.BigEndian.AppendUint16(body, p.PacketID)
		}
		if v5 {
			body = appendProperties(body, &p.Props)
		}
		body = append(body, p.Payload...)
	case *Ack:
		if p.Type == typePubrel {
			first |= 2
		}
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
		if v5 && (p.ReasonCode != 0 || p.Props.set != 0) {
			body = append(body, p.ReasonCode)
			body = appendProperties(body, &p.Props)
		}
	case *Subscribe:
		first |= 2
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
		if v5 {
			body = appendProperties(body, &p.Props)
		}
		for _, s := range p.Subscriptions {
			body = appendString(body, s.Filter)
			opts := s.QoS
			if v5 {
				if s.NoLocal {
					opts |= 4
				}
				if s.RetainAsPublished {
					opts |= 8
				}
				opts |= s.RetainHandling << 4
			}
			body = append(body, opts)
		}
	case *Suback:
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
		if v5 {
			body = appendProperties(body, &p.Props)
		}
		body = append(body, p.Codes...)
	case *Unsubscribe:
		first |= 2
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
		if v5 {
			body = appendProperties(body, &p.Props)
		}
		for _, f := range p.Filters {
			body = appendString(body, f)
		}
	case *Unsuback:
		body = binary.BigEndian.AppendUint16(body, p.PacketID)
		if v5 {
			body = appendProperties(body, &p.Props)
			body = append(body, p.Codes...)
		}
	case *Pingreq, *Pingresp:
	case *Disconnect:
		if v5 && (p.ReasonCode != 0 || p.Props.set != 0) {
			body = append(body, p.ReasonCode)
			body = appendProperties(body, &p.Props)
		}
	case *Auth:
		if p.ReasonCode != 0 || p.Props.set != 0 {
			body = append(body, p.ReasonCode)
			body = appendProperties(body, &p.Props)
		}
	}
	dst = append(dst, first)
	dst = appendVarint(dst, len(body))
	return append(dst, body...)
}

func appendVarint(dst []byte, v int) []byte {
	for {
		b := byte(v % 128)
		v /= 128
		if v > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if v == 0 {
			return dst
		}
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}
