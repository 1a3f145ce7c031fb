package broker

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// fileTopics reads, from the file of a closed store, the last values and
// each topic's recent messages (payloads, oldest first, the newest keep),
// as they are on disk. It fails the test when a topic's oldest chunk is
// obsolete: its newer ones hold keep messages.
func fileTopics(t *testing.T, dir string, keep int) (values map[string]string, history map[string][]string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	values, history = make(map[string]string), make(map[string][]string)
	err = db.View(func(tx *bbolt.Tx) error {
		var vals []bridge.Record
		if err := readRecords(tx.Bucket(bucketValues), &vals); err != nil {
			return err
		}
		byTopic, f, err := readRecent(tx.Bucket(bucketRecent))
		if err != nil {
			return err
		}
		for _, v := range vals {
			values[v.Topic] = string(v.Payload)
		}
		for topic, h := range byTopic {
			if rt := f.topics[topic]; rt.n-rt.chunks[0].n >= keep {
				t.Errorf("%s: an obsolete chunk on disk: %+v", topic, rt)
			}
			for _, r := range h[max(len(h)-keep, 0):] {
				history[topic] = append(history[topic], string(r.Payload))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return values, history
}

// TestStoreForgetsTopicsNeverWritten: while writes fail, 50,000 distinct
// topics pass through a store that keeps 10. A topic that no committed
// write held leaves nothing to delete when it goes, so what is pending
// stays bounded: the 10 kept topics, deletions of the 10 on disk, and the
// log's bound (it was 50,000 deletion markers). Topics also come while each
// write is in flight, evicting topics that write holds. Once writes work
// again, the file holds exactly the 10 kept topics: no deletion that was
// needed is lost.
func TestStoreForgetsTopicsNeverWritten(t *testing.T) {
	dir := t.TempDir()
	var failing, during atomic.Bool
	var s *Store
	seq, next := uint64(0), 0
	fresh := func() {
		seq++
		s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("t/%d", next), Payload: json.RawMessage(fmt.Sprint(next)), Time: time.Now()})
		next++
	}
	cfg := StoreConfig{LogEntries: 100, HistoryLength: 5, MaxTopics: 10,
		writeFault: func() error {
			// Runs on the goroutine that called sync (the tests call it).
			if during.Load() {
				for range 3 { // evicting 3 of the topics this write holds
					fresh()
				}
			}
			if failing.Load() {
				return syscall.ENOSPC
			}
			return nil
		}}
	s = openTestStore(t, dir, cfg)
	during.Store(true)
	for range 10 {
		fresh()
	}
	s.sync() // t/0 … t/9 on disk, t/0 … t/2 evicted meanwhile
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	failing.Store(true)
	for i := 0; next < 50_000; i++ {
		fresh()
		if i%25 == 24 {
			s.sync()
		}
	}
	s.sync()
	st := s.Stats()
	if s.Err() == nil || st.SyncFailures < 1000 {
		t.Fatalf("writes failing: err %v, %d failures", s.Err(), st.SyncFailures)
	}
	s.mu.Lock()
	topics := len(s.pending.topics)
	s.mu.Unlock()
	// 10 kept topics (a sample each), 10 deletions (t/0 … t/9), 100 log records.
	if topics > 20 || st.Pending > 10*2+10+100 {
		t.Fatalf("with writes failing, after 50,000 topics: %d topics pending, Stats %+v; want at most 20 topics and 130 changes", topics, st)
	}

	during.Store(false)
	failing.Store(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	values, history := fileTopics(t, dir, cfg.HistoryLength)
	want := make(map[string]string)
	for i := next - 10; i < next; i++ {
		want[fmt.Sprintf("t/%d", i)] = fmt.Sprint(i)
	}
	if len(values) != 10 || len(history) != 10 {
		t.Fatalf("on disk after the writes worked again: %d values, history of %d topics; want the 10 kept: %v", len(values), len(history), values)
	}
	for topic, v := range want {
		if values[topic] != v || !slices.Equal(history[topic], []string{v}) {
			t.Fatalf("%s on disk: value %q, history %q; want %q", topic, values[topic], history[topic], v)
		}
	}
	s = openTestStore(t, dir, cfg)
	defer s.Close()
	if r := s.Restored(); len(r.Values) != 10 || len(r.History) != 10 {
		t.Fatalf("after a clean restart: %d values, %d samples; want 10 and 10", len(r.Values), len(r.History))
	}
}

// recount is what b holds, counted anew (the batch counts as it changes).
func (b *batch) recount() (n int, bytes, logBytes int64) {
	n = len(b.mqtt) + len(b.log) + len(b.topics)
	for k, v := range b.mqtt {
		bytes += int64(len(k) + len(v))
	}
	for _, r := range b.log {
		logBytes += recordBytes(r)
	}
	bytes += logBytes
	for topic, pt := range b.topics {
		n += len(pt.samples)
		bytes += int64(len(topic))
		for _, r := range pt.samples {
			bytes += recordBytes(r)
		}
	}
	return n, bytes, logBytes
}

// TestStoreCountsAndWritesWhatChanged: a random sequence of messages,
// clears, broker changes, and writes that fail or succeed, with messages
// arriving while a write is in flight, on a store at its bounds (topics,
// bytes, log). After every step the batches' running counts (what Stats
// reads in O(1)) equal a recount; at the end the file holds exactly the
// kept topics, each with its newest samples since it was last added.
func TestStoreCountsAndWritesWhatChanged(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testCountsAndWrites(t, seed) })
	}
}

