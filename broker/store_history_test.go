package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestStoreWritesTheHistory: the real history.Recorder as a part of the
// store: what it records is written by the store's syncs and Close, and
// read back in the next run, from the same file.
func TestStoreWritesTheHistory(t *testing.T) {
	dir := t.TempDir()
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	open := func() (*Store, *history.Recorder) {
		rec := history.New(history.Config{Logger: quietLogger()})
		return openTestStore(t, dir, StoreConfig{Parts: []StorePart{rec}}), rec
	}
	applied := func(rec *history.Recorder) {
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return rec.Stats().Queued == 0 }, "the recorder applies what was added")
	}
	s, rec := open()
	for i := range 60 { // a point a minute for an hour
		rec.Add("dev/temp", fmt.Append(nil, 20+i%5), start.Add(time.Duration(i)*time.Minute), false)
	}
	applied(rec)
	if !rec.Pending() {
		t.Fatal("the recorder has nothing pending after 60 points")
	}
	s.sync()
	if rec.Pending() || s.Stats().Syncs != 1 {
		t.Fatalf("after a sync: pending %v, store stats %+v; want nothing pending, one sync", rec.Pending(), s.Stats())
	}
	for i := 60; i < 90; i++ { // half an hour more, written by Close
		rec.Add("dev/temp", fmt.Append(nil, 20+i%5), start.Add(time.Duration(i)*time.Minute), false)
	}
	applied(rec)
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, rec = open()
	defer s.Close()
	defer rec.Close()
	res, err := rec.Query(context.Background(), history.Query{Topic: "dev/temp", From: start, To: start.Add(90 * time.Minute), Resolution: history.Raw, Points: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Points) != 90 || res.Points[0].Last != 20 || res.Points[89].Last != 20+89%5 {
		t.Fatalf("the next run reads %d raw points (%+v ...); want the 90 recorded", len(res.Points), res.Points[:min(3, len(res.Points))])
	}
}

// commitFault is a part after the history's that fails its Write while
// set: the transaction fails after the history wrote in it, as a full disk
// fails the commit.
type commitFault struct{ failing *atomic.Int32 }

func (commitFault) Open(*bbolt.Tx) error { return nil }
func (commitFault) Bucket() []byte       { return []byte("test-commit-fault") }
func (commitFault) Pending() bool        { return false }
func (commitFault) Written(bool)         {}
func (f commitFault) Write(*bbolt.Tx) error {
	if f.failing.Load() == 2 {
		return fmt.Errorf("write hub.db: %w", syscall.ENOSPC)
	}
	return nil
}

// TestStoreHistoryWhileTheDiskIsFull: the history's points while the
// store cannot write, for an hour and a half of syncs that fail before
// the history writes (writeFault) or after (at commit): once the disk has
// room again, every point is on disk once or counted dropped (what waits
// stays within MaxPending), every rollup counts each point once; the
// store says so once in the log (not per sync) and in Err (/readyz), and
// once that it writes again.
func TestStoreHistoryWhileTheDiskIsFull(t *testing.T) {
	const maxPending = 400
	dir := t.TempDir()
	start := time.Now().Add(-4 * time.Hour).Truncate(time.Hour)
	clk := hubtest.NewClock(start)
	var failing atomic.Int32 // 1: before the parts write; 2: after
	var logs hubtest.LogBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	open := func() (*Store, *history.Recorder) {
		rec := history.New(history.Config{Now: clk.Now, MaxPending: maxPending, Logger: logger})
		s, err := OpenStore(dir, StoreConfig{SyncInterval: time.Hour, Logger: logger, Parts: []StorePart{rec, commitFault{&failing}},
			writeFault: func() error {
				if failing.Load() == 1 {
					return fmt.Errorf("write hub.db: %w", syscall.ENOSPC)
				}
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return s, rec
	}
	s, rec := open()
	const points = 3 * 360 // three hours at one every 10 s, on two series
	maxSeen := 0
	for i := range points {
		ts := start.Add(time.Duration(i) * 10 * time.Second)
		clk.Set(ts)
		rec.Add("full/a", fmt.Append(nil, i), ts, false)
		rec.Add("full/b", fmt.Appendf(nil, `{"t":%d}`, -i), ts, false)
		if i%30 != 29 { // a sync every 5 minutes
			continue
		}
		switch minute := i / 6; {
		case minute >= 30 && minute < 120: // failing from 0:30 to 2:00, both ways
			failing.Store(int32(1 + minute/5%2))
		default:
			failing.Store(0)
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return rec.Stats().Queued == 0 }, "the recorder applies what was added")
		s.sync()
		err := s.Err()
		if (failing.Load() != 0) != (err != nil) {
			t.Fatalf("at %d: failing %d, Err %v", i, failing.Load(), err)
		}
		if err != nil && (!errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), filepath.Join(dir, "hub.db"))) {
			t.Fatalf("Err while the disk is full: %v; want ENOSPC naming the file", err)
		}
		maxSeen = max(maxSeen, rec.Stats().Pending)
	}
	if maxSeen > 2*maxPending {
		t.Errorf("pending reached %d while failing, past twice MaxPending (%d)", maxSeen, 2*maxPending)
	}
	st := rec.Stats()
	if st.PendingDropped == 0 {
		t.Fatalf("stats %+v: an hour and a half of failures should have dropped raw points past MaxPending", st)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "level=ERROR msg=\"store write failed"); n != 1 {
		t.Errorf("the failure logged %d times at ERROR, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "msg=\"store writing again"); n != 1 {
		t.Errorf("the recovery logged %d times, want once", n)
	}

	s, rec = open()
	defer s.Close()
	defer rec.Close()
	from, to := start, start.Add(points*10*time.Second)
	var raw int64
	for _, topic := range []string{"full/a", "full/b"} {
		field := map[string]string{"full/a": "", "full/b": "t"}[topic]
		res, err := rec.Query(context.Background(), history.Query{Topic: topic, Field: field, From: from, To: to, Resolution: history.Raw, Points: history.MaxPoints})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[time.Time]bool{}
		for _, p := range res.Points {
			if seen[p.Time] {
				t.Fatalf("%s: the raw point at %v twice", topic, p.Time)
			}
			seen[p.Time] = true
		}
		raw += int64(len(res.Points))
		for _, lv := range []history.Resolution{history.FiveMinute, history.Hourly} {
			res, err := rec.Query(context.Background(), history.Query{Topic: topic, Field: field, From: from, To: to, Resolution: lv, Points: history.MaxPoints})
			if err != nil {
				t.Fatal(err)
			}
			var count int64
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, p := range res.Points {
				count += p.Count
				lo, hi = min(lo, p.Min), max(hi, p.Max)
			}
			wantLo, wantHi := 0.0, float64(points-1)
			if topic == "full/b" {
				wantLo, wantHi = -wantHi, 0
			}
			if count != points || lo != wantLo || hi != wantHi {
				t.Errorf("%s %s rollups: count %d, %g..%g; want each point once: %d, %g..%g", topic, lv, count, lo, hi, points, wantLo, wantHi)
			}
		}
	}
	t.Logf("raw points on disk %d, dropped %d; pending at most %d", raw, st.PendingDropped, maxSeen)
	if raw+int64(st.PendingDropped) != 2*points {
		t.Errorf("raw points on disk %d and dropped %d: want %d, each point once", raw, st.PendingDropped, 2*points)
	}
}
