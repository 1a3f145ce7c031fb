package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/devicetrace"
	"github.com/motehub/motehub/internal/hubtest"
)

// ackTimeout is the hub's command timeout in these tests: short, so that
// the timeout cases end soon.
const ackTimeout = 1500 * time.Millisecond

// startDeviceServer starts a broker, a hub and the HTTP surface, the hub
// and HTTP deciding with authz (nil: open).
func startDeviceServer(t *testing.T, authz *auth.Authorizer) *testServer {
	t.Helper()
	ts, _ := startTestServer(t, broker.Config{}, bridge.Config{AckTimeout: ackTimeout, Authorizer: authz}, Config{Authorizer: authz})
	return ts
}

// readTrace reads testdata/devices/<name>.trace; ok is false when no helper
// has written it yet.
func readTrace(t *testing.T, name string) ([]devicetrace.Message, bool) {
	t.Helper()
	path := filepath.Join("..", "testdata", "devices", name+".trace")
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil, false
	}
	msgs, err := devicetrace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return msgs, true
}

// allTraces reads every trace there is.
func allTraces(t *testing.T) []devicetrace.Message {
	t.Helper()
	all, err := devicetrace.ReadDir(filepath.Join("..", "testdata", "devices"))
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// play publishes msgs from a paho client, with their retained flags, in
// order (QoS 1: the broker takes each before the next).
func play(t *testing.T, c paho.Client, msgs []devicetrace.Message) {
	t.Helper()
	for _, m := range msgs {
		hubtest.PublishMQTT(t, c, m.Topic, 1, m.Retain, m.Payload)
	}
}

// modelOf is a model fed msgs directly: what the hub's should come to.
func modelOf(msgs []devicetrace.Message) *devices.Model {
	m := devices.New(devices.Config{})
	for _, msg := range msgs {
		m.Apply(devices.Message{Topic: msg.Topic, Payload: msg.Payload, Retained: msg.Retain, Time: time.Now()})
	}
	return m
}

// shape is a device's id and its entities' ids: what must match between
// the hub's model and one fed directly (values and times may differ).
func shape(list []devices.Device) []string {
	var out []string
	for _, d := range list {
		ids := []string{}
		for _, e := range d.Entities {
			ids = append(ids, e.ID)
		}
		out = append(out, d.ID+" "+strings.Join(ids, ","))
	}
	return out
}

// apiDevices is GET /api/devices decoded.
func (ts *testServer) apiDevices(t *testing.T, header http.Header) []devices.Device {
	t.Helper()
	status, body := ts.doWith(t, "GET", "/api/devices", header, "")
	if status != http.StatusOK {
		t.Fatalf("GET /api/devices = %d %s", status, body)
	}
	var res struct{ Devices []devices.Device }
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("GET /api/devices: %v: %s", err, body)
	}
	return res.Devices
}

func (ts *testServer) doWith(t *testing.T, method, path string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: error %d with Content-Type %q, want JSON", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, b.String()
}

