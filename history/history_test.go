package history_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

const day = 24 * time.Hour

// month feeds 30 days of one sensor (one message a minute, values 0..99
// with a spike of 1000 on day 5 and a dip of -500 on day 7), silent for
// 12 hours on day 10, with the hub down from day 20 00:30 to 03:30.
type month struct {
	sent       int
	silentFrom time.Time
	silentTo   time.Time
	downFrom   time.Time
	downTo     time.Time
	spike, dip time.Time
	end        time.Time
}

// monthConfig keeps 5-minute rollups 20 days, so that some are gone.
var monthConfig = history.Config{FiveMinute: 20 * day}

func feedMonth(t *testing.T, dir string, c *hubtest.Clock) *month {
	m := &month{
		silentFrom: t0.Add(10*day + 6*time.Hour), silentTo: t0.Add(10*day + 18*time.Hour),
		downFrom: t0.Add(20*day + 30*time.Minute), downTo: t0.Add(20*day + 3*time.Hour + 30*time.Minute),
		spike: t0.Add(5*day + 12*time.Hour + 34*time.Minute), dip: t0.Add(7*day + 3*time.Hour),
		end: t0.Add(30 * day),
	}
	h := newHub(t, dir, c, monthConfig)
	for i := 0; ; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		if !ts.Before(m.end) {
			break
		}
		c.Set(ts)
		switch {
		case !ts.Before(m.silentFrom) && ts.Before(m.silentTo):
			continue
		case !ts.Before(m.downFrom) && ts.Before(m.downTo):
			if h != nil {
				h.close()
				h = nil
			}
			continue
		case h == nil:
			h = newHub(t, dir, c, monthConfig) // a new run on the same file
		}
		v := float64(i % 100)
		switch {
		case ts.Equal(m.spike):
			v = 1000
		case ts.Equal(m.dip):
			v = -500
		}
		h.r.Add("home/temp", fmt.Appendf(nil, "%g", v), ts, false)
		h.r.Add("home/door", fmt.Appendf(nil, `{"state":%q,"at":"%s"}`, []string{"open", "closed"}[i/90%2], ts.Format(time.RFC3339)), ts, false)
		m.sent++
		if i%60 == 59 {
			h.mustSync()
		}
	}
	h.mustSync()
	h.close()
	return m
}

func query(t *testing.T, r *history.Recorder, q history.Query) *history.Result {
	t.Helper()
	res, err := r.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("query %+v: %v", q, err)
	}
	return res
}

func summary(points []history.Point) (count int64, lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range points {
		count += p.Count
		lo, hi = math.Min(lo, p.Min), math.Max(hi, p.Max)
	}
	return count, lo, hi
}

func hasGap(gaps []history.Gap, reason string, from, to time.Time, slack time.Duration) bool {
	for _, g := range gaps {
		if g.Reason == reason && g.From.Sub(from).Abs() <= slack && g.To.Sub(to).Abs() <= slack {
			return true
		}
	}
	return false
}

