package filter

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fuzzInputs are the records every filter that compiles is matched against.
func fuzzInputs() []*Input {
	many := &Input{Key: []byte{0xff, 0xfe}, Value: []byte{0, 1, 2}}
	for i := range 40 {
		many.Headers = append(many.Headers, Header{Key: string(rune('a' + i%26)), Value: []byte{byte(i)}})
	}
	return []*Input{
		sampleInput(),
		otherInput(),
		{},
		{Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), Partition: -1, Offset: -1},
		many,
	}
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`headers['type'] == 'order.created'`,
		`key.startsWith('eu-')`,
		`'priority' in headers && int(headers['priority']) > 5`,
		`timestamp > timestamp('2026-01-01T00:00:00Z')`,
		`partition % 2 == 0`,
		`value_string.contains('urgent')`,
		`!has_key`,
		`headers.exists(k, k.startsWith('x-'))`,
		`headers[?'x'].orValue('') == '' && size(value) < 10`,
		`headers == {'type': 'a'} || key_bytes == b'\xff'`,
		`headers.all(a, headers.all(b, a + b != ''))`,
		`timestamp.getDayOfWeek() == 1 && offset / (partition - 3) > 0`,
		`stream.split('.').size() > 1`,
		`headers['type'`,
		`key`,
		``,
	} {
		f.Add(seed)
	}
	inputs := fuzzInputs()
	f.Fuzz(func(t *testing.T, expr string) {
		filter, err := Compile(expr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Compile(%q): error %q does not wrap ErrInvalid", expr, err)
			}
			return
		}
		if filter.String() != expr {
			t.Fatalf("String() = %q, want %q", filter.String(), expr)
		}
		for _, in := range inputs {
			matched, err := filter.Match(in)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrEvaluation) || matched {
				t.Fatalf("Match(%q) = %v, %q; want false and an ErrEvaluation", expr, matched, err)
			}
			// CEL turns a panic during evaluation into an "internal error".
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Match(%q) panicked: %v", expr, err)
			}
		}
	})
}
