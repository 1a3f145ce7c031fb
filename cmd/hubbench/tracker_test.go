package main

import "testing"

func TestSeqTracker(t *testing.T) {
	t.Parallel()
	tr := newSeqTracker(1000)
	for _, s := range []uint64{1, 2, 3, 5, 4, 4, 200, 0, 1001, 999} {
		tr.add(s)
	}
	if tr.received != 7 || tr.duplicates != 1 || tr.reordered != 1 || tr.outOfRange != 2 {
		t.Errorf("received %d duplicates %d reordered %d outOfRange %d; want 7 1 1 2",
			tr.received, tr.duplicates, tr.reordered, tr.outOfRange)
	}
	cases := []struct{ lo, hi, want uint64 }{
		{1, 5, 5}, {2, 4, 3}, {1, 1000, 7}, {6, 199, 0}, {64, 200, 1}, {200, 200, 1}, {0, 3, 3}, {999, 5000, 1},
	}
	for _, c := range cases {
		if got := tr.countRange(c.lo, c.hi); got != c.want {
			t.Errorf("countRange(%d, %d) = %d, want %d", c.lo, c.hi, got, c.want)
		}
	}
}

func TestSeqTrackerWordEdges(t *testing.T) {
	t.Parallel()
	tr := newSeqTracker(1 << 16)
	for s := uint64(60); s <= 140; s++ {
		tr.add(s)
	}
	for _, c := range []struct{ lo, hi, want uint64 }{{63, 64, 2}, {64, 127, 64}, {1, 59, 0}, {100, 1 << 16, 41}, {60, 140, 81}} {
		if got := tr.countRange(c.lo, c.hi); got != c.want {
			t.Errorf("countRange(%d, %d) = %d, want %d", c.lo, c.hi, got, c.want)
		}
	}
}