// TestMonth feeds 30 days in seconds, reopens the file in a new recorder,
// and queries it at each resolution.
func TestMonth(t *testing.T) {
	dir := t.TempDir()
	c := hubtest.NewClock(t0)
	m := feedMonth(t, dir, c)
	h := newHub(t, dir, c, monthConfig) // reopened: everything read from the file
	r := h.r

	// 30 days at 300 points: hourly rollups, in 3-hour buckets.
	res := query(t, r, history.Query{Topic: "home/temp", From: t0, To: m.end})
	count, lo, hi := summary(res.Points)
	if res.Resolution != history.Hourly || res.Step != 3*time.Hour || len(res.Points) > 300 {
		t.Errorf("30 days: resolution %s, step %v, %d points; want 1h, 3h, at most 300", res.Resolution, res.Step, len(res.Points))
	}
	if count != int64(m.sent) || lo != -500 || hi != 1000 {
		t.Errorf("30 days: count %d (sent %d), min %g, max %g; want the dip -500 and the spike 1000", count, m.sent, lo, hi)
	}
	if !hasGap(res.Gaps, "hub-down", m.downFrom, m.downTo, time.Minute) {
		t.Errorf("30 days: no hub-down gap %v–%v in %+v", m.downFrom, m.downTo, res.Gaps)
	}
	if !hasGap(res.Gaps, "silent", m.silentFrom, m.silentTo, time.Minute) {
		t.Errorf("30 days: no silent gap %v–%v in %+v", m.silentFrom, m.silentTo, res.Gaps)
	}
	var mean float64
	for _, p := range res.Points {
		mean += p.Mean * float64(p.Count)
	}
	if want := expectedSum(m); math.Abs(mean-want) > 1e-6*math.Abs(want) {
		t.Errorf("30 days: the means weighted by count sum to %g, want %g", mean, want)
	}

	// The last week: too long for raw (48 h), so 5-minute rollups, as they are.
	res = query(t, r, history.Query{Topic: "home/temp", From: m.end.Add(-7 * day), To: m.end, Points: 5000})
	count, _, _ = summary(res.Points)
	if res.Resolution != history.FiveMinute || len(res.Points) != 7*288 || count != 7*1440 || res.Step != 5*time.Minute {
		t.Errorf("7 days: %s, %d points of %v, count %d; want 5m, %d points, count %d", res.Resolution, len(res.Points), res.Step, count, 7*288, 7*1440)
	}

	// The last day at 300 points: raw points in 288 s buckets; at 10000 points, as they are.
	res = query(t, r, history.Query{Topic: "home/temp", From: m.end.Add(-day), To: m.end})
	count, _, _ = summary(res.Points)
	if res.Resolution != history.Raw || len(res.Points) != 300 || count != 1440 {
		t.Errorf("1 day: %s, %d points, count %d; want raw, 300, 1440", res.Resolution, len(res.Points), count)
	}
	res = query(t, r, history.Query{Topic: "home/temp", From: m.end.Add(-day), To: m.end, Points: history.MaxPoints})
	if len(res.Points) != 1440 || res.Step != 0 || !res.Points[1].Time.Equal(m.end.Add(-day+time.Minute)) {
		t.Errorf("1 day of raw points: %d points, step %v; want 1440 points at their times", len(res.Points), res.Step)
	}

	// Retention: raw points of day 1 and 5-minute rollups of day 5 are gone;
	// hourly ones are kept.
	for _, q := range []history.Query{
		{Topic: "home/temp", From: t0, To: t0.Add(day), Resolution: history.Raw},
		{Topic: "home/temp", From: t0.Add(-day + 5*day), To: t0.Add(5 * day), Resolution: history.FiveMinute},
	} {
		if res := query(t, r, q); len(res.Points) != 0 {
			t.Errorf("%s of %v: %d points past retention", q.Resolution, q.From, len(res.Points))
		}
	}
	if n := len(query(t, r, history.Query{Topic: "home/temp", From: t0, To: t0.Add(day), Resolution: history.Hourly}).Points); n != 24 {
		t.Errorf("hourly of day 1: %d points, want 24", n)
	}

	// The door's change log: one change every 90 minutes, the time stamp
	// field not recorded.
	res = query(t, r, history.Query{Topic: "home/door", Field: "state", From: m.end.Add(-day), To: m.end})
	if res.Kind != "text" || len(res.Points) < 15 || len(res.Points) > 17 {
		t.Errorf("door: %s, %d changes in a day; want text, 16", res.Kind, len(res.Points))
	}
	for i := 1; i < len(res.Points); i++ {
		if res.Points[i].Text == res.Points[i-1].Text {
			t.Errorf("door: %q twice in a row", res.Points[i].Text)
		}
	}
	if _, err := r.Query(context.Background(), history.Query{Topic: "home/door", Field: "at", From: t0, To: m.end}); !errors.Is(err, history.ErrNoSeries) {
		t.Errorf("a time stamp field: %v, want ErrNoSeries", err)
	}
	c.Set(m.end.Add(time.Hour))
	h.mustSync()
	if st := r.Stats(); st.Evicted == 0 || st.Series != 2 {
		t.Errorf("stats %+v: want periods evicted by retention an hour later, 2 series", st)
	}
}

