package bridge

import (
	"fmt"
	"strings"
	"testing"
)

// TestLatestQueueFormatChangeWhileQueued: a session that switches ids on
// or off (config/set on a started session: no restart) while messages of
// the old format wait, then conflates, gets each conflated message marked
// as its own line is framed: a line with an id gets the mark, a line
// without one is left as it is. Marked by the format of the moment, a
// line without an id had its payload changed ({"v":"on~"}), and a line
// with one went out unmarked: a promise of no gap the hub cannot keep.
func TestLatestQueueFormatChangeWhileQueued(t *testing.T) {
	payload := []byte(`{"v":"on"}`)
	line := func(f format, topic string, seq uint64) []byte {
		return encodeEvent(nil, f, topic, payload, false, "ep", seq)
	}
	for _, tc := range []struct {
		name     string
		from, to format
		maxItems int
		topics   []string // the last one conflates the queue
		switchAt int      // messages pushed before the switch
	}{
		{"ids off, before the conflation", formatLinesIDs, formatLines, 3, []string{"a", "b", "c", "a"}, 3},
		{"ids on, before the conflation", formatLines, formatLinesIDs, 3, []string{"a", "b", "c", "a"}, 3},
		{"ids off, while conflating", formatLinesIDs, formatLines, 2, []string{"a", "b", "a", "b"}, 3},
		{"ids on, while conflating", formatLines, formatLinesIDs, 2, []string{"a", "b", "a", "b"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := latestQueue(tc.maxItems, 1<<20, tc.from)
			want := map[string]string{} // topic → the line it must be written as
			f := tc.from
			for i, topic := range tc.topics {
				if i == tc.switchAt {
					f = tc.to
					q.setOverflow(OverflowLatest, f) // as fanout.configure does, under the fan-out lock
				}
				seq := uint64(i + 1)
				l := line(f, topic, seq)
				if !q.pushEvent(l, int64(seq), topic) {
					t.Fatalf("message %d refused", seq)
				}
				want[topic] = string(l)
				if f == formatLinesIDs {
					want[topic] = strings.Replace(string(l), fmt.Sprintf(`"ep-%d"`, seq), fmt.Sprintf(`"ep-%d~"`, seq), 1)
				}
			}
			if q.conflated == nil {
				t.Fatal("the queue did not conflate")
			}
			_, items := q.take(nil)
			if len(items) != 1+len(want) {
				t.Fatalf("took %d items, want the notice and %d messages", len(items), len(want))
			}
			for _, it := range items[1:] {
				if string(it.line) != want[it.topic] {
					t.Errorf("topic %s written as %q, want %q", it.topic, it.line, want[it.topic])
				}
			}
		})
	}
}

// TestLatestQueueRepliesWithinBound: while a queue conflates, its replies
// and the topics it keeps together stay within the message bound (the
// documented bound: one message per topic kept, and every reply); a reply
// past it overflows the queue, which then lets its conflated messages go.
func TestLatestQueueRepliesWithinBound(t *testing.T) {
	const maxItems, topics = 4, 2
	q := latestQueue(maxItems, 1<<20, formatLinesIDs)
	for i, topic := range []string{"a", "b", "a", "a", "a"} {
		if !q.pushEvent(idLine(topic, uint64(i+1)), 1, topic) {
			t.Fatalf("message %d refused", i+1)
		}
	}
	if q.conflated == nil || q.conflated.live != topics {
		t.Fatalf("the queue did not conflate to %d topics", topics)
	}
	accepted := 0
	for range 2 * maxItems {
		if !q.pushReply([]byte("reply\n")) {
			break
		}
		accepted++
	}
	if accepted != maxItems-topics {
		t.Fatalf("%d replies taken beside %d topics kept, want %d (a bound of %d)", accepted, topics, maxItems-topics, maxItems)
	}
	if !q.overflow || q.conflated != nil || len(q.items) != 0 {
		t.Fatal("the overflowed queue still holds its messages")
	}
}
