package filter

import (
	"errors"
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// headerMap is the CEL value of the headers variable: a read-only
// map<string, string> view of a record's header list. It builds no Go map:
// with the handful of headers records carry, a scan of the list is cheaper
// than hashing, and a filter that reads one header converts only that one
// value. For a name that repeats, the last value wins.
type headerMap struct {
	headers []Header
	// lastIndex maps each name to its last position; built on first use,
	// and only for long lists (see isLast).
	lastIndex map[string]int
	// size is the number of distinct names plus one; 0 until counted.
	size int
	// entries holds the CEL values of the names and values (2i, 2i+1) that
	// a comprehension visited, so that nested comprehensions do not convert
	// them again; made on the first Fold.
	entries []ref.Val
}

// shortHeaderList is the length up to which duplicate names are found by
// scanning rather than through lastIndex.
const shortHeaderList = 16

var (
	_ traits.Mapper   = (*headerMap)(nil)
	_ traits.Foldable = (*headerMap)(nil)
)

func newHeaderMap(headers []Header) headerMap {
	return headerMap{headers: headers}
}

// lookup returns the last value for name.
func (m *headerMap) lookup(name string) ([]byte, bool) {
	for i := len(m.headers) - 1; i >= 0; i-- {
		if m.headers[i].Key == name {
			return m.headers[i].Value, true
		}
	}
	return nil, false
}

// isLast reports whether header i is the last one with its name, so that
// iterating over the headers that are last visits every name exactly once.
func (m *headerMap) isLast(i int) bool {
	name := m.headers[i].Key
	if len(m.headers) <= shortHeaderList {
		for _, h := range m.headers[i+1:] {
			if h.Key == name {
				return false
			}
		}
		return true
	}
	if m.lastIndex == nil {
		m.lastIndex = make(map[string]int, len(m.headers))
		for j, h := range m.headers {
			m.lastIndex[h.Key] = j
		}
	}
	return m.lastIndex[name] == i
}

// FindStringKey is the interpreter's fast path for headers['name'] with a
// constant name: no ref.Val is made for the key.
func (m *headerMap) FindStringKey(name string) (any, bool) {
	v, ok := m.lookup(name)
	if !ok {
		return nil, false
	}
	return types.String(bytesView(v)), true
}

// Find implements traits.Mapper.
func (m *headerMap) Find(key ref.Val) (ref.Val, bool) {
	switch k := key.(type) {
	case types.String:
		v, ok := m.lookup(string(k))
		if !ok {
			return nil, false
		}
		return types.String(bytesView(v)), true
	case *types.Err, *types.Unknown:
		return k, false
	}
	return nil, false
}

// Get implements traits.Indexer.
func (m *headerMap) Get(key ref.Val) ref.Val {
	v, ok := m.Find(key)
	if !ok {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

// Contains implements traits.Container: the in operator.
func (m *headerMap) Contains(key ref.Val) ref.Val {
	_, ok := m.Find(key)
	return types.Bool(ok)
}

// Size implements traits.Sizer: the number of distinct names.
func (m *headerMap) Size() ref.Val {
	if m.size == 0 {
		m.size = 1
		for i := range m.headers {
			if m.isLast(i) {
				m.size++
			}
		}
	}
	return types.Int(m.size - 1)
}

// IsZeroValue implements traits.Zeroer.
func (m *headerMap) IsZeroValue() bool { return len(m.headers) == 0 }

// Fold implements traits.Foldable, which comprehensions (exists, all, map,
// filter) prefer to an Iterator.
func (m *headerMap) Fold(f traits.Folder) {
	for i, h := range m.headers {
		if !m.isLast(i) {
			continue
		}
		if m.entries == nil {
			m.entries = make([]ref.Val, 2*len(m.headers))
		}
		name, value := m.entries[2*i], m.entries[2*i+1]
		if name == nil {
			name, value = types.String(h.Key), types.String(bytesView(h.Value))
			m.entries[2*i], m.entries[2*i+1] = name, value
		}
		if !f.FoldEntry(name, value) {
			return
		}
	}
}

// Iterator implements traits.Iterable: the names, each once.
func (m *headerMap) Iterator() traits.Iterator {
	return &headerNameIterator{m: m}
}

// Equal implements ref.Val: CEL map equality against any map value.
func (m *headerMap) Equal(other ref.Val) ref.Val {
	o, ok := other.(traits.Mapper)
	if !ok {
		return types.False
	}
	if m.Size() != o.Size() {
		return types.False
	}
	for i, h := range m.headers {
		if !m.isLast(i) {
			continue
		}
		theirs, found := o.Find(types.String(h.Key))
		if !found {
			return types.False
		}
		if types.Equal(types.String(bytesView(h.Value)), theirs) != types.True {
			return types.False
		}
	}
	return types.True
}

// native returns the headers as a Go map that owns copies of the values.
func (m *headerMap) native() map[string]string {
	out := make(map[string]string, len(m.headers))
	for _, h := range m.headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

// ConvertToNative implements ref.Val by way of a copied Go map.
func (m *headerMap) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return types.NewStringStringMap(types.DefaultTypeAdapter, m.native()).ConvertToNative(typeDesc)
}

// ConvertToType implements ref.Val.
func (m *headerMap) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, typeVal)
}

// Type implements ref.Val.
func (m *headerMap) Type() ref.Type { return types.MapType }

// Value implements ref.Val: a copied Go map.
func (m *headerMap) Value() any { return m.native() }

// headerNameIterator walks the distinct header names.
type headerNameIterator struct {
	m    *headerMap
	next int // index of the next header to consider
}

var _ traits.Iterator = (*headerNameIterator)(nil)

// skip advances next past headers whose name appears again later.
func (it *headerNameIterator) skip() {
	for it.next < len(it.m.headers) && !it.m.isLast(it.next) {
		it.next++
	}
}

// HasNext implements traits.Iterator.
func (it *headerNameIterator) HasNext() ref.Val {
	it.skip()
	return types.Bool(it.next < len(it.m.headers))
}

// Next implements traits.Iterator.
func (it *headerNameIterator) Next() ref.Val {
	it.skip()
	if it.next >= len(it.m.headers) {
		return types.NewErr("no more header names")
	}
	name := it.m.headers[it.next].Key
	it.next++
	return types.String(name)
}

// The iterator is a ref.Val too; it is never visible to expressions.

// ConvertToNative implements ref.Val.
func (it *headerNameIterator) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("type conversion on iterators not supported")
}

// ConvertToType implements ref.Val.
func (it *headerNameIterator) ConvertToType(ref.Type) ref.Val {
	return types.NewErr("type conversion on iterators not supported")
}

// Equal implements ref.Val.
func (it *headerNameIterator) Equal(ref.Val) ref.Val {
	return types.NewErr("equality on iterators not supported")
}

// Type implements ref.Val.
func (it *headerNameIterator) Type() ref.Type { return types.IteratorType }

// Value implements ref.Val.
func (it *headerNameIterator) Value() any { return nil }
