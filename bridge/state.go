package bridge

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/topics"
)

// Value is the last message on a topic.
type Value struct {
	Topic    string          `json:"topic"`
	Payload  json.RawMessage `json:"payload"`
	Time     time.Time       `json:"time"`
	Retained bool            `json:"retained,omitempty"`
	text     bool            // see Record.Text
	seq      uint64
	born     uint64 // stateStore.snaps when it was stored
}

// Sample is one point of a topic's history.
type Sample struct {
	Payload json.RawMessage `json:"payload"`
	Time    time.Time       `json:"time"`
}

// What a kept topic costs besides its payloads, roughly: the map entry, the
// topicState, its Value and list links; and each sample's header. A kept
// topic counts len(topic) + TopicOverhead + its last payload, plus
// len(payload) + SampleOverhead per sample: Config.HistoryBytes bounds the
// sum, and a store that keeps the same topics (broker.Store) counts them the
// same way, so that disk and memory hold the same set.
const (
	TopicOverhead  = 200
	SampleOverhead = 48
)

// stateStore keeps the last value of every topic and a short history of
// each, bounded in topics and in bytes (payloads and topic names, plus a
// fixed overhead per topic and per sample): the topic updated least
// recently goes first.
//
// Its lock is its own. Writers (the hub's delivery, one update at a time)
// hold it for O(1) work plus the evictions an update causes. Readers never
// scan under it: a reader copies the slice of value pointers and matches
// outside the lock, so a delivery waits at most for that copy (one pointer
// per kept topic). A value a reader may hold is never changed: an update
// replaces it, unless no snapshot was taken since it was stored (then no
// reader has it, and it is changed in place, without an allocation).
type stateStore struct {
	mu        sync.RWMutex
	topics    map[string]*topicState
	all       []*Value    // every topic's last value, in no order: what readers copy
	newest    *topicState // the most recently updated; newest.older is the next
	oldest    *topicState
	bytes     int
	seq       uint64        // the last event applied
	snaps     atomic.Uint64 // snapshots taken; counted under the read lock
	maxTopics int
	maxBytes  int
	history   int // samples kept per topic
}

type topicState struct {
	last         *Value   // replaced, never changed, by an update
	pos          int      // of last in stateStore.all
	samples      []Sample // circular once full
	next         int
	bytes        int
	older, newer *topicState
}

func newStateStore(maxTopics, maxBytes, history int) *stateStore {
	return &stateStore{topics: make(map[string]*topicState), maxTopics: maxTopics, maxBytes: maxBytes, history: history}
}

// Observe keeps r as its topic's last value and in its history, or clears
// the topic (see Observer).
func (s *stateStore) Observe(r Record) {
	if r.Cleared {
		s.clear(r.Topic, r.Seq)
	} else {
		s.update(r.Topic, r.Payload, r.Retained, r.Text, r.Seq, r.Time)
	}
}

// clear forgets topic and its history; seq is the event that cleared it.
func (s *stateStore) clear(topic string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = seq
	if ts := s.topics[topic]; ts != nil {
		s.removeLocked(ts)
	}
}

// last returns topic's last value.
func (s *stateStore) last(topic string) (Value, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ts := s.topics[topic]; ts != nil {
		return *ts.last, true
	}
	return Value{}, false
}

// forget drops the topics (and their history) that drop says to.
func (s *stateStore) forget(drop func(topic string) bool) {
	var gone []string
	for _, v := range s.snapshot() {
		if drop(v.Topic) {
			gone = append(gone, v.Topic)
		}
	}
	if len(gone) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, topic := range gone {
		if ts := s.topics[topic]; ts != nil {
			s.removeLocked(ts)
		}
	}
}

// update records a message on topic as event seq.
func (s *stateStore) update(topic string, payload []byte, retained, text bool, seq uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = max(s.seq, seq)
	ts := s.touchLocked(topic)
	s.setLastLocked(ts, Value{Topic: topic, Payload: payload, Time: now, Retained: retained, text: text, seq: seq})
	if s.history > 0 {
		sample := Sample{Payload: payload, Time: now}
		if len(ts.samples) < s.history {
			ts.samples = append(ts.samples, sample)
			s.grow(ts, len(payload)+SampleOverhead)
		} else {
			s.grow(ts, len(payload)-len(ts.samples[ts.next].Payload))
			ts.samples[ts.next] = sample
			ts.next = (ts.next + 1) % s.history
		}
	}
	s.evictLocked()
}

func (s *stateStore) setLastLocked(ts *topicState, v Value) {
	s.grow(ts, len(v.Payload)-len(ts.last.Payload))
	v.born = s.snaps.Load()
	if ts.last.born == v.born { // no snapshot since it was stored: no reader has it
		*ts.last = v
		return
	}
	ts.last = new(Value) // v itself stays on the stack when it is copied in place
	*ts.last = v
	s.all[ts.pos] = ts.last
}

func (s *stateStore) grow(ts *topicState, n int) {
	ts.bytes += n
	s.bytes += n
}

// touchLocked returns topic's state made the most recently updated,
// creating it.
func (s *stateStore) touchLocked(topic string) *topicState {
	ts := s.topics[topic]
	if ts == nil {
		ts = &topicState{last: &Value{Topic: topic, born: s.snaps.Load()}, pos: len(s.all)}
		s.all = append(s.all, ts.last)
		s.topics[topic] = ts
		s.grow(ts, len(topic)+TopicOverhead)
	} else if ts == s.newest {
		return ts
	} else {
		s.unlinkLocked(ts)
	}
	ts.older, ts.newer = s.newest, nil
	if s.newest != nil {
		s.newest.newer = ts
	}
	s.newest = ts
	if s.oldest == nil {
		s.oldest = ts
	}
	return ts
}

