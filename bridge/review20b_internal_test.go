package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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

// TestAheadWaitOutlastsTheHello: a WebSocket whose config/set names an id
// ahead of a positional hub waits longer than Config.HelloTimeout; the
// watchdog must not start it with the default filters meanwhile, or the
// events it delivers then (which the client had, from the replica it comes
// from) are written before config/ok: duplicates, and older values after
// newer ones.
func TestAheadWaitOutlastsTheHello(t *testing.T) {
	h := positionalHub(t, Config{AheadWait: 10 * time.Second, HelloTimeout: 20 * time.Millisecond})
	deliverAt(h, "t", 5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeWebSocket(w, r, "") }))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": ["#"], "ids": true, "since": "s.1-8"}]`)); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, 5*time.Second, func() bool { return h.Stats().AheadWaits == 1 }, "the config waits for s.1-8")
	// Past the hello: the watchdog took it, and had its chance to start
	// the session.
	hubtest.Eventually(t, 5*time.Second, func() bool {
		h.watch.mu.Lock()
		defer h.watch.mu.Unlock()
		return len(h.watch.hello) == 0
	}, "the watchdog takes the hello")
	for _, p := range []uint64{6, 7, 8, 9} {
		deliverAt(h, "t", p)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for len(got) == 0 || !strings.Contains(got[len(got)-1], `"s.1-9"`) {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(frame), "\n"), "\n") {
			if strings.Contains(line, "config/ok") {
				line = "config/ok"
			}
			got = append(got, line)
		}
	}
	want := []string{"config/ok", `["t",9,{"id":"s.1-9"}]`}
	if !slices.Equal(got, want) {
		t.Fatalf("the client got\n%q\nwant\n%q", got, want)
	}
}

// TestPositionalOddIDs: ids a positional hub must answer with a resync at
// once (no wait for an id ahead): conflated ones (even ahead), garbage, a
// plain hub's, and another stream's; an id at the floor resumes, one below
// it resyncs.
func TestPositionalOddIDs(t *testing.T) {
	h := positionalHub(t, Config{AheadWait: time.Minute})
	h.ResyncFrom(10, ResyncNotice{Code: ResyncBrokerConnected, Reason: "snapshot"})
	deliverAt(h, "t", 10)
	deliverAt(h, "t", 12)
	for _, c := range []struct{ id, code string }{
		{"s.1-12~", ResyncConflated},
		{"s.1-99~", ResyncConflated}, // ahead, but conflated: no wait
		{"s.1-", ResyncInvalidID},
		{"s.1-x", ResyncInvalidID},
		{"-12", ResyncInvalidID},
		{"s.1--12", ResyncRestarted},                  // epoch "s.1-"
		{"s.1-18446744073709551616", ResyncInvalidID}, // past uint64
		{"0a1b2c3d4e5f-12", ResyncRestarted},          // a plain hub's
		{"S.2-12", ResyncRestarted},                   // the stream created again
		{"s.1-9", ResyncBrokerGap},                    // below the floor
		{"s.1-10", ""},                                // at it
		{"s.1-11", ""},                                // a position this replica has no event at
	} {
		done := make(chan ResyncNotice, 1)
		go func() {
			_, resync := h.fan.resumePoint(c.id, "", []string{"#"})
			done <- resync
		}()
		select {
		case r := <-done:
			if r.Code != c.code {
				t.Errorf("id %q: %q, want %q", c.id, r.Code, c.code)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("id %q: still waiting (AheadWait is a minute: it waits when it must not)", c.id)
		}
	}
	if n := h.Stats().AheadWaits; n != 0 {
		t.Fatalf("%d waits for ids ahead; want none", n)
	}
}

// TestHoleOnOneReplica: replicas A and B read the same stream; A misses
// 13..19 (a hole), B does not. A resumes no id before the hole; B, which
// has every message, resumes them all, and its floor stays where it was
// (a floor says what one replica holds). A browser A resynced at the hole
// holds the id of the values it got (12): on B it gets exactly the
// messages A missed, then the rest.
func TestHoleOnOneReplica(t *testing.T) {
	a, b := positionalHub(t, Config{}), positionalHub(t, Config{})
	for _, h := range []*Hub{a, b} {
		h.ResyncFrom(10, ResyncNotice{Code: ResyncBrokerConnected, Reason: "snapshot"})
		for p := uint64(10); p <= 12; p++ {
			deliverAt(h, "t", p)
		}
	}
	browser := attachTest(t, a, "", "#")
	configureIDs(t, a, browser)
	for p := uint64(13); p <= 19; p++ {
		deliverAt(b, "t", p)
	}
	a.ResyncFrom(19, ResyncNotice{Code: ResyncBrokerGap, Reason: "hole"})
	for _, h := range []*Hub{a, b} {
		deliverAt(h, "t", 20)
	}
	var written []string
	if err := a.drain(browser, &drainer{}, func(lines [][]byte) error {
		for _, l := range lines {
			written = append(written, string(l))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var resyncID string
	for _, line := range written {
		if i := strings.Index(line, `"id":"s.1-`); i >= 0 && strings.Contains(line, "state") {
			resyncID = line[i+6 : i+6+strings.IndexByte(line[i+6:], '"')]
		}
	}
	if resyncID != "s.1-12" {
		t.Fatalf("the resync at A's hole gave the id %q; want s.1-12 (the values it brought)", resyncID)
	}
	for _, c := range []struct {
		h      *Hub
		id     string
		code   string
		replay string
	}{
		{a, "s.1-12", ResyncBrokerGap, ""},
		{a, "s.1-15", ResyncBrokerGap, ""},
		{a, "s.1-19", "", "20"},
		{b, "s.1-12", "", "13 14 15 16 17 18 19 20"}, // the browser A resynced: what A missed
		{b, "s.1-15", "", "16 17 18 19 20"},
		{b, "s.1-20", "", ""},
	} {
		name := "A"
		if c.h == b {
			name = "B"
		}
		after, resync := c.h.fan.resumePoint(c.id, "", []string{"#"})
		if resync.Code != c.code {
			t.Errorf("%s, from %s: %q, want %q", name, c.id, resync.Code, c.code)
			continue
		}
		if c.code != "" {
			continue
		}
		entries, err := c.h.events.read(nil, after, c.h.fan.position()+1, 100)
		var got []string
		for _, e := range entries {
			got = append(got, fmt.Sprint(e.seq))
		}
		if err != nil || strings.Join(got, " ") != c.replay {
			t.Errorf("%s, from %s: replays %q (%v), want %q", name, c.id, got, err, c.replay)
		}
	}
}
