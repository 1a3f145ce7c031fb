package bridge

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// passCounts is how many passes sh ran, and how many of them a delivery's
// goroutine ran (help).
func passCounts(sh *flushShard) (passes, helped uint64) {
	sh.pass.Lock()
	defer sh.pass.Unlock()
	return sh.passes, sh.helped
}

// TestStarvedShardIsFlushedByDeliveries: when the shard's goroutine does
// not run (on one core, it waits behind every device being read), the
// deliveries that keep coming flush its ready list once it has waited
// longer than helpAfter, and the client gets every message, in order.
func TestStarvedShardIsFlushedByDeliveries(t *testing.T) {
	h, addr := idleHub(t, Config{FlushShards: 1})
	ws := dialConfigured(t, addr, `{"subscribe": ["d/#"]}`)
	h.flush.close()          // the shard's goroutine is kept from running from now on
	t.Cleanup(h.flush.start) // and runs again before the hub closes (cleanups run last first)
	sh := h.flush.shards[0]
	before, _ := passCounts(sh) // the shard's own passes (the config/ok)

	sent := 0
	publish := func() {
		sent++
		h.deliver(Message{Topic: "d/" + strconv.Itoa(sent%3), Payload: []byte(strconv.Itoa(sent))})
	}
	publish() // the client goes on the list, which nobody else flushes
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		publish() // as devices do: one of these finds the list waiting longer than helpAfter
		_, helped := passCounts(sh)
		return helped > 0
	}, "no delivery flushed the waiting list (helpAfter %v)", time.Duration(sh.helpAfter))
	// Every message sent so far arrives, in order: what came after the
	// last help is flushed by a delivery that finds it waiting too.
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for {
			line, err := ws.TryReadLine(hubtest.Timeout)
			if err != nil {
				return // the connection closed at the end of the test, or nothing came
			}
			lines <- line
		}
	}()
	defer func() {
		_ = ws.Conn.Close()
		for range lines { // until the reader has ended
		}
	}()
	want, deadline := sent, time.Now().Add(hubtest.Timeout)
	for i := 1; i <= want; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("message %d of %d: the connection ended", i, want)
			}
			if f := hubtest.ParseFrame(t, line); string(f.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d: got %s (%s)", i, f.Payload, f.Topic)
			}
			i++
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatalf("message %d of %d did not arrive", i, want)
			}
			publish() // the list waited more than helpAfter: this delivery flushes it
		}
	}
	if passes, helped := passCounts(sh); helped == 0 || helped != passes-before {
		t.Errorf("%d passes since the shard stopped, %d of them by deliveries: want every one", passes-before, helped)
	}
}

// TestHelpersRaceTheShardInOrder: with every delivery trying to flush
// (helpAfter 0) while the shards' goroutines run too, one pass runs at a
// time, and each client still gets every publisher's messages exactly
// once, in order.
func TestHelpersRaceTheShardInOrder(t *testing.T) {
	const clients, publishers, perPublisher = 8, 4, 500
	h, addr := idleHub(t, Config{FlushShards: 2, MaxSessionsPerAddress: 64})
	var conns []*hubtest.WS
	for range clients {
		conns = append(conns, dialConfigured(t, addr, `{"subscribe": ["p/#"]}`))
	}
	for _, sh := range h.flush.shards {
		sh.helpAfter = 0 // set before any delivery reads it
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := 1; i <= perPublisher; i++ {
				h.deliver(Message{Topic: fmt.Sprintf("p/%d", p), Payload: []byte(strconv.Itoa(i))})
			}
		})
	}
	for c, ws := range conns {
		next := map[string]int{}
		for range publishers * perPublisher {
			line, err := ws.TryReadLine(hubtest.Timeout)
			if err != nil {
				t.Fatalf("client %d: %v", c, err)
			}
			f := hubtest.ParseFrame(t, line)
			if want := next[f.Topic] + 1; string(f.Payload) != strconv.Itoa(want) {
				t.Fatalf("client %d: %s brought %s, want %d", c, f.Topic, f.Payload, want)
			}
			next[f.Topic]++
		}
	}
	wg.Wait()
	var helped uint64
	for _, sh := range h.flush.shards {
		_, n := passCounts(sh)
		helped += n
	}
	if helped == 0 {
		t.Error("no delivery ran a pass: the race this test is for did not happen")
	}
}

