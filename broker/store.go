package broker

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/defaults"
)

// StoreConfig tunes a Store. The zero value of each field means its
// documented default. The bounds of the kept topics are the hub's:
// cmd/hub passes the same --max-topics, --recent-messages and
// --recent-bytes to bridge.Config, and the defaults here are
// bridge.Config's (10000, 120, 64 MiB).
type StoreConfig struct {
	// SyncInterval is how often what changed is written, in one transaction
	// flushed to disk. A crash loses at most the changes of the last
	// SyncInterval while a write takes less than half of it: each write
	// starts early by the time the recent ones took (see Store). Default 1 s.
	SyncInterval time.Duration
	// OpenTimeout bounds the wait for the store's lock, held by another hub
	// using the same directory. Default 2 s.
	OpenTimeout time.Duration
	// LogEntries and LogMaxAge bound the event log kept. Defaults 16384, 1 h.
	LogEntries int
	LogMaxAge  time.Duration
	// HistoryLength is how many messages are kept per topic. Default 120.
	HistoryLength int
	// MaxTopics and HistoryBytes bound the topics kept, on disk and in
	// memory: at most MaxTopics topics, and at most HistoryBytes bytes of
	// their last values and history, counted as the hub counts them (see
	// bridge.TopicOverhead). Past either, the topic updated least recently
	// goes, value and history. Defaults: bridge.Config's.
	MaxTopics    int
	HistoryBytes int64
	// Parts are more state kept in the store's file, each written in the
	// store's sync transaction (see StorePart): the history's rollups.
	// Default: none.
	Parts []StorePart
	// Logger receives the store's logs. Default: slog.Default().
	Logger *slog.Logger

	// writeFault, for tests, is called in each write transaction; an error
	// fails the write as a full disk would.
	writeFault func() error
}

