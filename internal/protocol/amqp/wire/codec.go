// Package wire is the AMQP 0-9-1 codec: frames, methods (generated from the
// specification XML with RabbitMQ's extensions by ../internal/gen), content
// headers with the basic properties, and field tables with RabbitMQ's type
// set. It knows nothing of the broker.
//
// Decoding works on a frame's payload in place: strings are copied out, so
// the payload buffer can be reused for the next frame. Encoding appends to a
// caller's buffer.
package wire

//go:generate go run ../internal/gen -spec ../internal/gen/amqp0-9-1.stripped.extended.xml -out spec_gen.go

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Errors of decoding.
var (
	ErrMalformed     = errors.New("amqp: malformed frame")
	ErrUnknownMethod = errors.New("amqp: unknown method")
	ErrFrameTooLarge = errors.New("amqp: frame larger than frame-max")
	ErrFrameEnd      = errors.New("amqp: frame does not end with frame-end")
)

// maxTableDepth bounds nested tables and arrays, so a hostile frame cannot
// exhaust the stack.
const maxTableDepth = 32

// Method is an AMQP method: the generated structs implement it.
type Method interface {
	ClassIndex() uint16
	MethodIndex() uint16
	MethodName() string
	Synchronous() bool
	HasContent() bool
	Decode(d *Decoder)
	Encode(e *Encoder)
}

// Table is a field table. Values have RabbitMQ's types: bool ('t'), int8
// ('b'), uint8 ('B'), int16 ('s'), uint16 ('u'), int32 ('I'), uint32 ('i'),
// int64 ('l'), float32 ('f'), float64 ('d'), Decimal ('D'), string ('S'),
// []any ('A'), time.Time ('T'), Table ('F'), []byte ('x') and nil ('V').
// Encoding also accepts int (as 'l').
type Table map[string]any

// Decimal is a field table's decimal value: Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Decoder reads AMQP types from a buffer. The first error sticks: reads
// after it return zero values, and Err reports it.
type Decoder struct {
	buf   []byte
	off   int
	err   error
	depth int
}

// NewDecoder returns a decoder over b.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Reset makes d read b from its start.
func (d *Decoder) Reset(b []byte) { *d = Decoder{buf: b} }

// Err is the first error met.
func (d *Decoder) Err() error { return d.err }

// Remaining is the number of bytes not read.
func (d *Decoder) Remaining() int { return len(d.buf) - d.off }

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
	d.off = len(d.buf)
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.buf)-d.off < n {
		d.fail("%d bytes wanted at offset %d, %d left", n, d.off, len(d.buf)-d.off)
		return nil
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b
}

