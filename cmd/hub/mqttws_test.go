package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/internal/hubtest"
)

// TestMQTTOverWebSocket: an MQTT client over WebSocket (paho, as MQTT.js
// would) on the hub's HTTP port publishes and subscribes next to a
// Clown.Talk client; other origins are refused; shutdown disconnects it.
func TestMQTTOverWebSocket(t *testing.T) {
	h := startHub(t)
	mqttWS := "ws://" + h.HTTP + "/mqtt"
	browser, _ := h.session(t, "/ws", `{"subscribe": ["lab/#"]}`)

	c, err := hubtest.ConnectMQTTWebSocket(mqttWS, "mqttjs-like", "", "", http.Header{"Origin": {"http://" + h.HTTP}})
	if err != nil {
		t.Fatalf("MQTT over WebSocket: %v", err)
	}
	defer c.Disconnect(0)
	commands := hubtest.SubscribeMQTT(t, c, "lab/+/set", 1)

	hubtest.PublishMQTT(t, c, "lab/sensor", 1, false, []byte(`{"t":21.5}`))
	if f := browser.Expect("lab/sensor"); string(f.Payload) != `{"t":21.5}` {
		t.Fatalf("the Clown.Talk client got %s", f.Payload)
	}
	browser.Send(`["lab/lamp/set", {"on": true}]`)
	if m := hubtest.Receive(t, commands, hubtest.Timeout, "command over MQTT-WS"); m.Topic != "lab/lamp/set" || m.Payload != `{"on":true}` {
		t.Fatalf("the MQTT-over-WebSocket client got %+v", m)
	}

	if _, err := hubtest.ConnectMQTTWebSocket(mqttWS, "evil", "", "", http.Header{"Origin": {"https://evil.example"}}); err == nil {
		t.Fatal("an MQTT-over-WebSocket handshake from another origin was accepted")
	}
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	if _, resp, err := d.Dial(mqttWS, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another origin: %v, want 403", err)
	}

	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !c.IsConnected() }, "the MQTT-over-WebSocket client stayed connected after shutdown")
}

// TestMQTTOverWebSocketUsers: CONNECT credentials are checked as on TCP; a
// page whose user logged in needs none, and acts as that user.
func TestMQTTOverWebSocketUsers(t *testing.T) {
	users, _ := writeUsers(t, false)
	h := startHub(t, "--users", users)
	mqttWS := "ws://" + h.HTTP + "/mqtt"
	origin := http.Header{"Origin": {"http://" + h.HTTP}}

	if _, err := hubtest.ConnectMQTTWebSocket(mqttWS, "nobody", "", "", origin); err == nil {
		t.Fatal("no credentials, no anonymous entry: the CONNECT must be refused")
	}
	if _, err := hubtest.ConnectMQTTWebSocket(mqttWS, "wrong", "alice", "wrong", origin); err == nil {
		t.Fatal("a wrong password got in")
	}
	viewer, err := hubtest.ConnectMQTTWebSocket(mqttWS, "viewer", "viewer", viewerPassword, origin)
	if err != nil {
		t.Fatalf("viewer with a password: %v", err)
	}
	defer viewer.Disconnect(0)
	seen := hubtest.SubscribeMQTT(t, viewer, "nodes/#", 1)

	_, hdr, _ := get(t, "POST", "http://"+h.HTTP+"/login", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		url.Values{"user": {"alice"}, "password": {alicePassword}}.Encode())
	cookie := strings.Split(hdr.Get("Set-Cookie"), ";")[0]
	alice, err := hubtest.ConnectMQTTWebSocket(mqttWS, "alice-page", "", "", http.Header{"Origin": origin["Origin"], "Cookie": {cookie}})
	if err != nil {
		t.Fatalf("a logged-in page without CONNECT credentials: %v", err)
	}
	defer alice.Disconnect(0)
	hubtest.PublishMQTT(t, alice, "nodes/m/relay/r/set", 1, false, []byte(`{"state":true}`))
	if m := hubtest.Receive(t, seen, hubtest.Timeout, "alice's command"); m.Topic != "nodes/m/relay/r/set" {
		t.Fatalf("got %q", m.Topic)
	}
	// As alice, an LED command is not hers: an MQTT 3.1.1 client is disconnected for it.
	alice.Publish("nodes/m/led/-/state/set", 1, false, "true").WaitTimeout(hubtest.Timeout)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !alice.IsConnected() }, "a forbidden QoS 1 publish did not end the connection")

	// Whatever reached the viewer before two markers from ops must not be the LED command.
	ops, err := hubtest.ConnectMQTTAs(h.MQTT, "ops", "ops", opsPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)
	hubtest.PublishMQTT(t, ops, "nodes/m/marker1", 1, false, []byte("1"))
	hubtest.PublishMQTT(t, ops, "nodes/m/marker2", 1, false, []byte("2"))
	for got := map[string]bool{}; !got["nodes/m/marker1"] || !got["nodes/m/marker2"]; {
		m := hubtest.Receive(t, seen, hubtest.Timeout, "the markers")
		if strings.Contains(m.Topic, "/led/") {
			t.Fatalf("alice's forbidden LED command reached the viewer")
		}
		got[m.Topic] = true
	}
}
