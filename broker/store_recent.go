package broker

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// The recent messages of each topic (HistoryLength of them) are kept in the
// bucket recent, one key per topic per write: the key a number that grows
// with each key put (the sequence number of the chunk's first message,
// unless an earlier key has it), the value the messages of that topic that
// the write held, oldest first (a chunk, see appendChunk).
//
// Keys in the order of writes, not topics, is what makes a write cheap: it
// appends its chunks at the end of the bucket, and deletes the chunks that
// every topic's newer ones made obsolete near its front, so it dirties the
// pages of the new messages and a few more. Keyed by topic (the history
// bucket of earlier versions: topic NUL seq → message) it dirtied the first
// and the last page of every topic's range, and put a key per message:
// with the event log, 18.5 MB written a sync instead of 4.9, at 10,000
// messages a second on 2,000 topics (BenchmarkStoreIngest).
//
// Which chunks hold a topic's messages is kept in memory (recentFile, 16
// bytes a chunk: at most one per recent message kept, when every write
// holds one message of the topic), read when the store opens: a write
// knows which chunks to delete without reading the file. A topic's oldest
// chunk goes once its newer chunks hold HistoryLength messages; until then
// it may hold older messages, which reading skips.
var bucketRecent = []byte("recent") // chunk key → a topic's messages of one write

// recentChunk is one key of the recent bucket.
type recentChunk struct {
	key uint64
	n   int // messages in it
}

// recentTopic is what the file holds of one topic's recent messages.
type recentTopic struct {
	chunks []recentChunk // oldest first
	n      int           // messages in them
}

// recentFile is what the recent bucket holds, as of the last write that
// committed. Only the goroutine that writes uses it (under Store.syncMu).
type recentFile struct {
	topics map[string]recentTopic
	last   uint64 // the highest key
}

func newRecentFile() recentFile { return recentFile{topics: make(map[string]recentTopic)} }

// recentChange is what a write changed of a topic in the file, set in
// recentFile once the write commits.
type recentChange struct {
	topic string
	rt    recentTopic
	gone  bool
}

// recentWrite writes chunks and deletes obsolete ones in one transaction,
// noting the changes to recentFile it makes, which commit sets.
type recentWrite struct {
	f       *recentFile
	bucket  *bbolt.Bucket
	keep    int // HistoryLength
	last    uint64
	changes []recentChange
	key     [8]byte // of a deletion
}

func (f *recentFile) write(tx *bbolt.Tx, keep int, changes []recentChange) *recentWrite {
	b := tx.Bucket(bucketRecent)
	b.FillPercent = 1 // keys put in ascending order: full pages, fewer of them
	return &recentWrite{f: f, bucket: b, keep: keep, last: f.last, changes: changes[:0]}
}

func (w *recentWrite) delete(key uint64) error {
	binary.BigEndian.PutUint64(w.key[:], key)
	return w.bucket.Delete(w.key[:])
}

// remove deletes every chunk of topic.
func (w *recentWrite) remove(topic string) error {
	rt, ok := w.f.topics[topic]
	if !ok {
		return nil
	}
	for _, c := range rt.chunks {
		if err := w.delete(c.key); err != nil {
			return err
		}
	}
	w.changes = append(w.changes, recentChange{topic: topic, gone: true})
	return nil
}

// add puts topic's newest messages, samples (at most HistoryLength, oldest
// first, encoded by enc), after deleting the chunks they make obsolete.
// removed: the topic's chunks were removed in this write.
func (w *recentWrite) add(topic string, samples []bridge.Record, enc *encodedRecords, removed bool) error {
	var rt recentTopic
	if !removed {
		rt = w.f.topics[topic]
	}
	rt, err := w.dropObsolete(rt, len(samples))
	if err != nil {
		return err
	}
	k := max(samples[0].Seq, w.last+1)
	w.last = k
	if err := w.bucket.Put(enc.seqKey(k), enc.chunk(samples)); err != nil {
		return err
	}
	// Appending past the end of the committed slice leaves what it holds
	// as it is: a failed write leaves recentFile as it was.
	rt = recentTopic{chunks: append(rt.chunks, recentChunk{k, len(samples)}), n: rt.n + len(samples)}
	w.changes = append(w.changes, recentChange{topic: topic, rt: rt})
	return nil
}

// trim deletes topic's chunks that its newer ones make obsolete.
func (w *recentWrite) trim(topic string) error {
	rt, err := w.dropObsolete(w.f.topics[topic], 0)
	if err == nil {
		w.changes = append(w.changes, recentChange{topic: topic, rt: rt})
	}
	return err
}