func expectedSum(m *month) float64 {
	var sum float64
	for i := 0; ; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		if !ts.Before(m.end) {
			return sum
		}
		if (!ts.Before(m.silentFrom) && ts.Before(m.silentTo)) || (!ts.Before(m.downFrom) && ts.Before(m.downTo)) {
			continue
		}
		switch {
		case ts.Equal(m.spike):
			sum += 1000
		case ts.Equal(m.dip):
			sum += -500
		default:
			sum += float64(i % 100)
		}
	}
}

// bytesAllocated is what the history occupies in the file: the pages
// allocated to its buckets (not the bytes in use in them: a page splits
// when full and ends about half full).
func bytesAllocated(t testing.TB, db *bbolt.DB) int64 {
	var n int64
	err := db.View(func(tx *bbolt.Tx) error {
		s := tx.Bucket([]byte("hist")).Stats()
		n = int64(s.BranchAlloc + s.LeafAlloc)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBudget: the history stays within MaxBytes, counted by bbolt, and
// the oldest data goes first.
func TestBudget(t *testing.T) {
	const budget = 3 << 19
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{MaxBytes: budget})
	start := t0
	end := start.Add(6 * day)
	for ts := start; ts.Before(end); ts = ts.Add(30 * time.Second) {
		c.Set(ts)
		for s := range 8 {
			h.r.Add(fmt.Sprintf("dev/%d", s), fmt.Appendf(nil, `{"a":%d,"b":%d}`, ts.Unix()%97, s), ts, false)
		}
		if ts.Unix()%1800 == 0 {
			h.mustSync()
			if used := bytesAllocated(t, h.db); used > budget {
				t.Fatalf("at %v: %d bytes allocated, budget %d (estimated %d)", ts, used, budget, h.r.Stats().Bytes)
			}
		}
	}
	h.mustSync()
	st := h.r.Stats()
	used := bytesAllocated(t, h.db)
	t.Logf("allocated %d, estimated %d, budget %d, evicted %d", used, st.Bytes, budget, st.Evicted)
	if st.Bytes > budget || used > budget || used < budget/2 {
		t.Errorf("%d bytes allocated, %d estimated; want within the budget %d, and more than half of it", used, st.Bytes, budget)
	}
	// The oldest went first: the first days' 5-minute rollups (kept 30 days,
	// so dropped for the budget) are gone, the last day's are there, and so
	// are the last hour's raw points and the month's hourly rollups, whose
	// bucket holds the newest hour.
	q := history.Query{Topic: "dev/1", Field: "a", From: start, To: start.Add(day), Resolution: history.FiveMinute}
	if n := len(query(t, h.r, q).Points); n != 0 {
		t.Errorf("first day 5m: %d points, want none (dropped)", n)
	}
	q.From, q.To = end.Add(-day), end
	if n := len(query(t, h.r, q).Points); n != 288 {
		t.Errorf("last day 5m: %d points, want 288", n)
	}
	q.From, q.To, q.Resolution, q.Points = end.Add(-time.Hour), end, history.Raw, 1000
	if n := len(query(t, h.r, q).Points); n != 120 {
		t.Errorf("last hour raw: %d points, want 120", n)
	}
	q.From, q.Resolution = start, history.Hourly
	if n := len(query(t, h.r, q).Points); n != 144 {
		t.Errorf("hourly: %d points, want 144", n)
	}
}

// TestMaxSeries: past MaxSeries new series are refused and counted.
func TestMaxSeries(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{MaxSeries: 3})
	h.r.Add("a", []byte(`{"x":1,"y":2}`), t0, false)
	h.r.Add("b", []byte(`3`), t0, false)
	h.r.Add("c", []byte(`4`), t0, false)
	h.r.Add("a", []byte(`{"x":1,"y":2,"z":5}`), t0, false)
	h.mustSync()
	st := h.r.Stats()
	if st.Series != 3 || st.SeriesRefused != 2 {
		t.Errorf("stats %+v: want 3 series, 2 refused", st)
	}
	if _, err := h.r.Query(context.Background(), history.Query{Topic: "c", From: t0, To: t0.Add(time.Hour)}); !errors.Is(err, history.ErrNoSeries) {
		t.Errorf("the refused series: %v, want ErrNoSeries", err)
	}
	if got := h.r.Series("a"); len(got) != 2 || got[0].Field != "x" || got[1].Field != "y" {
		t.Errorf("series of a: %+v", got)
	}
}

// TestFailedWrite: what a failed write held is written next time, once.
func TestFailedWrite(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{})
	n := 0
	add := func(k int) {
		for range k {
			ts := t0.Add(time.Duration(n) * time.Second)
			c.Set(ts)
			h.r.Add("s", fmt.Appendf(nil, "%d", n), ts, false)
			h.r.Add("t", fmt.Appendf(nil, `"v%d"`, n/10), ts, true)
			n++
		}
	}
	add(100)
	h.mustSync()
	h.fault = errFull
	for range 3 {
		add(500)
		if err := h.sync(); !errors.Is(err, errFull) {
			t.Fatalf("sync: %v, want the fault", err)
		}
		// Read while the failed points wait in memory: all there, once.
		res := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw, Points: history.MaxPoints})
		if len(res.Points) != n {
			t.Fatalf("while failing: %d points, want %d", len(res.Points), n)
		}
	}
	h.fault = nil
	add(300) // into a new 5-minute bucket and hour
	h.mustSync()
	h.close()
	h = newHub(t, h.path[:len(h.path)-len("/hub.db")], c, history.Config{})
	res := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw, Points: history.MaxPoints})
	count, lo, hi := summary(res.Points)
	if len(res.Points) != n || count != int64(n) || lo != 0 || hi != float64(n-1) {
		t.Errorf("after the failures: %d points, count %d, %g..%g; want %d, 0..%d", len(res.Points), count, lo, hi, n, n-1)
	}
	five := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.FiveMinute})
	if count, _, _ := summary(five.Points); count != int64(n) {
		t.Errorf("5-minute rollups count %d, want %d", count, n)
	}
	text := query(t, h.r, history.Query{Topic: "t", From: t0, To: t0.Add(time.Hour)})
	if len(text.Points) != (n+9)/10 {
		t.Errorf("text changes: %d, want %d", len(text.Points), (n+9)/10)
	}
}