func (c *StoreConfig) setDefaults() {
	defaults.Set(&c.SyncInterval, time.Second)
	defaults.Set(&c.OpenTimeout, 2*time.Second)
	defaults.Set(&c.LogEntries, 16384)
	defaults.Set(&c.LogMaxAge, time.Hour)
	defaults.Set(&c.HistoryLength, bridge.DefaultHistoryLength)
	defaults.Set(&c.MaxTopics, bridge.DefaultMaxTopics)
	defaults.Set(&c.HistoryBytes, bridge.DefaultHistoryBytes)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrStoreLocked is returned when another hub holds the store.
var ErrStoreLocked = errors.New("the data directory is in use by another hub")

// ErrStoreDamaged is returned (wrapped in a message that names the file and
// says what to do) when the store's file cannot be read.
var ErrStoreDamaged = errors.New("the store file is damaged")

// Buckets of the store's file. Keys sort so that what goes first is a
// range at the front: the event log's chunks and the recent messages' in
// the order they were written (bucketEvents, bucketRecent).
var (
	bucketMeta   = []byte("meta")   // epoch, seq, clean
	bucketMQTT   = []byte("mqtt")   // the broker's sessions, subscriptions, queued and retained messages
	bucketValues = []byte("values") // topic → record
	// The event log and the recent messages as earlier versions kept them
	// (seq → record; topic NUL seq → record): read once, moved to
	// bucketEvents and bucketRecent, deleted.
	bucketLog     = []byte("log")
	bucketHistory = []byte("history")
)

// Store keeps, in one bbolt file under a directory, what the hub needs
// after a restart: the broker's persistent sessions with their
// subscriptions and queued QoS 1/2 messages, the retained messages, and
// the hub's event log, last values and history. It is the broker's storage
// hook (Config.Store) and the hub's bridge.Journal.
//
// Writes never happen on the broker's or the hub's path: changes are kept
// in memory, the latest per key, and written by the store's own goroutine
// in one transaction every SyncInterval. bbolt's copy-on-write pages make a
// crash lose at most the last interval and never corrupt the file. A clean
// Close marks the file clean: the next run keeps the event log and its
// epoch, so clients resume without noticing; after a crash the next run
// starts a new epoch, and clients are told to resync.
//
// Parts (StoreConfig.Parts, the history's rollups) keep more in the same
// file: each is opened in the store's opening transaction and written in
// its sync transaction, which runs when the store's changes or a part's are
// pending; each part bounds what it holds pending.
//
// The crash window: a change made just after a write began is on disk when
// the next write ends. So that this is SyncInterval, each write starts
// early by the longest of the last few writes' durations; a write longer
// than half the interval makes the window up to two writes long, and is
// logged (Stats.LastSync shows them all).
//
// The pending changes are bounded: the broker's changes are kept latest per
// key (the broker's own limits bound them); the event log to its last
// LogEntries records and HistoryBytes bytes, the oldest going first (the
// next run then keeps no log older than the pending ones: no gap); last
// values and history are the kept topics' (MaxTopics, HistoryBytes), at
// most HistoryLength samples each, the oldest going first; deletions are
// those of topics gone since a write that held them committed (at most the
// topics on disk, themselves kept ones): a topic that never reached the
// disk leaves nothing to delete.
//
// A write that fails (a full disk) keeps its changes pending, within those
// bounds, and is tried again every interval; Err reports it (readiness)
// until a write succeeds. A file found damaged (a read panics in bbolt)
// stops the writes for good: Err reports it, and the hub must be restarted
// with the file moved aside. A file whose damage lies only in parts'
// buckets (the history's) opens without those parts: PartErr says why,
// and DropPart (the store closed) removes them, keeping the rest.
//
// Concurrency: every method is safe for concurrent use.
type Store struct {
	cfg      StoreConfig
	path     string
	db       *bbolt.DB
	restored bridge.Restored

	// syncMu makes writes one at a time, and guards recentFile.
	syncMu     sync.Mutex
	recentFile recentFile     // what the file holds of the recent messages
	changes    []recentChange // for the next write, reused

	mu       sync.Mutex
	pending  *batch
	inflight *batch     // being written (read only meanwhile), or nil
	kept     keptTopics // on disk or pending
	lastErr  error
	damaged  error // set once: the file cannot be read
	stats    StoreStats
	recent   [4]time.Duration // the last writes' durations
	nrecent  int
	stop     chan struct{}
	finished chan struct{}
	closing  sync.Once
	closeErr error
	parts    []StorePart // the parts opened: cfg.Parts but partsOff
	partsOff []partOff   // parts not opened: their bucket is damaged
}

var _ bridge.Journal = (*Store)(nil)

// StoreStats are the store's counters, for metrics.
type StoreStats struct {
	Syncs         uint64        // writes that succeeded
	SyncFailures  uint64        // writes that failed (kept pending, tried again)
	LastSync      time.Duration // how long the last write took
	Pending       int           // changes waiting to be written or being written: records, topics, samples, broker keys
	PendingBytes  int64         // their keys' and payloads' bytes
	LogDropped    uint64        // event log records dropped from a full pending batch, never written
	TopicsEvicted uint64        // topics dropped, the least recently updated first, to stay in bounds
	Topics        int           // topics kept (on disk or pending)
	TopicBytes    int64         // their bytes, as MaxTopics and HistoryBytes count them
	Damaged       bool          // the file is damaged: nothing is written any more
}

// OpenStore opens (or creates) the store in dir, within cfg.OpenTimeout,
// and reads what an earlier run left. A damaged file gives an error that
// wraps ErrStoreDamaged, names the file and says what to do.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "hub.db")
	s := &Store{cfg: cfg, path: path, pending: newBatch(), kept: newKeptTopics(), recentFile: newRecentFile(), stop: make(chan struct{}), finished: make(chan struct{})}
	db, err := s.openDB(&bbolt.Options{Timeout: cfg.OpenTimeout}, "stop the other hub, or choose another --data")
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.guard(func() error { return db.Update(s.load) }); err != nil {
		_ = db.Close()
		if !errors.Is(err, ErrStoreDamaged) {
			err = fmt.Errorf("read the store %s: %w", path, err)
		}
		return nil, err
	}
	go s.run()
	return s, nil
}

