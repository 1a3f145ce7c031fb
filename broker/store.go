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
// documented default; the bounds should be the hub's (bridge.Config).
type StoreConfig struct {
	// SyncInterval is how often what changed is written, in one transaction
	// flushed to disk: a crash loses at most that much. Default 1 s.
	SyncInterval time.Duration
	// OpenTimeout bounds the wait for the store's lock, held by another hub
	// using the same directory. Default 2 s.
	OpenTimeout time.Duration
	// LogEntries and LogMaxAge bound the event log kept. Defaults 16384, 1 h.
	LogEntries int
	LogMaxAge  time.Duration
	// HistoryLength is how many messages are kept per topic. Default 120.
	HistoryLength int
	// MaxTopics bounds the last values restored. Default 10000.
	MaxTopics int
	// Logger receives the store's logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *StoreConfig) setDefaults() {
	defaults.Set(&c.SyncInterval, time.Second)
	defaults.Set(&c.OpenTimeout, 2*time.Second)
	defaults.Set(&c.LogEntries, 16384)
	defaults.Set(&c.LogMaxAge, time.Hour)
	defaults.Set(&c.HistoryLength, 120)
	defaults.Set(&c.MaxTopics, 10000)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// ErrStoreLocked is returned when another hub holds the store.
var ErrStoreLocked = errors.New("broker: the data directory is in use by another hub")

// Buckets of the store's file.
var (
	bucketMeta    = []byte("meta")    // epoch, seq, clean
	bucketMQTT    = []byte("mqtt")    // the broker's sessions, subscriptions, queued and retained messages
	bucketLog     = []byte("log")     // seq → record
	bucketValues  = []byte("values")  // topic → record
	bucketHistory = []byte("history") // topic NUL seq → record
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
// Concurrency: every method is safe for concurrent use.
type Store struct {
	cfg      StoreConfig
	db       *bbolt.DB
	restored bridge.Restored

	mu      sync.Mutex
	pending *batch
	lastErr error

	stop     chan struct{}
	finished chan struct{}
	closing  sync.Once
	closeErr error
}

var _ bridge.Journal = (*Store)(nil)

// batch is what changed since the last write.
type batch struct {
	mqtt    map[string][]byte        // key → value; nil: delete
	log     []bridge.Record          // in sequence order
	values  map[string]bridge.Record // topic → last value; Cleared: delete
	cleared map[string]bool          // topics whose history was cleared
	history []bridge.Record          // samples since the topic's last clear
	seq     uint64
}

func newBatch() *batch {
	return &batch{mqtt: make(map[string][]byte), values: make(map[string]bridge.Record), cleared: make(map[string]bool)}
}

func (b *batch) empty() bool {
	return len(b.mqtt) == 0 && len(b.log) == 0 && len(b.values) == 0
}

// OpenStore opens (or creates) the store in dir, within cfg.OpenTimeout,
// and reads what an earlier run left.
func OpenStore(dir string, cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("broker: data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "hub.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: cfg.OpenTimeout})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked (stop the other hub, or choose another --data)", ErrStoreLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: open the store %s: %w", path, err)
	}
	s := &Store{cfg: cfg, db: db, pending: newBatch(), stop: make(chan struct{}), finished: make(chan struct{})}
	if err := db.Update(s.load); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("broker: read the store %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// load reads the earlier run's state and marks the file in use (not clean).
func (s *Store) load(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketMQTT, bucketLog, bucketValues, bucketHistory} {
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
	clean := string(meta.Get([]byte("clean"))) == "1"
	if !clean || r.Epoch == "" {
		// A crash (or a first run): ids of the earlier run may have been
		// given to clients and lost here. A new epoch keeps them honest.
		r.Epoch = newEpoch()
		if err := clearBucket(tx, bucketLog); err != nil {
			return err
		}
	}
	if err := readRecords(tx.Bucket(bucketLog), &r.Log); err != nil {
		return err
	}
	if err := readRecords(tx.Bucket(bucketValues), &r.Values); err != nil {
		return err
	}
	if err := readRecords(tx.Bucket(bucketHistory), &r.History); err != nil {
		return err
	}
	if len(r.Values) > s.cfg.MaxTopics {
		slices.SortFunc(r.Values, func(a, b bridge.Record) int { return b.Time.Compare(a.Time) })
		r.Values = r.Values[:s.cfg.MaxTopics]
	}
	if err := meta.Put([]byte("epoch"), []byte(r.Epoch)); err != nil {
		return err
	}
	return meta.Put([]byte("clean"), []byte("0"))
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

// storedRecord is a record as the file keeps it.
type storedRecord struct {
	Seq      uint64          `json:"s"`
	Topic    string          `json:"t"`
	Payload  json.RawMessage `json:"p"`
	Time     time.Time       `json:"at"`
	Retained bool            `json:"r,omitempty"`
}

func readRecords(b *bbolt.Bucket, out *[]bridge.Record) error {
	return b.ForEach(func(_, v []byte) error {
		var r storedRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("a damaged record: %w", err)
		}
		*out = append(*out, bridge.Record{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained})
		return nil
	})
}

func encodeRecord(r bridge.Record) []byte {
	b, _ := json.Marshal(storedRecord{Seq: r.Seq, Topic: r.Topic, Payload: r.Payload, Time: r.Time, Retained: r.Retained})
	return b
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func historyKey(topic string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(topic), 0), seq)
}

