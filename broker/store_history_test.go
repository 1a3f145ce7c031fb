package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

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
