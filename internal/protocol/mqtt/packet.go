package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Protocol levels of CONNECT.
const (
	Version31  = 3 // MQTT 3.1 (MQIsdp)
	Version311 = 4
	Version5   = 5
)

// Packet types (the high nibble of the fixed header).
const (
	typeConnect     = 1
	typeConnack     = 2
	typePublish     = 3
	typePuback      = 4
	typePubrec      = 5
	typePubrel      = 6
	typePubcomp     = 7
	typeSubscribe   = 8
	typeSuback      = 9
	typeUnsubscribe = 10
	typeUnsuback    = 11
	typePingreq     = 12
	typePingresp    = 13
	typeDisconnect  = 14
	typeAuth        = 15
)

// Decoding errors. A malformed packet and a protocol error both close the
// connection; MQTT 5 clients are told which with a DISCONNECT reason code.
var (
	ErrMalformed      = errors.New("mqtt: malformed packet")
	ErrProtocol       = errors.New("mqtt: protocol error")
	ErrPacketTooLarge = errors.New("mqtt: packet too large")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Packet is one decoded control packet.
type Packet interface{ packetType() byte }

// Will is the will message of a CONNECT.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Props   Properties
}

// Connect is a CONNECT packet.
type Connect struct {
	ProtocolName string
	Version      byte
	CleanStart   bool
	KeepAlive    uint16
	Props        Properties
	ClientID     string
	Will         *Will
	Username     *string
	Password     []byte // nil: no password
}

// Connack is a CONNACK packet. ReasonCode is the MQTT 5 reason code or the
// 3.1.1 return code.
type Connack struct {
	SessionPresent bool
	ReasonCode     byte
	Props          Properties
}

// Publish is a PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    string
	PacketID uint16
	Props    Properties
	Payload  []byte
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet.
type Ack struct {
	Type       byte
	PacketID   uint16
	ReasonCode byte
	Props      Properties
}

// Subscription is one topic filter of a SUBSCRIBE.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Props         Properties
	Subscriptions []Subscription
}

// Suback is a SUBACK packet; Unsuback an UNSUBACK (Codes are empty in 3.1.1).
type Suback struct {
	PacketID uint16
	Props    Properties
	Codes    []byte
}

type Unsuback struct {
	PacketID uint16
	Props    Properties
	Codes    []byte
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  []string
}

// Pingreq, Pingresp: no content.
type Pingreq struct{}
type Pingresp struct{}

// Disconnect is a DISCONNECT packet; Auth an AUTH packet (MQTT 5).
type Disconnect struct {
	ReasonCode byte
	Props      Properties
}

type Auth struct {
	ReasonCode byte
	Props      Properties
}

func (*Connect) packetType() byte     { return typeConnect }
func (*Connack) packetType() byte     { return typeConnack }
func (*Publish) packetType() byte     { return typePublish }
func (a *Ack) packetType() byte       { return a.Type }
func (*Subscribe) packetType() byte   { return typeSubscribe }
func (*Suback) packetType() byte      { return typeSuback }
func (*Unsubscribe) packetType() byte { return typeUnsubscribe }
func (*Unsuback) packetType() byte    { return typeUnsuback }
func (*Pingreq) packetType() byte     { return typePingreq }
func (*Pingresp) packetType() byte    { return typePingresp }
func (*Disconnect) packetType() byte  { return typeDisconnect }
func (*Auth) packetType() byte        { return typeAuth }

// ReadPacket reads one packet. version is the connection's protocol level
// (0 before CONNECT: only a CONNECT is accepted then, and its own level
// decides). maxSize bounds the whole packet; a larger one is
// ErrPacketTooLarge before its body is read.
func ReadPacket(r *bufio.Reader, version byte, maxSize int) (Packet, error) {
	return readPacket(r, version, maxSize, false)
}

// ReadServerPacket reads one packet a server sent (see DecodeServerPacket).
func ReadServerPacket(r *bufio.Reader, version byte, maxSize int) (Packet, error) {
	return readPacket(r, version, maxSize, true)
}

func readPacket(r *bufio.Reader, version byte, maxSize int, fromServer bool) (Packet, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	length, n, err := readVarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if 1+n+length > maxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrPacketTooLarge, 1+n+length)
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodePacket(first, body, version, fromServer)
}

