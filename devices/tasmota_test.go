package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/devicetrace"
)

// tasmotaConfigOf is a discovery config of a device with topic t, relay
// types rl, friendly names fn, and more JSON members.
func tasmotaConfigOf(mac, topic, rl, fn, more string) string {
	return fmt.Sprintf(`{"ip":"192.168.1.31","dn":"Coffee machine","fn":%s,"hn":"tasmota-%s","mac":%q,"md":"Sonoff Pow R2",
		"ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"13.4.0","t":%q,"ft":"%%prefix%%/%%topic%%/",
		"tp":["cmnd","stat","tele"],"rl":%s,"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"btn":[0,0,0,0,0,0,0,0],
		"so":{"4":0,"11":0,"13":0,"17":0,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0,"117":0},"lk":0,"lt_st":0,"ver":1%s}`,
		fn, mac, mac, topic, rl, more)
}

var (
	tasmotaPlug          = tasmotaConfigOf("A4CF12A1B2C3", "plug", "[1,0,0,0,0,0,0,0]", `["Coffee machine",null,null,null]`, "")
	tasmotaSensorsSample = `{"sn":{"Time":"2026-12-02T20:59:00","ENERGY":{"TotalStartTime":"2026-01-10T08:00:00","Total":12.345,"Power":0,"Voltage":231,"Current":0.000},
		"BME280":{"Temperature":7.4,"Humidity":81.2,"Pressure":1009.8},"PressureUnit":"hPa","TempUnit":"F"},"ver":1}`
)

func TestTasmotaPlug(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("tasmota/discovery/A4CF12A1B2C3/config", tasmotaPlug)
	c.retain("tasmota/discovery/A4CF12A1B2C3/sensors", tasmotaSensorsSample)
	c.retain("tele/plug/LWT", "Online")
	d := c.device("tasmota:A4CF12A1B2C3")
	if d.Name != "Coffee machine" || d.Model != "Sonoff Pow R2" || d.Convention != Tasmota || d.Availability != Online {
		t.Errorf("device %+v", d)
	}
	power := c.entity(d.ID, "power")
	if power.Name != "Coffee machine" || power.Kind != KindSwitch || power.Type != TypeBoolean || power.Topic != "stat/plug/POWER" ||
		power.Control == nil || power.Control.Topic != "cmnd/plug/POWER" {
		t.Errorf("power %+v", power)
	}
	// The sensors' sample declares its readings before the first SENSOR.
	for id, want := range map[string][3]string{
		"ENERGY.Power":       {"Power", "W", "power"},
		"ENERGY.Total":       {"Energy total", "kWh", "energy"},
		"ENERGY.Voltage":     {"Voltage", "V", "voltage"},
		"ENERGY.Current":     {"Current", "A", "current"},
		"BME280.Temperature": {"BME280 temperature", "°F", "temperature"},
		"BME280.Humidity":    {"BME280 humidity", "%", "humidity"},
		"BME280.Pressure":    {"BME280 pressure", "hPa", "pressure"},
	} {
		e := c.entity(d.ID, id)
		if e.Name != want[0] || e.Unit != want[1] || e.DeviceClass != want[2] || e.Topic != "tele/plug/SENSOR" || e.Field != id || e.Kind != KindSensor {
			t.Errorf("%s: %+v, want %v", id, e, want)
		}
	}
	for _, e := range d.Entities {
		switch e.ID {
		case "Time", "TempUnit", "PressureUnit", "ENERGY.TotalStartTime", "wifi_rssi":
			t.Errorf("entity %s is shown", e.ID)
		}
	}

	c.pub("stat/plug/POWER", "ON")
	wantValue(t, c.entity(d.ID, "power"), "true")
	c.pub("stat/plug/RESULT", `{"POWER":"OFF"}`)
	wantValue(t, c.entity(d.ID, "power"), "false")
	c.pub("tele/plug/STATE", `{"Time":"2026-12-02T21:00:00","POWER":"ON","Wifi":{"AP":1,"RSSI":76,"Signal":-62}}`)
	wantValue(t, c.entity(d.ID, "power"), "true")
	if d := c.device(d.ID); d.LinkQuality == nil || *d.LinkQuality != 76 {
		t.Errorf("link quality %v, want the Wi-Fi RSSI 76", d.LinkQuality)
	}
	c.pub("tele/plug/SENSOR", `{"Time":"2026-12-02T21:00:10","ENERGY":{"Total":12.346,"Power":1210,"Voltage":229,"Current":5.349,"Frequency":50},"BME280":{"Temperature":45.1}}`)
	wantValue(t, c.entity(d.ID, "ENERGY.Power"), "1210")
	wantValue(t, c.entity(d.ID, "BME280.Temperature"), "45.1")
	if f := c.entity(d.ID, "ENERGY.Frequency"); f.Unit != "Hz" || f.Name != "Frequency" {
		t.Errorf("a reading the sample did not have: %+v", f)
	}
	wantValue(t, c.entity(d.ID, "ENERGY.Frequency"), "50")

	c.retain("tele/plug/LWT", "Offline")
	if a := c.device(d.ID).Availability; a != Offline {
		t.Errorf("after LWT Offline: %s", a)
	}
}

