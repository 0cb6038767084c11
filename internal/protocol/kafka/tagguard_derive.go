package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Deriving the wire layouts of flexible requests from kmsg.
//
// For every struct of a request (the request, the elements of its arrays,
// its tagged structs), at every flexible version Weir serves, each field of
// the Go struct is set in turn to a value other than its default and the
// request is encoded with kmsg's AppendTo. The struct carries one unknown
// tag with a signature value, which marks where its tagged-field section
// is: the section ends with the signature, and while only the signature is
// in it, the section is the count byte 1 and the signature's entry. Then:
//
//   - the encoding did not change: the field is not sent at this version;
//   - the bytes before the section are unchanged and the section now holds
//     two entries, the new one first: the field is a tagged field, with
//     that entry's key (kmsg encodes known tags before unknown ones);
//   - otherwise the field is in the body, at its place in the struct (kmsg
//     declares and encodes fields in the order of the protocol's
//     definition). Its encoding follows from its Go type: in flexible
//     versions kmsg encodes strings, bytes and arrays in their compact forms
//     and integers at their fixed sizes.
//
// Positions are found with the walker itself: the layouts of the enclosing
// structs are derived first, so walking the encoding with them finds where
// the struct being derived starts (and, inside a tagged field, the tag's
// value, whose size prefix changes with the field). Every derived layout is
// then checked: walking each probe encoding must end exactly at the end of
// the struct's tagged-field section. A kmsg upgrade that breaks any of these
// assumptions fails here, at init, with the API, version and field named,
// rather than letting a request through unchecked.

// The signature unknown tag placed on the struct being derived.
const probeSigKey = 10007

var probeSig = []byte("\xf1weir-probe-signature\x9e")

func init() {
	if len(apis) == 0 {
		panic("kafka: the tag guard's layouts are derived from the apis table, which is not initialized yet")
	}
	maxKey := int16(0)
	for key := range apis {
		maxKey = max(maxKey, key)
	}
	requestLayouts = make([][]*wireLayout, maxKey+1)
	for key, a := range apis {
		requestLayouts[key] = make([]*wireLayout, a.max+1)
		for v := a.min; v <= a.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			if !req.IsFlexible() {
				continue
			}
			l, err := deriveRequestLayout(key, v)
			if err != nil {
				panic(fmt.Sprintf("kafka: deriving the wire layout of %s v%d from kmsg: %v", kmsg.NameForKey(key), v, err))
			}
			requestLayouts[key][v] = l
		}
	}
}

// pathStep leads from a struct to a struct inside it: the field, and
// whether it is an array whose single element the path goes on into.
type pathStep struct {
	field int
	array bool
}

// layoutProber derives the layouts of one request at one version.
type layoutProber struct {
	key     int16
	version int16
	root    *wireLayout
}

func deriveRequestLayout(key, version int16) (*wireLayout, error) {
	p := &layoutProber{key: key, version: version, root: &wireLayout{tagged: true}}
	if err := p.deriveStruct(nil, p.root); err != nil {
		return nil, err
	}
	return p.root, nil
}

// instantiate builds a default request in which the struct at path exists
// (each array on the way holds one default element) and returns the
// request and that struct.
func (p *layoutProber) instantiate(path []pathStep) (kmsg.Request, reflect.Value) {
	req := kmsg.RequestForKey(p.key)
	req.SetVersion(p.version)
	cur := reflect.ValueOf(req).Elem()
	for _, step := range path {
		f := cur.Field(step.field)
		if step.array {
			s := reflect.MakeSlice(f.Type(), 1, 1)
			setDefault(s.Index(0))
			f.Set(s)
			cur = s.Index(0)
		} else {
			cur = f
		}
	}
	return req, cur
}

// setDefault calls the Default method of the struct v, if it has one.
func setDefault(v reflect.Value) {
	if d, ok := v.Addr().Interface().(interface{ Default() }); ok {
		d.Default()
	}
}

// probe is one encoding of the request, with the struct being derived
// located in it: buf holds the struct from start, and its tagged-field
// section ends with the signature entry at sigEnd.
type probe struct {
	whole  []byte
	buf    []byte
	start  int
	sigEnd int
	count  int // where the section's count byte is, if only the signature is in it
}

