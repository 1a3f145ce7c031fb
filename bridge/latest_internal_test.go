package bridge

import (
	"fmt"
	"strings"
	"testing"
)

// latestQueue is a queue of a client with overflow "latest", in format f.
func latestQueue(maxItems, maxBytes int, f format) *queue {
	q := newQueue(maxItems, maxBytes)
	q.setOverflow(OverflowLatest, f)
	return &q
}

// idLine is the line of event seq on topic for a session with ids.
func idLine(topic string, seq uint64) []byte {
	return encodeEvent(nil, formatLinesIDs, topic, fmt.Appendf(nil, "%d", seq), false, "ep", seq)
}

// TestLatestQueueBounds: conflating, the queue holds at most one message
// per topic, within its message bound, its entries within twice that (plus
// a constant) however many messages come; the writer gets the notice, the
// newest of each topic in order of arrival, ids marked, then the replies.
func TestLatestQueueBounds(t *testing.T) {
	const topics, maxItems = 8, 10
	q := latestQueue(maxItems, 1<<20, formatLinesIDs)
	var seq uint64
	for i := range 10000 {
		seq++
		if !q.pushEvent(idLine(fmt.Sprintf("t/%d", i%topics), seq), int64(seq), fmt.Sprintf("t/%d", i%topics)) {
			t.Fatalf("message %d refused: %d topics fit in a queue of %d", seq, topics, maxItems)
		}
		if i == 5000 && !q.pushReply([]byte("reply\n")) {
			t.Fatal("reply refused")
		}
		if l := q.conflated; l != nil && (l.live > topics || len(l.entries) > 2*l.live+64 || len(l.slot) > topics) {
			t.Fatalf("after %d messages: %d kept, %d entries, %d slots", seq, l.live, len(l.entries), len(l.slot))
		}
	}
	if q.conflated == nil {
		t.Fatal("the queue never conflated")
	}
	_, items := q.take(nil)
	if len(items) != 1+topics+1 {
		t.Fatalf("took %d items, want the notice, %d messages and the reply", len(items), topics)
	}
	if want := `["clown.talk/-/overflow",{"mode":"latest","dropped":`; !strings.HasPrefix(string(items[0].line), want) {
		t.Fatalf("first item %q, want the overflow notice", items[0].line)
	}
	for i, it := range items[1 : 1+topics] {
		s := seq - topics + 1 + uint64(i) // the newest of each topic, oldest first
		want := fmt.Sprintf(`["t/%d",%d,{"id":"ep-%d~"}]`+"\n", (s-1)%topics, s, s)
		if string(it.line) != want {
			t.Fatalf("item %d: %q, want %q", i+1, it.line, want)
		}
	}
	if string(items[len(items)-1].line) != "reply\n" {
		t.Fatalf("last item %q, want the reply", items[len(items)-1].line)
	}
	// Taken, the queue is an ordinary one again.
	if !q.pushEvent(idLine("t/0", seq+1), 1, "t/0") || q.conflated != nil {
		t.Fatal("after the take, a message did not go to the ordinary queue")
	}
}

