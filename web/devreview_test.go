package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/internal/hubtest"
)

// gardenDevice is one Home Assistant device whose entities live on topics
// a reader may see apart: a sensor on c/temp; a switch whose state is on
// b/state and its commands on a/cmd; a valve whose state is on c/valve and
// its commands on a/valve/set; a pump all below c/ (c/pump/state,
// c/pump/set).
var gardenDevice = map[string]string{
	"homeassistant/sensor/temp/config":   `{"name": "Temperature", "state_topic": "c/temp", "unique_id": "g-temp", "device": {"identifiers": ["garden"], "name": "Garden"}}`,
	"homeassistant/switch/hidden/config": `{"name": "Hidden", "state_topic": "b/state", "command_topic": "a/cmd", "unique_id": "g-hidden", "device": {"identifiers": ["garden"], "name": "Garden"}}`,
	"homeassistant/switch/valve/config":  `{"name": "Valve", "state_topic": "c/valve", "command_topic": "a/valve/set", "unique_id": "g-valve", "device": {"identifiers": ["garden"], "name": "Garden"}}`,
	"homeassistant/switch/pump/config":   `{"name": "Pump", "state_topic": "c/pump/state", "command_topic": "c/pump/set", "unique_id": "g-pump", "device": {"identifiers": ["garden"], "name": "Garden"}}`,
}

