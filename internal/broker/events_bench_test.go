package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkEventAppend appends one event per call to distinct aggregates
// from parallel goroutines (the event log fsyncs every group commit).
func BenchmarkEventAppend(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	ctx := context.Background()
	var n atomic.Int64
	data := make([]byte, 200)
	b.SetBytes(int64(len(data)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			agg := fmt.Sprintf("acct-%d", i%1000)
			if _, err := br.AppendEvents(ctx, agg, AnyVersion, []NewEvent{{ID: fmt.Sprint("e", i), Type: "T", Data: data}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fillEventLog appends total events, one per append, to 1,000 aggregates
// of ten categories c0…c9, so each category holds a tenth of the log and
// each aggregate's events are scattered through it.
func fillEventLog(b *testing.B, br *Broker, total int) {
	ctx := context.Background()
	data := make([]byte, 200)
	const perAppend = 100
	for i := 0; i < total; i += perAppend {
		// One aggregate per append batch keeps filling fast; batches of
		// different aggregates interleave.
		agg := fmt.Sprintf("c%d-%d", (i/perAppend)%10, (i/perAppend)%1000)
		evs := make([]NewEvent, perAppend)
		for j := range evs {
			evs[j] = NewEvent{ID: fmt.Sprint("f", i+j), Type: "T", Data: data}
		}
		if _, err := br.AppendEvents(ctx, agg, AnyVersion, evs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventCategoryScan reads one category (a tenth of the log) from
// the start: through the category index ("index"), and by filtering the
// global log as before the index ("filter"); the cost per category event
// returned.
func BenchmarkEventCategoryScan(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	const total = 100_000
	fillEventLog(b, br, total)
	ctx := context.Background()
	// Every event indexed (ReadAggregate waits for the index).
	if _, err := br.ReadAggregate(ctx, "c0-0", 1, 1); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"index", "filter"} {
		b.Run(mode, func(b *testing.B) {
			br.events.filterCategories.Store(mode == "filter")
			returned := 0
			for b.Loop() {
				for pos := int64(0); pos < total; {
					r, err := br.ReadEvents(ctx, pos, 0, "c3", 0)
					if err != nil {
						b.Fatal(err)
					}
					returned += len(r.Events)
					pos = r.Next
				}
			}
			if returned == 0 {
				b.Fatal("no events of the category were read")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(returned), "ns/event")
		})
	}
}

// BenchmarkEventIndexedRead reads events through the index (ReadAggregate:
// positions from the state store, then the log at each): what a category
// index would cost per event returned.
func BenchmarkEventIndexedRead(b *testing.B) {
	br := openBroker(b, b.TempDir())
	defer br.Close()
	const total = 100_000
	fillEventLog(b, br, total)
	ctx := context.Background()
	b.ResetTimer()
	returned := 0
	for i := 0; b.Loop(); i++ {
		evs, err := br.ReadAggregate(ctx, fmt.Sprintf("c%d-%d", i%10, i%1000), 1, 0)
		if err != nil {
			b.Fatal(err)
		}
		returned += len(evs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(returned), "ns/event")
}