// session opens a Clown.Talk session with config and returns it after
// config/ok.
func (ts *testServer) session(t *testing.T, header http.Header, config string) *hubtest.WS {
	t.Helper()
	ws := hubtest.DialWS(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", header)
	ws.Send(`["clown.talk/-/config/set", ` + config + `]`)
	ws.Expect("clown.talk/-/config/ok")
	return ws
}

// devicesGet asks a session for its devices.
func devicesGet(t *testing.T, ws *hubtest.WS) []devices.Device {
	t.Helper()
	ws.Send(`["clown.talk/-/devices/get", {}]`)
	var res struct{ Devices []devices.Device }
	if err := json.Unmarshal(ws.Expect("clown.talk/-/devices/ok").Payload, &res); err != nil {
		t.Fatal(err)
	}
	return res.Devices
}

// nextDevice reads device frames until one about id comes.
func nextDevice(t *testing.T, ws *hubtest.WS, id string) json.RawMessage {
	t.Helper()
	for range 1000 {
		f := ws.Expect("clown.talk/-/device")
		var d struct{ ID string }
		if err := json.Unmarshal(f.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID == id {
			return f.Payload
		}
	}
	t.Fatalf("no device frame about %s", id)
	return nil
}

// TestDevicesFromTraces: every trace, published by a real MQTT client with
// its retained flags, makes in /api/devices and devices/get the devices a
// model fed directly has; a live value comes as a device frame to a session
// that asked for them; /api/devices/{id} takes path-escaped ids.
func TestDevicesFromTraces(t *testing.T) {
	ts := startDeviceServer(t, nil)
	msgs := allTraces(t)
	play(t, hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "trace-player"), msgs)
	want := shape(modelOf(msgs).Devices())
	if len(want) == 0 {
		t.Fatal("the traces make no devices")
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return slices.Equal(shape(ts.apiDevices(t, nil)), want) },
		"/api/devices never came to\n%s", strings.Join(want, "\n"))

	ws := ts.session(t, nil, `{"subscribe": [], "devices": true}`)
	if got := shape(devicesGet(t, ws)); !slices.Equal(got, want) {
		t.Fatalf("devices/get = \n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A live value: one device frame with it.
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "kitchen-node")
	hubtest.PublishMQTT(t, device, "node/kitchen/thermometer/0:1/temperature", 1, false, []byte("23.25"))
	var live devices.Device
	if err := json.Unmarshal(nextDevice(t, ws, "hardwario:node/kitchen"), &live); err != nil {
		t.Fatal(err)
	}
	if e := entityOf(live, "thermometer/0:1/temperature"); e == nil || string(e.Value) != "23.25" || e.Unit != "°C" {
		t.Fatalf("the live device frame has the temperature %+v", e)
	}

	status, body := ts.do(t, "GET", "/api/devices/"+url.PathEscape("hardwario:node/kitchen"), "", "")
	if status != http.StatusOK || !strings.Contains(body, `"id":"hardwario:node/kitchen"`) {
		t.Fatalf("GET /api/devices/{escaped id} = %d %s", status, body)
	}
	status, body = ts.do(t, "GET", "/api/devices/nothing%3Ahere", "", "")
	if status != http.StatusNotFound || !strings.Contains(body, `"code":"unknown-device"`) {
		t.Fatalf("GET /api/devices/ of no device = %d %s", status, body)
	}
}

func entityOf(d devices.Device, id string) *devices.Entity {
	for i := range d.Entities {
		if d.Entities[i].ID == id {
			return &d.Entities[i]
		}
	}
	return nil
}

// commandCase is a control of one convention's trace: the bytes the device
// expects for "on", and what it answers.
type commandCase struct {
	convention string
	trace      string
	// control picks the entity: by its command topic, or (empty) the first
	// switch or light of the convention.
	control string
	sent    string // the bytes the command topic must carry for value true
	answer  string // the device's state once on
	differ  string // a state that is not on
}

var commandCases = []commandCase{
	{devices.HomeAssistant, "homeassistant", "homeassistant/switch/irrigation/set", "ON", "ON", "OFF"},
	{devices.HARDWARIO, "hardwario", "node/kitchen/relay/-/state/set", "true", "true", "false"},
	{devices.Zigbee2MQTT, "zigbee2mqtt", "", `{"state":"ON"}`, `{"state":"ON"}`, `{"state":"OFF"}`},
	{devices.Tasmota, "tasmota", "", "ON", "ON", "OFF"},
	{devices.Homie, "homie", "", "true", "true", "false"},
}

// find returns the device and entity the case commands.
func (cc commandCase) find(list []devices.Device) (devices.Device, devices.Entity, bool) {
	for _, d := range list {
		if d.Convention != cc.convention || d.Availability == devices.Offline {
			continue
		}
		for _, e := range d.Entities {
			if e.Control == nil || e.Topic == "" {
				continue
			}
			if cc.control == e.Control.Topic || cc.control == "" && (e.Kind == devices.KindSwitch || e.Kind == devices.KindLight) {
				return d, e, true
			}
		}
	}
	return devices.Device{}, devices.Entity{}, false
}

// ack is the payload of clown.talk/-/ack.
type ack struct {
	Topic, ID, Device, Entity, Code, Error string
	OK                                     bool
	State                                  json.RawMessage
}

func readAck(t *testing.T, ws *hubtest.WS) ack {
	t.Helper()
	var a ack
	if err := json.Unmarshal(ws.Expect("clown.talk/-/ack").Payload, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCommandsPerConvention: for each convention, a command over the
// WebSocket reaches an MQTT subscriber with the exact bytes the device
// expects; the device's answer confirms it; no answer is a timeout, another
// state state-differs; and over HTTP the same command waits for the answer.
func TestCommandsPerConvention(t *testing.T) {
	for _, cc := range commandCases {
		t.Run(cc.convention, func(t *testing.T) {
			msgs, ok := readTrace(t, cc.trace)
			if !ok {
				t.Skipf("testdata/devices/%s.trace is not written yet", cc.trace)
			}
			ts := startDeviceServer(t, nil)
			addr := ts.Broker.Addr().String()
			play(t, hubtest.ConnectMQTT(t, addr, "trace-player"), msgs)
			var dev devices.Device
			var ent devices.Entity
			hubtest.Eventually(t, hubtest.Timeout, func() bool {
				dev, ent, ok = cc.find(ts.apiDevices(t, nil))
				return ok
			}, "no %s control in /api/devices", cc.convention)

			device := hubtest.ConnectMQTT(t, addr, "device")
			commands := hubtest.SubscribeMQTT(t, device, ent.Control.Topic, 1)
			ws := ts.session(t, nil, `{"subscribe": []}`)
			send := func(id string) {
				frame, _ := json.Marshal([]any{"clown.talk/-/command", map[string]any{"device": dev.ID, "entity": ent.ID, "value": true, "id": id}})
				ws.Send(string(frame))
				if got := hubtest.Receive(t, commands, hubtest.Timeout, "the command"); got.Payload != cc.sent {
					t.Fatalf("the device got %q on %s, want %q", got.Payload, ent.Control.Topic, cc.sent)
				}
			}

			send("c1")
			hubtest.PublishMQTT(t, device, ent.Topic, 1, false, []byte(cc.answer))
			if a := readAck(t, ws); !a.OK || a.ID != "c1" || a.Device != dev.ID || a.Entity != ent.ID || a.Topic != ent.Control.Topic {
				t.Fatalf("answered command: ack %+v", a)
			}

			send("c2") // no answer
			if a := readAck(t, ws); a.OK || a.ID != "c2" || a.Code != "timeout" || a.Error != "timeout" {
				t.Fatalf("unanswered command: ack %+v", a)
			}

			send("c3")
			hubtest.PublishMQTT(t, device, ent.Topic, 1, false, []byte(cc.differ))
			if a := readAck(t, ws); a.OK || a.ID != "c3" || a.Code != "state-differs" || a.Error != "state differs" {
				t.Fatalf("command answered with another state: ack %+v", a)
			}

			// Over HTTP: the request waits for the device's answer.
			go func() {
				if m, ok := <-commands; ok && m.Payload == cc.sent {
					device.Publish(ent.Topic, 1, false, []byte(cc.answer))
				}
			}()
			status, body := ts.do(t, "POST", "/api/devices/"+url.PathEscape(dev.ID)+"/command", "application/json",
				`{"entity": "`+ent.ID+`", "value": true}`)
			if status != http.StatusOK || !strings.Contains(body, `"ok":true`) {
				t.Fatalf("POST command = %d %s", status, body)
			}
			if s := ts.stats(t); s["ok"] < 2 || s["timeout"] < 1 || s["state-differs"] < 1 {
				t.Errorf("commands by outcome: %v", s)
			}
		})
	}
}

// stats is motehub_commands_total by outcome, read from /metrics.
func (ts *testServer) stats(t *testing.T) map[string]float64 {
	t.Helper()
	_, body := ts.do(t, "GET", "/metrics", "", "")
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		rest, ok := strings.CutPrefix(line, `motehub_commands_total{outcome="`)
		if !ok {
			continue
		}
		outcome, value, _ := strings.Cut(rest, `"} `)
		var v float64
		_ = json.Unmarshal([]byte(strings.TrimSpace(value)), &v)
		out[outcome] = v
	}
	return out
}

// TestCommandToOfflineDeviceFailsAtOnce: a device whose availability says
// offline gets nothing; the ack says offline without waiting, and HTTP
// answers 409.
func TestCommandToOfflineDeviceFailsAtOnce(t *testing.T) {
	msgs, _ := readTrace(t, "homeassistant")
	ts := startDeviceServer(t, nil)
	addr := ts.Broker.Addr().String()
	player := hubtest.ConnectMQTT(t, addr, "trace-player")
	play(t, player, msgs)
	hubtest.PublishMQTT(t, player, "homeassistant/switch/irrigation/available", 1, true, []byte("offline"))
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		for _, d := range ts.apiDevices(t, nil) {
			if d.ID == "homeassistant:garden01ad" {
				return d.Availability == devices.Offline
			}
		}
		return false
	}, "the irrigation never went offline")

	device := hubtest.ConnectMQTT(t, addr, "device")
	commands := hubtest.SubscribeMQTT(t, device, "homeassistant/switch/irrigation/set", 1)
	ws := ts.session(t, nil, `{"subscribe": []}`)
	start := time.Now()
	ws.Send(`["clown.talk/-/command", {"device": "homeassistant:garden01ad", "entity": "irrigation", "value": true, "id": "off1"}]`)
	if a := readAck(t, ws); a.OK || a.Code != "offline" || a.ID != "off1" {
		t.Fatalf("command to an offline device: ack %+v", a)
	}
	if waited := time.Since(start); waited >= ackTimeout {
		t.Fatalf("the offline ack took %v, the whole ack timeout", waited)
	}
	status, body := ts.do(t, "POST", "/api/devices/homeassistant%3Agarden01ad/command", "application/json", `{"entity": "irrigation", "value": true}`)
	if status != http.StatusConflict || !strings.Contains(body, `"code":"offline"`) {
		t.Fatalf("POST command to an offline device = %d %s", status, body)
	}
	assertNothingPublished(t, player, commands, "homeassistant/switch/irrigation/set")
}