// CheckStore reads every page of the store in dir without changing it
// (hub store check). It returns nil for a sound file, an error wrapping
// ErrStoreDamaged for a damaged one, ErrStoreLocked while a hub uses it.
// When the damage lies only in top-level buckets named in parts (the
// buckets of StoreParts, the history's), the error wraps ErrPartDamaged
// too, and names the first such bucket: a store opens without it.
func CheckStore(dir string, parts ...[]byte) error {
	path := filepath.Join(dir, "hub.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no store in %s: %w", dir, err)
	}
	return checkFile(path, parts...)
}

// checkFile is CheckStore of the file at path.
func checkFile(path string, parts ...[]byte) error {
	s := &Store{path: path}
	db, err := s.openDB(&bbolt.Options{ReadOnly: true, Timeout: time.Second}, "stop the hub first")
	if err != nil {
		return err
	}
	defer db.Close()
	return s.guard(func() error {
		return db.View(func(tx *bbolt.Tx) error {
			err := s.check(tx)
			if err == nil || len(parts) == 0 {
				return err
			}
			if damaged, ok := s.damagedBuckets(tx, parts); ok {
				return errors.Join(err, s.partDamagedError(damaged[0]))
			}
			return err
		})
	})
}

// openDB opens the store's file with opts, and sorts the errors: held by
// another process (ErrStoreLocked, with what to do: ifLocked), damaged
// (ErrStoreDamaged), or another.
func (s *Store) openDB(opts *bbolt.Options, ifLocked string) (*bbolt.DB, error) {
	var db *bbolt.DB
	err := s.guard(func() (err error) {
		db, err = bbolt.Open(s.path, 0o600, opts)
		return err
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, ErrStoreDamaged): // a panic of bbolt's
		return nil, err
	case errors.Is(err, bberrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s is locked (%s)", ErrStoreLocked, s.path, ifLocked)
	case errors.Is(err, bberrors.ErrInvalid) || errors.Is(err, bberrors.ErrVersionMismatch) || errors.Is(err, bberrors.ErrChecksum):
		return nil, s.damagedError(err.Error())
	default:
		return nil, fmt.Errorf("open the store %s: %w", s.path, err)
	}
}

// check reads every page of the file (about 30 ms per 100 MB in the page
// cache; BenchmarkStoreCheck), and returns the first damage found.
func (s *Store) check(tx *bbolt.Tx) error {
	var first error
	for err := range tx.Check() { // to its end: the checker's goroutine ends with it
		if first == nil {
			first = s.damagedError(err.Error())
		}
	}
	return first
}

// damagedError says what is wrong with the file and what to do.
func (s *Store) damagedError(what string) error {
	what = strings.TrimPrefix(what, "panic: ")
	return fmt.Errorf("%w: %s cannot be read (%s); move the file aside (mv %s %s.damaged) and start the hub again, which then starts with an empty store, or put back a copy (check one with hub store check %s)",
		ErrStoreDamaged, s.path, what, s.path, s.path, filepath.Dir(s.path))
}

// guard runs f, turning a panic of bbolt's (a damaged page) into an error.
func (s *Store) guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = s.damagedError(fmt.Sprint(p))
		}
	}()
	return f()
}