// TestRestartMidHour: a bucket open at a restart is merged with what the
// next run adds to it.
func TestRestartMidHour(t *testing.T) {
	dir := t.TempDir()
	c := hubtest.NewClock(t0)
	h := newHub(t, dir, c, history.Config{})
	for i := range 30 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		c.Set(ts)
		h.r.Add("s", fmt.Appendf(nil, "%d", i), ts, false)
	}
	h.mustSync()
	h.close()
	c.Set(t0.Add(32 * time.Minute))
	h = newHub(t, dir, c, history.Config{})
	for i := 32; i < 60; i++ {
		ts := t0.Add(time.Duration(i) * time.Minute)
		c.Set(ts)
		h.r.Add("s", fmt.Appendf(nil, "%d", 100-i), ts, false)
	}
	h.r.Add("s", []byte("-7"), t0.Add(90*time.Second), false) // late
	check := func(when string) {
		h.settle()
		res := query(t, h.r, history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Hourly})
		if len(res.Points) != 1 || res.Points[0].Count != 59 || res.Points[0].Min != -7 || res.Points[0].Max != 68 {
			t.Errorf("%s: %+v; want one hourly bucket of 59, min -7, max 68", when, res.Points)
		}
		if !hasGap(res.Gaps, "hub-down", t0.Add(29*time.Minute), t0.Add(32*time.Minute), 0) {
			t.Errorf("%s: gaps %+v, want hub-down 00:29–00:32", when, res.Gaps)
		}
	}
	check("in memory")
	h.mustSync()
	c.Set(t0.Add(2 * time.Hour)) // the clock closes the bucket
	if !h.r.Pending() {
		t.Error("nothing pending once the clock passed an open bucket")
	}
	h.mustSync()
	check("written")
}

