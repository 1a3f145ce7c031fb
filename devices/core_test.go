package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// msg is a message at a fixed time.
func msg(topic, payload string) Message {
	return Message{Topic: topic, Payload: []byte(payload), Retained: true, Time: traceStart}
}

// applyAll feeds msgs to m.
func applyAll(m *Model, msgs ...Message) {
	for _, x := range msgs {
		m.Apply(x)
	}
}

func mustDevice(t *testing.T, m *Model, id string) Device {
	t.Helper()
	d, ok := m.Device(id)
	if !ok {
		t.Fatalf("no device %s; devices: %v", id, ids(m.Devices()))
	}
	return d
}

func ids(ds []Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func entityOf(t *testing.T, d Device, id string) Entity {
	t.Helper()
	for _, e := range d.Entities {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("device %s has no entity %s", d.ID, id)
	return Entity{}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	haTempConfig = `{"device_class":"temperature","state_topic":"bedroom/state","unit_of_measurement":"°C","value_template":"{{ value_json.temperature }}","unique_id":"t1","device":{"identifiers":["bedroom"],"name":"Bedroom"}}`
	haHumConfig  = `{"device_class":"humidity","state_topic":"bedroom/state","unit_of_measurement":"%","value_template":"{{ value_json['humidity'] }}","unique_id":"h1","device":{"identifiers":["bedroom"],"suggested_area":"Upstairs"}}`
	haPlugConfig = `{"~":"home/plug","name":"Plug","cmd_t":"~/set","stat_t":"~/state","avty_t":"~/lwt","pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"plug1","dev":{"ids":"plug1","name":"Plug","mf":"Acme","mdl":"P1","sa":"Hall"}}`
	bedroomState = `{"temperature":21.5,"humidity":40}`
)

// Retained messages arrive in any order: a state before its discovery ends
// as the same model as after it.
func TestOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	msgs := []Message{
		msg("homeassistant/sensor/bedroomT/config", haTempConfig),
		msg("homeassistant/sensor/bedroomH/config", haHumConfig),
		msg("bedroom/state", bedroomState),
		msg("homeassistant/switch/plug/config", haPlugConfig),
		msg("home/plug/state", "ON"),
		msg("home/plug/lwt", "Online"),
	}
	want := New(Config{})
	applyAll(want, msgs...)
	if n := len(want.Devices()); n != 2 {
		t.Fatalf("got %d devices, want 2: %v", n, ids(want.Devices()))
	}
	orders := [][]int{{2, 4, 5, 0, 1, 3}, {5, 4, 3, 2, 1, 0}, {2, 0, 4, 1, 5, 3}}
	for _, order := range orders {
		m := New(Config{})
		for _, i := range order {
			m.Apply(msgs[i])
		}
		if got, w := asJSON(t, m.Devices()), asJSON(t, want.Devices()); got != w {
			t.Errorf("order %v:\n got %s\nwant %s", order, got, w)
		}
	}
}

// A state that arrived before its discovery made a plain JSON device; the
// discovery takes its topic, and the plain device goes.
func TestDiscoveryTakesOverHeuristicDevice(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	m.Apply(msg("home/plug/state", "ON"))
	if _, ok := m.Device("json:home/plug"); !ok {
		t.Fatalf("no plain device before discovery: %v", ids(m.Devices()))
	}
	ch := m.Apply(msg("homeassistant/switch/plug/config", haPlugConfig))
	if !contains(ch.Removed, "json:home/plug") || !contains(ch.Updated, "homeassistant:plug1") {
		t.Errorf("changes %+v, want json:home/plug removed and homeassistant:plug1 updated", ch)
	}
	if got := ids(m.Devices()); !reflect.DeepEqual(got, []string{"homeassistant:plug1"}) {
		t.Fatalf("devices %v, want only homeassistant:plug1", got)
	}
	plug := mustDevice(t, m, "homeassistant:plug1")
	if v := entityOf(t, plug, "plug").Value; string(v) != "true" {
		t.Errorf("plug's value %s, want true from the state kept before discovery", v)
	}
	if plug.Area != "Hall" || plug.Manufacturer != "Acme" { // "sa" and "mf": abbreviated keys
		t.Errorf("plug's area %q and manufacturer %q, want Hall and Acme", plug.Area, plug.Manufacturer)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Several Home Assistant configs with one device identifier are one device,
// whose entities share one state topic.
func TestHomeAssistantConfigsMakeOneDevice(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, msg("homeassistant/sensor/bedroomT/config", haTempConfig),
		msg("homeassistant/sensor/bedroomH/config", haHumConfig),
		msg("bedroom/state", bedroomState))
	ds := m.Devices()
	if len(ds) != 1 {
		t.Fatalf("devices %v, want one", ids(ds))
	}
	d := ds[0]
	// The name from the first config, the area from the second: each
	// field from the first part that has it.
	if d.ID != "homeassistant:bedroom" || d.Name != "Bedroom" || d.Area != "Upstairs" || len(d.Entities) != 2 {
		t.Fatalf("device %s", asJSON(t, d))
	}
	if v := entityOf(t, d, "bedroomT").Value; string(v) != "21.5" {
		t.Errorf("temperature %s, want 21.5", v)
	}
	if e := entityOf(t, d, "bedroomH"); string(e.Value) != "40" || e.Unit != "%" || e.Field != "humidity" {
		t.Errorf("humidity %s", asJSON(t, e))
	}
}

// Removing every config leaves nothing behind: no device, no route, no
// kept payload, no command topic, no source.
func TestRemovalLeavesNothing(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, msg("bedroom/state", bedroomState),
		msg("homeassistant/sensor/bedroomT/config", haTempConfig),
		msg("homeassistant/sensor/bedroomH/config", haHumConfig),
		msg("homeassistant/switch/plug/config", haPlugConfig),
		msg("home/plug/state", "ON"), msg("home/plug/lwt", "Online"))
	ch := m.Apply(msg("homeassistant/sensor/bedroomT/config", ""))
	if !contains(ch.Updated, "homeassistant:bedroom") || len(mustDevice(t, m, "homeassistant:bedroom").Entities) != 1 {
		t.Errorf("removing one of two configs: changes %+v, device %s", ch, asJSON(t, mustDevice(t, m, "homeassistant:bedroom")))
	}
	m.Apply(msg("homeassistant/sensor/bedroomH/config", ""))
	ch = m.Apply(msg("homeassistant/switch/plug/config", ""))
	if !contains(ch.Removed, "homeassistant:plug1") {
		t.Errorf("changes %+v, want homeassistant:plug1 removed", ch)
	}
	assertEmpty(t, m)
}

// assertEmpty checks that m holds nothing at all.
func assertEmpty(t *testing.T, m *Model) {
	t.Helper()
	if len(m.devices) != 0 || len(m.topics) != 0 || len(m.sources) != 0 || len(m.commands) != 0 || m.keptBytes != 0 {
		t.Errorf("left behind: %d devices %v, %d topics %v, %d sources, %d command topics, %d kept bytes",
			len(m.devices), keys(m.devices), len(m.topics), keys(m.topics), len(m.sources), len(m.commands), m.keptBytes)
	}
}

func keys[V any](mp map[string]V) []string {
	var out []string
	for k := range mp {
		out = append(out, k)
	}
	return out
}

func TestAvailability(t *testing.T) {
	t.Parallel()
	light := func(mode string) string {
		return `{"name":"L","uniq_id":"l1","cmd_t":"l/set","stat_t":"l/state","avty_mode":"` + mode +
			`","avty":[{"t":"l/lwt"},{"t":"bridge/state","pl_avail":"up","pl_not_avail":"down"}]}`
	}
	tests := []struct {
		mode  string
		msgs  []Message
		wants string
	}{
		{"latest", nil, Unknown},
		{"latest", []Message{msg("l/lwt", "online")}, Online},
		{"latest", []Message{msg("l/lwt", "online"), msg("bridge/state", "down")}, Offline},
		{"latest", []Message{msg("bridge/state", "down"), msg("l/lwt", "online")}, Online},
		{"latest", []Message{msg("l/lwt", "online"), msg("l/lwt", "rebooting")}, Online},
		{"all", []Message{msg("l/lwt", "online")}, Unknown},
		{"all", []Message{msg("l/lwt", "online"), msg("bridge/state", "up")}, Online},
		{"all", []Message{msg("l/lwt", "online"), msg("bridge/state", "down")}, Offline},
		{"any", []Message{msg("l/lwt", "offline"), msg("bridge/state", "up")}, Online},
		{"any", []Message{msg("l/lwt", "offline")}, Offline},
	}
	for _, tt := range tests {
		m := New(Config{})
		m.Apply(msg("homeassistant/light/l/config", light(tt.mode)))
		applyAll(m, tt.msgs...)
		if got := mustDevice(t, m, "homeassistant:l1").Availability; got != tt.wants {
			t.Errorf("mode %s after %v: %s, want %s", tt.mode, tt.msgs, got, tt.wants)
		}
		// Retained availability before the discovery counts the same, in
		// the order it came, when each topic had one message.
		topics := map[string]bool{}
		for _, x := range tt.msgs {
			topics[x.Topic] = true
		}
		if len(topics) < len(tt.msgs) {
			continue
		}
		m = New(Config{})
		applyAll(m, tt.msgs...)
		m.Apply(msg("homeassistant/light/l/config", light(tt.mode)))
		if got := mustDevice(t, m, "homeassistant:l1").Availability; got != tt.wants {
			t.Errorf("mode %s after %v, then the discovery: %s, want %s", tt.mode, tt.msgs, got, tt.wants)
		}
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m,
		msg("homeassistant/switch/plug/config", haPlugConfig),
		msg("home/plug/lwt", "Online"),
		msg("homeassistant/light/kitchen/config", `{"~":"k","name":"Kitchen","uniq_id":"k1","cmd_t":"~/set","stat_t":"~/state","schema":"json","brightness":true,"brightness_scale":100}`),
		msg("homeassistant/number/t/target/config", `{"name":"Target","uniq_id":"tt","cmd_t":"t/target/set","cmd_tpl":"{\"target\": {{ value }}}","stat_t":"t/state","val_tpl":"{{ value_json.target }}","min":5,"max":30,"step":0.5,"dev":{"ids":"t1"}}`),
		msg("homeassistant/select/t/mode/config", `{"name":"Mode","uniq_id":"tm","cmd_t":"t/mode/set","stat_t":"t/state","val_tpl":"{{ value_json.mode }}","ops":["off","heat"],"dev":{"ids":"t1"}}`),
		msg("homeassistant/button/t/restart/config", `{"name":"Restart","uniq_id":"tr","cmd_t":"t/restart","pl_prs":"restart","dev":{"ids":"t1"}}`),
		msg("homeassistant/sensor/t/temp/config", `{"name":"Temp","uniq_id":"tx","stat_t":"t/state","val_tpl":"{{ value_json.temp }}","unit_of_meas":"°C","dev":{"ids":"t1"}}`),
		msg("nodes/mote-1/relay/i2c0-3b", `{"state":false}`),
		msg("node/kitchen/led/-/state", `false`),
	)
	tests := []struct {
		device, entity, value string
		topic, payload        string
		err                   error
		confirms, differs     string // payloads on the Confirm's topic
	}{
		{"homeassistant:plug1", "plug", "true", "home/plug/set", "ON", nil, "ON", "OFF"},
		{"homeassistant:plug1", "plug", "false", "home/plug/set", "OFF", nil, "OFF", "ON"},
		{"homeassistant:plug1", "plug", `"ON"`, "", "", ErrBadValue, "", ""},
		{"homeassistant:k1", "kitchen", "true", "k/set", `{"state":"ON"}`, nil, `{"state":"ON","brightness":20}`, `{"state":"OFF"}`},
		{"homeassistant:k1", "kitchen_brightness", "40", "k/set", `{"state":"ON","brightness":40}`, nil, `{"brightness":40.0,"state":"ON"}`, `{"state":"ON","brightness":41}`},
		{"homeassistant:k1", "kitchen_brightness", "101", "", "", ErrBadValue, "", ""},
		{"homeassistant:t1", "target", "21", "t/target/set", `{"target": 21}`, nil, `{"target":21.0,"mode":"heat"}`, `{"target":20}`},
		{"homeassistant:t1", "target", "4", "", "", ErrBadValue, "", ""},
		{"homeassistant:t1", "mode", `"heat"`, "t/mode/set", "heat", nil, `{"mode":"heat"}`, `{"mode":"off"}`},
		{"homeassistant:t1", "mode", `"cool"`, "", "", ErrBadValue, "", ""},
		{"homeassistant:t1", "restart", "null", "t/restart", "restart", nil, "", ""},
		{"homeassistant:t1", "restart", "", "t/restart", "restart", nil, "", ""},
		{"homeassistant:t1", "restart", "1", "", "", ErrBadValue, "", ""},
		{"homeassistant:t1", "temp", "1", "", "", ErrNotControl, "", ""},
		{"homeassistant:t1", "nope", "1", "", "", ErrUnknownEntity, "", ""},
		{"homeassistant:nope", "x", "1", "", "", ErrUnknownDevice, "", ""},
		{"hardwario:nodes/mote-1", "relay/i2c0-3b", "true", "nodes/mote-1/relay/i2c0-3b/set", `{"state":true}`, nil, `{"state":true}`, `{"state":false}`},
		{"hardwario:node/kitchen", "led/-/state", "true", "node/kitchen/led/-/state/set", `true`, nil, `true`, `false`},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %s %s", tt.device, tt.entity, tt.value)
		cmd, err := m.Command(tt.device, tt.entity, json.RawMessage(tt.value))
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: error %v, want %v", name, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if cmd.Topic != tt.topic || string(cmd.Payload) != tt.payload {
			t.Errorf("%s: %s %s, want %s %s", name, cmd.Topic, cmd.Payload, tt.topic, tt.payload)
		}
		if tt.confirms == "" {
			if cmd.Confirm.Topic != "" {
				t.Errorf("%s: confirmed on %s, want nothing to confirm", name, cmd.Confirm.Topic)
			}
			continue
		}
		if !cmd.Confirm.Check([]byte(tt.confirms)) || cmd.Confirm.Check([]byte(tt.differs)) {
			t.Errorf("%s: %+v: Check(%s) = %v, Check(%s) = %v", name, cmd.Confirm, tt.confirms, cmd.Confirm.Check([]byte(tt.confirms)), tt.differs, cmd.Confirm.Check([]byte(tt.differs)))
		}
		// The same payload published directly is confirmed by the device's answer too.
		if c, ok := m.ConfirmFor(cmd.Topic, cmd.Payload); !ok || c.Topic != cmd.Confirm.Topic || !c.Check([]byte(tt.confirms)) {
			t.Errorf("%s: ConfirmFor(%s, %s) = %+v %v, want one that %s confirms", name, cmd.Topic, cmd.Payload, c, ok, tt.confirms)
		}
	}
	if _, ok := m.ConfirmFor("home/plug/set", []byte("TOGGLE")); ok {
		t.Error("ConfirmFor a TOGGLE: ok, want nothing to confirm")
	}
	if _, ok := m.ConfirmFor("no/such/set", []byte("ON")); ok {
		t.Error("ConfirmFor an unknown topic: ok")
	}
	m.Apply(msg("home/plug/lwt", "Offline"))
	if _, err := m.Command("homeassistant:plug1", "plug", json.RawMessage("true")); !errors.Is(err, ErrOffline) {
		t.Errorf("command to an offline device: %v, want ErrOffline", err)
	}
}

