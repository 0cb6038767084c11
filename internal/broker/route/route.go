// Package route matches a record's routing key and headers against an
// exchange's bindings, for the four exchange types of AMQP 0-9-1 that Weir's
// exchanges implement:
//
//   - direct: the binding key equals the routing key;
//   - topic: the binding key is a pattern of '.'-separated words where '*'
//     stands for exactly one word and '#' for zero or more ("orders.*.eu",
//     "audit.#", "#.error");
//   - fanout: every binding matches;
//   - headers: the binding's arguments are compared with the record's
//     headers; "x-match" is "all" (the default: every argument matches) or
//     "any" (at least one does); arguments starting with "x-" are not
//     compared.
//
// A Table is not safe for concurrent use; the broker guards it (routing reads
// vastly outnumber binding changes, so the broker swaps in a new table on
// change).
package route

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kind is an exchange type.
type Kind string

const (
	Direct  Kind = "direct"
	Topic   Kind = "topic"
	Fanout  Kind = "fanout"
	Headers Kind = "headers"
)

// ErrInvalid is wrapped by every error about a bad kind or binding.
var ErrInvalid = errors.New("invalid route")

// MaxKeyLength bounds routing and binding keys (AMQP's shortstr).
const MaxKeyLength = 255

// Binding routes matching records to Destination.
type Binding struct {
	Destination string
	Key         string            // direct and topic
	Args        map[string]string // headers
}

// Header is a record header as the router sees it.
type Header struct {
	Key   string
	Value []byte
}

// Table holds one exchange's bindings.
type Table struct {
	kind     Kind
	bindings []Binding // every binding, in the order added
	direct   map[string][]string
	trie     *node
}

// node is a topic-trie node: one per pattern prefix.
type node struct {
	words map[string]*node
	star  *node
	hash  *node
	dests []string // destinations of patterns ending here
}

// NewTable returns an empty table for kind.
func NewTable(kind Kind) (*Table, error) {
	switch kind {
	case Direct, Topic, Fanout, Headers:
	default:
		return nil, fmt.Errorf("%w: exchange type %q (want direct, topic, fanout or headers)", ErrInvalid, kind)
	}
	return &Table{kind: kind, direct: make(map[string][]string), trie: &node{}}, nil
}

// Kind is the table's exchange type.
func (t *Table) Kind() Kind { return t.kind }

// Bindings returns the bindings, in the order they were added.
func (t *Table) Bindings() []Binding { return slices.Clone(t.bindings) }

// Validate checks a binding for the table's kind.
func (t *Table) Validate(b Binding) error {
	if b.Destination == "" {
		return fmt.Errorf("%w: a binding needs a destination", ErrInvalid)
	}
	if len(b.Key) > MaxKeyLength {
		return fmt.Errorf("%w: binding key of %d bytes (at most %d)", ErrInvalid, len(b.Key), MaxKeyLength)
	}
	switch t.kind {
	case Topic:
		for i, w := range strings.Split(b.Key, ".") {
			if strings.ContainsAny(w, "*#") && w != "*" && w != "#" {
				return fmt.Errorf("%w: topic pattern %q: word %d (%q) mixes '*' or '#' with other characters", ErrInvalid, b.Key, i+1, w)
			}
		}
	case Headers:
		switch m := b.Args["x-match"]; m {
		case "", "all", "any":
		default:
			return fmt.Errorf("%w: x-match %q (want all or any)", ErrInvalid, m)
		}
	}
	return nil
}

// Add adds a binding; adding one that exists changes nothing. It reports
// whether the binding is new.
func (t *Table) Add(b Binding) (bool, error) {
	if err := t.Validate(b); err != nil {
		return false, err
	}
	if slices.ContainsFunc(t.bindings, func(x Binding) bool { return sameBinding(x, b) }) {
		return false, nil
	}
	t.bindings = append(t.bindings, b)
	switch t.kind {
	case Direct:
		t.direct[b.Key] = append(t.direct[b.Key], b.Destination)
	case Topic:
		n := t.trie
		for _, w := range strings.Split(b.Key, ".") {
			n = n.child(w)
		}
		n.dests = append(n.dests, b.Destination)
	}
	return true, nil
}