// load reads the earlier run's state and marks the file in use (not clean).
// It checks every page first: bbolt panics on a damaged page when it reads
// it, which would otherwise happen later, on a write.
func (s *Store) load(tx *bbolt.Tx) error {
	if err := s.check(tx); err != nil {
		// Damage within parts' buckets only (the history's): the store
		// opens without them, rather than not at all.
		var names [][]byte
		for _, p := range s.cfg.Parts {
			names = append(names, p.Bucket())
		}
		damaged, ok := s.damagedBuckets(tx, names)
		if !ok {
			return err
		}
		for _, p := range s.cfg.Parts {
			if i := slices.IndexFunc(damaged, func(d damagedBucket) bool { return bytes.Equal(d.name, p.Bucket()) }); i >= 0 {
				s.partsOff = append(s.partsOff, partOff{p, s.partDamagedError(damaged[i])})
			}
		}
	}
	for _, name := range [][]byte{bucketMeta, bucketMQTT, bucketEvents, bucketValues, bucketRecent} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	r := &s.restored
	r.Epoch = string(meta.Get([]byte("epoch")))
	if v := meta.Get([]byte("seq")); len(v) == 8 {
		r.Seq = binary.BigEndian.Uint64(v)
	}
	keepLog := string(meta.Get([]byte("clean"))) == "1" && r.Epoch != ""
	if !keepLog {
		// A crash (or a first run): ids of the earlier run may have been
		// given to clients and lost here. A new epoch keeps them honest.
		r.Epoch = newEpoch()
		if err := clearBucket(tx, bucketEvents); err != nil {
			return err
		}
	}
	if err := s.loadLog(tx, keepLog); err != nil {
		return err
	}
	if err := s.loadTopics(tx); err != nil {
		return err
	}
	if err := meta.Put([]byte("epoch"), []byte(r.Epoch)); err != nil {
		return err
	}
	if err := s.openParts(tx); err != nil {
		return err
	}
	return meta.Put([]byte("clean"), []byte("0"))
}

// loadTopics reads the last values and recent messages, keeps the topics
// within the bounds (the most recently updated), and deletes the others
// from the file, once: files of earlier versions kept every topic ever
// seen. A file of earlier versions has its recent messages moved to the
// layout of this one.
func (s *Store) loadTopics(tx *bbolt.Tx) error {
	values := tx.Bucket(bucketValues)
	var vals []bridge.Record
	if err := readRecords(values, &vals); err != nil {
		return err
	}
	var byTopic map[string][]bridge.Record // oldest first
	var err error
	old := tx.Bucket(bucketHistory)
	if old != nil {
		// Written by an earlier version, which knows nothing of the recent
		// bucket. If this version ran before it, the recent bucket holds
		// older messages of the topics the earlier one wrote, and the only
		// copy of those of the topics it did not (their values stayed).
		recent, _, err := readRecent(tx.Bucket(bucketRecent))
		if err != nil {
			return err
		}
		if byTopic, err = readOldHistory(old); err != nil {
			return err
		}
		for topic, h := range recent {
			if _, ok := byTopic[topic]; !ok {
				byTopic[topic] = h
			}
		}
		if err := clearBucket(tx, bucketRecent); err != nil {
			return err
		}
	} else if byTopic, s.recentFile, err = readRecent(tx.Bucket(bucketRecent)); err != nil {
		return err
	}
	w := s.recentFile.write(tx, s.cfg.HistoryLength, nil)
	// The most recently updated last, so that it is kept.
	slices.SortFunc(vals, func(a, b bridge.Record) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Seq, b.Seq)) })
	var drop []string
	dropped := make(map[string]bool)
	for _, v := range vals {
		h := byTopic[v.Topic]
		if len(h) > s.cfg.HistoryLength {
			h = h[len(h)-s.cfg.HistoryLength:]
			byTopic[v.Topic] = h
		}
		for _, e := range s.kept.touch(v, h, &s.cfg) {
			drop = append(drop, e.topic)
			dropped[e.topic] = true
		}
	}
	for topic := range byTopic {
		if s.kept.has(topic) {
			continue
		}
		if !dropped[topic] {
			drop = append(drop, topic) // history without a value
		}
	}
	for _, topic := range drop {
		if err := values.Delete([]byte(topic)); err != nil {
			return err
		}
		if err := w.remove(topic); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		s.cfg.Logger.Info("store trimmed to its bounds: topics past them deleted", "topics", len(drop), "kept", s.kept.len(), "max_topics", s.cfg.MaxTopics, "history_bytes", s.cfg.HistoryBytes)
	}
	kept := slices.Sorted(func(yield func(string) bool) {
		for topic := range byTopic {
			if s.kept.has(topic) && !yield(topic) {
				return
			}
		}
	})
	// The recent messages moved to this version's layout, or trimmed: a
	// topic whose oldest chunks hold HistoryLength messages but the
	// newest, and so are never read, loses those (HistoryLength lowered).
	enc := newEncodedRecords(nil)
	write := slices.Clone(kept)
	byFirstSeq(write, func(topic string) uint64 { return byTopic[topic][0].Seq })
	for _, topic := range write {
		rt := s.recentFile.topics[topic]
		switch {
		case old != nil:
			err = w.add(topic, byTopic[topic], enc, true)
		case len(rt.chunks) > 0 && rt.n-rt.chunks[0].n >= s.cfg.HistoryLength:
			err = w.trim(topic)
		}
		if err != nil {
			return err
		}
	}
	w.commit() // the transaction failing fails OpenStore
	if old != nil {
		if err := tx.DeleteBucket(bucketHistory); err != nil {
			return err
		}
		s.cfg.Logger.Info("store: recent messages moved to this version's layout", "topics", len(kept))
	}
	r := &s.restored
	for _, v := range vals {
		if s.kept.has(v.Topic) {
			r.Values = append(r.Values, v)
		}
	}
	// Grouped by topic, in the order of their names (the order New expects).
	for _, topic := range kept {
		r.History = append(r.History, byTopic[topic]...)
	}
	s.kept.markStored()
	return nil
}

