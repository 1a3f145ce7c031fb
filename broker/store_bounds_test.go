package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// keysOnDisk counts the last values on disk, the recent messages and the
// records of the event log.
func keysOnDisk(t *testing.T, s *Store) (values, history, log int) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		values = tx.Bucket(bucketValues).Stats().KeyN
		var records []bridge.Record
		if err := readLog(tx.Bucket(bucketEvents), &records); err != nil {
			return err
		}
		log = len(records)
		_, f, err := readRecent(tx.Bucket(bucketRecent))
		for _, rt := range f.topics {
			history += rt.n
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return values, history, log
}

// TestStoreKeepsABoundedSetOfTopics: 100,000 distinct topics, written as
// they come (a sync every 5,000), leave on disk and reload at most
// MaxTopics values with their history, the most recently updated; and the
// bytes bound holds as well.
func TestStoreKeepsABoundedSetOfTopics(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{MaxTopics: 1000, HistoryLength: 3}
	s := openTestStore(t, dir, cfg)
	at := time.Now()
	seq := uint64(0)
	for i := range 100_000 {
		for range 2 { // two samples each
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("many/%d", i), Payload: json.RawMessage(`[1,2,3]`), Time: at})
		}
		if i%5000 == 4999 {
			s.sync()
		}
	}
	if st := s.Stats(); st.Topics != 1000 || st.TopicsEvicted != 99_000 {
		t.Fatalf("kept %d topics, evicted %d; want 1000 and 99000", st.Topics, st.TopicsEvicted)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, dir, cfg)
	r := s.Restored()
	values, history, _ := keysOnDisk(t, s)
	if values != 1000 || history != 2000 || len(r.Values) != 1000 || len(r.History) != 2000 {
		t.Fatalf("after 100k topics and a restart: %d values and %d history keys on disk, %d values and %d samples reloaded; want 1000 and 2000",
			values, history, len(r.Values), len(r.History))
	}
	for _, v := range r.Values {
		n := 0
		if _, err := fmt.Sscanf(v.Topic, "many/%d", &n); err != nil || n < 99_000 {
			t.Fatalf("kept %s; want the 1000 most recently updated", v.Topic)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// By bytes: 64 topics of 1 KiB values (and samples) in 20 KiB.
	cfg = StoreConfig{HistoryLength: 4, HistoryBytes: 20 << 10}
	s = openTestStore(t, dir, cfg) // the same file, now with a smaller bound
	if st := s.Stats(); st.TopicBytes > 20<<10 {
		t.Fatalf("reopened with a 20 KiB bound: %d bytes kept", st.TopicBytes)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 1022) + `"`)
	for i := range 64 {
		seq++
		s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("big/%d", i), Payload: big, Time: at})
	}
	if st := s.Stats(); st.TopicBytes > 20<<10 || st.Topics < 5 {
		t.Fatalf("%d topics of %d bytes; want within 20 KiB", st.Topics, st.TopicBytes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, cfg)
	defer s.Close()
	size := 0
	for _, v := range s.Restored().Values {
		size += len(v.Topic) + len(v.Payload)
	}
	for _, h := range s.Restored().History {
		size += len(h.Payload)
	}
	if size > 20<<10 || len(s.Restored().Values) < 5 {
		t.Fatalf("reloaded %d topics of %d bytes; want within 20 KiB", len(s.Restored().Values), size)
	}
}

