package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// table identifies one key space: a prefix byte unique among tables and the
// version of the table's key and value layout. The prefix bytes are part of
// the on-disk format: never reuse or renumber one.
type table struct {
	name    string
	prefix  byte
	version byte
}

var (
	metaTable    = table{name: "meta", prefix: 0x01, version: 1}
	catalogTable = table{name: "catalog", prefix: 0x10, version: 1}
	offsetsTable = table{name: "offsets", prefix: 0x20, version: 1}
)

// tables lists every table so that a test can check that no two share a
// prefix. Add new tables here.
var tables = []table{metaTable, catalogTable, offsetsTable, cursorsTable, eventsTable}

// key returns a new key holding the table header, with room for extra more
// bytes.
func (t table) key(extra int) []byte {
	k := make([]byte, 2, 2+extra)
	k[0], k[1] = t.prefix, t.version
	return k
}

const (
	escapeByte       = 0x00 // starts an escape sequence in an encoded string
	escapedNUL       = 0xFF // escapeByte, escapedNUL encodes a 0x00 of the string
	stringTerminator = 0x01 // escapeByte, stringTerminator ends the string
)

// encodedStringLen is the length of s once encoded by appendString.
func encodedStringLen(s string) int {
	return len(s) + 2 + strings.Count(s, "\x00")
}

// appendString appends the order-preserving, prefix-free encoding of s: each
// 0x00 becomes 0x00 0xFF and the string ends with 0x00 0x01.
func appendString(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, escapeByte)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i+1]...)
		dst = append(dst, escapedNUL)
		s = s[i+1:]
	}
	return append(dst, escapeByte, stringTerminator)
}

// appendPartition appends p so that byte order equals numeric order.
func appendPartition(dst []byte, p int32) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(p)^(1<<31))
}

// keyReader decodes the components of a key written by the append functions.
type keyReader struct {
	rest []byte
	key  []byte // whole key, for error messages
}

func newKeyReader(key []byte, t table) (*keyReader, error) {
	if len(key) < 2 || key[0] != t.prefix || key[1] != t.version {
		return nil, fmt.Errorf("%w: key %x is not in table %s v%d", ErrCorrupt, key, t.name, t.version)
	}
	return &keyReader{rest: key[2:], key: key}, nil
}

func (r *keyReader) corrupt(what string) error {
	return fmt.Errorf("%w: key %x: bad %s", ErrCorrupt, r.key, what)
}

// string decodes a string written by appendString.
func (r *keyReader) string() (string, error) {
	var decoded []byte
	b := r.rest
	for {
		i := bytes.IndexByte(b, escapeByte)
		if i < 0 || i+1 >= len(b) {
			return "", r.corrupt("string")
		}
		switch b[i+1] {
		case stringTerminator:
			r.rest = b[i+2:]
			if decoded == nil {
				return string(b[:i]), nil
			}
			return string(append(decoded, b[:i]...)), nil
		case escapedNUL:
			decoded = append(decoded, b[:i+1]...)
			b = b[i+2:]
		default:
			return "", r.corrupt("string escape")
		}
	}
}

func (r *keyReader) byte() (byte, error) {
	if len(r.rest) < 1 {
		return 0, r.corrupt("byte")
	}
	c := r.rest[0]
	r.rest = r.rest[1:]
	return c, nil
}

func (r *keyReader) partition() (int32, error) {
	if len(r.rest) < 4 {
		return 0, r.corrupt("partition")
	}
	p := int32(binary.BigEndian.Uint32(r.rest) ^ (1 << 31))
	r.rest = r.rest[4:]
	return p, nil
}

// done reports an error unless the whole key was consumed.
func (r *keyReader) done() error {
	if len(r.rest) != 0 {
		return r.corrupt("trailing bytes")
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key that starts with
// prefix, for use as an exclusive upper bound. It returns nil (no bound) if
// prefix is all 0xFF bytes.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// checkName rejects names the key encoding cannot or should not store.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, what)
	}
	return nil
}