func testCountsAndWrites(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 14))
	dir := t.TempDir()
	const keep = 3
	var (
		s         *Store
		failing   atomic.Bool
		seq       uint64
		model     = make(map[string][]string) // kept topic → samples since it was added
		inWrite   bool
		writeBusy = 0 // changes made during the next write
	)
	check := func(where string) {
		t.Helper()
		for name, b := range map[string]*batch{"pending": s.pending, "in flight": s.inflight} {
			if b == nil {
				continue
			}
			n, bytes, logBytes := b.recount()
			if b.n != n || b.bytes != bytes || b.logBytes != logBytes {
				t.Fatalf("%s: the %s batch counts %d changes, %d bytes, %d log bytes; a recount %d, %d, %d", where, name, b.n, b.bytes, b.logBytes, n, bytes, logBytes)
			}
		}
		if !inWrite {
			for topic, pt := range s.pending.topics {
				if pt.ifWritten {
					t.Fatalf("%s: %s is pending on a write that ended", where, topic)
				}
			}
		}
		st := s.Stats()
		if st.Pending != s.pending.n+s.inflightN() {
			t.Fatalf("%s: Stats says %d pending", where, st.Pending)
		}
	}
	message := func() {
		seq++
		topic := fmt.Sprintf("r/%d", rng.IntN(15))
		r := bridge.Record{Seq: seq, Topic: topic, Time: time.Now(), Retained: true}
		if rng.IntN(10) == 0 {
			r.Cleared, r.Payload = true, json.RawMessage(`null`)
			delete(model, topic)
		} else {
			r.Payload = json.RawMessage(`"` + strings.Repeat("x", rng.IntN(200)) + fmt.Sprint(seq) + `"`)
			model[topic] = append(model[topic], string(r.Payload))
		}
		s.Record(r)
		for topic := range model {
			if !s.kept.has(topic) { // evicted: added again, it starts anew
				delete(model, topic)
			}
		}
		check(fmt.Sprintf("after message %d", seq))
	}
	mqttChange := func(where string) {
		key := fmt.Sprintf("retained/m/%d", rng.IntN(10))
		var v []byte
		if rng.IntN(3) > 0 {
			v = []byte(strings.Repeat("v", rng.IntN(50)))
		}
		s.mqttChanged(key, v)
		check(where + ": after a broker change")
	}
	cfg := StoreConfig{LogEntries: 30, HistoryLength: keep, MaxTopics: 6, HistoryBytes: 2000,
		writeFault: func() error {
			// On the test's goroutine: sync runs on it.
			inWrite = true
			for range writeBusy {
				if rng.IntN(5) == 0 {
					mqttChange("in a write")
				} else {
					message()
				}
			}
			inWrite = false
			if failing.Load() {
				return syscall.ENOSPC
			}
			return nil
		}}
	s = openTestStore(t, dir, cfg)
	for step := range 3000 {
		switch k := rng.IntN(20); {
		case k < 14:
			message()
		case k < 17:
			mqttChange(fmt.Sprintf("step %d", step))
		default:
			failing.Store(rng.IntN(2) == 0)
			writeBusy = rng.IntN(4)
			if rng.IntN(4) == 0 {
				writeBusy = rng.IntN(50) // the log's bounds, topics evicted and added again
			}
			s.sync()
			check(fmt.Sprintf("step %d: after a write (failing %v)", step, failing.Load()))
		}
	}
	failing.Store(false)
	writeBusy = 0
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	values, history := fileTopics(t, dir, keep)
	if len(values) != len(model) || len(history) != len(model) {
		t.Fatalf("on disk: %d values and the history of %d topics; want the %d kept: %v", len(values), len(history), len(model), values)
	}
	for topic, samples := range model {
		want := samples[max(len(samples)-keep, 0):]
		if values[topic] != samples[len(samples)-1] || !slices.Equal(history[topic], want) {
			t.Fatalf("%s on disk: value %.20q, history %.20q; want %.20q", topic, values[topic], history[topic], want)
		}
	}
}

// inflightN is what the batch in flight holds (0 without one).
func (s *Store) inflightN() int {
	if s.inflight == nil {
		return 0
	}
	return s.inflight.n
}

// TestStoreKeepsTheClearedFlag: a log record that cleared a topic (an empty
// retained message) is still one after a restart, and the one before it
// is not.
func TestStoreKeepsTheClearedFlag(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreConfig{})
	at := time.Now()
	s.Record(bridge.Record{Seq: 1, Topic: "c/1", Payload: json.RawMessage(`1`), Time: at, Retained: true})
	s.Record(bridge.Record{Seq: 2, Topic: "c/1", Payload: json.RawMessage(`null`), Time: at, Retained: true, Cleared: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, StoreConfig{})
	defer s.Close()
	r := s.Restored()
	if len(r.Log) != 2 || r.Log[0].Cleared || !r.Log[1].Cleared || !r.Log[1].Retained || len(r.Values) != 0 {
		t.Fatalf("after a restart: log %+v, values %+v; want the second record cleared and no value", r.Log, r.Values)
	}
}
