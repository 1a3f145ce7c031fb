package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestTextSurvivesARestart: a hub with --data keeps which payloads were
// plain text: after a restart a session with "text" tells text hello from
// JSON "hello" in state/ok and in the replay it resumes with, and the
// device model reads the bare ON a switch reported as on.
func TestTextSurvivesARestart(t *testing.T) {
	data := t.TempDir()
	first := startHub(t, "--data", data, "--data-sync-interval", "50ms")
	ws, ok := first.session(t, "/ws", `{"subscribe": ["t/#"]}`)
	var started struct{ ID string }
	if err := json.Unmarshal(ok.Payload, &started); err != nil || started.ID == "" {
		t.Fatalf("config/ok %s: %v", ok.Payload, err)
	}
	device := hubtest.ConnectMQTT(t, first.MQTT, "device")
	hubtest.PublishMQTT(t, device, "homeassistant/switch/lamp/config", 1, true,
		[]byte(`{"name": "Lamp", "state_topic": "t/lamp", "command_topic": "t/lamp/set", "unique_id": "lamp"}`))
	for _, m := range [][2]string{{"t/text", "hello"}, {"t/json", `"hello"`}, {"t/lamp", "ON"}} {
		hubtest.PublishMQTT(t, device, m[0], 1, false, []byte(m[1]))
	}
	for range 3 {
		ws.ReadLine() // the hub has them
	}
	device.Disconnect(0)
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}

	second := startHub(t, "--data", data)
	ws, _ = second.session(t, "/ws", `{"subscribe": ["t/#"], "text": true, "since": "`+started.ID+`"}`)
	for _, want := range []string{`["t/text",{"$text":"hello"}]`, `["t/json","hello"]`, `["t/lamp",{"$text":"ON"}]`} {
		if line := ws.ReadLine(); line != want {
			t.Fatalf("the replay after a restart: %s, want %s", line, want)
		}
	}
	ws.Send(`["clown.talk/-/state/get", {"filter": "t/#"}]`)
	state := string(ws.Expect("clown.talk/-/state/ok").Payload)
	for _, want := range []string{`["t/text",{"$text":"hello"},`, `["t/json","hello",`} {
		if !strings.Contains(state, want) {
			t.Fatalf("state/ok after a restart has no %s: %s", want, state)
		}
	}
	_, _, body := get(t, "GET", "http://"+second.HTTP+"/api/devices", nil, "")
	var res struct {
		Devices []struct {
			ID       string
			Entities []struct{ Value json.RawMessage }
		}
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Devices {
		if d.ID == "homeassistant:lamp" {
			if len(d.Entities) != 1 || string(d.Entities[0].Value) != "true" {
				t.Fatalf("after a restart the lamp that reported a bare ON is %s", body)
			}
			return
		}
	}
	t.Fatalf("after a restart there is no lamp: %s", body)
}