func newEpoch() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

func clearBucket(tx *bbolt.Tx, name []byte) error {
	if err := tx.DeleteBucket(name); err != nil {
		return err
	}
	_, err := tx.CreateBucket(name)
	return err
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Restored is what the earlier run left, for bridge.Config.Restore.
func (s *Store) Restored() *bridge.Restored { return &s.restored }

// Record keeps a delivered message (bridge.Journal). It never blocks.
func (s *Store) Record(r bridge.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.pending
	b.seq = max(b.seq, r.Seq)
	s.stats.LogDropped += b.appendLog(&s.cfg, r)
	if r.Cleared {
		onDisk, writing := s.kept.remove(r.Topic)
		b.drop(r.Topic, onDisk, writing)
		return
	}
	b.add(r.Topic, r, s.cfg.HistoryLength)
	for _, e := range s.kept.touch(r, []bridge.Record{r}, &s.cfg) {
		s.stats.TopicsEvicted++
		b.drop(e.topic, e.onDisk, e.writing)
	}
}

// Err is the reason the store cannot write now, or nil (for readiness).
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cmp.Or(s.damaged, s.lastErr)
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Pending, st.PendingBytes = s.pending.n, s.pending.bytes
	if b := s.inflight; b != nil {
		st.Pending += b.n
		st.PendingBytes += b.bytes
	}
	st.Topics, st.TopicBytes = s.kept.len(), s.kept.bytes
	st.Damaged = s.damaged != nil
	return st
}

// run writes every interval, each write started early by the time the
// recent ones took, so that a change waits at most SyncInterval to be on
// disk (see Store).
func (s *Store) run() {
	defer close(s.finished)
	timer := time.NewTimer(s.cfg.SyncInterval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			took := s.sync()
			s.mu.Lock()
			s.recent[s.nrecent%len(s.recent)] = took
			s.nrecent++
			wait := nextWait(s.cfg.SyncInterval, took, slices.Max(s.recent[:]))
			s.mu.Unlock()
			timer.Reset(wait)
		case <-s.stop:
			return
		}
	}
}

// nextWait is how long to wait after a write that took took before the
// next starts, so that a change made as that write began is on disk within
// interval: it waited for the write that took took, and waits for the next
// one, expected to take at most expected.
func nextWait(interval, took, expected time.Duration) time.Duration {
	return max(interval-took-expected, 0)
}