// DecodePacket decodes a packet a client sent from its first byte and its
// body (what follows the remaining length).
func DecodePacket(first byte, body []byte, version byte) (Packet, error) {
	return decodePacket(first, body, version, false)
}

// DecodeServerPacket decodes a packet a server sent (CONNACK, SUBACK,
// UNSUBACK, PINGRESP besides the packets both send): for clients and
// tests.
func DecodeServerPacket(first byte, body []byte, version byte) (Packet, error) {
	return decodePacket(first, body, version, true)
}

func decodePacket(first byte, body []byte, version byte, fromServer bool) (Packet, error) {
	typ, flags := first>>4, first&0x0f
	if fromServer {
		switch typ {
		case typeConnect, typeSubscribe, typeUnsubscribe, typePingreq:
			return nil, protocolErr("packet type %d is sent by clients only", typ)
		}
	} else if version == 0 && typ != typeConnect {
		return nil, protocolErr("first packet is type %d, not CONNECT", typ)
	}
	if !fromServer && version != 0 && typ == typeConnect {
		return nil, protocolErr("second CONNECT")
	}
	switch typ {
	case typePublish:
	case typePubrel, typeSubscribe, typeUnsubscribe:
		if flags != 2 {
			return nil, malformed("packet type %d with flags %#x", typ, flags)
		}
	default:
		if flags != 0 {
			return nil, malformed("packet type %d with flags %#x", typ, flags)
		}
	}
	d := &decoder{buf: body}
	var p Packet
	var err error
	switch typ {
	case typeConnect:
		p, err = decodeConnect(d)
	case typePublish:
		p, err = decodePublish(d, flags, version)
	case typePuback, typePubrec, typePubrel, typePubcomp:
		p, err = decodeAck(d, typ, version)
	case typeSubscribe:
		p, err = decodeSubscribe(d, version)
	case typeUnsubscribe:
		p, err = decodeUnsubscribe(d, version)
	case typePingreq:
		p = &Pingreq{}
	case typeDisconnect:
		p, err = decodeDisconnect(d, version)
	case typeAuth:
		if version != Version5 {
			return nil, protocolErr("AUTH before MQTT 5")
		}
		a := &Auth{}
		if !d.done() {
			a.ReasonCode = d.byte()
			if !d.done() {
				a.Props, err = d.properties()
			}
		}
		p = a
	case typeConnack, typeSuback, typeUnsuback, typePingresp:
		if !fromServer {
			return nil, protocolErr("packet type %d is sent by servers only", typ)
		}
		p, err = decodeServerOnly(d, typ, version)
	default:
		return nil, malformed("reserved packet type %d", typ)
	}
	if c, ok := p.(*Connect); ok && err == nil && !c.supported() {
		return c, nil // the rest is in a format we do not know
	}
	if err == nil {
		err = d.err
	}
	if err == nil && !d.done() {
		err = malformed("%d bytes after the end of packet type %d", len(d.buf)-d.pos, typ)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func decodeServerOnly(d *decoder, typ, version byte) (Packet, error) {
	var err error
	switch typ {
	case typeConnack:
		a := &Connack{}
		flags := d.byte()
		if flags&^1 != 0 {
			return nil, malformed("CONNACK flags %#x", flags)
		}
		a.SessionPresent = flags == 1
		a.ReasonCode = d.byte()
		if version == Version5 && d.err == nil {
			a.Props, err = d.properties()
		}
		return a, err
	case typeSuback, typeUnsuback:
		id := d.uint16()
		var props Properties
		if version == Version5 && d.err == nil {
			if props, err = d.properties(); err != nil {
				return nil, err
			}
		}
		codes := append([]byte(nil), d.buf[min(d.pos, len(d.buf)):]...)
		d.pos = len(d.buf)
		if typ == typeSuback {
			if d.err == nil && len(codes) == 0 {
				return nil, protocolErr("SUBACK without a return code")
			}
			return &Suback{PacketID: id, Props: props, Codes: codes}, nil
		}
		if version != Version5 && len(codes) > 0 {
			return nil, malformed("UNSUBACK of 3.1.1 with a payload")
		}
		if len(codes) == 0 {
			codes = nil
		}
		return &Unsuback{PacketID: id, Props: props, Codes: codes}, nil
	}
	return &Pingresp{}, nil
}

func decodeConnect(d *decoder) (*Connect, error) {
	c := &Connect{ProtocolName: d.string()}
	c.Version = d.byte()
	if d.err != nil {
		return nil, d.err
	}
	if !c.supported() {
		return c, nil // the caller answers "unacceptable protocol version"
	}
	flags := d.byte()
	c.KeepAlive = d.uint16()
	if d.err != nil {
		return nil, d.err
	}
	if flags&1 != 0 {
		return nil, malformed("CONNECT reserved flag set")
	}
	c.CleanStart = flags&0x02 != 0
	willFlag := flags&0x04 != 0
	willQoS := (flags >> 3) & 3
	willRetain := flags&0x20 != 0
	hasPassword := flags&0x40 != 0
	hasUser := flags&0x80 != 0
	if !willFlag && (willQoS != 0 || willRetain) {
		return nil, malformed("will QoS or retain without a will")
	}
	if willQoS == 3 {
		return nil, malformed("will QoS 3")
	}
	if c.Version != Version5 && hasPassword && !hasUser {
		return nil, malformed("password without user name")
	}
	var err error
	if c.Version == Version5 {
		if c.Props, err = d.properties(); err != nil {
			return nil, err
		}
	}
	c.ClientID = d.string()
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if c.Version == Version5 {
			if w.Props, err = d.properties(); err != nil {
				return nil, err
			}
		}
		w.Topic = d.string()
		w.Payload = d.binary()
		c.Will = w
	}
	if hasUser {
		u := d.string()
		c.Username = &u
	}
	if hasPassword {
		c.Password = d.binary()
		if c.Password == nil {
			c.Password = []byte{}
		}
	}
	return c, d.err
}

// supported reports whether the protocol name and level are ones this
// server speaks; the caller answers the others with CONNACK "unacceptable
// protocol version".
func (c *Connect) supported() bool {
	return c.ProtocolName == "MQTT" && (c.Version == Version311 || c.Version == Version5) ||
		c.ProtocolName == "MQIsdp" && c.Version == Version31
}

func decodePublish(d *decoder, flags, version byte) (*Publish, error) {
	p := &Publish{Dup: flags&8 != 0, QoS: (flags >> 1) & 3, Retain: flags&1 != 0}
	if p.QoS == 3 {
		return nil, malformed("PUBLISH with QoS 3")
	}
	if p.QoS == 0 && p.Dup {
		return nil, malformed("PUBLISH QoS 0 with DUP")
	}
	p.Topic = d.string()
	if p.QoS > 0 {
		p.PacketID = d.uint16()
		if d.err == nil && p.PacketID == 0 {
			return nil, malformed("packet identifier 0")
		}
	}
	if version == Version5 {
		var err error
		if p.Props, err = d.properties(); err != nil {
			return nil, err
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	p.Payload = d.buf[d.pos:]
	d.pos = len(d.buf)
	return p, nil
}

func decodeAck(d *decoder, typ, version byte) (*Ack, error) {
	a := &Ack{Type: typ, PacketID: d.uint16()}
	if d.err == nil && a.PacketID == 0 {
		return nil, malformed("packet identifier 0")
	}
	if version == Version5 && !d.done() {
		a.ReasonCode = d.byte()
		if !d.done() {
			var err error
			if a.Props, err = d.properties(); err != nil {
				return nil, err
			}
		}
	}
	return a, d.err
}

func decodeSubscribe(d *decoder, version byte) (*Subscribe, error) {
	s := &Subscribe{PacketID: d.uint16()}
	if d.err == nil && s.PacketID == 0 {
		return nil, malformed("packet identifier 0")
	}
	if version == Version5 {
		var err error
		if s.Props, err = d.properties(); err != nil {
			return nil, err
		}
	}
	for d.err == nil && !d.done() {
		sub := Subscription{Filter: d.string()}
		opts := d.byte()
		if d.err != nil {
			break
		}
		sub.QoS = opts & 3
		if sub.QoS == 3 {
			return nil, malformed("subscription QoS 3")
		}
		if version == Version5 {
			sub.NoLocal = opts&4 != 0
			sub.RetainAsPublished = opts&8 != 0
			sub.RetainHandling = (opts >> 4) & 3
			if sub.RetainHandling == 3 || opts&0xc0 != 0 {
				return nil, malformed("subscription options %#x", opts)
			}
		} else if opts&0xfc != 0 {
			return nil, malformed("subscription options %#x", opts)
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if d.err == nil && len(s.Subscriptions) == 0 {
		return nil, protocolErr("SUBSCRIBE without a topic filter")
	}
	return s, d.err
}

func decodeUnsubscribe(d *decoder, version byte) (*Unsubscribe, error) {
	u := &Unsubscribe{PacketID: d.uint16()}
	if d.err == nil && u.PacketID == 0 {
		return nil, malformed("packet identifier 0")
	}
	if version == Version5 {
		var err error
		if u.Props, err = d.properties(); err != nil {
			return nil, err
		}
	}
	for d.err == nil && !d.done() {
		u.Filters = append(u.Filters, d.string())
	}
	if d.err == nil && len(u.Filters) == 0 {
		return nil, protocolErr("UNSUBSCRIBE without a topic filter")
	}
	return u, d.err
}

func decodeDisconnect(d *decoder, version byte) (*Disconnect, error) {
	x := &Disconnect{}
	if version == Version5 && !d.done() {
		x.ReasonCode = d.byte()
		if !d.done() {
			var err error
			if x.Props, err = d.properties(); err != nil {
				return nil, err
			}
		}
	}
	return x, d.err
}

// decoder reads the body of a packet; the first error sticks.
type decoder struct {
	buf []byte
	pos int
	err error
}

func (d *decoder) done() bool { return d.pos >= len(d.buf) }

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = malformed("packet ends inside %s", what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || d.pos+1 > len(d.buf) {
		d.fail("a byte")
		return 0
	}
	b := d.buf[d.pos]
	d.pos++
	return b
}

func (d *decoder) uint16() uint16 {
	if d.err != nil || d.pos+2 > len(d.buf) {
		d.fail("a two-byte integer")
		return 0
	}
	v := binary.BigEndian.Uint16(d.buf[d.pos:])
	d.pos += 2
	return v
}

func (d *decoder) uint32() uint32 {
	if d.err != nil || d.pos+4 > len(d.buf) {
		d.fail("a four-byte integer")
		return 0
	}
	v := binary.BigEndian.Uint32(d.buf[d.pos:])
	d.pos += 4
	return v
}

func (d *decoder) varint() int {
	if d.err != nil {
		return 0
	}
	v, n, err := decodeVarint(d.buf[d.pos:])
	if err != nil {
		d.err = err
		return 0
	}
	d.pos += n
	return v
}

func (d *decoder) binary() []byte {
	n := int(d.uint16())
	if d.err != nil || d.pos+n > len(d.buf) {
		d.fail("binary data")
		return nil
	}
	b := d.buf[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return b
}

// string reads a UTF-8 encoded string: valid UTF-8 without U+0000
// (MQTT 3.1.1 section 1.5.3, MQTT 5 section 1.5.4).
func (d *decoder) string() string {
	b := d.binary()
	if d.err != nil {
		return ""
	}
	if err := checkUTF8(b); err != nil {
		d.err = err
		return ""
	}
	return string(b)
}

func checkUTF8(b []byte) error {
	if !utf8.Valid(b) {
		return malformed("string is not valid UTF-8")
	}
	for _, c := range b {
		if c == 0 {
			return malformed("string contains U+0000")
		}
	}
	return nil
}

// readVarint reads a Variable Byte Integer: at most four bytes.
func readVarint(r io.ByteReader) (value, n int, err error) {
	mult := 1
	for n < 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, n, err
		}
		n++
		value += int(b&0x7f) * mult
		if b&0x80 == 0 {
			return value, n, nil
		}
		mult *= 128
	}
	return 0, n, malformed("variable byte integer longer than four bytes")
}

func decodeVarint(b []byte) (value, n int, err error) {
	mult := 1
	for n < 4 {
		if n >= len(b) {
			return 0, n, malformed("packet ends inside a variable byte integer")
		}
		c := b[n]
		n++
		value += int(c&0x7f) * mult
		if c&0x80 == 0 {
			return value, n, nil
		}
		mult *= 128
	}
	return 0, n, malformed("variable byte integer longer than four bytes")
}