// encode encodes the request with the struct at path carrying the
// signature tag, after mod (if any) changed the struct, and locates the
// struct.
func (p *layoutProber) encode(path []pathStep, target *wireLayout, mod func(s reflect.Value)) (probe, error) {
	req, s := p.instantiate(path)
	tags := s.FieldByName("UnknownTags")
	if !tags.IsValid() || tags.Type() != reflect.TypeFor[kmsg.Tags]() {
		return probe{}, fmt.Errorf("%s has no UnknownTags", s.Type())
	}
	tags.Addr().Interface().(*kmsg.Tags).Set(probeSigKey, probeSig)
	if mod != nil {
		mod(s)
	}
	pr := probe{whole: req.AppendTo(nil)}
	pr.buf, pr.start = pr.whole, 0
	if len(path) > 0 {
		obs := &walkObserver{target: target}
		if _, err := p.root.walk(pr.whole, 0, obs); !errors.Is(err, errObserved) {
			if err == nil {
				err = errors.New("the walk did not reach it")
			}
			return probe{}, fmt.Errorf("locating %s in its encoding: %w", s.Type(), err)
		}
		pr.buf, pr.start = obs.buf, obs.at
	}
	if bytes.Count(pr.buf, probeSig) != 1 {
		return probe{}, fmt.Errorf("the signature of %s is not in its encoding once", s.Type())
	}
	sig := bytes.Index(pr.buf, probeSig)
	pr.sigEnd = sig + len(probeSig)
	pr.count = sig - uvarintLen(uint32(len(probeSig))) - uvarintLen(probeSigKey) - 1
	return pr, nil
}

// deriveStruct fills l, the layout of the struct at path, then derives the
// structs inside it.
func (p *layoutProber) deriveStruct(path []pathStep, l *wireLayout) error {
	_, s := p.instantiate(path)
	t := s.Type()
	base, err := p.encode(path, l, nil)
	if err != nil {
		return err
	}
	if base.count < base.start || base.buf[base.count] != 1 {
		return fmt.Errorf("%s: no tagged-field section before the signature", t)
	}
	bodyLen := base.count - base.start
	type child struct {
		path []pathStep
		l    *wireLayout
	}
	var children []child
	probes := []probe{base}
	type taggedValue struct {
		l     *wireLayout
		bytes []byte
	}
	var taggedValues []taggedValue
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "Version" || f.Name == "UnknownTags" {
			continue
		}
		mod := func(s reflect.Value) { setProbeValue(s.Field(i)) }
		pr, err := p.encode(path, l, mod)
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		if bytes.Equal(pr.whole, base.whole) {
			continue // not sent at this version
		}
		childPath := append(append([]pathStep(nil), path...), pathStep{field: i})
		if key, val, ok := taggedEntry(base, pr, bodyLen); ok {
			value, err := fieldLayout(f.Type, childPath, func(c *wireLayout) { children = append(children, child{childPath, c}) })
			if err != nil {
				return fmt.Errorf("%s.%s (tag %d): %w", t, f.Name, key, err)
			}
			for _, k := range l.known {
				if k.key == key {
					return fmt.Errorf("%s.%s: tag %d seen twice", t, f.Name, key)
				}
			}
			l.known = append(l.known, knownTag{key: key, value: value})
			taggedValues = append(taggedValues, taggedValue{value, val})
			continue
		}
		if pr.count < pr.start || pr.buf[pr.count] != 1 {
			return fmt.Errorf("%s.%s: changes the tagged fields but is not a tagged field", t, f.Name)
		}
		value, err := fieldLayout(f.Type, childPath, func(c *wireLayout) { children = append(children, child{childPath, c}) })
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		l.ops = append(l.ops, value.ops...)
		probes = append(probes, pr)
	}
	for _, c := range children {
		if err := p.deriveStruct(c.path, c.l); err != nil {
			return err
		}
	}
	// Merge runs of fixed-size fields, then check the layout against
	// every encoding it was derived from.
	merged := l.ops[:0]
	for _, op := range l.ops {
		if n := len(merged); n > 0 && op.kind == opSkip && merged[n-1].kind == opSkip {
			merged[n-1].size += op.size
			continue
		}
		merged = append(merged, op)
	}
	l.ops = merged
	for _, pr := range probes {
		end, err := l.walk(pr.buf, pr.start, nil)
		if err != nil || end != pr.sigEnd {
			return fmt.Errorf("%s: the derived layout does not read kmsg's encoding back (end %d, want %d, err %v)", t, end, pr.sigEnd, err)
		}
	}
	for _, tv := range taggedValues {
		end, err := tv.l.walk(tv.bytes, 0, nil)
		if err != nil || end != len(tv.bytes) {
			return fmt.Errorf("%s: the derived layout of a tagged field does not read kmsg's encoding back (end %d, want %d, err %v)", t, end, len(tv.bytes), err)
		}
	}
	return nil
}

