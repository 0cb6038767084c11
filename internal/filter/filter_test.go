package filter

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
)

// sampleInput is a keyed record with five headers.
func sampleInput() *Input {
	return &Input{
		Key:   []byte("eu-1234"),
		Value: []byte(`{"note":"urgent: call back"}`),
		Headers: []Header{
			{Key: "type", Value: []byte("order.created")},
			{Key: "priority", Value: []byte("7")},
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "x-request-id", Value: []byte("req-1")},
			{Key: "source", Value: []byte("shop")},
		},
		Timestamp: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Partition: 4,
		Offset:    42,
		Stream:    "orders",
	}
}

// otherInput differs from sampleInput in every field a test case reads.
func otherInput() *Input {
	return &Input{
		Key:   nil,
		Value: []byte("routine"),
		Headers: []Header{
			{Key: "type", Value: []byte("order.shipped")},
			{Key: "trace", Value: []byte("t-1")},
		},
		Timestamp: time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC),
		Partition: 3,
		Offset:    7,
		Stream:    "shipments",
	}
}

func TestMatch(t *testing.T) {
	lowPriority := sampleInput()
	lowPriority.Headers[1].Value = []byte("3")
	emptyKey := sampleInput()
	emptyKey.Key = []byte{}
	repeated := &Input{Headers: []Header{
		{Key: "type", Value: []byte("first")},
		{Key: "tag", Value: []byte("a")},
		{Key: "type", Value: []byte("last")},
	}}

	tests := []struct {
		expr  string
		input *Input
		want  bool
	}{
		// The examples of the package documentation.
		{`headers['type'] == 'order.created'`, sampleInput(), true},
		{`headers['type'] == 'order.created'`, otherInput(), false},
		{`key.startsWith('eu-')`, sampleInput(), true},
		{`key.startsWith('eu-')`, otherInput(), false},
		{`'priority' in headers && int(headers['priority']) > 5`, sampleInput(), true},
		{`'priority' in headers && int(headers['priority']) > 5`, lowPriority, false},
		{`'priority' in headers && int(headers['priority']) > 5`, otherInput(), false},
		{`timestamp > timestamp('2026-01-01T00:00:00Z')`, sampleInput(), true},
		{`timestamp > timestamp('2026-01-01T00:00:00Z')`, otherInput(), false},
		{`partition % 2 == 0`, sampleInput(), true},
		{`partition % 2 == 0`, otherInput(), false},
		{`value_string.contains('urgent')`, sampleInput(), true},
		{`value_string.contains('urgent')`, otherInput(), false},
		{`!has_key`, sampleInput(), false},
		{`!has_key`, otherInput(), true},
		{`headers.exists(k, k.startsWith('x-'))`, sampleInput(), true},
		{`headers.exists(k, k.startsWith('x-'))`, otherInput(), false},
		{`headers[?'priority'].orValue('0') == '7'`, sampleInput(), true},
		{`headers[?'priority'].orValue('0') == '0'`, otherInput(), true},
		{`headers['content-type'].upperAscii() == 'APPLICATION/JSON'`, sampleInput(), true},
		{`timestamp.getHours() == 12`, sampleInput(), true},

		// Every variable.
		{`key == 'eu-1234'`, sampleInput(), true},
		{`key == ''`, otherInput(), true},
		{`key_bytes == b'eu-1234'`, sampleInput(), true},
		{`key_bytes == b''`, otherInput(), true},
		{`has_key`, sampleInput(), true},
		{`has_key && key == ''`, emptyKey, true},
		{`value == b'routine'`, otherInput(), true},
		{`size(value) == 0 && value_string == ''`, &Input{}, true},
		{`offset == 42 && partition == 4`, sampleInput(), true},
		{`offset >= 10`, otherInput(), false},
		{`stream == 'orders'`, sampleInput(), true},
		{`stream.endsWith('ments')`, otherInput(), true},
		{`timestamp == timestamp('0001-01-01T00:00:00Z')`, &Input{}, true},

		// The headers map.
		{`size(headers) == 5`, sampleInput(), true},
		{`size(headers) == 0 && !('type' in headers)`, &Input{}, true},
		{`has(headers.source)`, sampleInput(), true},
		{`has(headers.priority)`, otherInput(), false},
		{`headers.all(k, headers[k] != '')`, sampleInput(), true},
		{`headers.exists_one(k, k == 'type')`, sampleInput(), true},
		{`headers == {'type': 'order.shipped', 'trace': 't-1'}`, otherInput(), true},
		{`{'trace': 't-1', 'type': 'order.shipped'} == headers`, otherInput(), true},
		{`headers == {'type': 'order.shipped'}`, otherInput(), false},
		{`headers.filter(k, k.startsWith('t')).size() == 2`, otherInput(), true},
		// A repeated name: the last value wins and the name counts once.
		{`headers['type'] == 'last'`, repeated, true},
		{`size(headers) == 2`, repeated, true},
		{`headers.exists_one(k, k == 'type')`, repeated, true},
		{`headers.all(k, headers[k] != 'first')`, repeated, true},
		{`headers == {'type': 'last', 'tag': 'a'}`, repeated, true},

		// The variable named timestamp does not hide the timestamp function.
		{`timestamp - duration('1h') < timestamp('2026-03-01T12:00:00Z')`, sampleInput(), true},
		{`key.matches('^eu-[0-9]+$')`, sampleInput(), true},
		{`key in ['eu-1234', 'us-1']`, sampleInput(), true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if f.String() != tt.expr {
				t.Errorf("String() = %q, want %q", f.String(), tt.expr)
			}
			got, err := f.Match(tt.input)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

// Header lists longer than shortHeaderList find repeated names through a map.
func TestMatchManyHeaders(t *testing.T) {
	in := &Input{}
	for i := range 40 {
		in.Headers = append(in.Headers, Header{Key: fmt.Sprintf("h%d", i%20), Value: fmt.Appendf(nil, "%d", i)})
	}
	for expr, want := range map[string]bool{
		`size(headers) == 20`:                                 true,
		`headers['h3'] == '23'`:                               true,
		`headers.all(k, int(headers[k]) >= 20)`:               true,
		`headers.exists_one(k, k == 'h19')`:                   true,
		`headers.filter(k, int(headers[k]) > 35).size() == 4`: true,
	} {
		f, err := Compile(expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", expr, err)
		}
		got, err := f.Match(in)
		if err != nil || got != want {
			t.Errorf("%s: Match = %v, %v; want %v", expr, got, err, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string // substrings of the message
	}{
		{"empty", "", []string{"empty filter"}},
		{"blank", " \n\t", []string{"empty filter"}},
		{"too long", "key == '" + strings.Repeat("a", MaxSourceBytes) + "'", []string{"4105 bytes", "limit is 4096"}},
		{"syntax", "headers['type' == 'x'", []string{"filter:1:", "Syntax error", "\n | headers['type' == 'x'", "^"}},
		{"syntax on line 2", "has_key &&\n  key.startsWith('eu-'", []string{"filter:2:", "Syntax error", "^"}},
		{"unknown variable", "topic == 'orders'", []string{"filter:1:1:", "undeclared reference to 'topic'", "^"}},
		{"unknown function", "key.frobnicate() == ''", []string{"undeclared reference to 'frobnicate'"}},
		{"type mismatch", "partition == 'four'", []string{"filter:1:11:", "no matching overload", "^"}},
		{"not bool: string", "key", []string{"must be a bool expression", "it has type string"}},
		{"not bool: int", "partition + 1", []string{"must be a bool expression", "has type int"}},
		{"not bool: dyn", "dyn(has_key)", []string{"must be a bool expression", "has type dyn"}},
		{"bad regular expression", "key.matches('[')", []string{"filter:1:13:", "invalid regular expression", "missing closing ]", "^"}},
		{"bad regular expression, global call", "matches(key, 'a(')", []string{"filter:1:14:", "missing closing )"}},
		{"bad timestamp", "timestamp > timestamp('2026-13-01T00:00:00Z')", []string{"filter:1:23:", "timestamp", "^"}},
		{"bad duration", "timestamp + duration('1 hour') > timestamp", []string{"filter:1:22:", "duration", "^"}},
		{"comprehensions nested too deep", "headers.all(a, headers.all(b, headers.all(c, a != b)))", []string{"nesting", "limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.expr)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.expr, f)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "invalid filter: ") {
				t.Errorf("error %q does not start with %q", err, "invalid filter: ")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestMatchErrors(t *testing.T) {
	notANumber := sampleInput()
	notANumber.Headers = append(notANumber.Headers, Header{Key: "x", Value: []byte("abc")})
	manyHeaders := &Input{}
	for i := range 2000 {
		manyHeaders.Headers = append(manyHeaders.Headers, Header{Key: fmt.Sprint(i), Value: []byte("v")})
	}

	tests := []struct {
		name  string
		expr  string
		input *Input
		want  string
	}{
		{"conversion", "int(headers['x']) > 1", notANumber, "type conversion error from 'string' to 'int'"},
		{"missing header", "headers['missing'] == 'a'", sampleInput(), "no such key: missing"},
		{"missing header in a comprehension", "headers.exists(k, headers[k + '!'] == '')", sampleInput(), "no such key"},
		{"division by zero", "offset / (partition - 4) > 0", sampleInput(), "division by zero"},
		{"cost limit", "headers.all(a, headers.all(b, a + b != ''))", manyHeaders, "cost limit exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := f.Match(tt.input)
			if err == nil {
				t.Fatalf("Match = %v, nil; want an error", got)
			}
			if got {
				t.Errorf("Match = true with error %v; want false", err)
			}
			if !errors.Is(err, ErrEvaluation) {
				t.Errorf("error %q does not wrap ErrEvaluation", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// Strings made from the record's bytes share its memory during evaluation;
// nothing Match returns may keep sharing it.
func TestMatchErrorOwnsItsText(t *testing.T) {
	f, err := Compile("headers[key] == ''")
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{Key: []byte("abc")}
	_, err = f.Match(in)
	if err == nil {
		t.Fatal("Match: want an error")
	}
	before := err.Error()
	copy(in.Key, "xyz")
	if after := err.Error(); after != before || !strings.Contains(after, "abc") {
		t.Errorf("error text changed with the record: %q, then %q", before, after)
	}
}

// The activation converts only what the expression reads.
func TestActivationIsLazy(t *testing.T) {
	tests := []struct {
		expr                 string
		headers, valueString bool
	}{
		{`key.startsWith('eu-')`, false, false},
		{`headers['type'] == 'order.created'`, true, false},
		{`value_string.contains('urgent')`, false, true},
		{`has_key || headers.exists(k, k == 'type') || value_string == ''`, false, false},
	}
	for _, tt := range tests {
		f, err := Compile(tt.expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.expr, err)
		}
		vars := newActivation(sampleInput())
		if _, _, err := f.program.Eval(vars); err != nil {
			t.Fatalf("%s: Eval: %v", tt.expr, err)
		}
		if vars.headersReady != tt.headers || (vars.valueString != nil) != tt.valueString {
			t.Errorf("%s: headers built %v, value_string built %v; want %v, %v",
				tt.expr, vars.headersReady, vars.valueString != nil, tt.headers, tt.valueString)
		}
		vars.release()
	}
}

func TestConcurrentMatch(t *testing.T) {
	f, err := Compile(`headers['type'] == 'order.created' && key.startsWith('eu-') && partition % 2 == 0`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				in, want := sampleInput(), true
				if (g+i)%3 == 0 {
					in, want = otherInput(), false
				}
				got, err := f.Match(in)
				if err != nil || got != want {
					t.Errorf("goroutine %d, match %d: Match = %v, %v; want %v", g, i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkMatch(b *testing.B) {
	benchmarks := []struct{ name, expr string }{
		{"header-equality", `headers['type'] == 'order.created'`},
		{"key-prefix", `key.startsWith('eu-')`},
		{"header-presence-and-int", `'priority' in headers && int(headers['priority']) > 5`},
		{"header-exists", `headers.exists(k, k.startsWith('x-'))`},
		{"timestamp", `timestamp > timestamp('2026-01-01T00:00:00Z')`},
		{"value-contains", `value_string.contains('urgent')`},
	}
	in := sampleInput()
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			f, err := Compile(bm.expr)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := f.Match(in); !ok || err != nil {
					b.Fatalf("Match = %v, %v", ok, err)
				}
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(`'priority' in headers && int(headers['priority']) > 5`); err != nil {
			b.Fatal(err)
		}
	}
}

// Filters whose cost CEL bounds statically run without a cost tracker; the
// bound must hold at run time.
func TestCostTracking(t *testing.T) {
	env, err := environment()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr    string
		tracked bool
	}{
		{`headers['type'] == 'order.created'`, false},
		{`key.startsWith('eu-')`, false},
		{`'priority' in headers && int(headers['priority']) > 5`, false},
		{`headers[?'priority'].orValue('0') == '7'`, false},
		{`timestamp > timestamp('2026-01-01T00:00:00Z') && partition % 2 == 0`, false},
		{`!has_key || key in ['a', 'b', 'c']`, false},
		{`value_string.contains('urgent')`, true},
		{`key == stream`, true},
		{`key.matches('^eu-[0-9]+$')`, true},
		{`headers.exists(k, k.startsWith('x-'))`, true},
	}
	for _, tt := range tests {
		ast, issues := env.Compile(tt.expr)
		if err := issues.Err(); err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if tracked := !boundedCost(env, ast); tracked != tt.tracked {
			t.Errorf("%s: tracked = %v, want %v", tt.expr, tracked, tt.tracked)
		}
		if tt.tracked {
			continue
		}
		estimate, err := env.EstimateCost(ast, unknownSizes{})
		if err != nil {
			t.Fatal(err)
		}
		program, err := env.Program(ast, cel.CostLimit(DefaultCostLimit))
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*Input{sampleInput(), otherInput(), {}} {
			vars := newActivation(in)
			_, details, _ := program.Eval(vars)
			vars.release()
			if actual := *details.ActualCost(); actual > estimate.Max {
				t.Errorf("%s: actual cost %d exceeds the estimate %d", tt.expr, actual, estimate.Max)
			}
		}
	}
}