func TestHATemplates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tpl, payload, want string
		ok                 bool
	}{
		{"", "21.5", "21.5", true},
		{"{{ value }}", "ON", "ON", true},
		{"{{value}}", "ON", "ON", true},
		{"{{ value_json.x }}", `{"x":1.5}`, "1.5", true},
		{"{{ value_json.x.y }}", `{"x":{"y":"a"}}`, "a", true},
		{"{{ value_json['x'] }}", `{"x":true}`, "True", true},
		{`{{value_json["x"]["y"]}}`, `{"x":{"y":2}}`, "2", true},
		{"{{ value_json.x[1] }}", `{"x":[1,2]}`, "2", true},
		{"{{ value_json.x | float }}", `{"x":"3"}`, "3", true},
		{"{{ value_json.x | int }}", `{"x":"3.9"}`, "3", true},
		{"{{ value_json.x | round(1) }}", "", "", false},
		{"{{ value_json.x | float(0) }}", "", "", false},
		{"{{ value_json.x if value_json.y else 0 }}", "", "", false},
		{"{% if value %}1{% endif %}", "", "", false},
		{"{{ value_json['a.b'] }}", "", "", false},
		{"{{ states('sensor.x') }}", "", "", false},
	}
	for _, tt := range tests {
		tp, ok := parseHATemplate(tt.tpl)
		if ok != tt.ok {
			t.Errorf("parseHATemplate(%q) ok = %v, want %v", tt.tpl, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if got, ok := tp.render([]byte(tt.payload)); !ok || got != tt.want {
			t.Errorf("%q on %s = %q %v, want %q", tt.tpl, tt.payload, got, ok, tt.want)
		}
	}
}

// A template the model does not evaluate shows the raw payload, and says so.
func TestRichTemplateShownRaw(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, msg("homeassistant/sensor/x/config", `{"name":"X","uniq_id":"x","stat_t":"x/state","unit_of_meas":"°C","val_tpl":"{{ value_json.t | round(1) }}"}`),
		msg("x/state", `{"t": 21.55}`))
	e := entityOf(t, mustDevice(t, m, "homeassistant:x"), "x")
	if e.Type != TypeJSON || e.Note != noteRawTemplate || string(e.Value) != `{"t":21.55}` {
		t.Errorf("entity %s", asJSON(t, e))
	}
}