// Remove removes a binding and reports whether it was there.
func (t *Table) Remove(b Binding) bool {
	i := slices.IndexFunc(t.bindings, func(x Binding) bool { return sameBinding(x, b) })
	if i < 0 {
		return false
	}
	t.bindings = slices.Delete(t.bindings, i, i+1)
	drop := func(dests []string) []string {
		if j := slices.Index(dests, b.Destination); j >= 0 {
			return slices.Delete(dests, j, j+1)
		}
		return dests
	}
	switch t.kind {
	case Direct:
		if d := drop(t.direct[b.Key]); len(d) > 0 {
			t.direct[b.Key] = d
		} else {
			delete(t.direct, b.Key)
		}
	case Topic:
		t.trie.remove(strings.Split(b.Key, "."), drop)
	}
	return true
}

// RemoveDestination removes every binding to dest (a deleted queue or
// stream) and returns how many there were.
func (t *Table) RemoveDestination(dest string) int {
	n := 0
	for _, b := range slices.Clone(t.bindings) {
		if b.Destination == dest && t.Remove(b) {
			n++
		}
	}
	return n
}

func sameBinding(a, b Binding) bool {
	if a.Destination != b.Destination || a.Key != b.Key || len(a.Args) != len(b.Args) {
		return false
	}
	for k, v := range a.Args {
		if w, ok := b.Args[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Match returns the destinations a record with this routing key and these
// headers goes to, each once, in the order their bindings were added.
func (t *Table) Match(routingKey string, headers []Header) []string {
	var out []string
	switch t.kind {
	case Direct:
		out = slices.Clone(t.direct[routingKey])
	case Fanout:
		for _, b := range t.bindings {
			out = append(out, b.Destination)
		}
	case Topic:
		t.trie.match(strings.Split(routingKey, "."), &out)
	case Headers:
		for _, b := range t.bindings {
			if headersMatch(b.Args, headers) {
				out = append(out, b.Destination)
			}
		}
	}
	return dedup(out)
}

func dedup(dests []string) []string {
	if len(dests) < 2 {
		return dests
	}
	seen := make(map[string]bool, len(dests))
	out := dests[:0]
	for _, d := range dests {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func (n *node) child(w string) *node {
	var c **node
	switch w {
	case "*":
		c = &n.star
	case "#":
		c = &n.hash
	default:
		if n.words == nil {
			n.words = make(map[string]*node)
		}
		if m, ok := n.words[w]; ok {
			return m
		}
		m := &node{}
		n.words[w] = m
		return m
	}
	if *c == nil {
		*c = &node{}
	}
	return *c
}

// match collects the destinations of the patterns that match words.
func (n *node) match(words []string, out *[]string) {
	if n.hash != nil {
		// '#' takes zero or more words: try every split.
		for i := 0; i <= len(words); i++ {
			n.hash.match(words[i:], out)
		}
	}
	if len(words) == 0 {
		*out = append(*out, n.dests...)
		return
	}
	if m := n.words[words[0]]; m != nil {
		m.match(words[1:], out)
	}
	if n.star != nil {
		n.star.match(words[1:], out)
	}
}

// remove takes a destination off the pattern words and prunes empty nodes;
// it reports whether n is now empty.
func (n *node) remove(words []string, drop func([]string) []string) bool {
	if len(words) == 0 {
		n.dests = drop(n.dests)
	} else {
		w := words[0]
		var next *node
		switch w {
		case "*":
			next = n.star
		case "#":
			next = n.hash
		default:
			next = n.words[w]
		}
		if next != nil && next.remove(words[1:], drop) {
			switch w {
			case "*":
				n.star = nil
			case "#":
				n.hash = nil
			default:
				delete(n.words, w)
			}
		}
	}
	return len(n.dests) == 0 && len(n.words) == 0 && n.star == nil && n.hash == nil
}

func headersMatch(args map[string]string, headers []Header) bool {
	any := args["x-match"] == "any"
	for k, v := range args {
		if strings.HasPrefix(k, "x-") {
			continue
		}
		found := false
		for _, h := range headers {
			if h.Key == k && string(h.Value) == v {
				found = true
				break
			}
		}
		if any && found {
			return true
		}
		if !any && !found {
			return false
		}
	}
	// all: every argument matched (a binding without arguments matches
	// everything); any: none did (so, as in RabbitMQ, nothing matches a
	// binding without arguments).
	return !any
}