// TestShardWaitAfter: after a wide pass a shard waits its pause; after a
// narrow one that began while busy, until busyGap after it began, or the
// whole window when a client had coalesceMany messages; otherwise, and
// with the window off, not at all.
func TestShardWaitAfter(t *testing.T) {
	const window = 2 * time.Millisecond
	on, off := &flushShard{window: window}, &flushShard{window: -1}
	if got := on.busyGap(); got != window/4 {
		t.Fatalf("busyGap %v, want %v", got, window/4)
	}
	for _, c := range []struct {
		name string
		sh   *flushShard
		n    int
		most int
		busy bool
		took time.Duration
		want time.Duration
	}{
		{"narrow, idle", on, 10, 1, false, 0, 0},
		{"narrow, idle, many", on, 10, coalesceMany, false, 0, 0},
		{"narrow, busy", on, 10, 2, true, 100 * time.Microsecond, window/4 - 100*time.Microsecond},
		{"narrow, busy, a few short of many", on, 10, coalesceMany - 1, true, 0, window / 4},
		{"narrow, busy, many", on, 10, coalesceMany, true, 100 * time.Microsecond, window - 100*time.Microsecond},
		{"narrow, busy, a long pass", on, 10, 2, true, window, 0},
		{"narrow, busy, many, a long pass", on, 10, coalesceMany, true, window, 0},
		{"wide, busy", on, coalesceFull / 2, coalesceMany, true, 0, window / 2},
		{"wide, idle", on, coalesceFull / 2, 1, false, 0, window / 2},
		{"off, narrow, busy", off, 10, 2, true, 0, 0},
		{"off, narrow, busy, many", off, 10, coalesceMany, true, 0, 0},
		{"off, wide", off, coalesceFull, 1, false, 0, 0},
	} {
		if got := c.sh.waitAfter(c.n, c.most, c.busy, c.took); got != c.want {
			t.Errorf("%s: wait %v, want %v", c.name, got, c.want)
		}
	}
}

// TestShardBusy: a shard is busy when its passes begin less than busyGap
// apart, or when, after a wait, a client had several messages; not when
// messages come slower, even after a wait (one message found).
func TestShardBusy(t *testing.T) {
	const window = 2 * time.Millisecond
	sh := &flushShard{window: window}
	for _, c := range []struct {
		name   string
		since  time.Duration
		waited bool
		most   int
		want   bool
	}{
		{"back to back", window / 8, false, 1, true},
		{"slower", window, false, 1, false},
		{"slower, many waiting", window, false, 5, false},
		{"after a wait, several", window, true, 3, true},
		{"after a wait, one", window, true, 1, false},
		{"first pass", time.Hour, false, 1, false},
	} {
		if got := sh.busy(c.since, c.waited, c.most); got != c.want {
			t.Errorf("%s: busy %v, want %v", c.name, got, c.want)
		}
	}
}

// TestHelpLeavesWideListsToTheShard: a delivery runs the pass of a narrow
// list that waited too long, never of a wide one (the shard's pauses
// coalesce those), nor of one that has not waited helpAfter since the
// last pass ended.
func TestHelpLeavesWideListsToTheShard(t *testing.T) {
	const helpAfter = int64(5 * time.Millisecond)
	for _, c := range []struct {
		name    string
		listed  int32
		passEnd int64
		ran     bool
	}{
		{"narrow, waited", 3, 0, true},
		{"wide, waited", coalesceFrom, 0, false},
		{"narrow, a pass just ended", 3, 10 * helpAfter, false},
	} {
		sh := &flushShard{helpAfter: helpAfter}
		sh.waiting.Store(1)
		sh.listed.Store(c.listed)
		sh.passEnd.Store(c.passEnd)
		sh.help(10*helpAfter + 1)
		if ran := sh.waiting.Load() == 0; ran != c.ran { // a pass swaps the list out
			t.Errorf("%s: a pass ran %v, want %v", c.name, ran, c.ran)
		}
	}
}
