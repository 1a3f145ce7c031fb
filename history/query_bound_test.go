package history_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestQueryBounded: a Query reads a long range in read transactions of a
// bounded size (the answer the same as in one), and stops after a bound
// of entries: Truncated, the answer ending at the last entry read, with no
// silent gap after it. (The real bounds, 2 M entries and 64 K per
// transaction, are set low here; BenchmarkQueryRawYear reads 2.6 M.)
func TestQueryBounded(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{})
	const points = 3 * 3600 // 3 hours at one a second
	c.Set(t0.Add(points * time.Second))
	for i := range points {
		h.r.Add("s", fmt.Appendf(nil, "%d", i%600), t0.Add(time.Duration(i)*time.Second), false)
		if i%1800 == 1799 {
			h.mustSync()
		}
	}
	h.settle() // the last points in memory: merged across chunks too
	whole := history.Query{Topic: "s", From: t0, To: t0.Add(points * time.Second), Points: 300, Resolution: history.Raw}
	want := query(t, h.r, whole)
	if want.Truncated || len(want.Points) != 300 {
		t.Fatalf("within the bounds: truncated %v, %d points; want 300 buckets, whole", want.Truncated, len(want.Points))
	}
	if count, _, _ := summary(want.Points); count != points {
		t.Fatalf("within the bounds: count %d, want %d", count, points)
	}

	undo := history.SetQueryBounds(1<<21, 1000) // 11 read transactions
	got := query(t, h.r, whole)
	undo()
	if !slices.Equal(got.Points, want.Points) || !slices.Equal(got.Gaps, want.Gaps) || got.Truncated {
		t.Fatalf("read 1000 entries per transaction: %d points, gaps %v, truncated %v; want the answer of one", len(got.Points), got.Gaps, got.Truncated)
	}

	undo = history.SetQueryBounds(5000, 1000)
	defer undo()
	cut := query(t, h.r, whole)
	count, _, _ := summary(cut.Points)
	lastRead := t0.Add(4999 * time.Second)
	last := cut.Points[len(cut.Points)-1].Time
	if !cut.Truncated || count != 5000 || last.After(lastRead) || !last.Add(cut.Step).After(lastRead) {
		t.Errorf("past 5000 entries: truncated %v, count %d, the last bucket %v + %v; want truncated, 5000 counted, the last holding %v", cut.Truncated, count, last, cut.Step, lastRead)
	}
	for _, g := range cut.Gaps {
		if g.Reason == "silent" {
			t.Errorf("a truncated answer has a silent gap %v: it ends at the last entry read", g)
		}
	}
	five := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(points * time.Second), Resolution: history.FiveMinute})
	if five.Truncated || len(five.Points) != points/300 {
		t.Errorf("5-minute rollups within the bound: truncated %v, %d points; want %d", five.Truncated, len(five.Points), points/300)
	}
}