// A malformed config is ignored and counted; one too large too.
func TestBadDiscovery(t *testing.T) {
	t.Parallel()
	m := New(Config{MaxDiscoveryBytes: 300})
	applyAll(m, msg("homeassistant/sensor/x/config", `{"name":`),
		msg("homeassistant/select/x/config", `{"name":"no options","cmd_t":"a"}`),
		msg("homeassistant/sensor/y/config", `{"name":"`+strings.Repeat("y", 300)+`","stat_t":"y"}`))
	s := m.Stats()
	if s.MalformedDiscoveries != 2 || s.OversizedDiscoveries != 1 || len(m.Devices()) != 0 {
		t.Errorf("stats %+v, devices %v", s, ids(m.Devices()))
	}
}

func TestPlainJSONLeaves(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	m.Apply(msg("sites/lab/env", `{"t":21.5,"ok":"ON","radio":{"lqi":3},"nil":null}`))
	d := mustDevice(t, m, "json:sites/lab")
	if got := asJSON(t, d.Entities); !strings.Contains(got, `"id":"env.radio.lqi"`) || len(d.Entities) != 3 {
		t.Fatalf("entities %s", got)
	}
	if e := entityOf(t, d, "env.ok"); e.Kind != KindBinarySensor || string(e.Value) != "true" {
		t.Errorf("ON leaf: %s", asJSON(t, e))
	}
	// The payload changes shape: a switch now.
	m.Apply(msg("sites/lab/env", `{"state":true}`))
	d = mustDevice(t, m, "json:sites/lab")
	if len(d.Entities) != 1 || d.Entities[0].Kind != KindSwitch {
		t.Errorf("after a new shape: %s", asJSON(t, d.Entities))
	}
	// Cleared: gone.
	if ch := m.Apply(msg("sites/lab/env", "")); !contains(ch.Removed, "json:sites/lab") {
		t.Errorf("clearing: changes %+v", ch)
	}
	assertEmpty(t, m)
}

