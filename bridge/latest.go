package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// "Latest value per topic": the overflow mode of a client that asked for it
// (config/set "overflow": "latest"; SSE ?overflow=latest). Without it, a
// client whose queue is full is cut off as slow (ReasonSlow). With it, the
// queue conflates instead: the messages it holds, and every message after
// them until the writer next takes the queue, are kept per topic, only the
// newest of each, in the order of their newest message. The writer then
// writes, in one go, an overflow notice (how many messages were dropped),
// the newest message of each topic, and the replies queued meanwhile; the
// queue is then an ordinary queue again.
//
// Bounds: the queue's message and byte bounds still hold, counting one
// message per topic kept (and every reply). When the distinct topics alone
// exceed them, the client is cut off as slow, as without the option: the
// hub does not choose which topics a client may miss.
//
// Event ids: a message written from a conflated queue keeps its event's id,
// marked with conflatedMark ("<epoch>-<seq>~"). An id promises "you have had
// every event up to this one"; the mark says "you have had the newest value
// of each of your topics up to this one, but not every event". A resume from
// a marked id is answered with a resync (the last values, then the stream),
// never as one without a gap. An unmarked id received after the conflated
// messages is an ordinary promise again: the client has the newest value of
// each topic from the conflated messages, and every event since (it was told
// what it missed by the overflow notice before them).

// Overflow modes (config/set "overflow", SSE ?overflow=).
const (
	OverflowClose  = "close"  // the default: a client whose queue overflows is cut off as slow
	OverflowLatest = "latest" // keep the newest message of each topic instead
)

// conflatedMark ends the id of an event written from a conflated queue.
const conflatedMark = "~"

// topicOverflow is the notice a conflating client gets before the
// conflated messages: ["clown.talk/-/overflow", {"mode": "latest",
// "dropped": N}]; SSE: "event: overflow".
const topicOverflow = controlPrefix + "overflow"

// checkOverflow validates an overflow mode ("" is the default).
func checkOverflow(mode string) error {
	switch mode {
	case "", OverflowClose, OverflowLatest:
		return nil
	}
	return errorf(CodeBadRequest, "overflow %q: %q (the default) or %q", mode, OverflowClose, OverflowLatest)
}

// latest is a conflating queue's messages: the newest of each topic. It
// belongs to its queue and is guarded by the queue's lock.
type latest struct {
	format  format         // the client's when the queue began to conflate, for the notice (each message is marked by its own format)
	slot    map[string]int // topic → its entry in entries; at most the queue's maxItems topics
	entries []outItem      // in order of arrival; a replaced entry is left with a nil line
	live    int            // entries with a line
	bytes   int            // of the live entries' lines
	dropped uint64         // messages replaced by a newer one of their topic
}

func newLatest(f format) *latest {
	return &latest{format: f, slot: make(map[string]int)}
}

// put keeps it as its topic's newest message.
func (l *latest) put(it outItem) {
	if i, ok := l.slot[it.topic]; ok {
		old := &l.entries[i]
		l.bytes -= len(old.line)
		l.live--
		l.dropped++
		*old = outItem{}
	}
	l.slot[it.topic] = len(l.entries)
	l.entries = append(l.entries, it)
	l.live++
	l.bytes += len(it.line)
	if len(l.entries) > 2*l.live+64 {
		l.compact()
	}
}

// compact drops the replaced entries, so that entries stays within twice
// the topics kept.
func (l *latest) compact() {
	n := 0
	for _, it := range l.entries {
		if it.line != nil {
			l.slot[it.topic] = n
			l.entries[n] = it
			n++
		}
	}
	clear(l.entries[n:])
	l.entries = l.entries[:n]
}

// frames appends to dst what the writer writes for l: the overflow
// notice, the newest message of each topic in order, ids marked, then
// replies (the replies and notices queued meanwhile). A queue conflates
// only when it is full and some topic came twice (else it overflows), so
// something was always dropped.
func (l *latest) frames(dst, replies []outItem) []outItem {
	dst = append(dst, outItem{line: overflowNotice(l.format, l.dropped)})
	for _, it := range l.entries {
		if it.line != nil {
			it.line = markConflated(it.line, it.format)
			dst = append(dst, it)
		}
	}
	return append(dst, replies...)
}

// overflowNotice tells a client that messages were dropped for newer ones.
func overflowNotice(f format, dropped uint64) []byte {
	payload, _ := json.Marshal(struct {
		Mode    string `json:"mode"`
		Dropped uint64 `json:"dropped"`
	}{OverflowLatest, dropped})
	if f&^formatText == formatSSE {
		return fmt.Appendf(nil, "event: overflow\ndata: %s\n\n", payload)
	}
	return appendFrame(nil, topicOverflow, payload, "")
}

// markConflated returns a copy of line (shared with other clients, so never
// changed) with its event id marked; a line without an id as it is.
//
//	SSE:         "id: <id>\ndata: ..."            → "id: <id>~\ndata: ..."
//	lines + ids: `[...,{"id":"<id>"}]` + "\n"     → `[...,{"id":"<id>~"}]` + "\n"
func markConflated(line []byte, f format) []byte {
	switch f &^ formatText {
	case formatSSE:
		if !bytes.HasPrefix(line, []byte("id: ")) {
			return line
		}
		i := bytes.IndexByte(line, '\n')
		if i < 0 {
			return line
		}
		return splice(line, i, conflatedMark)
	case formatLinesIDs:
		const tail = "\"}]\n"
		if !bytes.HasSuffix(line, []byte(tail)) {
			return line
		}
		return splice(line, len(line)-len(tail), conflatedMark)
	}
	return line
}

// splice is a copy of b with s inserted at i.
func splice(b []byte, i int, s string) []byte {
	out := make([]byte, 0, len(b)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[i:]...)
}

// isConflatedID reports whether id was written from a conflated queue.
func isConflatedID(id string) bool {
	return len(id) > len(conflatedMark) && id[len(id)-len(conflatedMark):] == conflatedMark
}

// setOverflow sets the queue's overflow mode for a client in format f.
// A queue conflating when the client turns the mode off goes on until the
// writer takes it.
func (q *queue) setOverflow(mode string, f format) {
	q.mu.Lock()
	q.keepLatest, q.format = mode == OverflowLatest, f
	q.mu.Unlock()
}

// pushLatestLocked is pushBounded for a queue that keeps the newest message
// of each topic, once it is full or conflating: the first time, the
// messages queued move into q.conflated (replies and notices stay in
// items); then it takes it, and reports whether the queue is within its
// bounds (counting one message per topic kept). Called under q.mu.
func (q *queue) pushLatestLocked(it outItem) bool {
	if q.conflated == nil {
		l := newLatest(q.format)
		kept, bytes := q.items[:0], 0
		for _, x := range q.items {
			if x.topic != "" {
				l.put(x)
			} else {
				kept = append(kept, x)
				bytes += len(x.line)
			}
		}
		clear(q.items[len(kept):])
		q.items, q.bytes, q.conflated = kept, bytes, l
	}
	l := q.conflated
	if it.topic != "" {
		l.put(it)
	} else {
		q.items = append(q.items, it)
		q.bytes += len(it.line)
	}
	n := len(q.items) + l.live
	return n <= q.maxItems && (n <= 1 || q.bytes+l.bytes <= q.maxBytes)
}