// TestDamaged: a damaged page gives an error naming the file, no panic.
func TestDamaged(t *testing.T) {
	dir := t.TempDir()
	c := hubtest.NewClock(t0)
	h := newHub(t, dir, c, history.Config{})
	c.Set(t0.Add(time.Hour)) // the points are not ahead of the clock
	for i := range 3600 {
		ts := t0.Add(time.Duration(i) * time.Second)
		h.r.Add("s", fmt.Appendf(nil, "%d", i), ts, false)
	}
	h.mustSync()
	var page uint64
	err := h.db.View(func(tx *bbolt.Tx) error {
		periods := tx.Bucket([]byte("hist")).Bucket([]byte("periods"))
		return periods.ForEach(func(k, _ []byte) error {
			if root := periods.Bucket(k).RootPage(); root != 0 && k[8] == '1' {
				page = uint64(root)
			}
			return nil
		})
	})
	if err != nil || page == 0 {
		t.Fatalf("no raw bucket with a page of its own: %v", err)
	}
	path, size := h.path, int64(os.Getpagesize())
	h.close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff}, int64(page)*size); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	h = newHub(t, dir, c, history.Config{})
	_, err = h.r.Query(context.Background(), history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw})
	if !errors.Is(err, history.ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Errorf("query of a damaged page: %v; want ErrDamaged naming %s", err, path)
	}
	_, err = h.r.Export(context.Background(), history.Query{Topic: "s", From: t0, To: t0.Add(time.Hour), Resolution: history.Raw}, func(history.Point) error { return nil })
	if !errors.Is(err, history.ErrDamaged) {
		t.Errorf("export of a damaged page: %v; want ErrDamaged", err)
	}
}

// TestAddNeverBlocks: a full queue drops and counts, and Add returns.
func TestAddNeverBlocks(t *testing.T) {
	r := history.New(history.Config{QueueLen: 10, Logger: quiet})
	defer r.Close()
	for i := range 1000 {
		r.Add("s", []byte("1"), t0.Add(time.Duration(i)*time.Second), false)
	}
	if st := r.Stats(); st.Dropped != 990 || st.Queued != 10 {
		t.Errorf("stats %+v: want 990 dropped, 10 queued", st)
	}
}

// TestExport streams every point, oldest first, without downsampling.
func TestExport(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{})
	for i := range 1000 {
		ts := t0.Add(time.Duration(i) * 3 * time.Second)
		c.Set(ts)
		h.r.Add("s", fmt.Appendf(nil, `{"v":%d}`, i), ts, false)
		if i == 500 {
			h.mustSync()
		}
	}
	h.settle()
	var got []history.Point
	res, err := h.r.Export(context.Background(), history.Query{Topic: "s", Field: "v", From: t0, To: t0.Add(time.Hour)}, func(p history.Point) error {
		got = append(got, p)
		return nil
	})
	if err != nil || res != history.Raw || len(got) != 1000 {
		t.Fatalf("export: %v, %s, %d points; want raw, 1000", err, res, len(got))
	}
	for i, p := range got {
		if p.Last != float64(i) || !p.Time.Equal(t0.Add(time.Duration(i)*3*time.Second)) {
			t.Fatalf("point %d: %+v", i, p)
		}
	}
	stop := errors.New("enough")
	n := 0
	_, err = h.r.Export(context.Background(), history.Query{Topic: "s", Field: "v", From: t0, To: t0.Add(time.Hour)}, func(history.Point) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("export stopped by fn: %v after %d", err, n)
	}
	if _, err := h.r.Query(context.Background(), history.Query{Topic: "s", Field: "v", From: t0, To: t0}); !errors.Is(err, history.ErrBadQuery) {
		t.Errorf("an empty range: %v, want ErrBadQuery", err)
	}
}

