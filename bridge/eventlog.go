package bridge

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// logEntry is one delivered message as the event log keeps it.
type logEntry struct {
	seq     uint64
	topic   string // absolute
	payload []byte // JSON, shared with every frame made from it
	time    time.Time
	// What the message did to the topic's last value, for readers that
	// bring a snapshot of the values up to date from the log.
	retained, cleared bool
	text              bool // see Record.Text
}

func (e *logEntry) size() int { return len(e.topic) + len(e.payload) + 64 }

// errGone says that events a client needs have left the log.
var errGone = errors.New("events are no longer in the log")

// eventLog is the ring of recent messages clients resume from, bounded in
// entries, bytes and age. The hub appends under its own lock, so sequence
// numbers are consecutive; readers (writers of resuming clients, long
// polls) take only the log's lock.
type eventLog struct {
	mu        sync.RWMutex
	ring      []logEntry // circular; ring[head] is the oldest
	head, n   int
	bytes     int
	maxBytes  int
	maxAge    time.Duration
	firstKept uint64 // the oldest seq a client may still resume after (the seq before the oldest entry)
}

func newEventLog(entries, maxBytes int, maxAge time.Duration) *eventLog {
	return &eventLog{ring: make([]logEntry, entries), maxBytes: maxBytes, maxAge: maxAge}
}

// append adds the entry with the next sequence number, evicting the oldest
// entries past the bounds.
func (l *eventLog) append(e logEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == len(l.ring) {
		l.evictOldest()
	}
	l.ring[(l.head+l.n)%len(l.ring)] = e
	l.n++
	l.bytes += e.size()
	for l.n > 1 && (l.bytes > l.maxBytes || e.time.Sub(l.ring[l.head].time) > l.maxAge) {
		l.evictOldest()
	}
}

func (l *eventLog) evictOldest() {
	old := &l.ring[l.head]
	l.firstKept = old.seq
	l.bytes -= old.size()
	*old = logEntry{}
	l.head = (l.head + 1) % len(l.ring)
	l.n--
}

// restore fills the log with an earlier run's records (oldest first, ending
// at seq); nothing before them can be resumed from.
func (l *eventLog) restore(records []Record, seq uint64) {
	l.mu.Lock()
	l.firstKept = seq
	if len(records) > 0 {
		l.firstKept = records[0].Seq - 1
	}
	l.mu.Unlock()
	for _, r := range records {
		l.append(logEntry{seq: r.Seq, topic: r.Topic, payload: r.Payload, time: r.Time, retained: r.Retained, cleared: r.Cleared, text: r.Text})
	}
}

// covers reports whether every event after seq is still in the log (or
// none has happened since), i.e. whether a client that has seq can resume.
func (l *eventLog) covers(seq uint64, now time.Time) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if seq < l.firstKept {
		return false
	}
	if l.n == 0 {
		return true
	}
	// The next event the client needs must not be older than maxAge.
	i := l.index(seq + 1)
	return i < 0 || now.Sub(l.ring[i].time) <= l.maxAge
}

// index returns the ring position of seq, or -1 when it is not held.
func (l *eventLog) index(seq uint64) int {
	if l.n == 0 {
		return -1
	}
	oldest := l.ring[l.head].seq
	if seq < oldest || seq >= oldest+uint64(l.n) {
		return -1
	}
	return (l.head + int(seq-oldest)) % len(l.ring)
}

// read appends to dst the entries with after < seq < before, at most max of
// them, oldest first. It returns errGone when entries after `after` have
// already been evicted.
func (l *eventLog) read(dst []logEntry, after, before uint64, max int) ([]logEntry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if after < l.firstKept {
		return dst, errGone
	}
	for seq := after + 1; seq < before && max > 0; seq++ {
		i := l.index(seq)
		if i < 0 {
			break // not appended yet
		}
		dst = append(dst, l.ring[i])
		max--
	}
	return dst, nil
}

// eventID formats the id of event seq of epoch.
func eventID(epoch string, seq uint64) string {
	return epoch + "-" + strconv.FormatUint(seq, 10)
}

// parseEventID splits an id made by eventID.
func parseEventID(id string) (epoch string, seq uint64, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:i], seq, true
}