// assertNothingPublished publishes a marker on topic and checks that it is
// the first thing the subscriber's channel holds: nothing went before it.
func assertNothingPublished(t *testing.T, c paho.Client, ch <-chan hubtest.Message, topic string) {
	t.Helper()
	hubtest.PublishMQTT(t, c, topic, 1, false, []byte("marker"))
	if m := hubtest.Receive(t, ch, hubtest.Timeout, "the marker"); m.Payload != "marker" {
		t.Fatalf("%s got %q, which should not have been published", topic, m.Payload)
	}
}

// kitchenAndGarage is a Zigbee2MQTT bridge with two devices, in the trace
// format: a bulb under zigbee2mqtt/kitchen/ and a plug under
// zigbee2mqtt/garage/ (friendly names may hold '/').
const kitchenAndGarage = `
{"topic": "zigbee2mqtt/bridge/devices", "retain": true, "json": [` +
	`{"ieee_address": "0x01", "friendly_name": "kitchen/bulb", "type": "Router", "definition": {"model": "LED1545G12", "vendor": "IKEA", ` +
	`"exposes": [{"type": "light", "features": [{"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"}]}]}}, ` +
	`{"ieee_address": "0x02", "friendly_name": "garage/plug", "type": "Router", "definition": {"model": "E1603", "vendor": "IKEA", ` +
	`"exposes": [{"type": "switch", "features": [{"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"}]}]}}]}
{"topic": "zigbee2mqtt/kitchen/bulb", "retain": true, "json": {"state": "OFF"}}
{"topic": "zigbee2mqtt/garage/plug", "retain": true, "json": {"state": "OFF"}}
`