// writeOldLayout writes a store file as motehub before issue 14 did: one
// key per log record, per last value and per history sample, every topic
// ever seen, and marks it closed cleanly.
func writeOldLayout(t *testing.T, dir string, topics, samples int) (seq uint64) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "hub.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketMQTT, bucketLog, bucketValues, bucketHistory} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		put := func(bucket, key []byte, v any) {
			b, _ := json.Marshal(v)
			if err == nil {
				err = tx.Bucket(bucket).Put(key, b)
			}
		}
		type old struct {
			Seq     uint64          `json:"s"`
			Topic   string          `json:"t"`
			Payload json.RawMessage `json:"p"`
			Time    time.Time       `json:"at"`
		}
		for i := range topics {
			topic := fmt.Sprintf("old/%d", i)
			for j := range samples {
				seq++
				r := old{Seq: seq, Topic: topic, Payload: json.RawMessage(fmt.Sprint(j)), Time: at.Add(time.Duration(seq) * time.Millisecond)}
				put(bucketHistory, append(append([]byte(topic), 0), seqKey(seq)...), r)
				put(bucketValues, []byte(topic), r)
			}
		}
		for i := seq - 9; i <= seq; i++ { // the end of the log
			put(bucketLog, seqKey(i), old{Seq: i, Topic: "old/x", Payload: json.RawMessage(`1`), Time: time.Now()})
		}
		put(bucketMQTT, []byte("retained/old/r"), map[string]any{"id": "retained/old/r", "t": "retained", "topic_name": "old/r", "payload": []byte("kept")})
		meta := tx.Bucket(bucketMeta)
		for k, v := range map[string][]byte{"epoch": []byte("0123456789ab"), "seq": seqKey(seq), "clean": []byte("1")} {
			if err == nil {
				err = meta.Put([]byte(k), v)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestStoreReadsFilesOfEarlierVersions: a file written by the earlier
// layout, with more topics and longer histories than the bounds, opens
// with its epoch, log, retained messages, and the most recent topics; the
// rest is deleted from the file once.
func TestStoreReadsFilesOfEarlierVersions(t *testing.T) {
	dir := t.TempDir()
	seq := writeOldLayout(t, dir, 50, 200)
	cfg := StoreConfig{MaxTopics: 20, HistoryLength: 120}
	s := openTestStore(t, dir, cfg)
	r := s.Restored()
	if r.Epoch != "0123456789ab" || r.Seq != seq || len(r.Log) != 10 || r.Log[9].Seq != seq {
		t.Fatalf("an old file's epoch %q, seq %d (want %d), log %d records", r.Epoch, r.Seq, seq, len(r.Log))
	}
	if len(r.Values) != 20 || len(r.History) != 20*120 {
		t.Fatalf("an old file: %d values, %d samples reloaded; want 20 and 2400", len(r.Values), len(r.History))
	}
	for i, h := range r.History {
		if !strings.HasPrefix(h.Topic, "old/") || h.Topic < "old/30" || (i%120 == 119 && string(h.Payload) != "199") {
			t.Fatalf("history %d: %+v; want the last 120 samples of old/30 … old/49", i, h)
		}
	}
	values, history, _ := keysOnDisk(t, s)
	if values != 20 || history != 20*120 {
		t.Fatalf("an old file after opening: %d values, %d history keys on disk; want 20 and 2400", values, history)
	}
	retained, err := newStoreHook(s).StoredRetainedMessages()
	if err != nil || len(retained) != 1 || string(retained[0].Payload) != "kept" {
		t.Fatalf("retained messages of an old file: %+v %v", retained, err)
	}
	// Goes on from there.
	s.Record(bridge.Record{Seq: seq + 1, Topic: "old/49", Payload: json.RawMessage(`"new"`), Time: time.Now()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, cfg)
	defer s.Close()
	if r := s.Restored(); len(r.Log) != 11 || len(r.Values) != 20 || len(r.History) != 2400 || string(r.History[len(r.History)-1].Payload) != `"new"` {
		t.Fatalf("after a write: log %d, values %d, history %d", len(r.Log), len(r.Values), len(r.History))
	}
}

// TestStorePendingIsBounded: with writes failing, what waits to be written
// stays within the bounds, by the stated policy: the newest value per
// topic, the newest HistoryLength samples, the newest log records (and
// then no older log on disk, so no gap).
func TestStorePendingIsBounded(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	cfg := StoreConfig{LogEntries: 100, HistoryLength: 5, MaxTopics: 10, HistoryBytes: 4 << 10,
		writeFault: func() error {
			if failing.Load() {
				return syscall.ENOSPC
			}
			return nil
		}}
	s := openTestStore(t, dir, cfg)
	at := time.Now()
	seq := uint64(0)
	record := func(n int) {
		for range n {
			seq++
			s.Record(bridge.Record{Seq: seq, Topic: fmt.Sprintf("p/%d", seq%20), Payload: json.RawMessage(fmt.Sprintf(`"%040d"`, seq)), Time: at})
		}
	}
	record(50)
	s.sync()
	failing.Store(true)
	for range 5 {
		record(10_000)
		s.sync()
	}
	st := s.Stats()
	if s.Err() == nil || st.SyncFailures != 5 {
		t.Fatalf("failing writes: err %v, %d failures", s.Err(), st.SyncFailures)
	}
	// At most: 100 log records, 10 topics and their 50 samples, 20 gone markers.
	if st.Pending > 100+10+50+20 || st.PendingBytes > 2*(4<<10) || st.LogDropped == 0 {
		t.Fatalf("pending while failing: %+v", st)
	}
	failing.Store(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, cfg)
	defer s.Close()
	r := s.Restored()
	if len(r.Log) == 0 || r.Log[len(r.Log)-1].Seq != seq || r.Log[len(r.Log)-1].Seq-r.Log[0].Seq != uint64(len(r.Log)-1) {
		t.Fatalf("the log after the bound: %d records ending at %d, want the newest ones up to %d without a gap", len(r.Log), r.Log[len(r.Log)-1].Seq, seq)
	}
	if len(r.Values) != 10 || len(r.History) > 50 {
		t.Fatalf("%d values, %d samples; want the 10 most recent topics", len(r.Values), len(r.History))
	}
	for _, v := range r.Values {
		if v.Seq+20 <= seq {
			t.Fatalf("value %+v is not one of the last updates (seq %d)", v, seq)
		}
	}
}

// TestStoreKeepsChangesWhileWritesFail: a store that cannot write (the
// disk is full) says so, keeps the changes, tries again, and once it can
// write again loses nothing: the 3,000 retained messages sent meanwhile
// are there after a clean restart.
func TestStoreKeepsChangesWhileWritesFail(t *testing.T) {
	dir := t.TempDir()
	var failing atomic.Bool
	failing.Store(true)
	cfg := StoreConfig{
		SyncInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		writeFault: func() error {
			if failing.Load() {
				return fmt.Errorf("write hub.db: %w", syscall.ENOSPC)
			}
			return nil
		},
	}
	s, err := OpenStore(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(Config{Addr: "127.0.0.1:0", Store: s, MessageRate: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	b.Open()
	device := hubtest.ConnectMQTT(t, b.Addr().String(), "device")
	for i := range 3000 {
		hubtest.PublishMQTT(t, device, fmt.Sprintf("full/%d", i), 1, true, []byte(fmt.Sprint(i)))
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return b.Stats().Retained >= 3000 }, "the broker never held 3000 retained messages")
	failures := s.Stats().SyncFailures
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return s.Stats().SyncFailures >= failures+2 }, "no write tried after the messages")
	if err := s.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("while the disk is full the store says %v", err)
	}
	failing.Store(false)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return s.Err() == nil }, "the store never wrote again")
	device.Disconnect(0)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, StoreConfig{})
	defer s.Close()
	retained, err := newStoreHook(s).StoredRetainedMessages()
	if err != nil || len(retained) != 3000 {
		t.Fatalf("after the disk was full: %d retained messages kept (%v), want 3000", len(retained), err)
	}
}

