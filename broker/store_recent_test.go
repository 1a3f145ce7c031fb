package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
)

// crashNow stops s as a kill between two syncs would: what is pending is
// lost, the file is not marked clean.
func (s *Store) crashNow() {
	close(s.stop)
	<-s.finished
	_ = s.db.Close()
}

// TestStoreRecentMessagesAcrossRestarts: topics get from none to more than
// HistoryLength messages between syncs, some are cleared; after a clean
// close, or a crash between syncs, the next run reads exactly each topic's
// newest HistoryLength messages of the last sync, in order, and the last
// values; the file holds no chunk that newer ones made obsolete. Then
// HistoryLength is lowered, and the file trimmed to it.
func TestStoreRecentMessagesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(19, 4))
	keep := 7
	cfg := func() StoreConfig { return StoreConfig{HistoryLength: keep} }
	model := map[string][]string{} // topic → every payload, oldest first
	var synced map[string][]string // model as of the last sync
	snapshot := func() map[string][]string {
		m := make(map[string][]string, len(model))
		for topic, h := range model {
			m[topic] = slices.Clone(h)
		}
		return m
	}
	check := func(what string, s *Store, want map[string][]string) {
		t.Helper()
		r := s.Restored()
		var wantHistory, gotHistory, wantValues, gotValues []string
		for _, topic := range slices.Sorted(maps.Keys(want)) {
			h := want[topic]
			for _, p := range h[max(len(h)-keep, 0):] {
				wantHistory = append(wantHistory, topic+"="+p)
			}
			wantValues = append(wantValues, topic+"="+h[len(h)-1])
		}
		for _, h := range r.History {
			gotHistory = append(gotHistory, h.Topic+"="+string(h.Payload))
		}
		for _, v := range r.Values {
			gotValues = append(gotValues, v.Topic+"="+string(v.Payload))
		}
		slices.Sort(gotValues)
		slices.Sort(wantValues)
		if !slices.Equal(gotHistory, wantHistory) {
			t.Fatalf("%s: recent messages read\n%v\nwant\n%v", what, gotHistory, wantHistory)
		}
		if !slices.Equal(gotValues, wantValues) {
			t.Fatalf("%s: last values %v, want %v", what, gotValues, wantValues)
		}
	}

	s := openTestStore(t, dir, cfg())
	seq := s.Restored().Seq
	for round := range 40 {
		for range 1 + rng.IntN(5) { // syncs
			for i := range 12 {
				topic := fmt.Sprintf("r/%d", i)
				if rng.IntN(15) == 0 && model[topic] != nil {
					seq++
					s.Record(bridge.Record{Seq: seq, Topic: topic, Payload: json.RawMessage(`""`), Time: time.Now(), Retained: true, Cleared: true})
					delete(model, topic)
				}
				n := rng.IntN(4)
				if rng.IntN(8) == 0 {
					n = keep + rng.IntN(keep) // more than the file keeps
				}
				for range n {
					seq++
					p := fmt.Sprint(seq)
					s.Record(bridge.Record{Seq: seq, Topic: topic, Payload: json.RawMessage(p), Time: time.Now()})
					model[topic] = append(model[topic], p)
				}
			}
			s.sync()
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			synced = snapshot()
		}
		if round%3 == 2 { // a crash: what came since the last sync is lost
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: "r/0", Payload: json.RawMessage(`"lost"`), Time: time.Now()})
			s.crashNow()
			model = synced
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		values, history := fileTopics(t, dir, keep) // fails on an obsolete chunk
		if len(values) != len(model) || len(history) != len(model) {
			t.Fatalf("round %d: %d values and the history of %d topics on disk; want %d", round, len(values), len(history), len(model))
		}
		if round == 30 {
			keep = 3 // lowered: the file is trimmed to it when opened
		}
		s = openTestStore(t, dir, cfg())
		check(fmt.Sprintf("round %d", round), s, model)
		seq = s.Restored().Seq
	}
	s.crashNow() // nothing pending: what the opening trimmed is on disk
	fileTopics(t, dir, keep)
}

