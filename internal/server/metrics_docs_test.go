package server

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// documentedMetric is a row of a table in docs/METRICS.md.
type documentedMetric struct {
	kind   string // counter, gauge, histogram; "" for a family (go_*)
	labels []string
	line   int
}

var metricRow = regexp.MustCompile("^\\| `([a-z_:*]+)` \\| *([a-z]*) *\\| *([a-z_, ]*?) *\\| ")

// readMetricsDoc parses the tables of docs/METRICS.md: name, type, labels.
func readMetricsDoc(t *testing.T) map[string]documentedMetric {
	t.Helper()
	raw, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := make(map[string]documentedMetric)
	for i, line := range strings.Split(string(raw), "\n") {
		m := metricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(m[3], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		if _, dup := doc[m[1]]; dup {
			t.Errorf("docs/METRICS.md:%d: %s is listed twice", i+1, m[1])
		}
		doc[m[1]] = documentedMetric{kind: m[2], labels: labels, line: i + 1}
	}
	if len(doc) < 20 {
		t.Fatalf("docs/METRICS.md lists %d metrics: the table format changed?", len(doc))
	}
	return doc
}

var (
	descName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels = regexp.MustCompile(`constLabels: \{([^}]*)\}, variableLabels: \{([^}]*)\}`)
)

// registeredMetrics returns the name and sorted label names of every metric
// the registry describes, whether or not it has a sample yet.
func registeredMetrics(t *testing.T, r *prometheus.Registry) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() {
		r.Describe(ch)
		close(ch)
	}()
	out := make(map[string][]string)
	for d := range ch {
		s := d.String()
		name := descName.FindStringSubmatch(s)
		labels := descLabels.FindStringSubmatch(s)
		if name == nil || labels == nil {
			t.Fatalf("cannot read %s", s)
		}
		var names []string
		for _, l := range strings.Split(labels[1], ",") {
			if k, _, ok := strings.Cut(l, "="); ok {
				names = append(names, k)
			}
		}
		for _, l := range strings.Split(labels[2], ",") {
			if l != "" {
				names = append(names, strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"))
			}
		}
		slices.Sort(names)
		out[name[1]] = names
	}
	return out
}

// documentedFamily reports whether name belongs to a family documented
// with a wildcard (go_*, process_*, promhttp_*).
func documentedFamily(doc map[string]documentedMetric, name string) bool {
	for pattern := range doc {
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// TestMetricsDocumented checks that every metric a started server registers
// (every front end, the broker, the connectors) is in docs/METRICS.md with
// the same labels, and that the page lists nothing the server does not
// register.
func TestMetricsDocumented(t *testing.T) {
	s := newTestServer(t, testConfig(t))
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	doc := readMetricsDoc(t)
	registered := registeredMetrics(t, s.metrics.registry)
	for name, labels := range registered {
		if documentedFamily(doc, name) {
			continue
		}
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s (labels %v) is registered but not documented in docs/METRICS.md", name, labels)
			continue
		}
		want := slices.Sorted(slices.Values(d.labels))
		if !slices.Equal(labels, want) {
			t.Errorf("docs/METRICS.md:%d: %s has labels %v, the server registers %v", d.line, name, want, labels)
		}
	}
	for name, d := range doc {
		if strings.HasSuffix(name, "*") {
			continue
		}
		if _, ok := registered[name]; !ok {
			t.Errorf("docs/METRICS.md:%d: %s is documented but the server does not register it", d.line, name)
		}
		switch d.kind {
		case "counter", "gauge", "histogram":
		default:
			t.Errorf("docs/METRICS.md:%d: %s has type %q", d.line, name, d.kind)
		}
		if strings.HasSuffix(name, "_total") != (d.kind == "counter") {
			t.Errorf("docs/METRICS.md:%d: %s: only counters end in _total", d.line, name)
		}
	}
}
