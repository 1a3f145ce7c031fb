package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/motehub/motehub/history"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestDamagedHistoryHubStillStarts: a store file damaged inside the
// history, and sound elsewhere, does not stop the hub: it starts without
// history, says why once (a WARN naming the file and the command that
// fixes it), /readyz answers 200 and says it under "degraded",
// /api/history a 503 that says it; the retained messages are there. hub
// store check says the damage is the history's; hub store drop-history
// drops it, keeping the rest and the damaged file aside; the next start
// records history again.
func TestDamagedHistoryHubStillStarts(t *testing.T) {
	data := t.TempDir()
	path := filepath.Join(data, "hub.db")
	first := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	device := hubtest.ConnectMQTT(t, first.MQTT, "damage-device")
	hubtest.PublishMQTT(t, device, "keep/me", 1, true, []byte(`"kept"`))
	var fields strings.Builder // 64 series a message: their raw points take a page of their own
	for i := range 10 {
		fields.Reset()
		for f := range 64 {
			fmt.Fprintf(&fields, `,"f%d":%d`, f, i*f)
		}
		hubtest.PublishMQTT(t, device, "nodes/m1/all", 1, false, []byte("{"+fields.String()[1:]+"}"))
		waitPoints(t, first, "topic=nodes/m1/all&field=f63&from=-1h&resolution=raw", i+1)
	}
	device.Disconnect(0)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	hubtest.DamageBucket(t, path, history.Bucket())

	second := startHub(t, "--data", data)
	log := second.Log.String()
	if n := strings.Count(log, "history off for this run"); n != 1 || !strings.Contains(log, "level=WARN") ||
		!strings.Contains(log, path) || !strings.Contains(log, "hub store drop-history "+data) {
		t.Fatalf("the log says %d times that the history is off; want once, at WARN, naming %s and hub store drop-history:\n%s", n, path, log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "history off") {
			t.Log(line)
		}
	}
	status, _, body := get(t, "GET", "http://"+second.HTTP+"/readyz", nil, "")
	var ready struct {
		Status   string
		Degraded map[string]string
	}
	if status != 200 || json.Unmarshal([]byte(body), &ready) != nil || ready.Status != "ready" || !strings.Contains(ready.Degraded["history"], "damaged") {
		t.Errorf("/readyz: %d %s; want 200, ready, the history said degraded", status, body)
	}
	t.Logf("/readyz: %s", body)
	status, _, body = historyOf(t, second, "", "", "topic=nodes/m1/all&field=f1&from=-1h")
	if status != 503 || !strings.Contains(body, "damaged") || !strings.Contains(body, "drop-history") {
		t.Errorf("/api/history without history: %d %s; want 503 saying why and what to do", status, body)
	}
	sub := hubtest.ConnectMQTT(t, second.MQTT, "damage-reader")
	msgs := hubtest.SubscribeMQTT(t, sub, "keep/me", 1)
	if m := hubtest.Receive(t, msgs, hubtest.Timeout, "the retained message"); string(m.Payload) != `"kept"` {
		t.Errorf("retained: %s", m.Payload)
	}
	sub.Disconnect(0)
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr strings.Builder
	if code := runStore([]string{"check", data}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "history only") ||
		!strings.Contains(stderr.String(), "hub store drop-history "+data) {
		t.Fatalf("hub store check: exit %d, %s; want 1, the damage the history's and the command", code, stderr.String())
	}
	stdout.Reset()
	if code := runStore([]string{"drop-history", data}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), path+".damaged") {
		t.Fatalf("hub store drop-history: exit %d, %s %s", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(path + ".damaged"); err != nil {
		t.Fatalf("the damaged file kept: %v", err)
	}

	third := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	if strings.Contains(third.Log.String(), "history off") {
		t.Errorf("after drop-history, the history is still off:\n%s", third.Log.String())
	}
	device = hubtest.ConnectMQTT(t, third.MQTT, "damage-device")
	defer device.Disconnect(0)
	msgs = hubtest.SubscribeMQTT(t, device, "keep/me", 1)
	if m := hubtest.Receive(t, msgs, hubtest.Timeout, "the retained message after drop-history"); string(m.Payload) != `"kept"` {
		t.Errorf("retained after drop-history: %s", m.Payload)
	}
	hubtest.PublishMQTT(t, device, "nodes/m1/all", 1, false, []byte(`{"f1":42}`))
	if s := waitPoints(t, third, "topic=nodes/m1/all&field=f1&from=-1h&resolution=raw", 1); s.Points[0].Last != 42 {
		t.Errorf("the history after drop-history: %+v; want only the new point", s.Points)
	}
}
