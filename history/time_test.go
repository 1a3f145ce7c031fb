package history_test

import (
	"context"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
)

// TestSameMillisecond: two values of a series in one millisecond keep one
// raw point, the later (in memory, once written, and when the second
// comes in a later write), while the rollups count both.
func TestSameMillisecond(t *testing.T) {
	c := &clock{now: t0.Add(time.Minute)}
	h := newHub(t, t.TempDir(), c, history.Config{})
	at := t0.Add(10 * time.Second)
	h.r.Add("s", []byte("1"), at, false)
	h.r.Add("s", []byte("2"), at, false)
	h.settle()
	check := func(when string, want float64, count int64) {
		t.Helper()
		raw := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw})
		if len(raw.Points) != 1 || raw.Points[0].Last != want {
			t.Errorf("%s: raw %+v, want one point, %g", when, raw.Points, want)
		}
		five := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.FiveMinute})
		if len(five.Points) != 1 || five.Points[0].Count != count || five.Points[0].Last != want {
			t.Errorf("%s: 5m %+v, want one bucket of %d, last %g", when, five.Points, count, want)
		}
	}
	check("in memory", 2, 2)
	h.mustSync()
	check("written", 2, 2)
	h.r.Add("s", []byte("3"), at, false)
	h.settle()
	check("a third in memory", 3, 3)
	h.mustSync()
	c.Set(t0.Add(10 * time.Minute)) // the 5-minute bucket closes
	h.mustSync()
	check("a third written", 3, 3)
}

// TestClockJumps: a message time far ahead of the recorder's clock (a
// clock that was wrong, then fixed) is not recorded: it would make a period
// the budget drops last and retention never, and hold the open rollups in
// the future so that every later value were a late bucket of its own.
func TestClockJumps(t *testing.T) {
	c := &clock{now: t0.Add(100 * time.Second)}
	h := newHub(t, t.TempDir(), c, history.Config{})
	future := time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC)
	h.r.Add("s", []byte("99"), future, false)
	for i := range 100 {
		h.r.Add("s", []byte("1"), t0.Add(time.Duration(i)*time.Second), false)
	}
	h.settle()
	if st := h.r.Stats(); st.Pending > 100 || st.Future != 1 {
		t.Errorf("stats %+v: want at most the 100 raw points pending, 1 refused for its future time", st)
	}
	c.Set(t0.Add(10 * time.Minute))
	h.mustSync()
	if _, err := h.r.Query(context.Background(), history.Query{Topic: "s", From: future.Add(-time.Hour), To: future.Add(time.Hour), Resolution: history.Raw}); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.r.Series("s") {
		if s.Last.After(c.Now()) {
			t.Errorf("series %+v: last seen after now", s)
		}
	}
	five := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.FiveMinute})
	if len(five.Points) != 1 || five.Points[0].Count != 100 {
		t.Errorf("5m: %+v, want one bucket of 100", five.Points)
	}
	far := query(t, h.r, history.Query{Topic: "s", From: future.Add(-time.Hour), To: future.Add(time.Hour), Resolution: history.Raw})
	if len(far.Points) != 0 {
		t.Errorf("2090: %+v, want nothing", far.Points)
	}
}
