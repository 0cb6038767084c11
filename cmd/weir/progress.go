package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressBar draws a progress line on a terminal, redrawn in place.
type progressBar struct {
	w       io.Writer
	enabled bool
}

func newProgressBar(w io.Writer, mode string) *progressBar {
	return &progressBar{w: w, enabled: mode == "always" || mode == "auto" && isTerminal(w)}
}

// barWidth is the number of cells of the bar.
const barWidth = 30

// run redraws the line of a phase every 100ms until stop is called, which
// draws it a last time and ends the line. The phase is done at total
// records, or after duration when total is negative.
func (b *progressBar) run(label string, total int64, duration time.Duration, start time.Time, read func() (records, bytes int64)) (stop func()) {
	if !b.enabled {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	draw := func() {
		records, bytes := read()
		elapsed := time.Since(start)
		fraction := 0.0
		switch {
		case total > 0:
			fraction = float64(records) / float64(total)
		case duration > 0:
			fraction = elapsed.Seconds() / duration.Seconds()
		}
		fraction = min(max(fraction, 0), 1)
		cells := int(fraction * barWidth)
		bar := strings.Repeat("=", cells) + strings.Repeat(" ", barWidth-cells)
		if cells > 0 && cells < barWidth {
			bar = bar[:cells-1] + ">" + bar[cells:]
		}
		rate, mbps := 0.0, 0.0
		if s := elapsed.Seconds(); s > 0 {
			rate, mbps = float64(records)/s, float64(bytes)/1e6/s
		}
		count := fmt.Sprint(records)
		if total > 0 {
			count += "/" + fmt.Sprint(total)
		}
		fmt.Fprintf(b.w, "\r%-8s [%s] %3.0f%%  %s records  %.0f records/s  %.1f MB/s  %.1fs\033[K",
			label, bar, fraction*100, count, rate, mbps, elapsed.Seconds())
	}
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				draw()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		draw()
		fmt.Fprintln(b.w)
	}
}
