package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestDamagedStoreExitsWithAMessage: the real binary on a store file with
// 4 KiB of noise mid-file exits 1 with one message that names the file,
// says what is wrong and what to do; no stack dump. hub store check finds
// the damage too (and none before).
func TestDamagedStoreExitsWithAMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildHub(t)
	data := t.TempDir()
	s, err := broker.OpenStore(data, broker.StoreConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for i := range 20_000 {
		s.Record(bridge.Record{Seq: uint64(i + 1), Topic: fmt.Sprintf("d/%d", i%5000), Payload: json.RawMessage(fmt.Sprintf(`[%d,"some payload"]`, i)), Time: at})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, "hub.db")
	if out, err := exec.Command(bin, "store", "check", data).CombinedOutput(); err != nil || !strings.Contains(string(out), "sound") {
		t.Fatalf("hub store check on a sound store: %v %s", err, out)
	}
	hubtest.DamageStore(t, path, 4096)
	check := exec.Command(bin, "store", "check", data)
	out, _ := check.CombinedOutput()
	if code := check.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), path) || !strings.Contains(string(out), "damaged") {
		t.Fatalf("hub store check on a damaged store: exit %d, %s", code, out)
	}

	cmd := exec.Command(bin, "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data", data)
	cmd.Dir = t.TempDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(hubtest.Timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the hub started on a damaged store:\n%s", stderr.String())
	}
	msg := stderr.String()
	if code := cmd.ProcessState.ExitCode(); code != 1 || strings.Contains(msg, "goroutine ") ||
		!strings.Contains(msg, path) || !strings.Contains(msg, "damaged") || !strings.Contains(msg, "move the file aside") ||
		strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Fatalf("a damaged store: exit %d, stderr:\n%s\nwant exit 1 and one line naming %s, the damage and what to do", code, msg, path)
	}
	t.Log(msg)
}

// TestStoreBoundsThroughTheHub: with --max-topics 50, a hub that saw 300
// topics keeps 50 on disk and reloads 50 after a restart.
func TestStoreBoundsThroughTheHub(t *testing.T) {
	data := t.TempDir()
	args := []string{"--data", data, "--max-topics", "50", "--recent-messages", "3", "--data-sync-interval", "50ms"}
	h := startHub(t, args...)
	device := hubtest.ConnectMQTT(t, h.MQTT, "many-topics")
	for i := range 300 {
		hubtest.PublishMQTT(t, device, fmt.Sprintf("many/%d", i), 1, false, []byte(fmt.Sprint(i)))
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, _, body := get(t, "GET", "http://"+h.HTTP+"/api/state?filter=many/299", nil, "")
		return strings.Contains(body, `"payload":299`)
	}, "the hub never had the last topic")
	if n := len(stateValues(t, h)); n != 50 {
		t.Fatalf("with --max-topics 50 the hub holds %d topics", n)
	}
	device.Disconnect(0)
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(filepath.Join(data, "hub.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var values, history int
	_ = db.View(func(tx *bbolt.Tx) error {
		values = tx.Bucket([]byte("values")).Stats().KeyN
		history = tx.Bucket([]byte("recent")).Stats().KeyN // a chunk per topic per write: here one message each
		return nil
	})
	_ = db.Close()
	if values != 50 || history != 50 {
		t.Fatalf("after 300 topics with --max-topics 50: %d values and %d history keys on disk; want 50 each", values, history)
	}

	h = startHub(t, args...)
	topics := stateValues(t, h)
	if len(topics) != 50 || !slices.Contains(topics, "many/299") || slices.Contains(topics, "many/249") || slices.Contains(topics, "many/0") {
		t.Fatalf("after a restart with --max-topics 50: %d topics %v; want the 50 most recent", len(topics), topics)
	}
}

// stateValues is the topics of every last value the hub holds (the broker's
// $SYS topics count too).
func stateValues(t *testing.T, h *runningHub) []string {
	t.Helper()
	_, _, body := get(t, "GET", "http://"+h.HTTP+"/api/state?filter=%23&filter=$SYS/%23", nil, "")
	var st struct{ Values []struct{ Topic string } }
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/state: %v %s", err, body)
	}
	var topics []string
	for _, v := range st.Values {
		topics = append(topics, v.Topic)
	}
	return topics
}