// evictLocked forgets the least recently updated topics until the store is
// within its bounds; the newest topic stays, whatever its size.
func (s *stateStore) evictLocked() {
	for s.oldest != nil && s.oldest != s.newest && (len(s.topics) > s.maxTopics || s.bytes > s.maxBytes) {
		s.removeLocked(s.oldest)
	}
}

func (s *stateStore) removeLocked(ts *topicState) {
	s.unlinkLocked(ts)
	last := len(s.all) - 1
	moved := s.all[last]
	s.all[ts.pos] = moved
	s.topics[moved.Topic].pos = ts.pos
	delete(s.topics, ts.last.Topic)
	s.all[last] = nil
	s.all = s.all[:last]
	s.bytes -= ts.bytes
}

func (s *stateStore) unlinkLocked(ts *topicState) {
	if ts.newer != nil {
		ts.newer.older = ts.older
	} else {
		s.newest = ts.older
	}
	if ts.older != nil {
		ts.older.newer = ts.newer
	} else {
		s.oldest = ts.newer
	}
	ts.older, ts.newer = nil, nil
}

// restore loads an earlier run's history (grouped by topic, oldest first)
// and last values.
func (s *stateStore) restore(values, history []Record) {
	for _, r := range history {
		s.update(r.Topic, r.Payload, r.Retained, r.Text, r.Seq, r.Time)
	}
	slices.SortFunc(values, func(a, b Record) int { return a.Time.Compare(b.Time) }) // the most recent ends most recently used
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range values {
		s.setLastLocked(s.touchLocked(r.Topic), Value{Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, text: r.Text, seq: r.Seq})
		s.evictLocked()
	}
}

// snapshot returns every kept topic's last value (shared: read only).
func (s *stateStore) snapshot() []*Value {
	vs, _ := s.snapshotAt()
	return vs
}

// snapshotAt returns every kept topic's last value (shared: read only) and
// the event they are current at. It holds the lock for one pointer copy
// per topic, nothing more.
func (s *stateStore) snapshotAt() ([]*Value, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.snaps.Add(1) // from now on, the values it copies are replaced, not changed
	return slices.Clone(s.all), s.seq
}

// filterSet matches topics against a request's filters through an index,
// so a scan costs per topic the levels of the topic, not the filters. It
// is not safe for concurrent use.
type filterSet struct {
	idx   topics.Index[struct{}]
	hit   bool
	onHit func(struct{})
}

// newFilterSet indexes filters, relative to base.
func newFilterSet(base string, filters []string) *filterSet {
	fs := &filterSet{}
	fs.onHit = func(struct{}) { fs.hit = true }
	for _, f := range filters {
		fs.idx.Add(topics.Mount(base, f), struct{}{})
	}
	return fs
}

// match reports whether one of the filters matches topic (absolute).
func (fs *filterSet) match(topic string) bool {
	fs.hit = false
	fs.idx.Match(topic, fs.onHit)
	return fs.hit
}

// valuesOf returns the values of snap whose topic is under base, matches fs
// and passes keep (given the absolute topic; nil keeps all), sorted by
// topic, with topics made relative. It runs outside every lock.
func valuesOf(snap []*Value, base string, fs *filterSet, keep func(topic string) bool) []Value {
	var out []Value
	for _, v := range snap {
		if !fs.match(v.Topic) || keep != nil && !keep(v.Topic) {
			continue
		}
		if rel, ok := topics.Unmount(base, v.Topic); ok {
			cp := *v
			cp.Topic = rel
			out = append(out, cp)
		}
	}
	slices.SortFunc(out, func(a, b Value) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// applyEntries brings values (sorted, relative to base, as valuesOf makes
// them) up to date with log entries that came after them.
func applyEntries(values []Value, entries []logEntry, base string, fs *filterSet, keep func(topic string) bool) []Value {
	for i := range entries {
		e := &entries[i]
		if !fs.match(e.topic) || keep != nil && !keep(e.topic) {
			continue
		}
		rel, ok := topics.Unmount(base, e.topic)
		if !ok {
			continue
		}
		at, found := slices.BinarySearchFunc(values, rel, func(v Value, t string) int { return strings.Compare(v.Topic, t) })
		switch {
		case e.cleared && found:
			values = slices.Delete(values, at, at+1)
		case e.cleared:
		case found:
			values[at] = Value{Topic: rel, Payload: e.payload, Time: e.time, Retained: e.retained, text: e.text, seq: e.seq}
		default:
			values = slices.Insert(values, at, Value{Topic: rel, Payload: e.payload, Time: e.time, Retained: e.retained, text: e.text, seq: e.seq})
		}
	}
	return values
}

// values returns the last values of the topics under base that match any of
// filters (relative to base), sorted by topic, with topics made relative.
func (s *stateStore) values(base string, filters []string) []Value {
	return valuesOf(s.snapshot(), base, newFilterSet(base, filters), nil)
}

// samples returns up to limit of topic's most recent samples, oldest first.
func (s *stateStore) samples(topic string, limit int) []Sample {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ts := s.topics[topic]
	if ts == nil {
		return []Sample{}
	}
	n := len(ts.samples)
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Sample, 0, limit)
	for i := n - limit; i < n; i++ {
		out = append(out, ts.samples[(ts.next+i)%n])
	}
	return out
}