// sync writes what changed, the store's and its parts', in one
// transaction, and returns how long it took. What a failed write held
// stays pending.
func (s *Store) sync() time.Duration {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	partsPending := s.partsPending() // outside s.mu: the parts have their own locks
	s.mu.Lock()
	if s.damaged != nil {
		s.mu.Unlock()
		return 0
	}
	b := s.pending
	if b.empty() && !partsPending {
		s.mu.Unlock()
		return 0
	}
	// A topic counts as on disk once a write that held it commits: one
	// removed before (the write failing, say) leaves nothing to delete.
	s.pending, s.inflight = newBatch(), b
	s.kept.startWrite(b)
	s.mu.Unlock()
	start := time.Now()
	var wrote []StorePart
	err := s.guard(func() error {
		return s.db.Update(func(tx *bbolt.Tx) error {
			if s.cfg.writeFault != nil {
				if err := s.cfg.writeFault(); err != nil {
					return err
				}
			}
			if err := s.write(tx, b); err != nil {
				return err
			}
			var err error
			wrote, err = s.writeParts(tx)
			return err
		})
	})
	took := time.Since(start)
	writtenParts(wrote, err == nil)
	s.mu.Lock()
	failing := s.lastErr != nil
	s.stats.LastSync = took
	s.inflight = nil
	s.kept.endWrite(b, err == nil)
	if err != nil {
		s.stats.SyncFailures++
		s.lastErr = fmt.Errorf("write to %s: %w", s.path, err)
		if errors.Is(err, ErrStoreDamaged) {
			s.damaged = err
		}
		// The failed changes first, what came since on top.
		s.stats.LogDropped += b.then(s.pending, &s.cfg)
		s.pending = b
	} else {
		s.pending.committed(b)
		s.pending.recycle(b, s.cfg.MaxTopics)
		s.stats.Syncs++
		s.lastErr = nil
	}
	failures := s.stats.SyncFailures
	s.mu.Unlock()
	switch {
	case errors.Is(err, ErrStoreDamaged):
		s.cfg.Logger.Error("store file damaged: nothing more is written to it, and /readyz answers 503", "err", err)
	case err != nil && !failing:
		s.cfg.Logger.Error("store write failed: the changes stay in memory and are tried again every interval", "err", err, "records", len(b.log), "interval", s.cfg.SyncInterval)
	case err != nil:
		s.cfg.Logger.Debug("store write failed again", "err", err, "failures", failures)
	case failing:
		s.cfg.Logger.Info("store writing again: nothing held in memory was lost", "seq", b.seq, "failures", failures)
	}
	if err == nil {
		s.cfg.Logger.Debug("store synced", "seq", b.seq, "records", len(b.log), "mqtt", len(b.mqtt), "took", took.Round(time.Microsecond))
		if took > s.cfg.SyncInterval/2 {
			s.cfg.Logger.Warn("store write slow: it took more than half the sync interval, so a crash may lose more than the interval", "took", took.Round(time.Millisecond), "interval", s.cfg.SyncInterval)
		}
	}
	return took
}

