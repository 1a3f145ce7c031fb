package bridge

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestRestoredLogWithAGapIsNotReplayedAcross: a plain hub's restored log
// must have no gap up to Restored.Seq (journal.go). The log used to stop a
// replay at a missing seq (then the client resynced); now that it searches
// by seq, a Journal that breaks the contract would make it replay across
// the gap. The hub keeps only the part of the log it can vouch for: the
// records after the last gap, ending at Seq.
func TestRestoredLogWithAGapIsNotReplayedAcross(t *testing.T) {
	now := time.Now()
	rec := func(seqs ...uint64) []Record {
		var out []Record
		for _, s := range seqs {
			out = append(out, Record{Seq: s, Topic: "t", Payload: fmt.Appendf(nil, "%d", s), Time: now})
		}
		return out
	}
	for _, c := range []struct {
		name    string
		log     []Record
		seq     uint64
		resumes map[uint64]string // id → resync code ("" resumes)
	}{
		{"a gap inside", rec(1, 2, 3, 5, 6), 6, map[uint64]string{0: ResyncTooOld, 2: ResyncTooOld, 3: ResyncTooOld, 4: "", 5: "", 6: ""}},
		{"missing at the end", rec(1, 2, 3), 5, map[uint64]string{2: ResyncTooOld, 3: ResyncTooOld, 5: ""}},
		{"whole", rec(3, 4, 5), 5, map[uint64]string{1: ResyncTooOld, 2: "", 4: "", 5: ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newTestHub(t, Config{Restore: &Restored{Epoch: "e", Seq: c.seq, Log: c.log}})
			for id, code := range c.resumes {
				if _, resync := h.fan.resumePoint(eventID("e", id), "", []string{"#"}); resync.Code != code {
					t.Errorf("resume from %d: %q, want %q", id, resync.Code, code)
				}
			}
			// What a client resuming from 3 is written: never events
			// after a missing one without a resync before them.
			cl := attachTest(t, h, "", "#")
			if err := h.configure(context.Background(), cl, []byte(`{"subscribe":["#"],"ids":true,"since":"e-3"}`)); err != nil {
				t.Fatal(err)
			}
			var all strings.Builder
			for range 3 { // a catchup that restarts the client queues its resync for the next drain
				if err := h.drain(cl, &drainer{}, func(lines [][]byte) error {
					for _, l := range lines {
						all.Write(l)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if wrote := all.String(); c.resumes[3] != "" && !strings.Contains(wrote, "resync") {
				t.Errorf("resume from 3 wrote, with no resync:\n%s", wrote)
			}
		})
	}
}

// TestAheadWaitsAreBoundedAndLockFree: a thousand clients resuming at once
// with ids ahead of a positional hub wait on their own goroutines (none
// added), with the fan-out free to deliver meanwhile; they resume once the
// hub gets there, and those still waiting go at once when the hub closes.
func TestAheadWaitsAreBoundedAndLockFree(t *testing.T) {
	const n = 1000
	h := positionalHub(t, Config{AheadWait: time.Minute})
	deliverAt(h, "t", 5)
	before := runtime.NumGoroutine()
	type point struct {
		id     uint64
		after  uint64
		resync string
	}
	res := make(chan point, n)
	var wg sync.WaitGroup
	for i := range n {
		id := uint64(6 + i%2*1000) // half reach 6, half 1006 (never, before Close)
		wg.Go(func() {
			after, resync := h.fan.resumePoint(eventID("s.1", id), "", []string{"#"})
			res <- point{id, after, resync.Code}
		})
	}
	hubtest.Eventually(t, 10*time.Second, func() bool { return h.Stats().AheadWaits == n }, "every resume waits")
	if g := runtime.NumGoroutine(); g > before+n+10 {
		t.Fatalf("%d goroutines for %d waiting resumes (%d before): the wait starts its own", g, n, before)
	}
	deliverAt(h, "t", 6) // under the fan-out lock: not held by the waiters
	for range n / 2 {
		select {
		case p := <-res:
			if p.id != 6 || p.after != 6 || p.resync != "" {
				t.Fatalf("resume %+v; want id 6 resumed after 6", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the resumes of id 6 did not go on once the hub reached it")
		}
	}
	start := time.Now()
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(res)
	for p := range res {
		if p.id != 1006 || p.resync != ResyncUnknownID {
			t.Fatalf("after Close, resume %+v; want id 1006, unknown-id", p)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the waits ended %v after Close (AheadWait a minute)", d)
	}
}
