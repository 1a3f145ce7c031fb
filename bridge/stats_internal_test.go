package bridge

import (
	"slices"
	"testing"
	"time"
)

// TestLatenciesAdd: a write's latencies, added to the histogram at once,
// land in their doubling buckets from 50 µs (a negative one, a clock
// step, as 0), the last bucket taking the rest.
func TestLatenciesAdd(t *testing.T) {
	var h histogram
	var lat latencies
	for _, d := range []time.Duration{-time.Millisecond, 0, 49 * time.Microsecond, 50 * time.Microsecond,
		time.Millisecond, time.Millisecond, 3 * time.Second, time.Hour} {
		lat.observe(d)
	}
	h.add(&lat)
	h.add(&latencies{}) // nothing
	h.add(&lat)
	want := make([]uint64, latencyBuckets)
	want[0] = 2 * 3            // < 50 µs
	want[1] = 2 * 1            // 50 µs
	want[5] = 2 * 2            // 1 ms: 20 × 50 µs, bits.Len 5
	want[16] = 2 * 1           // 3 s: 60,000 × 50 µs
	want[latencyBuckets-1] = 2 // an hour
	s := h.snapshot()
	if !slices.Equal(s.Counts, want) || s.Count != 16 || s.Sum != 2*(2*time.Millisecond+3*time.Second+time.Hour+99*time.Microsecond) {
		t.Fatalf("histogram %v (count %d, sum %v); want %v", s.Counts, s.Count, s.Sum, want)
	}
}