// TestDevicesFollowTheReadACL: a user who may read only
// zigbee2mqtt/kitchen/# sees only the kitchen bulb in /api/devices,
// devices/get and device frames, while a user who reads everything sees
// both; a read-only user's command is refused "forbidden" and nothing is
// published.
func TestDevicesFollowTheReadACL(t *testing.T) {
	users, err := auth.Parse([]byte(`
[users.anonymous]
read = ["zigbee2mqtt/kitchen/#"]
[users.admin]
password = "` + hubtest.PasswordHash(t, "secret") + `"
readwrite = ["#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := startDeviceServer(t, auth.New(users))
	msgs, err := devicetrace.Read(strings.NewReader(kitchenAndGarage))
	if err != nil {
		t.Fatal(err)
	}
	player := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "z2m")
	play(t, player, msgs)
	admin := http.Header{"Authorization": {basicAuth("admin", "secret")}}
	var all []devices.Device
	hubtest.Eventually(t, hubtest.Timeout, func() bool { all = ts.apiDevices(t, admin); return len(all) == 2 },
		"the admin never saw two devices")
	var kitchen, garage string
	for _, d := range all {
		switch d.Name {
		case "kitchen/bulb":
			kitchen = d.ID
		case "garage/plug":
			garage = d.ID
		}
	}
	if kitchen == "" || garage == "" {
		t.Fatalf("no kitchen device in %v", shape(all))
	}

	onlyKitchen := func(where string, list []devices.Device) {
		t.Helper()
		if len(list) != 1 || list[0].ID != kitchen {
			t.Fatalf("%s shows %v to the kitchen reader, want only %s", where, shape(list), kitchen)
		}
		for _, e := range list[0].Entities {
			if !strings.HasPrefix(e.Topic, "zigbee2mqtt/kitchen/") {
				t.Fatalf("%s shows the kitchen reader an entity on %s", where, e.Topic)
			}
		}
	}
	onlyKitchen("/api/devices", ts.apiDevices(t, nil))
	ws := ts.session(t, nil, `{"subscribe": ["zigbee2mqtt/kitchen/#"], "devices": true}`)
	onlyKitchen("devices/get", devicesGet(t, ws))
	if status, _ := ts.do(t, "GET", "/api/devices/"+url.PathEscape(garage), "", ""); status != http.StatusNotFound {
		t.Fatalf("a device the reader may not read: %d, want 404", status)
	}

	// The garage changes first, then the kitchen: the first frame is the kitchen's.
	hubtest.PublishMQTT(t, player, "zigbee2mqtt/garage/plug", 1, true, []byte(`{"state":"ON"}`))
	hubtest.PublishMQTT(t, player, "zigbee2mqtt/kitchen/bulb", 1, true, []byte(`{"state":"ON"}`))
	var first struct{ ID string }
	if err := json.Unmarshal(ws.Expect("clown.talk/-/device").Payload, &first); err != nil || first.ID != kitchen {
		t.Fatalf("the kitchen reader's first device frame is about %q, want %s", first.ID, kitchen)
	}

	// Read-only: the command is refused and nothing reaches the bulb.
	bulb := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "bulb")
	commands := hubtest.SubscribeMQTT(t, bulb, "zigbee2mqtt/kitchen/bulb/set", 1)
	ws.Send(`["clown.talk/-/command", {"device": "` + kitchen + `", "entity": "state", "value": true, "id": "ro"}]`)
	if a := readAck(t, ws); a.OK || a.Code != "forbidden" || a.ID != "ro" {
		t.Fatalf("a read-only user's command: ack %+v", a)
	}
	status, body := ts.do(t, "POST", "/api/devices/"+url.PathEscape(kitchen)+"/command", "application/json", `{"entity": "state", "value": true}`)
	if status != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) {
		t.Fatalf("a read-only user's POST command = %d %s", status, body)
	}
	assertNothingPublished(t, player, commands, "zigbee2mqtt/kitchen/bulb/set")
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// TestPlainText: {"$text": ...} publishes bare bytes, over the WebSocket and
// /api/publish; a session with "text" sees text and JSON strings apart, in
// live frames and state/get, and a session without it sees exactly the
// frames it always did.
func TestPlainText(t *testing.T) {
	ts := startDeviceServer(t, nil)
	device := hubtest.ConnectMQTT(t, ts.Broker.Addr().String(), "device")
	got := hubtest.SubscribeMQTT(t, device, "cmnd/plug/#", 1)

	texter := ts.session(t, nil, `{"subscribe": ["t/#"], "text": true}`)
	plain := ts.session(t, nil, `{"subscribe": ["t/#"]}`)

	texter.Send(`["cmnd/plug/POWER", {"$text": "ON"}]`)
	if m := hubtest.Receive(t, got, hubtest.Timeout, "the text command"); m.Payload != "ON" {
		t.Fatalf("{\"$text\": \"ON\"} over the WebSocket published %q, want the bytes ON", m.Payload)
	}
	if status, body := ts.do(t, "POST", "/api/publish", "application/json", `["cmnd/plug/POWER", {"$text": "OFF"}]`); status != http.StatusOK {
		t.Fatalf("/api/publish with $text = %d %s", status, body)
	}
	if m := hubtest.Receive(t, got, hubtest.Timeout, "the text command"); m.Payload != "OFF" {
		t.Fatalf("{\"$text\": \"OFF\"} over HTTP published %q, want the bytes OFF", m.Payload)
	}

	hubtest.PublishMQTT(t, device, "t/text", 1, false, []byte("hello"))
	hubtest.PublishMQTT(t, device, "t/json", 1, false, []byte(`"hello"`))
	hubtest.PublishMQTT(t, device, "t/num", 1, false, []byte(`21.5`))
	for _, want := range []string{`["t/text",{"$text":"hello"}]`, `["t/json","hello"]`, `["t/num",21.5]`} {
		if line := texter.ReadLine(); line != want {
			t.Fatalf("the text session got %s, want %s", line, want)
		}
	}
	for _, want := range []string{`["t/text","hello"]`, `["t/json","hello"]`, `["t/num",21.5]`} {
		if line := plain.ReadLine(); line != want {
			t.Fatalf("the session without text got %s, want %s as always", line, want)
		}
	}
	texter.Send(`["clown.talk/-/state/get", {"filter": "t/text"}]`)
	if f := texter.Expect("clown.talk/-/state/ok"); !strings.Contains(string(f.Payload), `["t/text",{"$text":"hello"},`) {
		t.Fatalf("state/ok of the text session: %s", f.Payload)
	}
	plain.Send(`["clown.talk/-/state/get", {"filter": "t/text"}]`)
	if f := plain.Expect("clown.talk/-/state/ok"); !strings.Contains(string(f.Payload), `["t/text","hello",`) {
		t.Fatalf("state/ok of the session without text: %s", f.Payload)
	}
}

// TestRawPublishOnKnownCommandTopicIsConfirmed: a session with "ack" that
// publishes plain text on a Tasmota command topic (no "/set") gets an ack
// once the device reports the state on its stat topic.
func TestRawPublishOnKnownCommandTopicIsConfirmed(t *testing.T) {
	msgs, ok := readTrace(t, "tasmota")
	if !ok {
		t.Skip("testdata/devices/tasmota.trace is not written yet")
	}
	ts := startDeviceServer(t, nil)
	addr := ts.Broker.Addr().String()
	play(t, hubtest.ConnectMQTT(t, addr, "trace-player"), msgs)
	cc := commandCases[3]
	var ent devices.Entity
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		_, ent, ok = cc.find(ts.apiDevices(t, nil))
		return ok
	}, "no Tasmota relay in /api/devices")
	if strings.HasSuffix(ent.Control.Topic, "/set") {
		t.Fatalf("the Tasmota command topic %s ends in /set: this test is about those that do not", ent.Control.Topic)
	}

	device := hubtest.ConnectMQTT(t, addr, "plug")
	commands := hubtest.SubscribeMQTT(t, device, ent.Control.Topic, 1)
	ws := ts.session(t, nil, `{"subscribe": [], "ack": true}`)
	ws.Send(`["` + ent.Control.Topic + `", {"$text": "ON"}, {"id": "raw1"}]`)
	if m := hubtest.Receive(t, commands, hubtest.Timeout, "the raw command"); m.Payload != "ON" {
		t.Fatalf("the plug got %q", m.Payload)
	}
	hubtest.PublishMQTT(t, device, ent.Topic, 1, false, []byte("ON"))
	if a := readAck(t, ws); !a.OK || a.ID != "raw1" || a.Topic != ent.Control.Topic {
		t.Fatalf("raw publish on %s: ack %+v", ent.Control.Topic, a)
	}
}