// TestStoreMovesTheOldHistoryLayout: the history bucket of earlier
// versions (a key per message) is read in order, moved to the recent
// bucket and deleted; the next run reads the same.
func TestStoreMovesTheOldHistoryLayout(t *testing.T) {
	dir := t.TempDir()
	writeOldLayout(t, dir, 5, 10)
	var want []string
	for i := range 5 {
		for j := range 10 {
			want = append(want, fmt.Sprintf("old/%d=%d", i, j))
		}
	}
	for run := range 2 {
		s := openTestStore(t, dir, StoreConfig{})
		var got []string
		for _, h := range s.Restored().History {
			got = append(got, h.Topic+"="+string(h.Payload))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: recent messages %v; want %v", run, got, want)
		}
		err := s.db.View(func(tx *bbolt.Tx) error {
			if tx.Bucket(bucketHistory) != nil {
				return fmt.Errorf("the old history bucket is still there")
			}
			if n := tx.Bucket(bucketRecent).Stats().KeyN; n != 5 {
				return fmt.Errorf("%d chunks, want one per topic", n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreDamagedRecentMessages: a chunk that does not decode fails the
// opening with the file's name, as a damaged record does.
func TestStoreDamagedRecentMessages(t *testing.T) {
	record := func(topic string, seq int) []byte {
		return appendRecord(nil, bridge.Record{Seq: uint64(seq), Topic: topic, Payload: json.RawMessage(`1`), Time: time.Now()})
	}
	good := appendChunk(nil, [][]byte{record("a/b", 1)})
	for name, damage := range map[string]struct {
		key, value []byte
	}{
		"truncated":        {seqKey(100), good[:len(good)-3]},
		"a length past":    {seqKey(100), binary.AppendUvarint(nil, 1<<40)},
		"not JSON":         {seqKey(100), appendChunk(nil, [][]byte{[]byte("{nope")})},
		"two topics":       {seqKey(100), appendChunk(nil, [][]byte{record("a/b", 1), record("a/c", 2)})},
		"empty":            {seqKey(100), []byte{}},
		"a key of 3 bytes": {[]byte("abc"), good},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir, StoreConfig{})
			s.Record(bridge.Record{Seq: 1, Topic: "a/b", Payload: json.RawMessage(`1`), Time: time.Now()})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "hub.db")
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRecent).Put(damage.key, damage.value) })
			if err := errors.Join(err, db.Close()); err != nil {
				t.Fatal(err)
			}
			_, err = OpenStore(dir, StoreConfig{Logger: quietLogger()})
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("a store with a damaged chunk opens: %v; want an error naming %s", err, path)
			}
		})
	}
}

