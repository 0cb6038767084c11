package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestOffsetHeap: pops come out in ascending order, duplicates included,
// whatever the order of the pushes and however pushes and pops interleave.
func TestOffsetHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var h offsetHeap
		var model []int64
		for range rng.IntN(300) {
			if len(model) > 0 && rng.IntN(3) == 0 {
				slices.Sort(model)
				want := model[0]
				model = model[1:]
				if got := h.pop(); got != want {
					t.Fatalf("round %d: pop = %d, want %d", round, got, want)
				}
				continue
			}
			off := rng.Int64N(50) + 1<<40
			h.push(off)
			model = append(model, off)
			if least := slices.Min(model); h[0] != least {
				t.Fatalf("round %d: top %d after pushing %d, want %d", round, h[0], off, least)
			}
		}
		slices.Sort(model)
		for _, want := range model {
			if got := h.pop(); got != want {
				t.Fatalf("round %d: draining, pop = %d, want %d", round, got, want)
			}
		}
		if len(h) != 0 {
			t.Fatalf("round %d: %d offsets left", round, len(h))
		}
	}
}
