package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	c := hubtest.NewClock(t0)
	h := newHub(t, dir, c, history.Config{})
	// Two hours, one message per 10 s: temperature v = i.
	n := 720
	for i := range n {
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		c.Set(ts)
		h.r.Add("home/temp", fmt.Appendf(nil, "%d", i), ts, false)
		h.r.Add("home/env", fmt.Appendf(nil, `{"t":%d,"h":{"rel":50},"name":"x"}`, i), ts, false)
		if i%60 == 59 {
			h.mustSync()
		}
	}
	h.mustSync()
	end := t0.Add(2 * time.Hour)
	res, err := h.r.Query(context.Background(), history.Query{Topic: "home/temp", From: t0, To: end, Points: 1000, Resolution: history.Raw})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != n {
		for i, p := range res.Points {
			if !p.Time.Equal(t0.Add(time.Duration(i) * 10 * time.Second)) {
				t.Fatalf("raw: %d points, want %d; %d at %v", len(res.Points), n, i, p.Time)
			}
		}
		t.Fatalf("raw: %d points, want %d", len(res.Points), n)
	}
	res, err = h.r.Query(context.Background(), history.Query{Topic: "home/temp", From: t0, To: end, Resolution: history.FiveMinute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 24 || res.Points[0].Count != 30 || res.Points[0].Max != 29 || res.Points[23].Count != 30 {
		t.Fatalf("5m: %d points, first %+v", len(res.Points), res.Points[0])
	}
	res, err = h.r.Query(context.Background(), history.Query{Topic: "home/env", Field: "h.rel", From: t0, To: end, Resolution: history.Hourly})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 2 || res.Points[0].Count != 360 || res.Points[0].Mean != 50 {
		t.Fatalf("1h: %+v", res.Points)
	}
	t.Logf("series %+v stats %+v", h.r.Series(""), h.r.Stats())
}

// TestQuerySeesWhatWasAdded: a query finds every message added before it,
// without waiting for the recorder's goroutine or a write (a chart opened
// at a new series' first value finds that value, not "no history").
func TestQuerySeesWhatWasAdded(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{})
	for i := range 50 {
		topic := fmt.Sprintf("new/%d", i)
		h.r.Add(topic, fmt.Appendf(nil, "%d", i), t0, false)
		res, err := h.r.Query(context.Background(), history.Query{Topic: topic, From: t0.Add(-time.Minute), To: t0.Add(time.Minute), Resolution: history.Raw})
		if err != nil {
			t.Fatalf("query at once after the first value of %s: %v", topic, err)
		}
		if len(res.Points) != 1 || res.Points[0].Last != float64(i) {
			t.Fatalf("%s: %+v, want the one value %d", topic, res.Points, i)
		}
	}
}
