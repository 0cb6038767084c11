package filter

import (
	"sync"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// Variable names.
const (
	varKey         = "key"
	varKeyBytes    = "key_bytes"
	varHasKey      = "has_key"
	varHeaders     = "headers"
	varValue       = "value"
	varValueString = "value_string"
	varTimestamp   = "timestamp"
	varPartition   = "partition"
	varOffset      = "offset"
	varStream      = "stream"
)

// activation supplies one record's variables to a CEL evaluation. It is
// lazy: a variable is converted to a CEL value only when the program reads
// it, and then remembered for the rest of the evaluation, so a filter on the
// key never looks at the headers and a filter on a header never converts the
// value. Activations are pooled; one serves one evaluation at a time.
type activation struct {
	in      Input
	headers headerMap

	// Converted variables; nil until first read.
	key, keyBytes, value, valueString, timestamp, partition, offset, stream ref.Val
	headersReady                                                            bool
}

var activationPool = sync.Pool{New: func() any { return new(activation) }}

// newActivation takes an activation from the pool and points it at in. The
// Input is copied so that the caller's pointer does not escape.
func newActivation(in *Input) *activation {
	a := activationPool.Get().(*activation)
	a.in = *in
	return a
}

// release clears the activation, so the pool keeps no record alive, and
// returns it to the pool.
func (a *activation) release() {
	*a = activation{}
	activationPool.Put(a)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varKey:
		if a.key == nil {
			a.key = types.String(bytesView(a.in.Key))
		}
		return a.key, true
	case varKeyBytes:
		if a.keyBytes == nil {
			a.keyBytes = types.Bytes(nonNil(a.in.Key))
		}
		return a.keyBytes, true
	case varHasKey:
		return types.Bool(a.in.Key != nil), true
	case varHeaders:
		if !a.headersReady {
			a.headers = newHeaderMap(a.in.Headers)
			a.headersReady = true
		}
		return &a.headers, true
	case varValue:
		if a.value == nil {
			a.value = types.Bytes(nonNil(a.in.Value))
		}
		return a.value, true
	case varValueString:
		if a.valueString == nil {
			a.valueString = types.String(bytesView(a.in.Value))
		}
		return a.valueString, true
	case varTimestamp:
		if a.timestamp == nil {
			a.timestamp = types.Timestamp{Time: a.in.Timestamp}
		}
		return a.timestamp, true
	case varPartition:
		if a.partition == nil {
			a.partition = types.Int(a.in.Partition)
		}
		return a.partition, true
	case varOffset:
		if a.offset == nil {
			a.offset = types.Int(a.in.Offset)
		}
		return a.offset, true
	case varStream:
		if a.stream == nil {
			a.stream = types.String(a.in.Stream)
		}
		return a.stream, true
	}
	return nil, false
}

// Parent implements interpreter.Activation: there is none.
func (a *activation) Parent() interpreter.Activation { return nil }

// bytesView returns b as a string without copying it. The string lives only
// as long as one evaluation, during which the caller promises not to modify
// b (see Input); every message that leaves Match is formatted into a fresh
// string, so nothing outlives the call that shares b's memory.
func bytesView(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// nonNil returns b, or an empty slice for nil, so CEL sees b"" rather than a
// nil value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
