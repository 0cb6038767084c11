package state

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestTablePrefixesDistinct(t *testing.T) {
	seen := map[byte]string{}
	for _, tb := range tables {
		if other, ok := seen[tb.prefix]; ok {
			t.Fatalf("tables %s and %s share prefix %#x", tb.name, other, tb.prefix)
		}
		seen[tb.prefix] = tb.name
	}
}

// stringSamples are names chosen to stress the string encoding: prefixes of
// one another, NUL bytes, bytes equal to the escape codes, high bytes.
var stringSamples = []string{
	"", "a", "ab", "a\x00", "a\x00\x00", "a\x00\x01", "a\x00\xff", "a\x01", "a\xff",
	"\x00", "\x00\x01", "\x01", "\xff", "\xff\xff", "b", "g", "g2", "g\x00",
	"orders", "orders.eu", "orders-eu",
}

func TestStringEncoding(t *testing.T) {
	for _, a := range stringSamples {
		enc := appendString(nil, a)
		if len(enc) != encodedStringLen(a) {
			t.Errorf("encodedStringLen(%q) = %d, encoding has %d bytes", a, encodedStringLen(a), len(enc))
		}
		r := &keyReader{rest: enc, key: enc}
		got, err := r.string()
		if err != nil || got != a || len(r.rest) != 0 {
			t.Errorf("decode(encode(%q)) = %q, %v, %d bytes left", a, got, err, len(r.rest))
		}
		for _, b := range stringSamples {
			encB := appendString(nil, b)
			if want, got := strings.Compare(a, b), bytes.Compare(enc, encB); want != got {
				t.Errorf("order of %q vs %q: encoded compares %d, want %d", a, b, got, want)
			}
			if a != b && bytes.HasPrefix(encB, enc) {
				t.Errorf("encoding of %q is a prefix of encoding of %q", a, b)
			}
		}
	}
}

func TestStringDecodeRejectsGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, {'a'}, {'a', 0}, {'a', 0, 2}, {0, 0x80, 0, 1}} {
		r := &keyReader{rest: in, key: in}
		if _, err := r.string(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode %x: err = %v, want ErrCorrupt", in, err)
		}
	}
}

func TestPartitionEncodingOrder(t *testing.T) {
	parts := []int32{math.MinInt32, -2, -1, 0, 1, 2, 255, 256, math.MaxInt32}
	var prev []byte
	for _, p := range parts {
		enc := appendPartition(nil, p)
		if prev != nil && bytes.Compare(prev, enc) >= 0 {
			t.Errorf("partition %d does not sort after its predecessor", p)
		}
		prev = enc
		r := &keyReader{rest: enc, key: enc}
		if got, err := r.partition(); err != nil || got != p {
			t.Errorf("decode(encode(%d)) = %d, %v", p, got, err)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte{0x20, 0x01}, []byte{0x20, 0x02}},
		{[]byte{0x20, 0x01, 'g', 0x00, 0x01}, []byte{0x20, 0x01, 'g', 0x00, 0x02}},
		{[]byte{0x20, 0xff}, []byte{0x21}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, tc := range tests {
		if got := prefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("prefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestOffsetKeyRoundTrip(t *testing.T) {
	keys := []OffsetKey{
		{Group: "g", Stream: "s", Partition: 0},
		{Group: "g\x00x", Stream: "s\x00", Partition: -1},
		{Group: "\xff", Stream: "a\x00\xff", Partition: math.MaxInt32},
	}
	for _, k := range keys {
		got, err := decodeOffsetKey(offsetKey(k))
		if err != nil || got != k {
			t.Errorf("decodeOffsetKey(offsetKey(%+v)) = %+v, %v", k, got, err)
		}
	}
	if _, err := decodeOffsetKey(append(offsetKey(keys[0]), 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: err = %v, want ErrCorrupt", err)
	}
	if _, err := decodeOffsetKey(catalogKey(KindStream, "s")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("catalog key as offset key: err = %v, want ErrCorrupt", err)
	}
}

// FuzzStringEncoding checks that the encoding round-trips, preserves order
// and is prefix-free for any pair of strings.
func FuzzStringEncoding(f *testing.F) {
	for i, a := range stringSamples {
		f.Add(a, stringSamples[(i+1)%len(stringSamples)])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		encA, encB := appendString(nil, a), appendString(nil, b)
		for _, c := range []struct {
			s   string
			enc []byte
		}{{a, encA}, {b, encB}} {
			r := &keyReader{rest: slices.Clone(c.enc), key: c.enc}
			got, err := r.string()
			if err != nil || got != c.s || len(r.rest) != 0 {
				t.Fatalf("decode(encode(%q)) = %q, %v", c.s, got, err)
			}
		}
		if want, got := strings.Compare(a, b), bytes.Compare(encA, encB); want != got {
			t.Fatalf("order of %q vs %q: encoded %d, want %d", a, b, got, want)
		}
		if a != b && (bytes.HasPrefix(encA, encB) || bytes.HasPrefix(encB, encA)) {
			t.Fatalf("encodings of %q and %q are prefixes", a, b)
		}
	})
}
