package bridge

import (
	"fmt"
	"testing"
)

// TestRestartKeepsRepliesInOrderWithinTheBound: a restart drops the queued
// messages but keeps the replies (and the frames of a catchup not yet
// taken), in order, before the new catchup's own frames; the replies it
// carries still count against the queue's bound, so a client that keeps
// restarting without reading is cut off as slow like any other.
func TestRestartKeepsRepliesInOrderWithinTheBound(t *testing.T) {
	q := newQueue(8, 1<<20)
	q.pushReply([]byte("subscribe/ok"))
	q.push([]byte("message"), 1)
	q.pushReply([]byte("error"))
	q.restart(&catchup{frames: [][]byte{[]byte("config/ok 1")}})
	q.pushReply([]byte("state/ok"))
	q.restart(&catchup{frames: [][]byte{[]byte("config/ok 2")}})

	cu, items := q.take(nil)
	if got, want := fmt.Sprintf("%s", cu.frames), "[subscribe/ok error config/ok 1 state/ok config/ok 2]"; got != want {
		t.Fatalf("after two restarts the catchup writes %s, want %s", got, want)
	}
	if len(items) != 0 {
		t.Fatalf("%d items queued behind the catchup, want none", len(items))
	}

	refused := false
	for i := range 20 {
		if !q.pushReply(fmt.Appendf(nil, "reply %d", i)) {
			refused = true
			break
		}
		q.restart(&catchup{})
	}
	if !refused || !q.overflow {
		t.Fatal("a client that restarts without reading was never refused")
	}
}