// fillStore writes n topics with history and retained messages, closed cleanly.
func fillStore(t *testing.T, dir string, n int) {
	t.Helper()
	s := openTestStore(t, dir, StoreConfig{})
	at := time.Now()
	for i := range n {
		s.Record(bridge.Record{Seq: uint64(i + 1), Topic: fmt.Sprintf("d/%d", i%(n/4)), Payload: json.RawMessage(fmt.Sprintf(`[%d,"some payload"]`, i)), Time: at})
		s.mqttChanged(retainedKey(fmt.Sprintf("d/%d", i)), []byte(fmt.Sprintf(`{"payload":"%d"}`, i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreDamagedFile: a file with 4 KiB of noise mid-file gives one clear
// error, not a panic: which file, what is wrong, what to do.
func TestStoreDamagedFile(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 20_000)
	path := filepath.Join(dir, "hub.db")
	if err := CheckStore(dir); err != nil {
		t.Fatalf("checking a sound store: %v", err)
	}
	hubtest.DamageStore(t, path, 4096)
	if err := CheckStore(dir); !errors.Is(err, ErrStoreDamaged) {
		t.Fatalf("checking a damaged store: %v", err)
	}
	_, err := OpenStore(dir, StoreConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move the file aside") {
		t.Fatalf("a damaged file: %v", err)
	}
	t.Log(err)
}

// TestStoreDamagedWhileRunning: damage found by a write (bbolt panics
// reading the page) stops the writes, is reported by Err, and crashes
// nothing.
func TestStoreDamagedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	fillStore(t, dir, 20_000)
	s := openTestStore(t, dir, StoreConfig{})
	// Noise over every page but the two meta pages: the next write reads some.
	f, err := os.OpenFile(filepath.Join(dir, "hub.db"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Stat()
	noise := make([]byte, info.Size()-2*int64(os.Getpagesize()))
	for i := range noise {
		noise[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(noise, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	s.Record(bridge.Record{Seq: 20_001, Topic: "d/1", Payload: json.RawMessage(`1`), Time: time.Now()})
	s.sync()
	if err := s.Err(); !errors.Is(err, ErrStoreDamaged) || !s.Stats().Damaged {
		t.Fatalf("after a write into a damaged file: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrStoreDamaged) {
		t.Fatalf("closing a damaged store: %v", err)
	}
}

func TestNextWait(t *testing.T) {
	for _, c := range []struct{ took, expected, want time.Duration }{
		{0, 0, time.Second},
		{100 * time.Millisecond, 100 * time.Millisecond, 800 * time.Millisecond},
		{100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond},
		{700 * time.Millisecond, 700 * time.Millisecond, 0},
	} {
		if got := nextWait(time.Second, c.took, c.expected); got != c.want {
			t.Errorf("nextWait(1s, %v, %v) = %v, want %v", c.took, c.expected, got, c.want)
		}
	}
}

// TestStoreStartsWritesEarly: the crash window counts from when a write
// starts (what changes after it waits for the next one to end), so with
// writes that take 300 ms the store starts them about 700 ms apart, not
// 1 s: a change is then on disk within the interval. The ticker of before
// started them 1 s apart, a window of 1.3 s.
func TestStoreStartsWritesEarly(t *testing.T) {
	const interval, slow = time.Second, 300 * time.Millisecond
	var (
		mu     sync.Mutex
		starts []time.Time
		s      *Store
	)
	cfg := StoreConfig{
		SyncInterval: interval,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		writeFault: func() error {
			mu.Lock()
			starts = append(starts, time.Now())
			n, s := len(starts), s
			mu.Unlock()
			// Something for the next write, then a slow disk.
			s.Record(bridge.Record{Seq: uint64(n + 1), Topic: "slow", Payload: json.RawMessage(`1`), Time: time.Now()})
			time.Sleep(slow)
			return nil
		},
	}
	var err error
	mu.Lock() // s is set before the first write reads it
	s, err = OpenStore(t.TempDir(), cfg)
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.Record(bridge.Record{Seq: 1, Topic: "slow", Payload: json.RawMessage(`1`), Time: time.Now()})
	hubtest.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) >= 6
	}, "fewer than 6 writes")
	mu.Lock()
	begun := slices.Clone(starts) // without Close's write
	mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	shortest := time.Hour
	for i := 2; i < len(begun); i++ { // the first gap: the recent durations are not known yet
		shortest = min(shortest, begun[i].Sub(begun[i-1]))
	}
	// Expected: interval - slow = 700 ms; the margin is for a busy machine.
	if shortest > interval-slow/2 {
		t.Fatalf("writes of %v started at least %v apart; want about %v, so that a change is on disk within %v", slow, shortest, interval-slow, interval)
	}
}
