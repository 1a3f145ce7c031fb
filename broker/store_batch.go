package broker

import (
	"container/list"

	"github.com/motehub/motehub/bridge"
)

// batch is what changed since the last write.
//
// n and bytes count what it holds (Stats), kept up to date by every method
// that changes it: a recount is O(pending), and Stats holds the lock that
// Record, called under the hub's fan-out lock, needs.
type batch struct {
	mqtt         map[string][]byte // key → value; nil: delete
	log          []bridge.Record   // in sequence order
	logBase      []bridge.Record   // the array log was last given, whole: see appendLog
	logBytes     int64
	logTruncated bool // older pending records were dropped: the file's log goes
	topics       map[string]*pendingTopic
	seq          uint64
	n            int   // entries: broker keys, log records, topics, samples
	bytes        int64 // their keys' and payloads' bytes
	// spare are changes of topics a committed write held, emptied, for
	// add to fill again rather than allocate: at most MaxTopics.
	spare []*pendingTopic
}

// pendingTopic is what changed of one topic.
type pendingTopic struct {
	reset bool // the file's history of the topic goes first: the file may have it
	// ifWritten: so does it if the write in flight when this was noted
	// commits: that write holds the topic, which was not on disk before it.
	// Settled when that write ends (see Store.sync); never set otherwise.
	ifWritten bool
	gone      bool // the value and history go
	value     bridge.Record
	samples   []bridge.Record // the newest, at most HistoryLength, oldest first
	bytes     int64           // the samples' (the value is the last of them)
}

func newBatch() *batch {
	return &batch{mqtt: make(map[string][]byte), topics: make(map[string]*pendingTopic)}
}

func (b *batch) empty() bool {
	return len(b.mqtt) == 0 && len(b.log) == 0 && len(b.topics) == 0
}

func recordBytes(r bridge.Record) int64 { return int64(len(r.Topic) + len(r.Payload)) }

// setMQTT records a change of the broker's state (nil: a deletion).
func (b *batch) setMQTT(key string, value []byte) {
	if old, ok := b.mqtt[key]; ok {
		b.bytes -= int64(len(key) + len(old))
	} else {
		b.n++
	}
	b.mqtt[key] = value
	b.bytes += int64(len(key) + len(value))
}

// appendLog adds r to the log, and drops the oldest records past the
// bounds. It returns how many went for the bytes: those past LogEntries
// would not have been kept anyway.
//
// At its bounds the log drops a record from its front for each it takes:
// when its array is full, the records move down to the array's start (at
// least half of it free) rather than to a new array. The array holds at
// most about twice LogEntries records.
func (b *batch) appendLog(cfg *StoreConfig, r bridge.Record) (dropped uint64) {
	if len(b.log) == cap(b.log) && cap(b.logBase) >= 2*len(b.log) {
		b.log = b.logBase[:copy(b.logBase[:cap(b.logBase)], b.log)]
	}
	before := cap(b.log)
	b.log = append(b.log, r)
	if cap(b.log) != before { // a new array
		b.logBase = b.log
	}
	b.logBytes += recordBytes(r)
	b.n++
	b.bytes += recordBytes(r)
	return b.boundLog(cfg)
}

func (b *batch) boundLog(cfg *StoreConfig) (dropped uint64) {
	before := b.logBytes
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
		b.n -= n
		b.bytes -= before - b.logBytes
	}
	return dropped
}

// size is what pt counts for in a batch's n and bytes.
func (pt *pendingTopic) size(topic string) (n int, bytes int64) {
	return 1 + len(pt.samples), int64(len(topic)) + pt.bytes
}

// setTopic puts pt as topic's change (nil: none).
func (b *batch) setTopic(topic string, pt *pendingTopic) {
	if old := b.topics[topic]; old != nil {
		n, bytes := old.size(topic)
		b.n -= n
		b.bytes -= bytes
	}
	if pt == nil {
		delete(b.topics, topic)
		return
	}
	b.topics[topic] = pt
	n, bytes := pt.size(topic)
	b.n += n
	b.bytes += bytes
}

// add records a message on the topic, keeping its newest keep samples.
func (b *batch) add(topic string, r bridge.Record, keep int) {
	pt := b.topics[topic]
	if pt == nil {
		if n := len(b.spare); n > 0 {
			pt, b.spare = b.spare[n-1], b.spare[:n-1]
		} else {
			pt = &pendingTopic{}
		}
		b.setTopic(topic, pt)
	}
	n, bytes := pt.size(topic)
	pt.add(r, keep)
	n2, bytes2 := pt.size(topic)
	b.n += n2 - n
	b.bytes += bytes2 - bytes
}

// drop notes that topic's value and history go: onDisk says whether the
// file may have them, writing whether the write in flight does (see
// keptTopics.remove).
func (b *batch) drop(topic string, onDisk, writing bool) {
	pt := b.topics[topic]
	reset := onDisk || (pt != nil && pt.reset)
	ifWritten := !reset && (writing || (pt != nil && pt.ifWritten))
	if reset || ifWritten {
		b.setTopic(topic, &pendingTopic{reset: reset, ifWritten: ifWritten, gone: true})
	} else {
		b.setTopic(topic, nil) // never written: nothing to delete
	}
}

