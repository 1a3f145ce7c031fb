package bridge

import (
	"errors"
	"sort"
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
// entries, bytes and age. The hub appends under its own lock, with
// increasing sequence numbers: consecutive ones, or a Bus's positions
// (Config.Positional), which may skip. Readers (writers of resuming
// clients, long polls) take only the log's lock and find where to start by
// a binary search (O(log entries)), then copy at most one chunk.
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

// append adds the entry, whose seq is above every other's, evicting the oldest
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
// at seq); nothing before them can be resumed from. Restored.Log has no gap
// up to seq (journal.go); records that break that are not trusted: only
// those after the last gap, ending at seq, are kept, as a read searches by
// seq and would replay across a gap.
func (l *eventLog) restore(records []Record, seq uint64) {
	records = gapFreeEnd(records, seq)
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

// gapFreeEnd returns the records after the last gap in their seqs, or none
// when they do not end at seq.
func gapFreeEnd(records []Record, seq uint64) []Record {
	if len(records) == 0 || records[len(records)-1].Seq != seq {
		return nil
	}
	i := len(records) - 1
	for i > 0 && records[i-1].Seq+1 == records[i].Seq {
		i--
	}
	return records[i:]
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
	k := l.firstAfter(seq)
	return k == l.n || now.Sub(l.at(k).time) <= l.maxAge
}

// at returns the k-th entry held, oldest first (0 <= k < n).
func (l *eventLog) at(k int) *logEntry { return &l.ring[(l.head+k)%len(l.ring)] }

// firstAfter returns k of the first entry held (at(k)) whose seq is above
// seq, or n when there is none: a binary search, as seqs increase but may
// skip.
func (l *eventLog) firstAfter(seq uint64) int {
	return sort.Search(l.n, func(k int) bool { return l.at(k).seq > seq })
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
	for k := l.firstAfter(after); k < l.n && max > 0; k++ {
		e := l.at(k)
		if e.seq >= before {
			break
		}
		dst = append(dst, *e)
		max--
	}
	return dst, nil
}

// eventID formats the id of event seq of epoch (appendEventID's).
func eventID(epoch string, seq uint64) string {
	return string(appendEventID(make([]byte, 0, len(epoch)+21), epoch, seq))
}

// appendEventID appends the id of event seq of epoch to dst.
func appendEventID(dst []byte, epoch string, seq uint64) []byte {
	dst = append(dst, epoch...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, seq, 10)
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
