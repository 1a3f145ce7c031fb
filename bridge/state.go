package bridge

import (
	"container/list"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/motehub/motehub/topics"
)

// Value is the last message on a topic.
type Value struct {
	Topic    string          `json:"topic"`
	Payload  json.RawMessage `json:"payload"`
	Time     time.Time       `json:"time"`
	Retained bool            `json:"retained,omitempty"`
	seq      uint64
}

// Sample is one point of a topic's history.
type Sample struct {
	Payload json.RawMessage `json:"payload"`
	Time    time.Time       `json:"time"`
}

// stateStore keeps the last value of every topic and a short history of
// each, bounded in topics: the topic updated least recently goes first. The
// hub updates it under its lock; readers take only the store's lock.
type stateStore struct {
	mu        sync.RWMutex
	topics    map[string]*list.Element // of *topicState
	lru       *list.List               // front: most recently updated
	maxTopics int
	history   int // samples kept per topic
}

type topicState struct {
	last    Value
	samples []Sample // circular once full
	next    int
}

func newStateStore(maxTopics, history int) *stateStore {
	return &stateStore{topics: make(map[string]*list.Element), lru: list.New(), maxTopics: maxTopics, history: history}
}

// clear forgets topic and its history.
func (s *stateStore) clear(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.topics[topic]; el != nil {
		s.lru.Remove(el)
		delete(s.topics, topic)
	}
}

// last returns topic's last value.
func (s *stateStore) last(topic string) (Value, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if el := s.topics[topic]; el != nil {
		return el.Value.(*topicState).last, true
	}
	return Value{}, false
}

// forget drops the topics (and their history) that drop says to.
func (s *stateStore) forget(drop func(topic string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, el := range s.topics {
		if drop(topic) {
			s.lru.Remove(el)
			delete(s.topics, topic)
		}
	}
}

// update records a message on topic.
func (s *stateStore) update(topic string, payload []byte, retained bool, seq uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.entryLocked(topic)
	ts.last = Value{Topic: topic, Payload: payload, Time: now, Retained: retained, seq: seq}
	if s.history > 0 {
		sample := Sample{Payload: payload, Time: now}
		if len(ts.samples) < s.history {
			ts.samples = append(ts.samples, sample)
		} else {
			ts.samples[ts.next] = sample
			ts.next = (ts.next + 1) % s.history
		}
	}
}

// entryLocked returns topic's state made the most recently used, creating
// it (and forgetting the least recently used topic past the bound).
func (s *stateStore) entryLocked(topic string) *topicState {
	el := s.topics[topic]
	if el == nil {
		if len(s.topics) >= s.maxTopics {
			oldest := s.lru.Back()
			s.lru.Remove(oldest)
			delete(s.topics, oldest.Value.(*topicState).last.Topic)
		}
		el = s.lru.PushFront(&topicState{last: Value{Topic: topic}})
		s.topics[topic] = el
	} else {
		s.lru.MoveToFront(el)
	}
	return el.Value.(*topicState)
}

// restore loads an earlier run's history (grouped by topic, oldest first)
// and last values.
func (s *stateStore) restore(values, history []Record) {
	for _, r := range history {
		s.update(r.Topic, r.Payload, r.Retained, r.Seq, r.Time)
	}
	slices.SortFunc(values, func(a, b Record) int { return a.Time.Compare(b.Time) }) // the most recent ends most recently used
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range values {
		s.entryLocked(r.Topic).last = Value{Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, seq: r.Seq}
	}
}

// values returns the last values of the topics under base that match any of
// filters (relative to base), sorted by topic, with topics made relative.
func (s *stateStore) values(base string, filters []string) []Value {
	abs := make([]string, len(filters))
	for i, f := range filters {
		abs[i] = topics.Mount(base, f)
	}
	s.mu.RLock()
	var out []Value
	for topic, el := range s.topics {
		for _, f := range abs {
			if topics.Match(f, topic) {
				if rel, ok := topics.Unmount(base, topic); ok {
					v := el.Value.(*topicState).last
					v.Topic = rel
					out = append(out, v)
				}
				break
			}
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Value) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// samples returns up to limit of topic's most recent samples, oldest first.
func (s *stateStore) samples(topic string, limit int) []Sample {
	s.mu.RLock()
	defer s.mu.RUnlock()
	el := s.topics[topic]
	if el == nil {
		return []Sample{}
	}
	ts := el.Value.(*topicState)
	ordered := append(slices.Clone(ts.samples[ts.next:]), ts.samples[:ts.next]...)
	if limit > 0 && len(ordered) > limit {
		ordered = ordered[len(ordered)-limit:]
	}
	return ordered
}