func (d *Decoder) Octet() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *Decoder) Short() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *Decoder) Long() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *Decoder) LongLong() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Timestamp reads seconds since the Unix epoch.
func (d *Decoder) Timestamp() time.Time {
	s := d.LongLong()
	if d.err != nil {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

func (d *Decoder) ShortStr() string {
	n := int(d.Octet())
	return string(d.take(n))
}

// LongStr reads a long string as a copy (nil when empty).
func (d *Decoder) LongStr() []byte {
	n := d.Long()
	if n == 0 {
		return nil
	}
	b := d.take(int(min(n, math.MaxInt32)))
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Table reads a field table (nil when empty).
func (d *Decoder) Table() Table {
	n := d.Long()
	body := d.take(int(min(n, math.MaxInt32)))
	if d.err != nil || len(body) == 0 {
		return nil
	}
	if d.depth >= maxTableDepth {
		d.fail("tables nested deeper than %d", maxTableDepth)
		return nil
	}
	sub := Decoder{buf: body, depth: d.depth + 1}
	t := Table{}
	for sub.Remaining() > 0 && sub.err == nil {
		name := sub.ShortStr()
		v := sub.value()
		if sub.err == nil {
			t[name] = v
		}
	}
	if sub.err != nil {
		d.err = sub.err
		return nil
	}
	return t
}

func (d *Decoder) array() []any {
	n := d.Long()
	body := d.take(int(min(n, math.MaxInt32)))
	if d.err != nil {
		return nil
	}
	if d.depth >= maxTableDepth {
		d.fail("arrays nested deeper than %d", maxTableDepth)
		return nil
	}
	sub := Decoder{buf: body, depth: d.depth + 1}
	out := []any{}
	for sub.Remaining() > 0 && sub.err == nil {
		v := sub.value()
		if sub.err == nil {
			out = append(out, v)
		}
	}
	if sub.err != nil {
		d.err = sub.err
		return nil
	}
	return out
}

// value reads one typed field value.
func (d *Decoder) value() any {
	switch kind := d.Octet(); kind {
	case 't':
		return d.Octet() != 0
	case 'b':
		return int8(d.Octet())
	case 'B':
		return d.Octet()
	case 's':
		return int16(d.Short())
	case 'u':
		return d.Short()
	case 'I':
		return int32(d.Long())
	case 'i':
		return d.Long()
	case 'l':
		return int64(d.LongLong())
	case 'f':
		return math.Float32frombits(d.Long())
	case 'd':
		return math.Float64frombits(d.LongLong())
	case 'D':
		return Decimal{Scale: d.Octet(), Value: int32(d.Long())}
	case 'S':
		return string(d.LongStr())
	case 'A':
		return d.array()
	case 'T':
		return d.Timestamp()
	case 'F':
		t := d.Table()
		if t == nil {
			t = Table{}
		}
		return t
	case 'x':
		b := d.LongStr()
		if b == nil {
			b = []byte{}
		}
		return b
	case 'V':
		return nil
	default:
		if d.err == nil {
			d.fail("unknown field type %q", kind)
		}
		return nil
	}
}

// Encoder appends AMQP types to a buffer.
type Encoder struct {
	Buf []byte
	err error
}

// Err is the first value that could not be encoded (a string too long for
// a short string, a table value of a type AMQP lacks).
func (e *Encoder) Err() error { return e.err }

func (e *Encoder) Octet(v uint8)     { e.Buf = append(e.Buf, v) }
func (e *Encoder) Short(v uint16)    { e.Buf = binary.BigEndian.AppendUint16(e.Buf, v) }
func (e *Encoder) Long(v uint32)     { e.Buf = binary.BigEndian.AppendUint32(e.Buf, v) }
func (e *Encoder) LongLong(v uint64) { e.Buf = binary.BigEndian.AppendUint64(e.Buf, v) }

func (e *Encoder) Timestamp(t time.Time) {
	if t.IsZero() {
		e.LongLong(0)
		return
	}
	e.LongLong(uint64(t.Unix()))
}

// ShortStr appends s, cut to 255 bytes (and noted in Err) if longer.
func (e *Encoder) ShortStr(s string) {
	if len(s) > 255 {
		if e.err == nil {
			e.err = fmt.Errorf("amqp: short string of %d bytes", len(s))
		}
		s = s[:255]
	}
	e.Buf = append(e.Buf, byte(len(s)))
	e.Buf = append(e.Buf, s...)
}

func (e *Encoder) LongStr(b []byte) {
	e.Long(uint32(len(b)))
	e.Buf = append(e.Buf, b...)
}

// Table appends a field table; keys go in sorted order so that encoding is
// deterministic.
func (e *Encoder) Table(t Table) {
	start := len(e.Buf)
	e.Long(0)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		e.ShortStr(k)
		e.value(t[k])
	}
	binary.BigEndian.PutUint32(e.Buf[start:], uint32(len(e.Buf)-start-4))
}

func (e *Encoder) value(v any) {
	switch v := v.(type) {
	case bool:
		e.Octet('t')
		if v {
			e.Octet(1)
		} else {
			e.Octet(0)
		}
	case int8:
		e.Octet('b')
		e.Octet(uint8(v))
	case uint8:
		e.Octet('B')
		e.Octet(v)
	case int16:
		e.Octet('s')
		e.Short(uint16(v))
	case uint16:
		e.Octet('u')
		e.Short(v)
	case int32:
		e.Octet('I')
		e.Long(uint32(v))
	case uint32:
		e.Octet('i')
		e.Long(v)
	case int64:
		e.Octet('l')
		e.LongLong(uint64(v))
	case int:
		e.Octet('l')
		e.LongLong(uint64(v))
	case float32:
		e.Octet('f')
		e.Long(math.Float32bits(v))
	case float64:
		e.Octet('d')
		e.LongLong(math.Float64bits(v))
	case Decimal:
		e.Octet('D')
		e.Octet(v.Scale)
		e.Long(uint32(v.Value))
	case string:
		e.Octet('S')
		e.Long(uint32(len(v)))
		e.Buf = append(e.Buf, v...)
	case []any:
		e.Octet('A')
		start := len(e.Buf)
		e.Long(0)
		for _, x := range v {
			e.value(x)
		}
		binary.BigEndian.PutUint32(e.Buf[start:], uint32(len(e.Buf)-start-4))
	case time.Time:
		e.Octet('T')
		e.Timestamp(v)
	case Table:
		e.Octet('F')
		e.Table(v)
	case []byte:
		e.Octet('x')
		e.LongStr(v)
	case nil:
		e.Octet('V')
	default:
		if e.err == nil {
			e.err = fmt.Errorf("amqp: cannot encode a %T in a field table", v)
		}
		e.Octet('V')
	}
}

// sortStrings is an insertion sort: tables are small.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// NewMethod returns an empty method of the class and method ids, or nil
// when the specification has none.
func NewMethod(class, method uint16) Method { return newMethod(class, method) }

// DecodeMethod decodes a method frame's payload. Trailing bytes are an
// error.
func DecodeMethod(payload []byte) (Method, error) {
	d := Decoder{buf: payload}
	class, id := d.Short(), d.Short()
	if d.err != nil {
		return nil, d.err
	}
	m := newMethod(class, id)
	if m == nil {
		return nil, fmt.Errorf("%w: class %d method %d", ErrUnknownMethod, class, id)
	}
	m.Decode(&d)
	if d.err != nil {
		return nil, fmt.Errorf("%s: %w", m.MethodName(), d.err)
	}
	if d.Remaining() != 0 {
		return nil, fmt.Errorf("%w: %s: %d trailing bytes", ErrMalformed, m.MethodName(), d.Remaining())
	}
	return m, nil
}
