package history_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestSameMillisecond: values of a series that come in one millisecond
// (a burst) are each kept, a millisecond apart, in order, in memory and
// once written, and the rollups count each once; a value in a later
// millisecond that the burst reached goes after it.
func TestSameMillisecond(t *testing.T) {
	c := hubtest.NewClock(t0.Add(time.Minute))
	h := newHub(t, t.TempDir(), c, history.Config{})
	at := t0.Add(10 * time.Second)
	h.r.Add("s", []byte("1"), at, false)
	h.r.Add("s", []byte("2"), at, false)
	h.r.Add("s", []byte("3"), at, false)
	h.r.Add("s", []byte("4"), at.Add(time.Millisecond), false) // the burst is there already
	h.r.Add("s", []byte("5"), at.Add(time.Second), false)
	check := func(when string) {
		t.Helper()
		raw := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw})
		var got []float64
		var times []time.Duration
		for _, p := range raw.Points {
			got = append(got, p.Last)
			times = append(times, p.Time.Sub(at))
		}
		want := []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, time.Second}
		if !slices.Equal(got, []float64{1, 2, 3, 4, 5}) || !slices.Equal(times, want) {
			t.Errorf("%s: raw values %v at %v after the first, want 1…5 at %v", when, got, times, want)
		}
		five := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.FiveMinute})
		if len(five.Points) != 1 || five.Points[0].Count != 5 || five.Points[0].Last != 5 {
			t.Errorf("%s: 5m %+v, want one bucket of 5, last 5", when, five.Points)
		}
	}
	h.r.Add("mode", []byte(`"a"`), at, true)
	h.r.Add("mode", []byte(`"b"`), at, true)
	check("in memory")
	h.mustSync()
	c.Set(t0.Add(10 * time.Minute)) // the 5-minute bucket closes
	h.mustSync()
	check("written")
	changes := query(t, h.r, history.Query{Topic: "mode", From: t0, To: t0.Add(time.Hour)})
	if len(changes.Points) != 2 || changes.Points[0].Text != "a" || changes.Points[1].Text != "b" {
		t.Errorf("two changes of a text in one millisecond: %+v, want a then b", changes.Points)
	}
}

// TestClockJumps: a message time far ahead of the recorder's clock (a
// clock that was wrong, then fixed) is not recorded: it would make a period
// the budget drops last and retention never, and hold the open rollups in
// the future so that every later value were a late bucket of its own.
func TestClockJumps(t *testing.T) {
	c := hubtest.NewClock(t0.Add(100 * time.Second))
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
