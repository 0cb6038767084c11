package route

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func table(t *testing.T, kind Kind, bindings ...Binding) *Table {
	t.Helper()
	tb, err := NewTable(kind)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bindings {
		if _, err := tb.Add(b); err != nil {
			t.Fatalf("add %+v: %v", b, err)
		}
	}
	return tb
}

func TestTopicMatching(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"a.*.c", []string{"a.b.c", "a.x.c"}, []string{"a.c", "a.b.b.c", "a.b", "b.b.c"}},
		{"a.#", []string{"a", "a.b", "a.b.c"}, []string{"b", "b.a", ""}},
		{"#.c", []string{"c", "a.c", "a.b.c"}, []string{"c.a", "a.b"}},
		{"a.#.c", []string{"a.c", "a.b.c", "a.b.b.c"}, []string{"a.b", "b.c", "a.c.d"}},
		{"#", []string{"", "x", "x.y.z"}, nil},
		{"*", []string{"x", ""}, []string{"x.y"}},
		{"*.*", []string{"a.b"}, []string{"a", "a.b.c"}},
		{"#.*.#", []string{"a", "a.b"}, nil},
		{"orders.eu", []string{"orders.eu"}, []string{"orders", "orders.eu.x", "orders.us"}},
		{"*.#.*", []string{"a.b", "a.b.c.d"}, []string{"a"}},
	}
	for _, c := range cases {
		tb := table(t, Topic, Binding{Destination: "d", Key: c.pattern})
		for _, k := range c.match {
			if got := tb.Match(k, nil); !slices.Equal(got, []string{"d"}) {
				t.Errorf("%q should match %q, got %v", c.pattern, k, got)
			}
		}
		for _, k := range c.miss {
			if got := tb.Match(k, nil); len(got) != 0 {
				t.Errorf("%q should not match %q, got %v", c.pattern, k, got)
			}
		}
	}
}

func TestTopicAgainstBruteForce(t *testing.T) {
	// A table of random patterns must agree with a direct recursive matcher.
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "c", "*", "#"}
	var patterns []string
	tb, _ := NewTable(Topic)
	for i := range 300 {
		n := 1 + rng.IntN(4)
		ws := make([]string, n)
		for j := range ws {
			ws[j] = words[rng.IntN(len(words))]
		}
		p := strings.Join(ws, ".")
		patterns = append(patterns, p)
		tb.Add(Binding{Destination: fmt.Sprint("d", i), Key: p})
	}
	for range 2000 {
		n := rng.IntN(5)
		ws := make([]string, n)
		for j := range ws {
			ws[j] = words[rng.IntN(3)]
		}
		key := strings.Join(ws, ".")
		var want []string
		for i, p := range patterns {
			if bruteMatch(strings.Split(p, "."), strings.Split(key, ".")) {
				want = append(want, fmt.Sprint("d", i))
			}
		}
		got := tb.Match(key, nil)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("key %q: got %v, want %v", key, got, want)
		}
	}
}

func bruteMatch(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if bruteMatch(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && bruteMatch(p[1:], k[1:])
	}
	return len(k) > 0 && k[0] == p[0] && bruteMatch(p[1:], k[1:])
}

func TestDirectFanoutHeaders(t *testing.T) {
	d := table(t, Direct, Binding{Destination: "q1", Key: "eu"}, Binding{Destination: "q2", Key: "eu"}, Binding{Destination: "q3", Key: "us"})
	if got := d.Match("eu", nil); !slices.Equal(got, []string{"q1", "q2"}) {
		t.Fatalf("direct: %v", got)
	}
	if got := d.Match("asia", nil); len(got) != 0 {
		t.Fatalf("direct miss: %v", got)
	}
	f := table(t, Fanout, Binding{Destination: "a"}, Binding{Destination: "b", Key: "ignored"})
	if got := f.Match("anything", nil); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("fanout: %v", got)
	}
	h := table(t, Headers,
		Binding{Destination: "all", Args: map[string]string{"type": "order", "region": "eu"}},
		Binding{Destination: "any", Args: map[string]string{"x-match": "any", "type": "order", "region": "eu"}},
		Binding{Destination: "empty-all", Args: map[string]string{}},
		Binding{Destination: "empty-any", Args: map[string]string{"x-match": "any"}},
	)
	hs := func(kv ...string) []Header {
		var out []Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Header{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	for _, c := range []struct {
		headers []Header
		want    []string
	}{
		{hs("type", "order", "region", "eu"), []string{"all", "any", "empty-all"}},
		{hs("type", "order", "region", "us"), []string{"any", "empty-all"}},
		{hs("type", "click"), []string{"empty-all"}},
		{nil, []string{"empty-all"}},
	} {
		if got := h.Match("", c.headers); !slices.Equal(got, c.want) {
			t.Errorf("headers %v: got %v, want %v", c.headers, got, c.want)
		}
	}
}

func TestBindingChangesAndErrors(t *testing.T) {
	tb := table(t, Topic, Binding{Destination: "a", Key: "x.*"}, Binding{Destination: "b", Key: "x.#"}, Binding{Destination: "a", Key: "#"})
	if added, _ := tb.Add(Binding{Destination: "a", Key: "x.*"}); added {
		t.Fatal("a duplicate binding was added again")
	}
	if got := tb.Match("x.y", nil); !slices.Equal(got, []string{"b", "a"}) && !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("match: %v (a destination reached twice must appear once)", got)
	}
	if !tb.Remove(Binding{Destination: "b", Key: "x.#"}) || tb.Remove(Binding{Destination: "b", Key: "x.#"}) {
		t.Fatal("remove reported wrongly")
	}
	if got := tb.Match("x.y.z", nil); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after remove: %v", got)
	}
	if n := tb.RemoveDestination("a"); n != 2 {
		t.Fatalf("removed %d bindings of a", n)
	}
	if got := tb.Match("x.y", nil); len(got) != 0 || len(tb.Bindings()) != 0 || !tb.trie.remove(nil, func(d []string) []string { return d }) {
		t.Fatalf("table not empty: %v, %v", got, tb.Bindings())
	}
	if _, err := NewTable("weird"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
	for _, bad := range []Binding{{Key: "x"}, {Destination: "d", Key: "a.b#"}, {Destination: "d", Key: "a*.b"}, {Destination: "d", Key: strings.Repeat("k", 256)}} {
		if _, err := tb.Add(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("add %+v: %v", bad, err)
		}
	}
	h, _ := NewTable(Headers)
	if _, err := h.Add(Binding{Destination: "d", Args: map[string]string{"x-match": "some"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad x-match: %v", err)
	}
}

// BenchmarkTopicMatch10k looks up routing keys in a topic table of 10,000
// bindings (a mix of exact, '*' and '#' patterns).
//
//	go test -run '^$' -bench TopicMatch10k ./internal/broker/route/
func BenchmarkTopicMatch10k(b *testing.B) {
	tb, _ := NewTable(Topic)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 10000 {
		var p string
		switch i % 4 {
		case 0:
			p = fmt.Sprintf("orders.%d.created", i)
		case 1:
			p = fmt.Sprintf("orders.*.region%d", i%100)
		case 2:
			p = fmt.Sprintf("audit.%d.#", i%500)
		default:
			p = fmt.Sprintf("#.shard%d", i%1000)
		}
		tb.Add(Binding{Destination: fmt.Sprint("q", i), Key: p})
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("orders.%d.region%d", rng.IntN(10000), rng.IntN(100))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tb.Match(keys[i%len(keys)], nil)
	}
}
