package kafka

import (
	"errors"
	"fmt"
)

// The tagged-field guard.
//
// kmsg reads every tagged-field section of a flexible request with a loop
// of "count" iterations that goes on after its reader ran out of bytes, so
// a section that declares 0xFFFFFFFF entries costs about four billion
// iterations (two minutes of a core) whatever the frame's length. Before a
// flexible body reaches kmsg, checkFlexibleBody walks it once, the way
// kmsg's decoder will read it, and refuses it when any tagged-field section
// declares more entries than the bytes left could hold (every entry is at
// least two bytes: a key and a size), or when any field runs past the end
// (kmsg would refuse the body too). A body the walker accepts decodes in
// kmsg with work and memory linear in its length; a body it refuses is one
// kmsg refuses as well, so every valid request decodes exactly as before.
//
// The walker needs each (API, version)'s wire layout: which fields are in
// the body at that version, in which encoding, and which fields travel as
// tagged fields. Writing that schema by hand for every API would rot when
// kmsg gains versions, so it is derived at init from kmsg itself
// (tagguard_derive.go): by reflection over the request structs and by
// probing kmsg's own encoder.

// Errors of the walker; parseRequest wraps them in ErrMalformed.
var (
	errTagCount  = errors.New("a tagged-field section declares more entries than the bytes left could hold")
	errTruncated = errors.New("a field runs past the end of the body")
)

// opKind is how one field is encoded in a flexible version.
type opKind uint8

const (
	opSkip     opKind = iota // a fixed number of bytes (integers, booleans, UUIDs)
	opString                 // a compact string that may not be null
	opNullable               // a compact nullable string, or compact (nullable) bytes
	opArray                  // a compact array of elem
	opStruct                 // a struct inline in the body
)

// wireOp is one field of a layout.
type wireOp struct {
	kind opKind
	size int         // opSkip: the byte count
	elem *wireLayout // opArray: the element; opStruct: the struct
}

// wireLayout is how one struct (or one array element, or one tagged
// field's value) is laid out at one version: its body fields in order and,
// for structs, a tagged-field section with the tags kmsg knows.
type wireLayout struct {
	ops    []wireOp
	tagged bool       // ends with a tagged-field section (every struct of a flexible version)
	known  []knownTag // the tagged fields kmsg decodes (others are kept as unknown tags)
	// fixedSize is the layout's size when it is a single fixed-size field
	// and no tags (an []int32 element): arrays of those are skipped at once.
	fixedSize int
}

// knownTag is a tagged field kmsg decodes: its value, read from a
// sub-reader bounded by the tag's size, is walked too.
type knownTag struct {
	key   uint32
	value *wireLayout
}

// walkObserver is used only while deriving layouts: the walk stops with
// errObserved where target's walk would start, recording the buffer and
// position it would start at.
type walkObserver struct {
	target *wireLayout
	buf    []byte
	at     int
}

var errObserved = errors.New("kafka: observed layout reached")

// requestLayouts[key][version] is the layout of a flexible request body,
// nil for non-flexible versions and APIs Weir does not serve. Built at
// init (tagguard_derive.go) and read-only afterwards.
var requestLayouts [][]*wireLayout

// checkFlexibleBody walks the body of a flexible request (what follows
// the request header) as kmsg will decode it, and returns errTagCount or
// errTruncated if kmsg would refuse it. It does one linear pass and does
// not allocate.
func checkFlexibleBody(key, version int16, body []byte) error {
	var l *wireLayout
	if key >= 0 && int(key) < len(requestLayouts) && version >= 0 && int(version) < len(requestLayouts[key]) {
		l = requestLayouts[key][version]
	}
	if l == nil {
		return fmt.Errorf("no wire layout for API %d v%d", key, version)
	}
	_, err := l.walk(body, 0, nil)
	return err
}

// walk reads one value of layout l from b at p and returns the position
// after it. Only derivation passes an observer.
func (l *wireLayout) walk(b []byte, p int, obs *walkObserver) (int, error) {
	if obs != nil && obs.target == l {
		obs.buf, obs.at = b, p
		return 0, errObserved
	}
	var err error
	for i := range l.ops {
		op := &l.ops[i]
		switch op.kind {
		case opSkip:
			if len(b)-p < op.size {
				return 0, errTruncated
			}
			p += op.size
		case opString, opNullable:
			u, n := readUvarint(b[p:])
			if n == 0 {
				return 0, errTruncated
			}
			p += n
			if u == 0 { // null: kmsg accepts it for bytes and nullable strings
				if op.kind == opString {
					return 0, errTruncated
				}
				continue
			}
			if int(u)-1 > len(b)-p {
				return 0, errTruncated
			}
			p += int(u) - 1
		case opArray:
			u, n := readUvarint(b[p:])
			if n == 0 {
				return 0, errTruncated
			}
			p += n
			// As kmsg's CompactArrayLen: int32 arithmetic, a length above
			// the bytes left is refused, a negative one is an empty array.
			count := int32(u) - 1
			if int(count) > len(b)-p {
				return 0, errTruncated
			}
			if count <= 0 {
				continue
			}
			if e := op.elem; e.fixedSize > 0 {
				if int(count)*e.fixedSize > len(b)-p {
					return 0, errTruncated
				}
				p += int(count) * e.fixedSize
				continue
			}
			for range count {
				if p, err = op.elem.walk(b, p, obs); err != nil {
					return 0, err
				}
			}
		case opStruct:
			if p, err = op.elem.walk(b, p, obs); err != nil {
				return 0, err
			}
		}
	}
	if !l.tagged {
		return p, nil
	}
	count, n := readUvarint(b[p:])
	if n == 0 {
		return 0, errTruncated
	}
	p += n
	if uint64(count)*2 > uint64(len(b)-p) {
		return 0, errTagCount
	}
	for range count {
		key, n := readUvarint(b[p:])
		if n == 0 {
			return 0, errTruncated
		}
		p += n
		size, n := readUvarint(b[p:])
		if n == 0 {
			return 0, errTruncated
		}
		p += n
		if uint64(size) > uint64(len(b)-p) {
			return 0, errTruncated
		}
		end := p + int(size)
		for i := range l.known {
			if l.known[i].key == key {
				// kmsg reads a known tag from a reader bounded by its size
				// and ignores what the value leaves unread.
				if _, err := l.known[i].value.walk(b[p:end], 0, obs); err != nil {
					return 0, err
				}
				break
			}
		}
		p = end
	}
	return p, nil
}

// readUvarint reads an unsigned varint of at most 32 bits as kmsg does: at
// most five bytes, the fifth no larger than 0x0f. It returns the value and
// its length, or a length of 0 for a truncated or overlong varint.
func readUvarint(b []byte) (uint32, int) {
	var x uint32
	for i := 0; i < 5 && i < len(b); i++ {
		c := b[i]
		if i == 4 {
			if c > 0x0f {
				return 0, 0
			}
			return x | uint32(c)<<28, 5
		}
		x |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}