func (s *Store) write(tx *bbolt.Tx, b *batch) error {
	mq := tx.Bucket(bucketMQTT)
	for _, k := range sortedKeys(b.mqtt) {
		var err error
		if v := b.mqtt[k]; v == nil {
			err = mq.Delete([]byte(k))
		} else {
			err = mq.Put([]byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	enc := newEncodedRecords(b.log)
	if err := s.writeLog(tx, b, enc); err != nil {
		return err
	}
	values := tx.Bucket(bucketValues)
	topics := sortedKeys(b.topics)
	for _, topic := range topics {
		pt := b.topics[topic]
		var err error
		if pt.gone {
			err = values.Delete([]byte(topic))
		} else {
			err = values.Put([]byte(topic), enc.of(pt.value))
		}
		if err != nil {
			return err
		}
	}
	// The recent messages' chunks in ascending key order: appended.
	byFirstSeq(topics, func(topic string) uint64 {
		if pt := b.topics[topic]; len(pt.samples) > 0 {
			return pt.samples[0].Seq
		}
		return 0
	})
	w := s.recentFile.write(tx, s.cfg.HistoryLength, s.changes)
	for _, topic := range topics {
		pt := b.topics[topic]
		if pt.reset || pt.gone {
			if err := w.remove(topic); err != nil {
				return err
			}
		}
		if !pt.gone && len(pt.samples) > 0 {
			if err := w.add(topic, pt.samples, enc, pt.reset); err != nil {
				return err
			}
		}
	}
	tx.OnCommit(w.commit)
	s.changes = w.changes
	if b.seq > 0 {
		if err := tx.Bucket(bucketMeta).Put([]byte("seq"), seqKey(b.seq)); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Close writes what is pending, marks the file clean, and closes it.
// Calling it more than once is harmless. It returns why the pending
// changes could not be written, if they could not. A damaged file is left
// open (bbolt may hold its lock after a panic) until the process ends.
func (s *Store) Close() error {
	s.closing.Do(func() {
		close(s.stop)
		<-s.finished
		s.sync()
		err := s.Err()
		if err == nil {
			err = s.guard(func() error {
				return s.db.Update(func(tx *bbolt.Tx) error {
					return tx.Bucket(bucketMeta).Put([]byte("clean"), []byte("1"))
				})
			})
		}
		if s.Stats().Damaged {
			// bbolt may have panicked holding its write lock: Close would
			// wait for ever. The file is closed when the process ends.
			s.closeErr = err
			return
		}
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}

// mqttChanged records a change of the broker's state.
func (s *Store) mqttChanged(key string, value []byte) {
	s.mu.Lock()
	s.pending.setMQTT(key, value)
	s.mu.Unlock()
}

// storeHook is the broker's storage hook over a Store. mochi calls it on
// the clients' goroutines; it only records what changed.
//
// It keeps with each in-flight message its place in its session's order,
// which mochi resends them in (third_party/mochi-mqtt-server, patch 1), and
// gives them back in that order: the order survives a restart.
type storeHook struct {
	mqtt.HookBase
	s *Store
}

func newStoreHook(s *Store) *storeHook { return &storeHook{s: s} }

// inflightRecord is an in-flight message as the store keeps it: mochi's
// record, and its place in the order of its session's messages.
type inflightRecord struct {
	storage.Message
	Order uint64 `json:"order,omitempty"` // its place among its session's (absent in stores of earlier versions)
}

// UnmarshalBinary reads a record (storage.Message's would drop Order).
func (r *inflightRecord) UnmarshalBinary(b []byte) error { return json.Unmarshal(b, r) }

func (h *storeHook) ID() string { return "motehub-store" }

// storeHookProvides is the set of mochi's hook methods storeHook implements.
var storeHookProvides = hookSet(
	mqtt.OnSessionEstablished, mqtt.OnWillSent, mqtt.OnDisconnect,
	mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
	mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnClientExpired,
	mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
)

func (h *storeHook) Provides(b byte) bool { return storeHookProvides[b] }

// The keys of the broker's state in the mqtt bucket.
func clientKey(id string) string               { return "client/" + id }
func subscriptionKey(id, filter string) string { return "sub/" + id + "/" + filter }
func retainedKey(topic string) string          { return "retained/" + topic }
func inflightKey(id string, pid uint16) string { return fmt.Sprintf("inflight/%s/%d", id, pid) }

func marshal(v storage.Serializable) []byte {
	b, _ := v.MarshalBinary() // JSON of plain structs
	return b
}

func (h *storeHook) saveClient(cl *mqtt.Client) {
	if cl.Net.Inline {
		return
	}
	props := cl.Properties.Props().Copy(false)
	h.s.mqttChanged(clientKey(cl.ID), marshal(&storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Disconnected:    cl.StopTime(), // 0 while connected
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(*cl.Properties.Will()),
	}))
}

func (h *storeHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.saveClient(cl) }
func (h *storeHook) OnWillSent(cl *mqtt.Client, _ packets.Packet)           { h.saveClient(cl) }

// OnDisconnect forgets a session that ends with its connection, and keeps
// when the client of one that does not went away: its expiry counts from
// then, across restarts. A session taken over is the new connection's.
func (h *storeHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	switch {
	case cl.IsTakenOver() || cl.StopCause() == packets.ErrSessionTakenOver:
		// handed over to the new connection
	case expire:
		h.s.mqttChanged(clientKey(cl.ID), nil)
	case cl.Net.Conn != nil: // not one just restored from the store
		h.saveClient(cl)
	}
}

func (h *storeHook) OnClientExpired(cl *mqtt.Client) { h.s.mqttChanged(clientKey(cl.ID), nil) }

func (h *storeHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue // refused
		}
		h.s.mqttChanged(subscriptionKey(cl.ID, f.Filter), marshal(&storage.Subscription{
			ID: subscriptionKey(cl.ID, f.Filter), T: storage.SubscriptionKey, Client: cl.ID, Qos: codes[i],
			Filter: f.Filter, Identifier: f.Identifier, NoLocal: f.NoLocal,
			RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished,
		}))
	}
}

func (h *storeHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.s.mqttChanged(subscriptionKey(cl.ID, f.Filter), nil)
	}
}

func messageOf(id, kind string, cl *mqtt.Client, pk packets.Packet, sent int64) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		ID: id, T: kind, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader,
		TopicName: pk.TopicName, Payload: pk.Payload, PacketID: pk.PacketID, Created: pk.Created, Sent: sent,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, MessageExpiryInterval: props.MessageExpiryInterval,
			ContentType: props.ContentType, ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier, User: props.User,
		},
	}
}

