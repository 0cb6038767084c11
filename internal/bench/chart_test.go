package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed parses svg as XML and counts its elements by name.
func wellFormed(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	counts := map[string]int{}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return counts
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
}

func TestLineChart(t *testing.T) {
	lc := &LineChart{Title: "a <b> & c", XLabel: "s", YLabel: "r", Series: []Series{
		{Name: "one", X: []float64{0, 1, 2}, Y: []float64{10, 20, 15}},
		{Name: "two", X: []float64{0, 1, 2}, Y: []float64{5, math.NaN(), 7}},
	}}
	svg := lc.SVG()
	c := wellFormed(t, svg)
	if c["polyline"] != 2 {
		t.Errorf("%d lines, want 2", c["polyline"])
	}
	if !strings.Contains(string(svg), "a &lt;b&gt; &amp; c") {
		t.Errorf("title not escaped")
	}
}

func TestLogChartAndBars(t *testing.T) {
	res := &Result{Workload: mustWorkload(t, smallWorkload), Driver: "mem",
		PublishLatency:  &Percentiles{P50: 0.5, P75: 1, P95: 2, P99: 5, P999: 20, P9999: 80, Max: 300},
		EndToEndLatency: &Percentiles{P50: 1, P75: 2, P95: 3, P99: 9, P999: 30, P9999: 90, Max: 400},
		Series:          []Sample{{Second: 1, PublishRate: 100}, {Second: 2, PublishRate: 120, ConsumeRate: 90}},
	}
	c := wellFormed(t, res.LatencyChart().SVG())
	if c["circle"] != 14 {
		t.Errorf("%d points, want 7 per series", c["circle"])
	}
	wellFormed(t, res.ThroughputChart().SVG())
	bc := &BarChart{Title: "t", YLabel: "y", Groups: []string{"a", "b"}, Series: []BarSeries{
		{Name: "x", Values: []float64{1, 2}}, {Name: "y", Values: []float64{3, math.NaN()}},
	}}
	if c := wellFormed(t, bc.SVG()); c["rect"] != 2+3+2 { // background, frame, 3 bars, 2 legend keys
		t.Errorf("%d rects", c["rect"])
	}
}

func TestNiceStep(t *testing.T) {
	for top, want := range map[float64]float64{100: 20, 7: 2, 0.9: 0.2, 48000: 10000, 0: 1} {
		if got := niceStep(top); math.Abs(got-want) > want*1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", top, got, want)
		}
	}
}
