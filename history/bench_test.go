package history_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// BenchmarkIngest: what history costs per message at 10,000 messages/s
// over 2,000 series: Add, the recorder's parse and aggregation, and a
// Write (in its own transaction, without fsync) per simulated second.
// Compare ns/op with the hub's own cost per message, BenchmarkIngest in
// package bridge.
func BenchmarkIngest(b *testing.B) {
	const series, rate = 2000, 10000
	c := hubtest.NewClock(t0)
	h := newHub(b, b.TempDir(), c, history.Config{})
	topics := make([]string, series)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/dev%d/temp", i)
	}
	payloads := make([][]byte, 97)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, `{"temperature":%d.%d}`, 15+i%20, i%10)
	}
	step := time.Second / rate
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		ts := t0.Add(time.Duration(i) * step)
		h.r.Add(topics[i%series], payloads[i%len(payloads)], ts, false)
		i++
		if i%rate == 0 {
			c.Set(ts)
			h.mustSync()
		}
	}
	h.mustSync()
	if st := h.r.Stats(); st.Dropped > 0 || st.PendingDropped > 0 {
		b.Fatalf("dropped: %+v", st)
	}
}

// BenchmarkQuery: one series over 30 days and over a year at 300 points,
// from a file holding a year of 10 series at one message a minute (built
// once).
func BenchmarkQuery(b *testing.B) {
	const series = 10
	c := hubtest.NewClock(t0)
	h := newHub(b, b.TempDir(), c, history.Config{})
	end := t0.Add(365 * day)
	n := 0
	for ts := t0; ts.Before(end); ts = ts.Add(time.Minute) {
		c.Set(ts) // a time ahead of the clock is not recorded
		for s := range series {
			h.r.Add(fmt.Sprintf("dev/%d", s), fmt.Appendf(nil, "%d", n%1000), ts, false)
		}
		n++
		if n%600 == 0 {
			c.Set(ts)
			h.mustSync()
		}
	}
	c.Set(end)
	h.mustSync()
	for _, span := range []struct {
		name string
		d    time.Duration
	}{{"30days", 30 * day}, {"year", 365 * day}} {
		b.Run(span.name, func(b *testing.B) {
			q := history.Query{Topic: "dev/3", From: end.Add(-span.d), To: end, Points: 300}
			b.ReportAllocs()
			for b.Loop() {
				res, err := h.r.Query(context.Background(), q)
				if err != nil || len(res.Points) == 0 {
					b.Fatal(err, len(res.Points))
				}
			}
		})
	}
}

// BenchmarkDiskPerSeriesDay: bytes on disk per series per day at one
// message per 10 s, per level (bbolt's leaf and branch bytes in use, and
// allocated, after feeding a day of 200 series).
func BenchmarkDiskPerSeriesDay(b *testing.B) {
	const series = 200
	for b.Loop() {
		c := hubtest.NewClock(t0)
		h := newHub(b, b.TempDir(), c, history.Config{})
		end := t0.Add(day)
		n := 0
		for ts := t0; ts.Before(end); ts = ts.Add(10 * time.Second) {
			c.Set(ts) // a time ahead of the clock is not recorded
			for s := range series {
				h.r.Add(fmt.Sprintf("dev/%d", s), fmt.Appendf(nil, `{"t":%d.%d}`, 20+n%7, n%10), ts, false)
			}
			n++
			if n%360 == 0 {
				c.Set(ts)
				h.mustSync()
			}
		}
		c.Set(end)
		h.mustSync()
		_ = h.r.Close()
		h.mustSync() // the open buckets, closed
		inuse, alloc := map[byte]int64{}, map[byte]int64{}
		err := h.db.View(func(tx *bbolt.Tx) error {
			periods := tx.Bucket([]byte("hist")).Bucket([]byte("periods"))
			return periods.ForEach(func(k, _ []byte) error {
				s := periods.Bucket(k).Stats()
				inuse[k[8]] += int64(s.LeafInuse + s.BranchInuse + s.InlineBucketInuse)
				alloc[k[8]] += int64(s.LeafAlloc + s.BranchAlloc)
				return nil
			})
		})
		if err != nil {
			b.Fatal(err)
		}
		for id, name := range map[byte]string{'1': "raw", '2': "5m", '3': "1h"} {
			b.ReportMetric(float64(inuse[id])/series, name+"-B/series/day")
			b.ReportMetric(float64(alloc[id])/series, name+"-alloc-B/series/day")
		}
		b.ReportMetric(float64(h.r.Stats().Bytes)/series, "estimated-B/series/day")
	}
}

// BenchmarkQueryRawYear: a year asked of raw points (resolution=raw
// forced, from=-365d) of one series that has 30 days of them (kept with
// Raw: 30 days) at one message a second: 2.6 M points (built once).
func BenchmarkQueryRawYear(b *testing.B) {
	c := hubtest.NewClock(t0)
	h := newHub(b, b.TempDir(), c, history.Config{Raw: 30 * day})
	end := t0.Add(30 * day)
	n := 0
	for ts := t0; ts.Before(end); ts = ts.Add(time.Second) {
		h.r.Add("dev/raw", fmt.Appendf(nil, "%d", n%1000), ts, false)
		n++
		if n%3600 == 0 {
			c.Set(ts)
			h.mustSync()
		}
	}
	c.Set(end)
	h.mustSync()
	q := history.Query{Topic: "dev/raw", From: end.Add(-365 * day), To: end, Points: 300, Resolution: history.Raw}
	b.ReportAllocs()
	for b.Loop() {
		res, err := h.r.Query(context.Background(), q)
		if err != nil || len(res.Points) == 0 {
			b.Fatal(err, len(res.Points))
		}
	}
}