// dropObsolete deletes the oldest chunks of rt whose messages are past the
// newest HistoryLength once adding more come, and returns what is left.
func (w *recentWrite) dropObsolete(rt recentTopic, adding int) (recentTopic, error) {
	drop := 0
	for ; drop < len(rt.chunks) && rt.n+adding-rt.chunks[drop].n >= w.keep; drop++ {
		if err := w.delete(rt.chunks[drop].key); err != nil {
			return rt, err
		}
		rt.n -= rt.chunks[drop].n
	}
	rt.chunks = rt.chunks[drop:]
	return rt, nil
}

// commit sets the write's changes in recentFile, once its transaction
// committed.
func (w *recentWrite) commit() {
	for _, c := range w.changes {
		if c.gone {
			delete(w.f.topics, c.topic)
		} else {
			w.f.topics[c.topic] = c.rt
		}
	}
	w.f.last = max(w.f.last, w.last)
}

// appendChunk appends a chunk of the encoded records encs: each one's
// length (a uvarint), then its bytes.
func appendChunk(dst []byte, encs [][]byte) []byte {
	for _, e := range encs {
		dst = binary.AppendUvarint(dst, uint64(len(e)))
		dst = append(dst, e...)
	}
	return dst
}

// chunkLen bounds how many bytes appendChunk appends for encs.
func chunkLen(encs [][]byte) int {
	n := 0
	for _, e := range encs {
		n += binary.MaxVarintLen64 + len(e)
	}
	return n
}

// errDamagedChunk is a chunk that does not decode.
var errDamagedChunk = errors.New("a damaged chunk of recent messages")

// readChunk appends the records of chunk v, oldest first, to out. The
// records of a chunk of recent messages (oneTopic) are one topic's: others
// are damage.
func readChunk(v []byte, out *[]bridge.Record, oneTopic bool) (n int, err error) {
	err = eachInChunk(v, func(enc []byte) error {
		var r storedRecord
		if err := json.Unmarshal(enc, &r); err != nil {
			return fmt.Errorf("a damaged record: %w", err)
		}
		if oneTopic && n > 0 && r.Topic != (*out)[len(*out)-1].Topic {
			return fmt.Errorf("%w: the messages of two topics", errDamagedChunk)
		}
		*out = append(*out, bridge.Record{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained, Cleared: r.Cleared, Text: r.Text})
		n++
		return nil
	})
	return n, err
}

// eachInChunk calls f with the encoding of each record of chunk v, oldest
// first (a part of v).
func eachInChunk(v []byte, f func(enc []byte) error) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: empty", errDamagedChunk)
	}
	for len(v) > 0 {
		size, k := binary.Uvarint(v)
		if k <= 0 || size > uint64(len(v)-k) {
			return errDamagedChunk
		}
		if err := f(v[k : k+int(size) : k+int(size)]); err != nil {
			return err
		}
		v = v[k+int(size):]
	}
	return nil
}

// readRecent reads the recent bucket: each topic's messages, oldest first
// (the older ones of its oldest chunk too), and the chunks that hold them.
func readRecent(b *bbolt.Bucket) (byTopic map[string][]bridge.Record, f recentFile, err error) {
	byTopic, f = make(map[string][]bridge.Record), newRecentFile()
	var records []bridge.Record
	err = b.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: a key of %d bytes", errDamagedChunk, len(k))
		}
		key := binary.BigEndian.Uint64(k)
		records = records[:0]
		n, err := readChunk(v, &records, true)
		if err != nil {
			return fmt.Errorf("recent messages %d: %w", key, err)
		}
		topic := records[0].Topic
		byTopic[topic] = append(byTopic[topic], records...)
		rt := f.topics[topic]
		rt.chunks = append(rt.chunks, recentChunk{key, n})
		rt.n += n
		f.topics[topic] = rt
		f.last = key // ForEach goes in key order
		return nil
	})
	return byTopic, f, err
}

// readOldHistory reads the history bucket of earlier versions (topic NUL
// seq → message): each topic's messages, oldest first.
func readOldHistory(b *bbolt.Bucket) (map[string][]bridge.Record, error) {
	var samples []bridge.Record // grouped by topic, oldest first
	if err := readRecords(b, &samples); err != nil {
		return nil, err
	}
	byTopic := make(map[string][]bridge.Record)
	for i := 0; i < len(samples); {
		j := i + 1
		for j < len(samples) && samples[j].Topic == samples[i].Topic {
			j++
		}
		byTopic[samples[i].Topic] = samples[i:j:j]
		i = j
	}
	return byTopic, nil
}

// byFirstSeq sorts topics by the sequence number of their first message in
// first: their chunks are then put in ascending key order.
func byFirstSeq(topics []string, first func(string) uint64) {
	slices.SortFunc(topics, func(a, b string) int { return cmp.Or(cmp.Compare(first(a), first(b)), cmp.Compare(a, b)) })
}