// The demo motes of internal/motesim land in one HARDWARIO device each.
func TestMotesimTopics(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, msg("nodes/mote-2/boot", `{"fw":"1.0.0","reason":"power-on"}`),
		msg("nodes/mote-2/asn", `2960000123`),
		msg("nodes/mote-2/relay/i2c0-3b", `{"state":false}`),
		msg("nodes/mote-2/relay/i2c0-3c", `{"state":true}`),
		msg("nodes/mote-2/led/-/state", `true`),
		msg("nodes/mote-2/thermometer/0:1/temperature", `[21.5,"°C"]`),
		msg("nodes/mote-2/pir/-/event-count", `7`),
		msg("nodes/mote-2/led/-/state/set", `false`))
	ds := m.Devices()
	if len(ds) != 1 || ds[0].ID != "hardwario:nodes/mote-2" || ds[0].Convention != HARDWARIO {
		t.Fatalf("devices %v", ids(ds))
	}
	if n := len(ds[0].Entities); n != 8 {
		t.Errorf("%d entities, want 8: %s", n, asJSON(t, ds[0].Entities))
	}
	if e := entityOf(t, ds[0], "thermometer/0:1/temperature"); e.Unit != "°C" || string(e.Value) != "21.5" {
		t.Errorf("temperature %s", asJSON(t, e))
	}
	if e := entityOf(t, ds[0], "asn"); string(e.Value) != "2960000123" {
		t.Errorf("asn %s", e.Value)
	}
}

// Devices hands out copies.
func TestDevicesAreCopies(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, msg("homeassistant/select/t/mode/config", `{"name":"Mode","uniq_id":"tm","cmd_t":"t/mode/set","stat_t":"t/state","ops":["off","heat"]}`), msg("t/state", "off"))
	d := m.Devices()[0]
	d.Entities[0].Control.Options[0] = "x"
	d.Entities[0].Value[1] = 'X'
	d.Entities[0].Name = "x"
	if got := asJSON(t, m.Devices()[0].Entities[0]); strings.Contains(got, `"x"`) || strings.Contains(got, "X") {
		t.Errorf("the model changed through a copy: %s", got)
	}
}

func TestDeviceUpdated(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	later := traceStart.Add(time.Minute)
	m.Apply(msg("homeassistant/sensor/bedroomT/config", haTempConfig))
	m.Apply(Message{Topic: "bedroom/state", Payload: []byte(bedroomState), Time: later})
	if d := mustDevice(t, m, "homeassistant:bedroom"); !d.Updated.Equal(later) || !d.Entities[0].Updated.Equal(later) {
		t.Errorf("updated %v / %v, want %v", d.Updated, d.Entities[0].Updated, later)
	}
}