func (h *storeHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	key := retainedKey(pk.TopicName)
	if r == -1 || len(pk.Payload) == 0 {
		h.s.mqttChanged(key, nil)
		return
	}
	h.s.mqttChanged(key, marshal(messageOf(key, storage.RetainedKey, cl, pk, 0)))
}

func (h *storeHook) OnRetainedExpired(topic string) { h.s.mqttChanged(retainedKey(topic), nil) }

// OnQosPublish keeps a message in flight, new or resent, with its place in
// its session's order.
func (h *storeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	key := inflightKey(cl.ID, pk.PacketID)
	order, _ := cl.State.Inflight.Order(pk.PacketID)
	record, _ := json.Marshal(inflightRecord{Message: *messageOf(key, storage.InflightKey, cl, pk, sent), Order: order})
	h.s.mqttChanged(key, record)
}

func (h *storeHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.s.mqttChanged(inflightKey(cl.ID, pk.PacketID), nil)
}

func (h *storeHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.OnQosComplete(cl, pk) }

// stored reads the values under prefix in the mqtt bucket into out.
func stored[T any, P interface {
	*T
	UnmarshalBinary([]byte) error
}](s *Store, prefix string) ([]T, error) {
	var out []T
	err := s.guard(func() error {
		return s.db.View(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketMQTT).Cursor()
			for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
				var item T
				if err := P(&item).UnmarshalBinary(v); err != nil {
					return fmt.Errorf("a damaged entry %q in the store: %w", k, err)
				}
				out = append(out, item)
			}
			return nil
		})
	})
	return out, err
}

func (h *storeHook) StoredClients() ([]storage.Client, error) {
	return stored[storage.Client](h.s, "client/")
}

func (h *storeHook) StoredSubscriptions() ([]storage.Subscription, error) {
	return stored[storage.Subscription](h.s, "sub/")
}

// StoredInflightMessages returns the messages in flight, each session's in
// the order they were first queued, which is how mochi restores them.
func (h *storeHook) StoredInflightMessages() ([]storage.Message, error) {
	records, err := stored[inflightRecord](h.s, "inflight/")
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(records, func(a, b inflightRecord) int {
		return cmp.Or(strings.Compare(a.Client, b.Client), cmp.Compare(a.Order, b.Order))
	})
	messages := make([]storage.Message, len(records))
	for i, r := range records {
		messages[i] = r.Message
	}
	return messages, nil
}

func (h *storeHook) StoredRetainedMessages() ([]storage.Message, error) {
	return stored[storage.Message](h.s, "retained/")
}
