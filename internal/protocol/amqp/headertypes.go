package amqp

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/weirmq/weir/internal/broker"
	"github.com/weirmq/weir/internal/protocol/amqp/wire"
)

// headerAMQPTypes is the record header that keeps the AMQP field types of
// a message's headers-table entries that are not strings. Weir headers are
// bytes, and every entry is stored as text other protocols read as it is
// (an int32 2 is the header "2"; arrays and tables are JSON); this one
// extra header, a JSON object from entry name to the entry's type, lets an
// AMQP consumer get each value back with its type. A scalar's type is its
// letter in the field-table grammar; an array's is the JSON array of its
// elements' types and a table's the JSON object of its fields' types, so
// nested values keep their types too: {"attempt":"I","ok":"t",
// "tags":["S","l"]}. Long strings at the top level, the common case, are
// not listed, so a message whose headers are all strings carries no extra
// header. A Kafka or native publisher may set it too, to give AMQP
// consumers typed headers. The name is reserved: a headers-table entry of
// that name is not stored.
const headerAMQPTypes = "x-amqp-types"

// describe is a value's type: its field-table letter ("S" for a
// string), or for an array or table the types of its elements.
func describe(v any) any {
	switch v := v.(type) {
	case string:
		return "S"
	case int8:
		return "b"
	case uint8:
		return "B"
	case int16:
		return "s"
	case uint16:
		return "u"
	case int32:
		return "I"
	case uint32:
		return "i"
	case int64:
		return "l"
	case float32:
		return "f"
	case float64:
		return "d"
	case bool:
		return "t"
	case time.Time:
		return "T"
	case wire.Decimal:
		return "D"
	case []byte:
		return "x"
	case nil:
		return "V"
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = describe(x)
		}
		return out
	case wire.Table:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = describe(x)
		}
		return out
	}
	return "S" // not a field-table type: stored as text
}

// typesHeader is the x-amqp-types header of a headers table, if any entry
// is not a string.
func typesHeader(t wire.Table) (broker.Header, bool) {
	var types map[string]any
	for k, v := range t {
		if k == headerAMQPTypes {
			continue
		}
		if d := describe(v); d != "S" {
			if types == nil {
				types = make(map[string]any)
			}
			types[k] = d
		}
	}
	if types == nil {
		return broker.Header{}, false
	}
	b, _ := json.Marshal(types) // sorted keys
	return broker.Header{Key: headerAMQPTypes, Value: b}, true
}

// applyTypes gives the entries of a delivered headers table (strings) the
// types an x-amqp-types header names. A value that does not parse as its
// type (another protocol rewrote it) stays a string.
func applyTypes(t wire.Table, typesJSON string) {
	var types map[string]any
	if json.Unmarshal([]byte(typesJSON), &types) != nil {
		return
	}
	for k, desc := range types {
		s, ok := t[k].(string)
		if !ok {
			continue
		}
		if letter, isLetter := desc.(string); isLetter && letter != "A" && letter != "F" {
			if v, ok := typedValue(letter, s); ok {
				t[k] = v
			}
			continue
		}
		// An array or a table: JSON text.
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			continue
		}
		if v, ok := fromJSON(desc, v); ok {
			t[k] = v
		}
	}
}

// typedValue parses a scalar header's text as the field type letter.
func typedValue(letter, s string) (any, bool) {
	integer := func(bits int) (int64, bool) {
		n, err := strconv.ParseInt(s, 10, bits)
		return n, err == nil
	}
	unsigned := func(bits int) (uint64, bool) {
		n, err := strconv.ParseUint(s, 10, bits)
		return n, err == nil
	}
	switch letter {
	case "S":
		return s, true
	case "b":
		n, ok := integer(8)
		return int8(n), ok
	case "B":
		n, ok := unsigned(8)
		return uint8(n), ok
	case "s":
		n, ok := integer(16)
		return int16(n), ok
	case "u":
		n, ok := unsigned(16)
		return uint16(n), ok
	case "I":
		n, ok := integer(32)
		return int32(n), ok
	case "i":
		n, ok := unsigned(32)
		return uint32(n), ok
	case "l":
		return integer(64)
	case "f":
		f, err := strconv.ParseFloat(s, 32)
		return float32(f), err == nil
	case "d":
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil
	case "t":
		b, err := strconv.ParseBool(s)
		return b, err == nil
	case "T":
		at, err := time.Parse(time.RFC3339, s)
		return at, err == nil
	case "D":
		return parseDecimal(s)
	case "x":
		return []byte(s), true
	case "V":
		return nil, s == ""
	}
	return nil, false
}

// parseDecimal parses a decimal fraction ("-12.345") as an AMQP decimal.
func parseDecimal(s string) (wire.Decimal, bool) {
	digits, frac, _ := strings.Cut(s, ".")
	if len(frac) > math.MaxUint8 {
		return wire.Decimal{}, false
	}
	n, err := strconv.ParseInt(digits+frac, 10, 32)
	if err != nil || strings.ContainsAny(frac, "+-") {
		return wire.Decimal{}, false
	}
	return wire.Decimal{Scale: uint8(len(frac)), Value: int32(n)}, true
}

// fromJSON turns a value decoded from an array's or table's JSON into a
// field-table value of the type desc describes (as props.go wrote it: byte
// arrays in base64, decimals and timestamps as text). Where desc says
// nothing (an "A" or "F" without element types, or a mismatch), integers
// become int64 (long), other numbers float64 (double), the rest stays as
// JSON has it.
func fromJSON(desc, v any) (any, bool) {
	switch v := v.(type) {
	case []any:
		elems, _ := desc.([]any)
		if elems != nil && len(elems) != len(v) || elems == nil && desc != nil && desc != "A" {
			return nil, false
		}
		out := make([]any, len(v))
		for i, x := range v {
			var d any
			if elems != nil {
				d = elems[i]
			}
			var ok bool
			if out[i], ok = fromJSON(d, x); !ok {
				return nil, false
			}
		}
		return out, true
	case map[string]any:
		fields, _ := desc.(map[string]any)
		if fields == nil && desc != nil && desc != "F" {
			return nil, false
		}
		out := make(wire.Table, len(v))
		for k, x := range v {
			var ok bool
			if out[k], ok = fromJSON(fields[k], x); !ok {
				return nil, false
			}
		}
		return out, true
	case json.Number:
		if letter, ok := desc.(string); ok && letter != "S" && letter != "x" && letter != "D" && letter != "T" {
			return typedValue(letter, v.String())
		}
		if n, err := v.Int64(); err == nil {
			return n, true
		}
		f, err := v.Float64()
		return f, err == nil
	case string:
		switch desc {
		case "x":
			b, err := base64.StdEncoding.DecodeString(v)
			return b, err == nil
		case "D", "T":
			return typedValue(desc.(string), v)
		}
		return v, true
	case bool, nil:
		return v, true
	}
	return nil, false
}