func TestTasmotaCommands(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("tasmota/discovery/A4CF12A1B2C3/config", tasmotaPlug)
	on := c.command("tasmota:A4CF12A1B2C3", "power", "true")
	wantCommand(t, on, "cmnd/plug/POWER", "ON")
	if on.Confirm.Topic != "stat/plug/POWER" || !on.Confirm.Check([]byte("ON")) || on.Confirm.Check([]byte("OFF")) {
		t.Errorf("ON is confirmed by ON on stat/plug/POWER: %+v", on.Confirm)
	}
	wantCommand(t, c.command("tasmota:A4CF12A1B2C3", "power", "false"), "cmnd/plug/POWER", "OFF")
	if _, err := c.Command("tasmota:A4CF12A1B2C3", "power", json.RawMessage(`"ON"`)); !errors.Is(err, ErrBadValue) {
		t.Errorf(`power "ON": %v, want ErrBadValue`, err)
	}
	// Raw publishes on the command topic: ON, 1, off are confirmed; TOGGLE asks for no known state.
	for payload, want := range map[string]string{"ON": "ON", "1": "ON", "off": "OFF"} {
		cf, ok := c.ConfirmFor("cmnd/plug/POWER", []byte(payload))
		if !ok || !cf.Check([]byte(want)) {
			t.Errorf("raw %s: %+v %v, want confirmed by %s", payload, cf, ok, want)
		}
	}
	if _, ok := c.ConfirmFor("cmnd/plug/POWER", []byte("TOGGLE")); ok {
		t.Error("raw TOGGLE has a confirmation")
	}
	c.retain("tele/plug/LWT", "Offline")
	if _, err := c.Command("tasmota:A4CF12A1B2C3", "power", json.RawMessage("true")); !errors.Is(err, ErrOffline) {
		t.Errorf("offline plug: %v, want ErrOffline", err)
	}
}

func TestTasmotaRelaysLightsAndTopics(t *testing.T) {
	c := newConvModel(t, Config{})
	// Two relays, custom state texts, a full topic with the prefix last.
	dual := strings.NewReplacer(`"%prefix%/%topic%/"`, `"home/%topic%/%prefix%/"`, `["OFF","ON","TOGGLE","HOLD"]`, `["AUS","AN","UM","HALTEN"]`).
		Replace(tasmotaConfigOf("DC4F22D41234", "garden", "[1,1,0,0,0,0,0,0]", `["Pump",null]`, ""))
	c.retain("tasmota/discovery/DC4F22D41234/config", dual)
	pump := c.entity("tasmota:DC4F22D41234", "power1")
	if pump.Name != "Pump" || pump.Topic != "home/garden/stat/POWER1" || pump.Control.Topic != "home/garden/cmnd/POWER1" {
		t.Errorf("pump %+v", pump)
	}
	if second := c.entity("tasmota:DC4F22D41234", "power2"); second.Name != "Coffee machine 2" {
		t.Errorf("a relay without a friendly name: %+v", second)
	}
	c.pub("home/garden/stat/POWER1", "AN")
	wantValue(t, c.entity("tasmota:DC4F22D41234", "power1"), "true")
	c.pub("home/garden/stat/RESULT", `{"POWER2":"AN"}`)
	wantValue(t, c.entity("tasmota:DC4F22D41234", "power2"), "true")
	off := c.command("tasmota:DC4F22D41234", "power1", "false")
	wantCommand(t, off, "home/garden/cmnd/POWER1", "AUS")
	if !off.Confirm.Check([]byte("AUS")) || off.Confirm.Topic != "home/garden/stat/POWER1" {
		t.Errorf("AUS confirmed by %+v", off.Confirm)
	}

	// A dimmable light: a light and its brightness.
	bulb := strings.Replace(tasmotaConfigOf("600194ABCDEF", "bulb", "[2,0,0,0,0,0,0,0]", `[null]`, ""), `"lt_st":0`, `"lt_st":1`, 1)
	c.retain("tasmota/discovery/600194ABCDEF/config", bulb)
	if l := c.entity("tasmota:600194ABCDEF", "power"); l.Kind != KindLight || l.Name != "Coffee machine" {
		t.Errorf("light %+v", l)
	}
	dim := c.command("tasmota:600194ABCDEF", "dimmer", "40")
	wantCommand(t, dim, "cmnd/bulb/Dimmer", "40")
	if !dim.Confirm.Check([]byte(`{"POWER":"ON","Dimmer":40}`)) || dim.Confirm.Check([]byte(`{"POWER":"ON","Dimmer":41}`)) {
		t.Errorf("Dimmer 40 confirmed by %+v", dim.Confirm)
	}
	c.pub("tele/bulb/STATE", `{"POWER":"ON","Dimmer":65}`)
	wantValue(t, c.entity("tasmota:600194ABCDEF", "dimmer"), "65")
	if _, err := c.Command("tasmota:600194ABCDEF", "dimmer", json.RawMessage("101")); !errors.Is(err, ErrBadValue) {
		t.Errorf("dimmer 101: %v, want ErrBadValue", err)
	}
}