// TestPendingBound: while writes fail, what waits in memory stays within
// MaxPending (raw points and changes) and twice it (with rollups).
func TestPendingBound(t *testing.T) {
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{MaxPending: 100})
	h.fault = errFull
	for i := range 2000 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		c.Set(ts)
		h.r.Add("s", fmt.Appendf(nil, "%d", i), ts, false)
		if i%100 == 0 {
			_ = h.sync()
		}
	}
	h.settle()
	st := h.r.Stats()
	if st.Pending > 200 || st.PendingDropped == 0 {
		t.Errorf("stats %+v: want at most 200 pending, some dropped", st)
	}
	h.fault = nil
	h.mustSync()
	if st := h.r.Stats(); st.Pending != 0 {
		t.Errorf("after a write: %d pending", st.Pending)
	}
}

// TestBudgetBoundsTheFile: with many series written as the hub writes
// them (a sync a second, each series' raw points in chunks after 30 s),
// pages split and end far from full; the budget still bounds the pages
// the history occupies in the file, not only the bytes in use in them.
func TestBudgetBoundsTheFile(t *testing.T) {
	const budget = 3 << 20
	c := hubtest.NewClock(t0)
	h := newHub(t, t.TempDir(), c, history.Config{MaxBytes: budget})
	var peak int64
	for ts := t0; ts.Before(t0.Add(5 * time.Hour)); ts = ts.Add(10 * time.Second) {
		c.Set(ts)
		for s := range 300 {
			h.r.Add(fmt.Sprintf("dev/%d/t", s), fmt.Appendf(nil, "%d.%d", ts.Unix()%97, s), ts, false)
		}
		if ts.Unix()%30 == 0 {
			h.mustSync()
			used := bytesAllocated(t, h.db)
			peak = max(peak, used)
			if used > budget {
				t.Fatalf("at %v: %d bytes allocated, budget %d (estimated %d)", ts, used, budget, h.r.Stats().Bytes)
			}
		}
	}
	st := h.r.Stats()
	fi, err := os.Stat(h.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak allocated %d, estimated %d, budget %d, evicted %d, file %d", peak, st.Bytes, budget, st.Evicted, fi.Size())
	if st.Evicted == 0 || peak < budget/2 {
		t.Errorf("peak %d bytes allocated, %d evicted: want the budget reached", peak, st.Evicted)
	}
}

// TestTextAcrossARestart: a text series' value sent again after a restart
// (a device repeating its state when it reconnects) is no change; another
// value is.
func TestTextAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	c := hubtest.NewClock(t0)
	h := newHub(t, dir, c, history.Config{})
	h.r.Add("lamp", []byte(`"ON"`), t0, true)
	h.r.Add("other", []byte(`"idle"`), t0, true)
	h.mustSync()
	h.close()
	c.Set(t0.Add(time.Minute))
	h = newHub(t, dir, c, history.Config{})
	h.r.Add("lamp", []byte(`"ON"`), t0.Add(time.Minute), true)
	h.r.Add("other", []byte(`"busy"`), t0.Add(time.Minute), true)
	h.mustSync()
	for topic, want := range map[string][]string{"lamp": {"ON"}, "other": {"idle", "busy"}} {
		res := query(t, h.r, history.Query{Topic: topic, From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
		var got []string
		for _, p := range res.Points {
			got = append(got, p.Text)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's changes across a restart: %q, want %q", topic, got, want)
		}
	}
}