// taggedEntry reports whether pr differs from base by one tagged field
// placed before the signature, and returns its key and value.
func taggedEntry(base, pr probe, bodyLen int) (uint32, []byte, bool) {
	c := pr.start + bodyLen
	if c >= len(pr.buf) || !bytes.Equal(pr.buf[pr.start:c], base.buf[base.start:base.start+bodyLen]) || pr.buf[c] != 2 {
		return 0, nil, false
	}
	q := c + 1
	key, n := readUvarint(pr.buf[q:])
	if n == 0 {
		return 0, nil, false
	}
	q += n
	size, n := readUvarint(pr.buf[q:])
	if n == 0 || uint64(size) > uint64(len(pr.buf)-q-n) {
		return 0, nil, false
	}
	q += n
	value := pr.buf[q : q+int(size)]
	q += int(size)
	// The signature's entry follows the new one.
	sigEntry := q + uvarintLen(probeSigKey) + uvarintLen(uint32(len(probeSig))) + len(probeSig)
	if sigEntry != pr.sigEnd {
		return 0, nil, false
	}
	return key, value, true
}

// fieldLayout is the layout of a field of Go type t in a flexible version:
// a layout with the field's single op, or for a struct a new layout that
// the caller derives later (addChild).
func fieldLayout(t reflect.Type, path []pathStep, addChild func(*wireLayout)) (*wireLayout, error) {
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return &wireLayout{ops: []wireOp{{kind: opSkip, size: 1}}, fixedSize: 1}, nil
	case reflect.Int16, reflect.Uint16:
		return &wireLayout{ops: []wireOp{{kind: opSkip, size: 2}}, fixedSize: 2}, nil
	case reflect.Int32, reflect.Uint32:
		return &wireLayout{ops: []wireOp{{kind: opSkip, size: 4}}, fixedSize: 4}, nil
	case reflect.Int64, reflect.Uint64, reflect.Float64:
		return &wireLayout{ops: []wireOp{{kind: opSkip, size: 8}}, fixedSize: 8}, nil
	case reflect.Array:
		if t.Elem().Kind() != reflect.Uint8 {
			return nil, fmt.Errorf("unsupported type %s", t)
		}
		return &wireLayout{ops: []wireOp{{kind: opSkip, size: t.Len()}}, fixedSize: t.Len()}, nil
	case reflect.String:
		return &wireLayout{ops: []wireOp{{kind: opString}}}, nil
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.String {
			return nil, fmt.Errorf("unsupported type %s", t)
		}
		return &wireLayout{ops: []wireOp{{kind: opNullable}}}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return &wireLayout{ops: []wireOp{{kind: opNullable}}}, nil
		}
		var elem *wireLayout
		if t.Elem().Kind() == reflect.Struct {
			if path == nil {
				return nil, fmt.Errorf("unsupported type %s", t)
			}
			elem = &wireLayout{tagged: true}
			path[len(path)-1].array = true
			addChild(elem)
		} else {
			var err error
			if elem, err = fieldLayout(t.Elem(), nil, nil); err != nil {
				return nil, err
			}
		}
		return &wireLayout{ops: []wireOp{{kind: opArray, elem: elem}}}, nil
	case reflect.Struct:
		if t == reflect.TypeFor[kmsg.Tags]() || path == nil {
			return nil, fmt.Errorf("unsupported type %s", t)
		}
		s := &wireLayout{tagged: true}
		addChild(s)
		return &wireLayout{ops: []wireOp{{kind: opStruct, elem: s}}}, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

// setProbeValue sets v to a value other than its default, chosen so that
// an encoding other than the one its type implies would change the
// encoding's length (a varint instead of a fixed integer, say).
func setProbeValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x := int64(0x12345678_9abcdef0) >> (64 - v.Type().Bits())
		if v.Int() == x {
			x--
		}
		v.SetInt(x)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x := uint64(0x12345678_9abcdef0) >> (64 - v.Type().Bits())
		if v.Uint() == x {
			x--
		}
		v.SetUint(x)
	case reflect.Float64:
		v.SetFloat(v.Float() + 1.5)
	case reflect.Array:
		for i := range v.Len() {
			v.Index(i).SetUint(v.Index(i).Uint() + uint64(i) + 1)
		}
	case reflect.String:
		v.SetString(v.String() + "abc")
	case reflect.Pointer:
		s := "abc"
		if !v.IsNil() {
			s = v.Elem().String() + s
		}
		v.Set(reflect.ValueOf(&s))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(append(bytes.Clone(v.Bytes()), 1, 2, 3))
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if e := s.Index(0); e.Kind() == reflect.Struct {
			setDefault(e)
		} else {
			setProbeValue(e)
		}
		v.Set(s)
	case reflect.Struct:
		// A struct differs from its default once it carries a tag.
		if tags := v.FieldByName("UnknownTags"); tags.IsValid() {
			tags.Addr().Interface().(*kmsg.Tags).Set(probeSigKey+1, []byte{0x5a})
		}
	}
}

func uvarintLen(u uint32) int {
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
