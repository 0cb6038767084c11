package record

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestVarints(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193, 1 << 20, math.MaxInt32, math.MinInt32} {
		b := append([]byte{0xee}, binary.AppendVarint(nil, v)...)
		if n := varintSize(v); n != len(b)-1 {
			t.Errorf("varintSize(%d) = %d, want %d", v, n, len(b)-1)
		}
		got, next, ok := readVarint(b, 1)
		if !ok || int64(got) != v || next != len(b) {
			t.Errorf("readVarint(%d) = %d, %d, %t", v, got, next, ok)
		}
	}
	for _, v := range []int64{0, -1, math.MaxInt32 + 1, math.MinInt32 - 1, math.MaxInt64, math.MinInt64, 1 << 62} {
		b := binary.AppendVarint(nil, v)
		if n := varintSize(v); n != len(b) {
			t.Errorf("varintSize(%d) = %d, want %d", v, n, len(b))
		}
		got, next, ok := readVarlong(b, 0)
		if !ok || got != v || next != len(b) {
			t.Errorf("readVarlong(%d) = %d, %d, %t", v, got, next, ok)
		}
	}

	for _, tc := range []struct {
		name string
		b    []byte
		long bool
	}{
		{"empty", nil, false},
		{"cut after one", []byte{0x80}, false},
		{"cut after two", []byte{0x80, 0x80}, false},
		{"int32 over 32 bits", []byte{0xff, 0xff, 0xff, 0xff, 0x1f}, false},
		{"int32 six bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, false},
		{"int64 over 64 bits", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, true},
		{"int64 eleven bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, true},
	} {
		var ok bool
		if tc.long {
			_, _, ok = readVarlong(tc.b, 0)
		} else {
			_, _, ok = readVarint(tc.b, 0)
		}
		if ok {
			t.Errorf("%s: accepted % x", tc.name, tc.b)
		}
	}

	// Kafka accepts non-minimal encodings; so do we.
	if v, next, ok := readVarint([]byte{0x82, 0x80, 0x00}, 0); !ok || v != 1 || next != 3 {
		t.Errorf("non-minimal varint: %d %d %t", v, next, ok)
	}
	if v, _, ok := readVarint([]byte{0xfe, 0xff, 0xff, 0xff, 0x0f}, 0); !ok || v != math.MaxInt32 {
		t.Errorf("five-byte MaxInt32: %d %t", v, ok)
	}
}