// TestLatestQueueTooManyTopics: when the topics alone exceed the bound, in
// messages or in bytes, the queue overflows (the client is cut off as
// slow).
func TestLatestQueueTooManyTopics(t *testing.T) {
	for _, tc := range []struct {
		name               string
		maxItems, maxBytes int
		fit                int
	}{
		{"messages", 4, 1 << 20, 4},
		{"bytes", 1000, 200, 200 / len(idLine("t/0", 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := latestQueue(tc.maxItems, tc.maxBytes, formatLinesIDs)
			n := 0
			for i := range 1000 {
				topic := fmt.Sprintf("t/%d", i)
				if !q.pushEvent(idLine(topic, uint64(i+1)), 1, topic) {
					break
				}
				n++
			}
			if n != tc.fit {
				t.Fatalf("%d distinct topics taken, want %d", n, tc.fit)
			}
			if !q.overflow || q.conflated != nil || len(q.items) != 0 {
				t.Fatal("the queue did not overflow and let its messages go")
			}
		})
	}
}

// TestLatestQueueFullOfOneTopic: a full queue whose next message repeats
// a topic conflates to the newest of each (here, of one topic and another).
func TestLatestQueueFullOfOneTopic(t *testing.T) {
	q := latestQueue(2, 1<<20, formatLinesIDs)
	for i, topic := range []string{"a", "a", "b"} {
		if !q.pushEvent(idLine(topic, uint64(i+1)), 1, topic) {
			t.Fatalf("message %d refused", i+1)
		}
	}
	_, items := q.take(nil)
	var got []string
	for _, it := range items {
		got = append(got, string(it.line))
	}
	want := []string{
		`["clown.talk/-/overflow",{"mode":"latest","dropped":1}]` + "\n",
		`["a",2,{"id":"ep-2~"}]` + "\n",
		`["b",3,{"id":"ep-3~"}]` + "\n",
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("took %q, want %q", got, want)
	}
}

// TestMarkConflated: the mark goes at the end of the id, in a copy; a line
// without an id is left as it is.
func TestMarkConflated(t *testing.T) {
	lineIDs := encodeEvent(nil, formatLinesIDs, "a", []byte(`{"v":1}`), false, "ep", 7)
	sse := encodeEvent(nil, formatSSE, "a", []byte(`{"v":1}`), false, "ep", 7)
	plain := encodeEvent(nil, formatLines, "a", []byte(`{"v":1}`), false, "ep", 7)
	for _, tc := range []struct {
		line []byte
		f    format
		want string
	}{
		{lineIDs, formatLinesIDs, `["a",{"v":1},{"id":"ep-7~"}]` + "\n"},
		{lineIDs, formatLinesIDs | formatText, `["a",{"v":1},{"id":"ep-7~"}]` + "\n"},
		{sse, formatSSE, "id: ep-7~\ndata: [\"a\",{\"v\":1}]\n\n"},
		{plain, formatLines, `["a",{"v":1}]` + "\n"},
	} {
		before := string(tc.line)
		if got := string(markConflated(tc.line, tc.f)); got != tc.want {
			t.Errorf("markConflated(%q) = %q, want %q", tc.line, got, tc.want)
		}
		if string(tc.line) != before {
			t.Errorf("the shared line was changed: %q", tc.line)
		}
		if strings.HasSuffix(tc.want, "~\"}]\n") || strings.HasPrefix(tc.want, "id: ") {
			id := "ep-7" + conflatedMark
			if !isConflatedID(id) || isConflatedID("ep-7") {
				t.Errorf("isConflatedID does not tell %q from ep-7", id)
			}
		}
	}
}

// TestLatestQueueConflatingIsWaitingAndNotForTheShard: a conflating queue
// whose lines all went into the conflated set (items empty) still has work
// for its owner, and the flush shard's non-blocking take leaves it to the
// writer's take, which writes the conflated lines: else the owner lets go
// of a client whose messages then wait, unwritten, for a push that never
// wakes anyone.
func TestLatestQueueConflatingIsWaitingAndNotForTheShard(t *testing.T) {
	q := latestQueue(2, 1<<20, formatLinesIDs)
	woken := 0
	q.notify = func() { woken++ }
	for seq := uint64(1); seq <= 4; seq++ {
		if !q.pushEvent(idLine("t/0", seq), int64(seq), "t/0") {
			t.Fatalf("message %d refused", seq)
		}
	}
	if q.conflated == nil || len(q.items) != 0 {
		t.Fatalf("conflated %v, %d items: want every message conflated", q.conflated != nil, len(q.items))
	}
	if woken != 1 {
		t.Fatalf("woken %d times, want once (when the queue stopped being empty)", woken)
	}
	if !q.waiting() {
		t.Fatal("a conflating queue reports nothing waiting")
	}
	if items, ok := q.takeUpTo(1 << 20); ok {
		t.Fatalf("the shard's take took %d items from a conflating queue", len(items))
	}
	if _, items := q.take(nil); len(items) != 2 || !strings.Contains(string(items[1].line), `"ep-4~"`) {
		t.Fatalf("the writer's take: %d items, want the notice and message 4 marked", len(items))
	}
	if q.waiting() {
		t.Fatal("taken, the queue still reports something waiting")
	}
}