// startGarden starts a hub with users (anonymous reads c/# and writes a/#;
// admin may do everything) and the garden device announced, and returns it
// with the admin's header and the device's MQTT client.
func startGarden(t *testing.T) (*testServer, http.Header, paho.Client) {
	t.Helper()
	users, err := auth.Parse([]byte(`
[users.anonymous]
read = ["c/#"]
write = ["a/#"]
[users.admin]
password = "` + hubtest.PasswordHash(t, "secret") + `"
readwrite = ["#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := startDeviceServer(t, auth.New(users))
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "garden")
	for topic, config := range gardenDevice {
		hubtest.PublishMQTT(t, device, topic, 1, true, []byte(config))
	}
	admin := http.Header{"Authorization": {basicAuth("admin", "secret")}}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		list := ts.apiDevices(t, admin)
		return len(list) == 1 && len(list[0].Entities) == len(gardenDevice)
	}, "the garden device never had its %d entities", len(gardenDevice))
	return ts, admin, device
}

// TestCommandsReachOnlyTheEntitiesTheReaderSees: a reader who may write
// a/# but not read b/state does not see the switch reported there; a
// command to it is answered as one to an entity the device does not have
// (unknown-entity, the same words), over the WebSocket and HTTP, and
// nothing is published.
func TestCommandsReachOnlyTheEntitiesTheReaderSees(t *testing.T) {
	ts, _, device := startGarden(t)
	list := ts.apiDevices(t, nil)
	if len(list) != 1 || entityOf(list[0], "hidden") != nil {
		t.Fatalf("the reader of c/# sees %v; want the garden without its hidden switch", shape(list))
	}
	id := list[0].ID
	commands := hubtest.SubscribeMQTT(t, device, "a/cmd", 1)

	ws := ts.session(t, nil, `{"subscribe": []}`)
	ws.Send(`["clown.talk/-/command", {"device": "` + id + `", "entity": "hidden", "value": true, "id": "h1"}]`)
	hidden := readAck(t, ws)
	ws.Send(`["clown.talk/-/command", {"device": "` + id + `", "entity": "nothing", "value": true, "id": "h2"}]`)
	none := readAck(t, ws)
	if hidden.OK || hidden.Code != "unknown-entity" || hidden.Error != none.Error {
		t.Fatalf("a command to an entity the reader cannot see: ack %+v; to one there is not: %+v", hidden, none)
	}
	status, body := ts.do(t, "POST", "/api/devices/"+url.PathEscape(id)+"/command", "application/json", `{"entity": "hidden", "value": true}`)
	if status != http.StatusNotFound || !strings.Contains(body, `"code":"unknown-entity"`) {
		t.Fatalf("POST a command to an entity the reader cannot see = %d %s", status, body)
	}
	assertNothingPublished(t, device, commands, "a/cmd")
}

// TestAckShowsOnlyStatesTheReaderMayRead: a raw publish on a command topic
// the reader may write, confirmed by a state topic it may not read (the
// model's a/cmd by b/state; a/x/set by a/x), ends "state-differs" when the
// device reports another state, without that state in the ack.
func TestAckShowsOnlyStatesTheReaderMayRead(t *testing.T) {
	ts, _, device := startGarden(t)
	commands := hubtest.SubscribeMQTT(t, device, "a/#", 1)
	ws := ts.session(t, nil, `{"subscribe": [], "ack": true}`)
	ws.Send(`["a/cmd", {"$text": "ON"}, {"id": "r1"}]`)
	ws.Send(`["a/x/set", {"on": true}, {"id": "r2"}]`)
	for range 2 {
		hubtest.Receive(t, commands, hubtest.Timeout, "a command")
	}
	hubtest.PublishMQTT(t, device, "b/state", 1, false, []byte("secret-state"))
	hubtest.PublishMQTT(t, device, "a/x", 1, false, []byte(`{"on": false, "secret": 42}`))
	for range 2 {
		a := readAck(t, ws)
		if a.OK || a.Code != "state-differs" || a.State != nil {
			t.Fatalf("ack of %s, whose state the reader may not read: %+v (state %s)", a.ID, a, a.State)
		}
	}
}

// TestMountedSessionCommands: a session on /ws/c sees the garden with
// topics relative to c; a command to the pump (all below c) is published
// on c/pump/set and its ack names pump/set; the valve, commanded outside
// c, is read only there: its command is forbidden without naming where it
// would have gone, and nothing is published.
func TestMountedSessionCommands(t *testing.T) {
	ts, admin, device := startGarden(t)
	pump := hubtest.SubscribeMQTT(t, device, "c/pump/set", 1)
	valve := hubtest.SubscribeMQTT(t, device, "a/valve/set", 1)
	ws := hubtest.DialWS(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws/c", admin)
	ws.Send(`["clown.talk/-/config/set", {"subscribe": []}]`)
	ws.Expect("clown.talk/-/config/ok")
	list := devicesGet(t, ws)
	if len(list) != 1 {
		t.Fatalf("devices/get on /ws/c: %v", shape(list))
	}
	var ids []string
	for _, e := range list[0].Entities {
		ids = append(ids, e.ID)
		if strings.HasPrefix(e.Topic, "c/") || e.Control != nil && strings.HasPrefix(e.Control.Topic, "c/") {
			t.Errorf("entity %s on /ws/c has absolute topics: %+v", e.ID, e)
		}
	}
	p, v := entityOf(list[0], "pump"), entityOf(list[0], "valve")
	if p == nil || p.Topic != "pump/state" || p.Control == nil || p.Control.Topic != "pump/set" || v == nil || v.Control != nil {
		t.Fatalf("on /ws/c the garden has %v: want the pump commanded on pump/set and the valve read only", ids)
	}

	ws.Send(`["clown.talk/-/command", {"device": "` + list[0].ID + `", "entity": "pump", "value": true, "id": "p1"}]`)
	if m := hubtest.Receive(t, pump, hubtest.Timeout, "the pump's command"); m.Payload != "ON" {
		t.Fatalf("the pump got %q", m.Payload)
	}
	hubtest.PublishMQTT(t, device, "c/pump/state", 1, false, []byte("ON"))
	if a := readAck(t, ws); !a.OK || a.ID != "p1" || a.Topic != "pump/set" {
		t.Fatalf("the pump's command from /ws/c: ack %+v", a)
	}

	ws.Send(`["clown.talk/-/command", {"device": "` + list[0].ID + `", "entity": "valve", "value": true, "id": "v1"}]`)
	a := readAck(t, ws)
	raw, _ := json.Marshal(a)
	if a.OK || a.Code != "forbidden" || a.ID != "v1" || strings.Contains(string(raw), "a/valve") {
		t.Fatalf("the valve's command from /ws/c: ack %s", raw)
	}
	assertNothingPublished(t, device, valve, "a/valve/set")
}

// TestWrappedPayloadForms: only an object that is {"$text": string} or
// {"$base64": string} alone is unwrapped; a value of another type, null
// included, is a bad-json error and publishes nothing (not an empty
// payload); with more keys, or nested, the object is JSON like any other.
func TestWrappedPayloadForms(t *testing.T) {
	ts := startDeviceServer(t, nil)
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "device")
	got := hubtest.SubscribeMQTT(t, device, "w/#", 1)
	for _, bad := range []string{`{"$text": 5}`, `{"$text": null}`, `{"$base64": null}`, `{"$text": ["ON"]}`, `{"$base64": "!!"}`} {
		status, body := ts.do(t, "POST", "/api/publish", "application/json", `["w/bad", `+bad+`]`)
		if status != http.StatusBadRequest || !strings.Contains(body, `"code":"bad-json"`) {
			t.Errorf("publish %s = %d %s, want 400 bad-json", bad, status, body)
		}
	}
	assertNothingPublished(t, device, got, "w/bad")
	for _, asJSON := range []string{`{"$text":"ON","$base64":"T04="}`, `{"a":{"$text":"ON"}}`, `[{"$text":"ON"}]`} {
		if status, body := ts.do(t, "POST", "/api/publish", "application/json", `["w/json", `+asJSON+`]`); status != http.StatusOK {
			t.Fatalf("publish %s = %d %s", asJSON, status, body)
		}
		if m := hubtest.Receive(t, got, hubtest.Timeout, "the JSON"); m.Payload != asJSON {
			t.Errorf("publish %s sent %q, want the JSON as it is", asJSON, m.Payload)
		}
	}
}

// startPumpServer starts an open hub with cfg and the garden's pump
// announced, and returns the server, its hub and the device's client.
func startPumpServer(t *testing.T, cfg bridge.Config) (*testServer, *bridge.Hub, paho.Client) {
	t.Helper()
	ts, hub := startTestServer(t, broker.Config{}, cfg, Config{})
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "pump")
	hubtest.PublishMQTT(t, device, "homeassistant/switch/pump/config", 1, true, []byte(gardenDevice["homeassistant/switch/pump/config"]))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return len(ts.apiDevices(t, nil)) == 1 }, "the pump never came")
	return ts, hub, device
}

// postCommand posts a command to the pump with ctx, and returns the status
// and body, or the error of a request that did not end.
func (ts *testServer) postCommand(ctx context.Context, value string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL+"/api/devices/homeassistant%3Agarden/command",
		strings.NewReader(`{"entity": "pump", "value": `+value+`}`))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestHTTPCommandsWhoseClientLeaves: HTTP clients that leave while their
// commands wait (the ack timeout is a minute) leave no command waiting
// behind: the hub's count of waiting commands is back to 0, and as many
// new commands as the HTTP bound allows are taken (none refused "limit").
func TestHTTPCommandsWhoseClientLeaves(t *testing.T) {
	const perClient = 1 // HTTP: 16 at once
	ts, hub, device := startPumpServer(t, bridge.Config{AckTimeout: time.Minute, MaxPendingCommands: perClient})
	commands := hubtest.SubscribeMQTT(t, device, "c/pump/set", 1)
	for i := range 16 {
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan error, 1)
		go func() {
			_, _, err := ts.postCommand(ctx, "true")
			ended <- err
		}()
		hubtest.Receive(t, commands, hubtest.Timeout, "a command")
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return hub.Stats().CommandsWaiting == 1 },
			"command %d is not waiting", i+1)
		cancel()
		if err := hubtest.Receive(t, ended, hubtest.Timeout, "the request's end"); !errors.Is(err, context.Canceled) {
			t.Fatalf("a request whose client left ended with %v", err)
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return hub.Stats().CommandsWaiting == 0 },
			"after %d clients left, %d commands still wait", i+1, hub.Stats().CommandsWaiting)
	}
	go func() { // the pump answers the next one
		if m, ok := <-commands; ok && m.Payload == "OFF" {
			device.Publish("c/pump/state", 1, false, []byte("OFF"))
		}
	}()
	if status, body, err := ts.postCommand(context.Background(), "false"); err != nil || status != http.StatusOK {
		t.Fatalf("a command after 16 clients left = %d %s %v", status, body, err)
	}
}

// TestHubCloseAnswersWaitingHTTPCommands: Hub.Close answers an HTTP
// command still waiting for its device at once, 503 unavailable, and the
// hub's count of waiting commands is 0.
func TestHubCloseAnswersWaitingHTTPCommands(t *testing.T) {
	ts, hub, device := startPumpServer(t, bridge.Config{AckTimeout: time.Minute})
	commands := hubtest.SubscribeMQTT(t, device, "c/pump/set", 1)
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		status, body, err := ts.postCommand(context.Background(), "true")
		answered <- answer{status, body, err}
	}()
	hubtest.Receive(t, commands, hubtest.Timeout, "the command")
	ctx, cancel := context.WithTimeout(context.Background(), hubtest.Timeout)
	defer cancel()
	if err := hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a := hubtest.Receive(t, answered, hubtest.Timeout, "the answer")
	if a.err != nil || a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, `"code":"unavailable"`) {
		t.Fatalf("a command waiting when the hub closed: %d %s %v", a.status, a.body, a.err)
	}
	if n := hub.Stats().CommandsWaiting; n != 0 {
		t.Fatalf("%d commands wait after Close", n)
	}
}

// TestCommandFromAnotherSiteIsRefused: a page of another origin cannot
// make a visitor's browser command a device: POST
// /api/devices/{id}/command with its Origin is refused 403, like
// /api/publish, and nothing is published; the hub's own origin may.
func TestCommandFromAnotherSiteIsRefused(t *testing.T) {
	ts, _, device := startPumpServer(t, bridge.Config{AckTimeout: ackTimeout})
	commands := hubtest.SubscribeMQTT(t, device, "c/pump/set", 1)
	for _, origin := range []string{"https://evil.example", "null", "http://127.0.0.1.evil.example"} {
		status, body := ts.doWith(t, "POST", "/api/devices/homeassistant%3Agarden/command",
			http.Header{"Origin": {origin}, "Content-Type": {"application/json"}}, `{"entity": "pump", "value": true}`)
		if status != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) {
			t.Fatalf("a command from a page of %s = %d %s", origin, status, body)
		}
	}
	assertNothingPublished(t, device, commands, "c/pump/set")
	go func() {
		if m, ok := <-commands; ok && m.Payload == "ON" {
			device.Publish("c/pump/state", 1, false, []byte("ON"))
		}
	}()
	status, body := ts.doWith(t, "POST", "/api/devices/homeassistant%3Agarden/command",
		http.Header{"Origin": {ts.URL}, "Content-Type": {"application/json"}}, `{"entity": "pump", "value": true}`)
	if status != http.StatusOK {
		t.Fatalf("a command from the hub's own page = %d %s", status, body)
	}
}
