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
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

func openTestStore(t testing.TB, dir string, cfg StoreConfig) *Store {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.SyncInterval = time.Hour // the tests write when they decide (Close, or crash)
	s, err := OpenStore(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// crash stops s as a kill after its last sync would: what is written stays,
// but the file is not marked clean.
func (s *Store) crash() {
	close(s.stop)
	<-s.finished
	s.sync()
	_ = s.db.Close()
}

func brokerWithStore(t *testing.T, s *Store, addr string) *Embedded {
	t.Helper()
	e, err := Start(Config{Addr: addr, Store: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.Open()
	return e
}

// persistentClient connects with a clean session of false.
func persistentClient(t *testing.T, addr, id string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatalf("persistent client %s: %v", id, tok.Error())
	}
	return c
}

// TestStoreKeepsBrokerState: retained messages, a persistent session's
// subscription and the QoS 1 messages queued for it while it was away
// survive a restart of the broker, clean or not.
func TestStoreKeepsBrokerState(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			dir := t.TempDir()
			s1 := openTestStore(t, dir, StoreConfig{})
			b1 := brokerWithStore(t, s1, "127.0.0.1:0")
			addr := b1.Addr().String()

			keeper := persistentClient(t, addr, "keeper")
			hubtest.SubscribeMQTT(t, keeper, "alerts/#", 1)
			keeper.Disconnect(50)
			device := hubtest.ConnectMQTT(t, addr, "device")
			hubtest.PublishMQTT(t, device, "dev/1/state", 1, true, []byte(`{"on":true}`))
			for i := 1; i <= 3; i++ {
				hubtest.PublishMQTT(t, device, "alerts/"+fmt.Sprint(i), 1, false, []byte(fmt.Sprint(i)))
			}
			device.Disconnect(0)
			if err := b1.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if clean {
				if err := s1.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				s1.crash()
			}

			s2 := openTestStore(t, dir, StoreConfig{})
			defer s2.Close()
			b2 := brokerWithStore(t, s2, addr)
			defer b2.Close(context.Background())
			reader := hubtest.ConnectMQTT(t, addr, "reader")
			if m := hubtest.Receive(t, hubtest.SubscribeMQTT(t, reader, "dev/#", 1), hubtest.Timeout, "retained"); m.Topic != "dev/1/state" || !m.Retain {
				t.Fatalf("after the restart the retained message is %+v", m)
			}

			got := make(chan string, 10)
			opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("keeper").SetCleanSession(false).
				SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(true).
				SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
			back := paho.NewClient(opts)
			if tok := back.Connect(); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			defer back.Disconnect(0)
			seen := map[string]bool{}
			for range 3 {
				seen[hubtest.Receive(t, got, hubtest.Timeout, "a queued message")] = true
			}
			if !seen["alerts/1"] || !seen["alerts/2"] || !seen["alerts/3"] {
				t.Fatalf("the persistent session got %v, want the 3 messages queued while it was away", seen)
			}
		})
	}
}

// TestStoreKeepsWhenClientsLeft: the store keeps when a persistent
// session's client went away, so that the session expires counting from
// then after a restart (third_party/mochi-mqtt-server, patch 15).
func TestStoreKeepsWhenClientsLeft(t *testing.T) {
	dir := t.TempDir()
	s1 := openTestStore(t, dir, StoreConfig{})
	b1 := brokerWithStore(t, s1, "127.0.0.1:0")
	before := time.Now().Unix()
	persistentClient(t, b1.Addr().String(), "keeper").Disconnect(50)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return b1.Stats().Connections["mqtt"] == 0 }, "keeper stayed connected")
	if err := b1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, dir, StoreConfig{})
	defer s2.Close()
	clients, err := newStoreHook(s2).StoredClients()
	if err != nil || len(clients) != 1 {
		t.Fatalf("stored clients %+v, %v; want keeper", clients, err)
	}
	if d := clients[0].Disconnected; d < before || d > time.Now().Unix() {
		t.Fatalf("keeper went away at %d, stored %d", before, d)
	}
}