// Restored is what the earlier run left, for bridge.Config.Restore.
func (s *Store) Restored() *bridge.Restored { return &s.restored }

// Record keeps a delivered message (bridge.Journal). It never blocks.
func (s *Store) Record(r bridge.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.pending
	b.seq = r.Seq
	b.log = append(b.log, r)
	b.values[r.Topic] = r
	if r.Cleared {
		b.cleared[r.Topic] = true
		b.history = slices.DeleteFunc(b.history, func(h bridge.Record) bool { return h.Topic == r.Topic })
		return
	}
	b.history = append(b.history, r)
}

// Err is the last write's error, or nil (for readiness).
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *Store) run() {
	defer close(s.finished)
	tick := time.NewTicker(s.cfg.SyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.sync()
		case <-s.stop:
			return
		}
	}
}

// sync writes what changed in one transaction.
func (s *Store) sync() {
	s.mu.Lock()
	b := s.pending
	s.pending = newBatch()
	s.mu.Unlock()
	if b.empty() {
		return
	}
	start := time.Now()
	err := s.db.Update(func(tx *bbolt.Tx) error { return s.write(tx, b) })
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if err != nil {
		s.cfg.Logger.Error("store: a write failed; the changes are lost", "err", err, "records", len(b.log))
		return
	}
	s.cfg.Logger.Debug("store synced", "seq", b.seq, "records", len(b.log), "mqtt", len(b.mqtt), "took", time.Since(start).Round(time.Microsecond))
}

func (s *Store) write(tx *bbolt.Tx, b *batch) error {
	mq := tx.Bucket(bucketMQTT)
	for k, v := range b.mqtt {
		var err error
		if v == nil {
			err = mq.Delete([]byte(k))
		} else {
			err = mq.Put([]byte(k), v)
		}
		if err != nil {
			return err
		}
	}
	logs := tx.Bucket(bucketLog)
	for _, r := range b.log {
		if err := logs.Put(seqKey(r.Seq), encodeRecord(r)); err != nil {
			return err
		}
	}
	if err := s.trimLog(logs, b.seq); err != nil {
		return err
	}
	values := tx.Bucket(bucketValues)
	hist := tx.Bucket(bucketHistory)
	for topic := range b.cleared {
		if err := trimHistory(hist, topic, 0); err != nil {
			return err
		}
	}
	for topic, r := range b.values {
		var err error
		if r.Cleared {
			err = values.Delete([]byte(topic))
		} else {
			err = values.Put([]byte(topic), encodeRecord(r))
		}
		if err != nil {
			return err
		}
	}
	for _, r := range b.history {
		if err := hist.Put(historyKey(r.Topic, r.Seq), encodeRecord(r)); err != nil {
			return err
		}
	}
	for topic, r := range b.values {
		if !r.Cleared {
			if err := trimHistory(hist, topic, s.cfg.HistoryLength); err != nil {
				return err
			}
		}
	}
	if b.seq > 0 {
		if err := tx.Bucket(bucketMeta).Put([]byte("seq"), seqKey(b.seq)); err != nil {
			return err
		}
	}
	return nil
}

// trimLog deletes the records past the log's bounds.
func (s *Store) trimLog(logs *bbolt.Bucket, last uint64) error {
	oldestKept := uint64(0)
	if last > uint64(s.cfg.LogEntries) {
		oldestKept = last - uint64(s.cfg.LogEntries) + 1
	}
	cutoff := time.Now().Add(-s.cfg.LogMaxAge)
	c := logs.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if binary.BigEndian.Uint64(k) >= oldestKept {
			var r storedRecord
			if json.Unmarshal(v, &r) == nil && r.Time.After(cutoff) {
				return nil
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// trimHistory keeps topic's last keep samples.
func trimHistory(hist *bbolt.Bucket, topic string, keep int) error {
	prefix := append([]byte(topic), 0)
	c := hist.Cursor()
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys[:max(len(keys)-keep, 0)] {
		if err := hist.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Close writes what is pending, marks the file clean, and closes it.
// Calling it more than once is harmless.
func (s *Store) Close() error {
	s.closing.Do(func() {
		close(s.stop)
		<-s.finished
		s.sync()
		err := s.Err()
		if err == nil {
			err = s.db.Update(func(tx *bbolt.Tx) error {
				return tx.Bucket(bucketMeta).Put([]byte("clean"), []byte("1"))
			})
		}
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}

// mqttChanged records a change of the broker's state.
func (s *Store) mqttChanged(key string, value []byte) {
	s.mu.Lock()
	s.pending.mqtt[key] = value
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

func (h *storeHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished, mqtt.OnWillSent, mqtt.OnDisconnect,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnRetainMessage, mqtt.OnRetainedExpired,
		mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.OnClientExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
	}, []byte{b})
}

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
	props := cl.Properties.Props.Copy(false)
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
		Will: storage.ClientWill(cl.Properties.Will),
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
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketMQTT).Cursor()
		for k, v := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, v = c.Next() {
			var item T
			if err := P(&item).UnmarshalBinary(v); err != nil {
				return fmt.Errorf("broker: a damaged entry %q in the store: %w", k, err)
			}
			out = append(out, item)
		}
		return nil
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