func TestTasmotaStateBeforeDiscovery(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("tele/plug/LWT", "Online")
	c.retain("stat/plug/POWER", "ON")
	c.pub("tele/plug/SENSOR", `{"Time":"2026-12-02T21:00:00","ENERGY":{"Power":12}}`)
	c.retain("tasmota/discovery/A4CF12A1B2C3/sensors", tasmotaSensorsSample)
	c.retain("tasmota/discovery/A4CF12A1B2C3/config", tasmotaPlug)
	d := c.device("tasmota:A4CF12A1B2C3")
	if d.Availability != Online {
		t.Errorf("availability %s, want online", d.Availability)
	}
	wantValue(t, c.entity(d.ID, "power"), "true")
	wantValue(t, c.entity(d.ID, "ENERGY.Power"), "12")
	for _, d := range c.Devices() {
		if d.Convention != Tasmota {
			t.Errorf("device %s (%s) left from the state seen before discovery", d.ID, d.Convention)
		}
	}
}

func TestTasmotaRemoved(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("tasmota/discovery/A4CF12A1B2C3/config", tasmotaPlug)
	c.retain("tasmota/discovery/A4CF12A1B2C3/sensors", tasmotaSensorsSample)
	c.pub("stat/plug/POWER", "ON")
	c.retain("tasmota/discovery/A4CF12A1B2C3/sensors", "")
	for _, e := range c.device("tasmota:A4CF12A1B2C3").Entities {
		if strings.HasPrefix(e.ID, "BME280") {
			t.Errorf("sensor entity %s outlived its cleared sensors discovery", e.ID)
		}
	}
	ch := c.retain("tasmota/discovery/A4CF12A1B2C3/config", "")
	if fmt.Sprint(ch.Removed) != "[tasmota:A4CF12A1B2C3]" {
		t.Errorf("changes %+v, want the plug removed", ch)
	}
	for _, d := range c.Devices() {
		t.Errorf("device %s (%s) left after the config was cleared", d.ID, d.Convention)
	}
	if tc := conventionOf[*tasmota](t, c.Model); len(tc.devices) != 0 || len(tc.prefixes) != 0 {
		t.Errorf("the convention keeps %d devices, %d prefixes", len(tc.devices), len(tc.prefixes))
	}
}

func TestTasmotaTopicsThatAreNoDevices(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("tasmota/discovery/A4CF12A1B2C3/config", tasmotaPlug)
	for _, m := range [][2]string{
		{"cmnd/plug/Backlog", "Power ON; Dimmer 50"},
		{"cmnd/plug/POWER", "TOGGLE"},
		{"stat/plug/STATUS", `{"Status":{"Module":1}}`},
		{"tele/plug/INFO1", `{"Info1":{"Module":"Sonoff Pow R2"}}`},
		{"tele/plug/HASS_STATE", `{"Version":"13.4.0"}`},
		{"tasmota/discovery/A4CF12A1B2C3/unknown", `{}`},
	} {
		c.pub(m[0], m[1])
	}
	if ds := c.Devices(); len(ds) != 1 {
		t.Errorf("%d devices, want the plug only: %+v", len(ds), ds)
	}
}

