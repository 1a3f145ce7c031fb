package broker

import (
	"container/list"

	"github.com/motehub/motehub/bridge"
)

// batch is what changed since the last write.
type batch struct {
	mqtt         map[string][]byte // key → value; nil: delete
	log          []bridge.Record   // in sequence order
	logBytes     int64
	logTruncated bool // older pending records were dropped: the file's log goes
	topics       map[string]*pendingTopic
	seq          uint64
}

// pendingTopic is what changed of one topic.
type pendingTopic struct {
	reset   bool // the file's history of the topic goes first (cleared or evicted since)
	gone    bool // the value and history go
	value   bridge.Record
	samples []bridge.Record // the newest, at most HistoryLength, oldest first
}

func newBatch() *batch {
	return &batch{mqtt: make(map[string][]byte), topics: make(map[string]*pendingTopic)}
}

func (b *batch) empty() bool {
	return len(b.mqtt) == 0 && len(b.log) == 0 && len(b.topics) == 0
}

func recordBytes(r bridge.Record) int64 { return int64(len(r.Topic) + len(r.Payload)) }

// appendLog adds r to the log, and drops the oldest records past the
// bounds. It returns how many went for the bytes: those past LogEntries
// would not have been kept anyway.
func (b *batch) appendLog(cfg *StoreConfig, r bridge.Record) (dropped uint64) {
	b.log = append(b.log, r)
	b.logBytes += recordBytes(r)
	return b.boundLog(cfg)
}

func (b *batch) boundLog(cfg *StoreConfig) (dropped uint64) {
	n := 0
	for len(b.log)-n > cfg.LogEntries {
		b.logBytes -= recordBytes(b.log[n])
		n++
	}
	for len(b.log)-n > 1 && b.logBytes > cfg.HistoryBytes {
		b.logBytes -= recordBytes(b.log[n])
		n++
		dropped++
	}
	if n > 0 {
		b.log = b.log[n:]
		b.logTruncated = true
	}
	return dropped
}

// drop notes that topic's value and history go; stored says whether the
// file may have them.
func (b *batch) drop(topic string, stored bool) {
	if pt := b.topics[topic]; stored || (pt != nil && pt.reset) {
		b.topics[topic] = &pendingTopic{reset: true, gone: true}
	} else {
		delete(b.topics, topic) // never written: nothing to delete
	}
}

// add records a message on the topic.
func (pt *pendingTopic) add(r bridge.Record, keep int) {
	pt.gone = false
	pt.value = r
	pt.samples = append(pt.samples, r)
	if len(pt.samples) > keep {
		pt.samples = pt.samples[len(pt.samples)-keep:]
	}
}

// then puts the changes of n, made after b's, on top of b (after a failed
// write), within the bounds. It returns the log records dropped for bytes.
func (b *batch) then(n *batch, cfg *StoreConfig) (dropped uint64) {
	for k, v := range n.mqtt {
		b.mqtt[k] = v
	}
	if n.logTruncated {
		b.log, b.logBytes = n.log, n.logBytes
		b.logTruncated = true
	} else {
		b.log = append(b.log, n.log...)
		b.logBytes += n.logBytes
	}
	dropped = b.boundLog(cfg)
	for topic, nt := range n.topics {
		bt := b.topics[topic]
		if bt == nil || nt.reset {
			b.topics[topic] = nt
			continue
		}
		for _, r := range nt.samples {
			bt.add(r, cfg.HistoryLength)
		}
		bt.value = nt.value
	}
	b.seq = max(b.seq, n.seq)
	return dropped
}

// size is how many changes are pending, and their payloads' bytes.
func (b *batch) size() (n int, bytes int64) {
	n, bytes = len(b.mqtt)+len(b.log)+len(b.topics), b.logBytes
	for k, v := range b.mqtt {
		bytes += int64(len(k) + len(v))
	}
	for _, pt := range b.topics {
		n += len(pt.samples)
		for _, r := range pt.samples {
			bytes += recordBytes(r)
		}
	}
	return n, bytes
}

// keptTopics are the topics the store keeps (on disk or pending), least
// recently updated last, with their bytes: the same bounded set as the
// hub's (bridge/state.go).
type keptTopics struct {
	m     map[string]*list.Element // of *keptTopic
	lru   *list.List               // front: most recently updated
	bytes int64
}

type keptTopic struct {
	topic   string
	value   int64   // bytes of the name and last value
	samples []int32 // bytes of each sample, circular once full
	next    int
	history int64 // their sum
	stored  bool  // it may be on disk: its deletion must be written
}

func (t *keptTopic) size() int64 { return t.value + t.history }

func newKeptTopics() keptTopics {
	return keptTopics{m: make(map[string]*list.Element), lru: list.New()}
}

func (k *keptTopics) len() int              { return len(k.m) }
func (k *keptTopics) has(topic string) bool { return k.m[topic] != nil }

// evicted is a topic that went to keep the bounds.
type evicted struct {
	topic  string
	stored bool
}

// touch records v, the topic's last value, with new samples, makes the
// topic the most recently updated, and drops the least recently updated
// ones past the bounds.
func (k *keptTopics) touch(v bridge.Record, samples []bridge.Record, cfg *StoreConfig) []evicted {
	el := k.m[v.Topic]
	if el == nil {
		el = k.lru.PushFront(&keptTopic{topic: v.Topic})
		k.m[v.Topic] = el
	} else {
		k.lru.MoveToFront(el)
	}
	t := el.Value.(*keptTopic)
	k.bytes -= t.size()
	t.value = int64(len(v.Topic) + bridge.TopicOverhead + len(v.Payload)) // counted as the hub counts it
	for _, r := range samples {
		n := int32(len(r.Payload) + bridge.SampleOverhead)
		if len(t.samples) < cfg.HistoryLength {
			t.samples = append(t.samples, n)
		} else {
			t.history -= int64(t.samples[t.next])
			t.samples[t.next] = n
			t.next = (t.next + 1) % len(t.samples)
		}
		t.history += int64(n)
	}
	k.bytes += t.size()
	var out []evicted
	for len(k.m) > 1 && (len(k.m) > cfg.MaxTopics || k.bytes > cfg.HistoryBytes) {
		oldest := k.lru.Back().Value.(*keptTopic)
		out = append(out, evicted{oldest.topic, oldest.stored})
		k.remove(oldest.topic)
	}
	return out
}

// remove forgets topic, and says whether it may be on disk.
func (k *keptTopics) remove(topic string) (stored bool) {
	if el := k.m[topic]; el != nil {
		t := el.Value.(*keptTopic)
		k.bytes -= t.size()
		k.lru.Remove(el)
		delete(k.m, topic)
		return t.stored
	}
	return false
}

// markWritten notes that topic is being written: from now on, its removal
// must be written too.
func (k *keptTopics) markWritten(topic string) {
	if el := k.m[topic]; el != nil {
		el.Value.(*keptTopic).stored = true
	}
}

// markStored notes that every topic is on disk (after loading).
func (k *keptTopics) markStored() {
	for _, el := range k.m {
		el.Value.(*keptTopic).stored = true
	}
}
