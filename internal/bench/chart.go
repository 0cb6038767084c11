package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"time"
)

// Charts are written as SVG by hand: a line chart (throughput over time,
// latency by percentile) and a grouped bar chart (systems side by side).

// Series is one line of a LineChart: points (X[i], Y[i]).
type Series struct {
	Name string
	X, Y []float64
}

// LineChart draws series over a numeric X axis, or over Categories (then X
// holds category indexes).
type LineChart struct {
	Title, XLabel, YLabel string
	// LogY draws the Y axis in decades (latencies spread over several).
	LogY       bool
	Categories []string
	Series     []Series
	// ShadeTo, when positive, shades the plot from its left edge to this
	// X, labelled ShadeLabel (the warm-up of a run).
	ShadeTo    float64
	ShadeLabel string
}

// BarChart draws, for each group, one bar per series.
type BarChart struct {
	Title, YLabel string
	LogY          bool
	Groups        []string
	Series        []BarSeries
}

// BarSeries is one system's values, one per group (NaN: no bar).
type BarSeries struct {
	Name   string
	Values []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

const (
	chartW, chartH                       = 860, 420
	padLeft, padRight, padTop, padBottom = 80, 190, 40, 60
)

// canvas maps data to pixels.
type canvas struct {
	b             bytes.Buffer
	xMin, xMax    float64
	yMin, yMax    float64
	logY          bool
	plotW, plotH  float64
	yTicks        []float64
	title, yLabel string
	xLabel        string
}

func newCanvas(title, xLabel, yLabel string, logY bool, yMax float64, yMinPositive float64) *canvas {
	c := &canvas{title: title, xLabel: xLabel, yLabel: yLabel, logY: logY,
		plotW: chartW - padLeft - padRight, plotH: chartH - padTop - padBottom}
	if logY {
		if yMinPositive <= 0 || math.IsInf(yMinPositive, 1) {
			yMinPositive = 1
		}
		lo := math.Floor(math.Log10(yMinPositive))
		hi := math.Ceil(math.Log10(max(yMax, yMinPositive*10)))
		if hi <= lo {
			hi = lo + 1
		}
		c.yMin, c.yMax = math.Pow(10, lo), math.Pow(10, hi)
		for e := lo; e <= hi; e++ {
			c.yTicks = append(c.yTicks, math.Pow(10, e))
		}
	} else {
		step := niceStep(yMax)
		c.yMin, c.yMax = 0, math.Max(step, math.Ceil(yMax/step)*step)
		for v := 0.0; v <= c.yMax+step/2; v += step {
			c.yTicks = append(c.yTicks, v)
		}
	}
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&c.b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&c.b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padLeft, esc(title))
	return c
}