func TestTasmotaBadAndBoundedDiscovery(t *testing.T) {
	c := newConvModel(t, Config{MaxDevices: 2, MaxEntities: 4})
	for _, bad := range []string{`not json`, `{"dn":"no topic"}`, `[1]`} {
		c.retain("tasmota/discovery/A4CF12A1B2C3/config", bad)
	}
	if n := len(c.Devices()); n != 0 || c.Stats().MalformedDiscoveries != 3 {
		t.Errorf("%d devices, stats %+v: want malformed configs counted and ignored", n, c.Stats())
	}
	for i := range 3 {
		mac := fmt.Sprintf("A4CF12A1B2C%d", i)
		c.retain("tasmota/discovery/"+mac+"/config", tasmotaConfigOf(mac, fmt.Sprintf("plug%d", i), "[1]", "[null]", ""))
		c.retain("tasmota/discovery/"+mac+"/sensors", tasmotaSensorsSample)
	}
	if tc := conventionOf[*tasmota](t, c.Model); len(tc.devices) != 2 {
		t.Errorf("%d devices kept, want MaxDevices 2", len(tc.devices))
	}
	for _, d := range c.Devices() {
		if len(d.Entities) > 4 {
			t.Errorf("%s has %d entities, want at most MaxEntities 4", d.ID, len(d.Entities))
		}
	}
	many := tasmotaConfigOf("A4CF12A1B2C0", "plug0", "["+strings.Repeat("1,", 40)+"1]", "[]", "")
	c.retain("tasmota/discovery/A4CF12A1B2C0/config", many)
	if tc := conventionOf[*tasmota](t, c.Model); len(tc.devices["A4CF12A1B2C0"].config.Relays) != maxTasmotaRelays {
		t.Errorf("%d relays read, want maxTasmotaRelays %d", len(tc.devices["A4CF12A1B2C0"].config.Relays), maxTasmotaRelays)
	}
}

func TestTasmotaLeafNames(t *testing.T) {
	for path, want := range map[string]string{
		"ENERGY.ApparentPower": "Apparent power",
		"ENERGY.Yesterday":     "Energy yesterday",
		"BME280.DewPoint":      "BME280 dew point",
		"SGP30.eCO2":           "SGP30 eCO2",
		"SGP30.TVOC":           "SGP30 TVOC",
		"Switch1":              "Switch1",
		"ANALOG.A0":            "ANALOG A0",
	} {
		if got := tasmotaLeafName(path); got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
}

// FuzzTasmota: a config and a sensors discovery, then their empty retained
// messages, leave the model as it was, within its bounds all along.
func FuzzTasmota(f *testing.F) {
	seedTraces(f, func(msg devicetrace.Message) {
		if strings.HasPrefix(msg.Topic, tasmotaDiscovery) && strings.HasSuffix(msg.Topic, "/config") {
			f.Add(msg.Payload, []byte(tasmotaSensorsSample))
		}
	})
	f.Add([]byte(tasmotaPlug), []byte(tasmotaSensorsSample))
	f.Add([]byte(`{"t":"x","ft":"%topic%","rl":[2,2],"lt_st":3,"state":[]}`), []byte(`{"sn":[]}`))
	f.Fuzz(func(t *testing.T, config, sensors []byte) {
		m := New(fuzzConfig)
		applyAll(m, unrelated...)
		before := footprint(m)
		m.Apply(Message{Topic: "tasmota/discovery/AABBCCDDEEFF/sensors", Payload: sensors, Retained: true})
		m.Apply(Message{Topic: "tasmota/discovery/AABBCCDDEEFF/config", Payload: config, Retained: true})
		checkBounds(t, m)
		for _, d := range m.Devices() {
			for _, e := range d.Entities {
				_, _ = m.Command(d.ID, e.ID, json.RawMessage("true"))
			}
		}
		m.Apply(Message{Topic: "tasmota/discovery/AABBCCDDEEFF/config", Retained: true})
		m.Apply(Message{Topic: "tasmota/discovery/AABBCCDDEEFF/sensors", Retained: true})
		checkBounds(t, m)
		if after := footprint(m); after != before {
			t.Fatalf("the model changed:\nbefore %s\nafter  %s", before, after)
		}
		if tc := conventionOf[*tasmota](t, m); len(tc.devices) != 0 || len(tc.prefixes) != 0 {
			t.Fatalf("the convention keeps %d devices, %d prefixes", len(tc.devices), len(tc.prefixes))
		}
	})
}

// replaceTokens replaces as a strings.Replacer does.
func TestReplaceTokens(t *testing.T) {
	t.Parallel()
	pairs := []string{"%prefix%", "stat", "%topic%", "%id%", "%hostname%", "h", "%id%", "A1B2C3"}
	for _, s := range []string{"%prefix%/%topic%/", "a/%topic%/%prefix%", "%%prefix%%", "%id%-%hostname%/%", "plain", "%prefi%/x", ""} {
		if got, want := replaceTokens(s, pairs...), strings.NewReplacer(pairs...).Replace(s); got != want {
			t.Errorf("replaceTokens(%q) = %q, want %q", s, got, want)
		}
	}
}