func (pt *pendingTopic) add(r bridge.Record, keep int) {
	pt.gone = false
	pt.value = r
	pt.samples = append(pt.samples, r)
	pt.bytes += recordBytes(r)
	if extra := len(pt.samples) - keep; extra > 0 {
		for _, old := range pt.samples[:extra] {
			pt.bytes -= recordBytes(old)
		}
		pt.samples = pt.samples[extra:]
	}
}

// committed settles b's changes that depended on the write of written,
// which succeeded: the topics it held are on disk, so their removals noted
// since must be written.
func (b *batch) committed(written *batch) {
	for topic, wt := range written.topics {
		if pt := b.topics[topic]; pt != nil && pt.ifWritten && !wt.gone {
			pt.reset, pt.ifWritten = true, false
		}
	}
}

// recycle keeps the topics' changes of written, whose write committed,
// emptied, for b's add to fill again, up to max of them; and the array of
// its log, when larger than b's, for b's log: b's would grow to the same
// size again, by copies, under the hub's fan-out lock (Record). written is
// not used after.
func (b *batch) recycle(written *batch, max int) {
	if full := written.log[:cap(written.log)]; cap(full) > cap(b.log) {
		clear(full) // no payloads held
		b.log = full[:copy(full, b.log)]
		b.logBase = full
	}
	for _, pt := range written.topics {
		if len(b.spare) >= max {
			return
		}
		clear(pt.samples) // no payloads held
		*pt = pendingTopic{samples: pt.samples[:0]}
		b.spare = append(b.spare, pt)
	}
}

// then puts the changes of n, made after b's, on top of b, after b's write
// failed, within the bounds. It returns the log records dropped for bytes.
func (b *batch) then(n *batch, cfg *StoreConfig) (dropped uint64) {
	for k, v := range n.mqtt {
		b.setMQTT(k, v)
	}
	if n.logTruncated {
		b.n -= len(b.log)
		b.bytes -= b.logBytes
		b.log, b.logBytes = n.log, n.logBytes
		b.n += len(n.log)
		b.bytes += n.logBytes
		b.logTruncated = true
	} else {
		b.log = append(b.log, n.log...)
		b.logBytes += n.logBytes
		b.n += len(n.log)
		b.bytes += n.logBytes
	}
	dropped = b.boundLog(cfg)
	for topic, nt := range n.topics {
		bt := b.topics[topic]
		switch {
		case nt.ifWritten:
			// The topic was removed while b's write, which held it, was
			// in flight; that write failed, so the file has of the topic
			// what it had before, which b's change says. What b held of
			// the topic went with the removal.
			nt.ifWritten = false
			nt.reset = bt != nil && bt.reset
			if nt.gone && !nt.reset {
				b.setTopic(topic, nil)
			} else {
				b.setTopic(topic, nt)
			}
		case bt == nil || nt.reset:
			b.setTopic(topic, nt)
		default:
			for _, r := range nt.samples {
				b.add(topic, r, cfg.HistoryLength)
			}
			bt.value = nt.value
		}
	}
	b.seq = max(b.seq, n.seq)
	return dropped
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
	onDisk  bool  // a write that held it committed: its removal must be written
	writing bool  // the write in flight holds it
}

func (t *keptTopic) size() int64 { return t.value + t.history }

func newKeptTopics() keptTopics {
	return keptTopics{m: make(map[string]*list.Element), lru: list.New()}
}

func (k *keptTopics) len() int              { return len(k.m) }
func (k *keptTopics) has(topic string) bool { return k.m[topic] != nil }

// evicted is a topic that went to keep the bounds.
type evicted struct {
	topic           string
	onDisk, writing bool
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
		out = append(out, evicted{oldest.topic, oldest.onDisk, oldest.writing})
		k.remove(oldest.topic)
	}
	return out
}

// remove forgets topic, and says whether it is on disk, and whether the
// write in flight holds it.
func (k *keptTopics) remove(topic string) (onDisk, writing bool) {
	if el := k.m[topic]; el != nil {
		t := el.Value.(*keptTopic)
		k.bytes -= t.size()
		k.lru.Remove(el)
		delete(k.m, topic)
		return t.onDisk, t.writing
	}
	return false, false
}

// startWrite notes that the topics b holds are being written.
func (k *keptTopics) startWrite(b *batch) {
	for topic, pt := range b.topics {
		if el := k.m[topic]; el != nil && !pt.gone {
			el.Value.(*keptTopic).writing = true
		}
	}
}

// endWrite notes that the write of b ended: if it succeeded, the topics it
// held (and still kept) are on disk. A topic removed and added again
// meanwhile is another keptTopic, whose pending change knows (reset or
// ifWritten) what the file may have.
func (k *keptTopics) endWrite(b *batch, ok bool) {
	for topic, pt := range b.topics {
		if el := k.m[topic]; el != nil && !pt.gone {
			t := el.Value.(*keptTopic)
			t.writing = false
			t.onDisk = t.onDisk || ok
		}
	}
}

// markStored notes that every topic is on disk (after loading).
func (k *keptTopics) markStored() {
	for _, el := range k.m {
		el.Value.(*keptTopic).onDisk = true
	}
}