// niceStep is a tick step of 1, 2 or 5 times a power of ten that cuts
// 0..top into about five parts.
func niceStep(top float64) float64 {
	if top <= 0 || math.IsNaN(top) || math.IsInf(top, 0) {
		return 1
	}
	raw := top / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

func (c *canvas) px(x float64) float64 {
	if c.xMax == c.xMin {
		return padLeft + c.plotW/2
	}
	return padLeft + (x-c.xMin)/(c.xMax-c.xMin)*c.plotW
}

func (c *canvas) py(y float64) float64 {
	var f float64
	if c.logY {
		y = math.Max(y, c.yMin)
		f = (math.Log10(y) - math.Log10(c.yMin)) / (math.Log10(c.yMax) - math.Log10(c.yMin))
	} else {
		f = (y - c.yMin) / (c.yMax - c.yMin)
	}
	return padTop + c.plotH*(1-f)
}

// axes draws the frame, the Y grid and the labels.
func (c *canvas) axes() {
	for _, v := range c.yTicks {
		y := c.py(v)
		fmt.Fprintf(&c.b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", padLeft, y, padLeft+c.plotW, y)
		fmt.Fprintf(&c.b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", padLeft-6, y, formatTick(v))
	}
	fmt.Fprintf(&c.b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", padLeft, padTop, c.plotW, c.plotH)
	fmt.Fprintf(&c.b, `<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+c.plotH/2, esc(c.yLabel))
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padLeft+c.plotW/2, chartH-14, esc(c.xLabel))
}

func (c *canvas) xTick(x float64, label string) {
	px := c.px(x)
	fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444"/>`+"\n", px, padTop+c.plotH, px, padTop+c.plotH+5)
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px, padTop+c.plotH+18, esc(label))
}

func (c *canvas) legendEntries(names []string) {
	for i, n := range names {
		y := padTop + 10 + 20*i
		x := chartW - padRight + 15
		fmt.Fprintf(&c.b, `<rect x="%d" y="%d" width="14" height="10" fill="%s"/>`+"\n", x, y-5, palette[i%len(palette)])
		fmt.Fprintf(&c.b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", x+20, y, esc(n))
	}
}

func (c *canvas) finish() []byte {
	c.b.WriteString("</svg>\n")
	return c.b.Bytes()
}

// formatTick writes 1500 as 1.5k, 2000000 as 2M, 0.25 as 0.25.
func formatTick(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return strconv.FormatFloat(v/1e9, 'g', 3, 64) + "G"
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

func esc(s string) string { return html.EscapeString(s) }

// SVG draws the chart.
func (lc *LineChart) SVG() []byte {
	yMax, yMinPos := 0.0, math.Inf(1)
	xMin, xMax := math.Inf(1), math.Inf(-1)
	for _, s := range lc.Series {
		for i := range s.Y {
			if math.IsNaN(s.Y[i]) {
				continue
			}
			yMax = math.Max(yMax, s.Y[i])
			if s.Y[i] > 0 {
				yMinPos = math.Min(yMinPos, s.Y[i])
			}
			xMin, xMax = math.Min(xMin, s.X[i]), math.Max(xMax, s.X[i])
		}
	}
	if len(lc.Categories) > 0 {
		xMin, xMax = 0, float64(len(lc.Categories)-1)
	}
	if math.IsInf(xMin, 0) {
		xMin, xMax = 0, 1
	}
	c := newCanvas(lc.Title, lc.XLabel, lc.YLabel, lc.LogY, yMax, yMinPos)
	c.xMin, c.xMax = xMin, xMax
	if lc.ShadeTo > xMin {
		x := c.px(min(lc.ShadeTo, xMax))
		fmt.Fprintf(&c.b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="#f0f0f0"/>`+"\n", padLeft, padTop, x-padLeft, c.plotH)
		fmt.Fprintf(&c.b, `<text x="%d" y="%d" fill="#888">%s</text>`+"\n", padLeft+4, padTop+14, esc(lc.ShadeLabel))
	}
	c.axes()
	if len(lc.Categories) > 0 {
		for i, cat := range lc.Categories {
			c.xTick(float64(i), cat)
		}
	} else {
		step := niceStep(xMax - xMin)
		for v := math.Ceil(xMin/step) * step; v <= xMax+step/1e6; v += step {
			c.xTick(v, formatTick(v))
		}
	}
	var names []string
	for i, s := range lc.Series {
		color := palette[i%len(palette)]
		var pts bytes.Buffer
		for j := range s.Y {
			if math.IsNaN(s.Y[j]) || (lc.LogY && s.Y[j] <= 0) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", c.px(s.X[j]), c.py(s.Y[j]))
		}
		fmt.Fprintf(&c.b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, bytes.TrimSpace(pts.Bytes()))
		if len(lc.Categories) > 0 { // few points: mark them
			for j := range s.Y {
				if !math.IsNaN(s.Y[j]) && (!lc.LogY || s.Y[j] > 0) {
					fmt.Fprintf(&c.b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s: %s</title></circle>`+"\n",
						c.px(s.X[j]), c.py(s.Y[j]), color, esc(s.Name), esc(lc.Categories[int(s.X[j])]), formatTick(s.Y[j]))
				}
			}
		}
		names = append(names, s.Name)
	}
	c.legendEntries(names)
	return c.finish()
}

// SVG draws the chart.
func (bc *BarChart) SVG() []byte {
	yMax, yMinPos := 0.0, math.Inf(1)
	for _, s := range bc.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				yMax = math.Max(yMax, v)
				if v > 0 {
					yMinPos = math.Min(yMinPos, v)
				}
			}
		}
	}
	c := newCanvas(bc.Title, "", bc.YLabel, bc.LogY, yMax, yMinPos)
	c.xMin, c.xMax = -0.5, float64(len(bc.Groups))-0.5
	c.axes()
	groupW := c.plotW / float64(max(len(bc.Groups), 1))
	barW := groupW * 0.8 / float64(max(len(bc.Series), 1))
	var names []string
	for g, group := range bc.Groups {
		c.xTick(float64(g), group)
		for i, s := range bc.Series {
			if g >= len(s.Values) || math.IsNaN(s.Values[g]) || (bc.LogY && s.Values[g] <= 0) {
				continue
			}
			x := c.px(float64(g)) - groupW*0.4 + barW*float64(i)
			y := c.py(s.Values[g])
			base := c.py(c.yMin)
			fmt.Fprintf(&c.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, y, barW, base-y, palette[i%len(palette)], esc(s.Name), esc(group), formatTick(s.Values[g]))
		}
	}
	for _, s := range bc.Series {
		names = append(names, s.Name)
	}
	c.legendEntries(names)
	return c.finish()
}

// ThroughputChart is a result's publish and consume rates over time.
func (r *Result) ThroughputChart() *LineChart {
	pub := Series{Name: "published/s"}
	cons := Series{Name: "consumed/s"}
	backlog := Series{Name: "backlog (records)"}
	for _, s := range r.Series {
		pub.X, pub.Y = append(pub.X, s.Second), append(pub.Y, s.PublishRate)
		cons.X, cons.Y = append(cons.X, s.Second), append(cons.Y, s.ConsumeRate)
		backlog.X, backlog.Y = append(backlog.X, s.Second), append(backlog.Y, float64(s.Backlog))
	}
	series := []Series{pub}
	if r.Workload.ConsumerPerSubscription > 0 {
		series = append(series, cons, backlog)
	}
	lc := &LineChart{
		Title:  fmt.Sprintf("%s on %s: throughput", r.Workload.Name, r.Name()),
		XLabel: "seconds", YLabel: "records per second (backlog: records)", Series: series,
	}
	if r.Workload.BacklogRecords == 0 {
		lc.ShadeTo, lc.ShadeLabel = time.Duration(r.Workload.Warmup).Seconds(), "warm-up"
	}
	return lc
}

// LatencyChart is a result's latency percentiles.
func (r *Result) LatencyChart() *LineChart {
	lc := &LineChart{
		Title:  fmt.Sprintf("%s on %s: latency", r.Workload.Name, r.Name()),
		XLabel: "percentile", YLabel: "milliseconds (log scale)", LogY: true, Categories: PercentileNames,
	}
	add := func(name string, p *Percentiles) {
		if p == nil {
			return
		}
		s := Series{Name: name}
		for i, v := range p.Values() {
			s.X, s.Y = append(s.X, float64(i)), append(s.Y, v)
		}
		lc.Series = append(lc.Series, s)
	}
	add("publish", r.PublishLatency)
	add("end to end", r.EndToEndLatency)
	return lc
}