// TestStoreKeepsTheHubsHistory: a clean close keeps the epoch and the event
// log; a crash keeps last values and history but starts a new epoch
// without the log, so that resuming clients are told to resync.
func TestStoreKeepsTheHubsHistory(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreConfig{LogEntries: 5, HistoryLength: 3})
	first := s.Restored().Epoch
	if first == "" || len(s.Restored().Log) != 0 {
		t.Fatalf("a new store: %+v", s.Restored())
	}
	at := time.Now()
	for i := 1; i <= 10; i++ {
		s.Record(bridge.Record{Seq: uint64(i), Topic: "t/temp", Payload: json.RawMessage(fmt.Sprint(i)), Time: at})
	}
	s.Record(bridge.Record{Seq: 11, Topic: "t/gone", Payload: json.RawMessage(`1`), Time: at, Retained: true})
	s.Record(bridge.Record{Seq: 12, Topic: "t/gone", Payload: json.RawMessage(`""`), Time: at, Retained: true, Cleared: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, dir, StoreConfig{LogEntries: 5, HistoryLength: 3})
	r := s.Restored()
	if r.Epoch != first || r.Seq != 12 || len(r.Log) != 5 || r.Log[0].Seq != 8 || r.Log[4].Seq != 12 {
		t.Fatalf("after a clean close: epoch %q (was %q), seq %d, log %d records from %d", r.Epoch, first, r.Seq, len(r.Log), r.Log[0].Seq)
	}
	if len(r.Values) != 1 || r.Values[0].Topic != "t/temp" || string(r.Values[0].Payload) != "10" {
		t.Fatalf("last values %+v: want t/temp=10 only (t/gone was cleared)", r.Values)
	}
	if len(r.History) != 3 || string(r.History[0].Payload) != "8" {
		t.Fatalf("history %+v: want the last 3 of t/temp", r.History)
	}
	s.Record(bridge.Record{Seq: 13, Topic: "t/temp", Payload: json.RawMessage(`13`), Time: at})
	s.crash()

	s = openTestStore(t, dir, StoreConfig{LogEntries: 5, HistoryLength: 3})
	defer s.Close()
	r = s.Restored()
	if r.Epoch == first || len(r.Log) != 0 || r.Seq != 13 {
		t.Fatalf("after a crash: epoch %q (was %q), %d log records, seq %d; want a new epoch and no log", r.Epoch, first, len(r.Log), r.Seq)
	}
	if len(r.Values) != 1 || string(r.Values[0].Payload) != "13" || len(r.History) != 3 {
		t.Fatalf("after a crash the last values %+v and history (%d) must stay", r.Values, len(r.History))
	}
}

func TestStoreRefusesASecondHub(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreConfig{})
	defer s.Close()
	start := time.Now()
	_, err := OpenStore(dir, StoreConfig{OpenTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), "another hub") {
		t.Fatalf("a second store on %s: %v", dir, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("refusing took %v; the bound is the open timeout", took)
	}
}

// TestCheckStoreSortsErrors: hub store check tells a store in use, a file
// that is not a store, and a missing one apart (the same sorting as
// OpenStore's: openDB).
func TestCheckStoreSortsErrors(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, StoreConfig{})
	if err := CheckStore(dir); !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), "stop the hub first") {
		t.Fatalf("checking a store in use: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckStore(dir); err != nil {
		t.Fatalf("checking a sound store: %v", err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "hub.db"), []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckStore(broken); !errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), "move the file aside") {
		t.Fatalf("checking a file that is not a store: %v", err)
	}
	if err := CheckStore(t.TempDir()); err == nil || errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), "no store") {
		t.Fatalf("checking a directory without a store: %v", err)
	}
}

func TestStoreUnusableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(file, StoreConfig{}); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("a file where the directory should be: %v", err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "hub.db"), []byte("this is not a bbolt file, but it is long enough to be read as one, or not"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(broken, StoreConfig{OpenTimeout: time.Second}); !errors.Is(err, ErrStoreDamaged) || !strings.Contains(err.Error(), "hub.db") {
		t.Fatalf("a damaged file: %v", err)
	}
}