// TestStoreLogBoundsAcrossRestarts: the event log, in chunks, keeps across
// clean restarts exactly its newest LogEntries records, without a gap,
// whether its bound falls between chunks or inside one; records past
// LogMaxAge go from the front, from inside a chunk too.
func TestStoreLogBoundsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(19, 5))
	cfg := StoreConfig{LogEntries: 25, LogMaxAge: time.Hour}
	big := json.RawMessage(`"` + strings.Repeat("x", 3000) + `"`) // a few per chunk
	start := time.Now().Add(-40 * time.Minute)
	var all []uint64
	s := openTestStore(t, dir, cfg)
	seq := uint64(0)
	for round := range 30 {
		for range 1 + rng.IntN(3) {
			for range rng.IntN(15) {
				seq++
				p := json.RawMessage(fmt.Sprint(seq))
				if rng.IntN(3) == 0 {
					p = big
				}
				s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("l/%d", rng.IntN(4)), Payload: p, Time: start.Add(time.Duration(seq) * time.Second)})
				all = append(all, seq)
			}
			s.sync()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openTestStore(t, dir, cfg)
		want := all[max(len(all)-cfg.LogEntries, 0):]
		var got []uint64
		for _, r := range s.Restored().Log {
			got = append(got, r.Seq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: the log read %v; want %v", round, got, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Now past an age bound inside the log: from 40 minutes ago, one
	// record a second; kept the last 9 of them and the one to come. The
	// bound is taken from now, not from when the test began: the rounds
	// above write and sync the file a hundred times, which takes seconds
	// under -race on a busy machine, and each second moved the bound a
	// record further (the test failed past two).
	cfg.LogMaxAge = time.Since(start.Add(time.Duration(seq-9)*time.Second - 500*time.Millisecond))
	s = openTestStore(t, dir, cfg)
	seq++
	s.Record(bridge.Record{Seq: seq, Topic: "l/0", Payload: json.RawMessage(`1`), Time: time.Now()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, cfg)
	defer s.Close()
	var got []uint64
	for _, r := range s.Restored().Log {
		got = append(got, r.Seq)
	}
	// Records seq-10 … seq-1 are within the age (give or take the half
	// second between the bound's making and the write), then the new one.
	if len(got) < 9 || len(got) > 11 || got[len(got)-1] != seq || got[0] < seq-11 || got[len(got)-2] != seq-1 {
		t.Fatalf("the log past an age bound: %v; want about the records from %d on, and %d", got, seq-10, seq)
	}
}

// TestStoreOldVersionRanAfterANewOne: a file of this layout is opened by an
// earlier version (which makes an empty history bucket, and puts there the
// messages of the topics it is sent), then by this one again. A topic the
// earlier version wrote has its newest messages in the history bucket; one
// it did not write has them only in the recent bucket, which must not lose
// them.
func TestStoreOldVersionRanAfterANewOne(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openTestStore(t, dir, StoreConfig{})
	seq := s.Restored().Seq
	for _, topic := range []string{"a", "b"} {
		for range 3 {
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: topic, Payload: json.RawMessage(fmt.Sprint(seq)), Time: at.Add(time.Duration(seq) * time.Second)})
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The earlier version's run: topic a gets two messages, b none.
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		hist, err := tx.CreateBucketIfNotExists(bucketHistory)
		if err != nil {
			return err
		}
		logs, err := tx.CreateBucketIfNotExists(bucketLog)
		if err != nil {
			return err
		}
		for range 2 {
			seq++
			v, _ := json.Marshal(storedRecord{Seq: seq, Topic: "a", Payload: json.RawMessage(fmt.Sprint(seq)), Time: at.Add(time.Duration(seq) * time.Second)})
			err = errors.Join(hist.Put(append([]byte("a\x00"), seqKey(seq)...), v), tx.Bucket(bucketValues).Put([]byte("a"), v), logs.Put(seqKey(seq), v))
			if err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("seq"), seqKey(seq))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}

	want := []string{"a=7", "a=8", "b=4", "b=5", "b=6"}
	for run := range 2 {
		s = openTestStore(t, dir, StoreConfig{})
		var got []string
		for _, h := range s.Restored().History {
			got = append(got, h.Topic+"="+string(h.Payload))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: recent messages %v; want %v", run, got, want)
		}
	}
}

// TestStoreLogDamagedChunkGoesWhenTrimmed: a chunk of the event log that
// cannot be read when the log's bounds reach it goes, as the records past
// the bounds do; the writes go on. (It failed every sync from then on.)
func TestStoreLogDamagedChunkGoesWhenTrimmed(t *testing.T) {
	s := openTestStore(t, t.TempDir(), StoreConfig{LogEntries: 10, LogMaxAge: time.Hour})
	defer s.Close()
	record := func(seq uint64) {
		s.Record(bridge.Record{Seq: seq, Topic: "d/1", Payload: json.RawMessage(fmt.Sprint(seq)), Time: time.Now()})
	}
	for seq := uint64(1); seq <= 5; seq++ {
		record(seq)
	}
	s.sync()
	var first []byte
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketEvents).Cursor().First()
		first = slices.Clone(k)
		return tx.Bucket(bucketEvents).Put(first, []byte{0xff, 0xff, 0xff})
	}); err != nil || first == nil {
		t.Fatalf("damaging the log's first chunk: %v (key %x)", err, first)
	}
	for seq := uint64(6); seq <= 12; seq++ { // the bound is then 3: the damaged chunk must be read
		record(seq)
	}
	s.sync()
	if err := s.Err(); err != nil {
		t.Fatalf("the write after the damaged chunk: %v", err)
	}
	if err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketEvents).Get(first); v != nil {
			return fmt.Errorf("the damaged chunk %x is still there: %x", first, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
