package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/devicetrace"
)

// homieThermostat is a Homie 4 device, attribute by attribute, then its
// values.
var homieThermostat = [][2]string{
	{"homie/thermo/$homie", "4.0.0"},
	{"homie/thermo/$name", "Thermostat"},
	{"homie/thermo/$state", "ready"},
	{"homie/thermo/$nodes", "sensor,heater"},
	{"homie/thermo/sensor/$name", "Sensor"},
	{"homie/thermo/sensor/$properties", "temperature,battery"},
	{"homie/thermo/sensor/temperature/$name", "Temperature"},
	{"homie/thermo/sensor/temperature/$datatype", "float"},
	{"homie/thermo/sensor/temperature/$unit", "°C"},
	{"homie/thermo/sensor/battery/$name", "Battery"},
	{"homie/thermo/sensor/battery/$datatype", "integer"},
	{"homie/thermo/sensor/battery/$unit", "%"},
	{"homie/thermo/heater/$name", "Heater"},
	{"homie/thermo/heater/$properties", "power,target,mode,steps,note"},
	{"homie/thermo/heater/power/$name", "Heating"},
	{"homie/thermo/heater/power/$datatype", "boolean"},
	{"homie/thermo/heater/power/$settable", "true"},
	{"homie/thermo/heater/target/$name", "Target"},
	{"homie/thermo/heater/target/$datatype", "float"},
	{"homie/thermo/heater/target/$unit", "°C"},
	{"homie/thermo/heater/target/$format", "5:30"},
	{"homie/thermo/heater/target/$settable", "true"},
	{"homie/thermo/heater/mode/$name", "Mode"},
	{"homie/thermo/heater/mode/$datatype", "enum"},
	{"homie/thermo/heater/mode/$format", "off,eco,comfort"},
	{"homie/thermo/heater/mode/$settable", "true"},
	{"homie/thermo/heater/steps/$name", "Steps"},
	{"homie/thermo/heater/steps/$datatype", "integer"},
	{"homie/thermo/heater/steps/$settable", "true"},
	{"homie/thermo/heater/note/$name", "Note"},
	{"homie/thermo/heater/note/$datatype", "string"},
	{"homie/thermo/sensor/temperature", "21.5"},
	{"homie/thermo/sensor/battery", "87"},
	{"homie/thermo/heater/power", "false"},
	{"homie/thermo/heater/target", "21.0"},
	{"homie/thermo/heater/mode", "eco"},
	{"homie/thermo/heater/note", `"quoted" text`},
}

func TestHomie4DeviceFromItsAttributes(t *testing.T) {
	c := newConvModel(t, Config{})
	for _, m := range homieThermostat {
		c.retain(m[0], m[1])
	}
	d := c.device("homie:thermo")
	if d.Name != "Thermostat" || d.Convention != Homie || d.Availability != Online {
		t.Errorf("device %+v", d)
	}
	var ids []string
	for _, e := range d.Entities {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, " "); got != "sensor/temperature sensor/battery heater/power heater/target heater/mode heater/steps heater/note" {
		t.Errorf("entities %s, want them in the order of $nodes and $properties", got)
	}
	temp := c.entity(d.ID, "sensor/temperature")
	if temp.Name != "Temperature" || temp.Kind != KindSensor || temp.Type != TypeNumber || temp.Unit != "°C" ||
		temp.DeviceClass != "temperature" || temp.Topic != "homie/thermo/sensor/temperature" || temp.Control != nil {
		t.Errorf("temperature %+v", temp)
	}
	wantValue(t, temp, "21.5")
	if d.Battery == nil || *d.Battery != 87 {
		t.Errorf("battery %v, want 87", d.Battery)
	}
	power := c.entity(d.ID, "heater/power")
	if power.Kind != KindSwitch || power.Type != TypeBoolean || power.Control == nil || power.Control.Topic != "homie/thermo/heater/power/set" {
		t.Errorf("power %+v", power)
	}
	wantValue(t, power, "false")
	target := c.entity(d.ID, "heater/target")
	if target.Kind != KindNumber || *target.Control.Min != 5 || *target.Control.Max != 30 {
		t.Errorf("target %+v", target)
	}
	wantValue(t, target, "21")
	mode := c.entity(d.ID, "heater/mode")
	if mode.Kind != KindSelect || mode.Type != TypeEnum || fmt.Sprint(mode.Control.Options) != "[off eco comfort]" {
		t.Errorf("mode %+v", mode)
	}
	wantValue(t, mode, `"eco"`)
	wantValue(t, c.entity(d.ID, "heater/note"), `"\"quoted\" text"`)

	// $state is the availability; init says nothing.
	for _, s := range [][2]string{
		{"lost", Offline}, {"ready", Online}, {"disconnected", Offline}, {"init", Offline}, {"ready", Online},
		{"sleeping", Offline}, {"alert", Online}, {"init", Online},
	} {
		c.retain("homie/thermo/$state", s[0])
		if got := c.device(d.ID).Availability; got != s[1] {
			t.Errorf("$state %s: %s, want %s", s[0], got, s[1])
		}
	}
	c.retain("homie/other/$state", "init")
	c.retain("homie/other/$nodes", "n")
	c.retain("homie/other/n/$properties", "p")
	if got := c.device("homie:other").Availability; got != Unknown {
		t.Errorf("a device that only said init: %s, want unknown", got)
	}
}

func TestHomie4AttributesInAnyOrder(t *testing.T) {
	inOrder := newConvModel(t, Config{})
	for _, m := range homieThermostat {
		inOrder.retain(m[0], m[1])
	}
	reversed := newConvModel(t, Config{})
	for _, m := range slices.Backward(homieThermostat) {
		reversed.retain(m[0], m[1])
	}
	a, _ := json.Marshal(inOrder.Devices())
	b, _ := json.Marshal(reversed.Devices())
	if string(a) != string(b) {
		t.Errorf("values and attributes in reverse order:\n%s\nin order:\n%s", b, a)
	}
	for _, d := range reversed.Devices() {
		if d.Convention != Homie {
			t.Errorf("device %s (%s) left from the values seen before the attributes", d.ID, d.Convention)
		}
	}
}

func TestHomieCommands(t *testing.T) {
	c := newConvModel(t, Config{})
	for _, m := range homieThermostat {
		c.retain(m[0], m[1])
	}
	on := c.command("homie:thermo", "heater/power", "true")
	wantCommand(t, on, "homie/thermo/heater/power/set", "true")
	if on.Confirm.Topic != "homie/thermo/heater/power" || !on.Confirm.Check([]byte("true")) || on.Confirm.Check([]byte("false")) {
		t.Errorf("power on is confirmed by true on the property topic: %+v", on.Confirm)
	}
	target := c.command("homie:thermo", "heater/target", "21.5")
	wantCommand(t, target, "homie/thermo/heater/target/set", "21.5")
	if !target.Confirm.Check([]byte("21.50")) || target.Confirm.Check([]byte("21")) {
		t.Error("target 21.5 is confirmed by 21.50, not by 21")
	}
	wantCommand(t, c.command("homie:thermo", "heater/mode", `"comfort"`), "homie/thermo/heater/mode/set", "comfort")
	wantCommand(t, c.command("homie:thermo", "heater/steps", "3"), "homie/thermo/heater/steps/set", "3")
	for _, bad := range []struct{ entity, value string }{
		{"heater/target", "31"}, {"heater/steps", "2.5"}, {"heater/mode", `"boost"`}, {"heater/power", "1"},
	} {
		if _, err := c.Command("homie:thermo", bad.entity, json.RawMessage(bad.value)); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s %s: %v, want ErrBadValue", bad.entity, bad.value, err)
		}
	}
	if _, err := c.Command("homie:thermo", "sensor/temperature", json.RawMessage("20")); !errors.Is(err, ErrNotControl) {
		t.Errorf("a reading commanded: %v, want ErrNotControl", err)
	}
	if cf, ok := c.ConfirmFor("homie/thermo/heater/power/set", []byte("false")); !ok || !cf.Check([]byte("false")) {
		t.Errorf("raw false on the set topic: %+v %v", cf, ok)
	}
	c.retain("homie/thermo/$state", "lost")
	if _, err := c.Command("homie:thermo", "heater/power", json.RawMessage("true")); !errors.Is(err, ErrOffline) {
		t.Errorf("lost device: %v, want ErrOffline", err)
	}
}

func TestHomie4RemovedByEmptyAttributes(t *testing.T) {
	c := newConvModel(t, Config{})
	for _, m := range homieThermostat {
		c.retain(m[0], m[1])
	}
	// One property's attributes cleared: the property stays listed by $properties, as a text.
	c.retain("homie/thermo/heater/mode/$datatype", "")
	if e := c.entity("homie:thermo", "heater/mode"); e.Type != TypeText {
		t.Errorf("mode without $datatype: %+v, want a text", e)
	}
	for _, m := range homieThermostat {
		if strings.Contains(m[0], "$") {
			c.retain(m[0], "")
		}
	}
	for _, d := range c.Devices() {
		t.Errorf("device %s (%s) left after every attribute was cleared", d.ID, d.Convention)
	}
	if h := conventionOf[*homie](t, c.Model); len(h.devices) != 0 || h.bytes != 0 {
		t.Errorf("the convention keeps %d devices, %d bytes", len(h.devices), h.bytes)
	}
}

const homie5Door = `{"homie":"5.0","version":7,"name":"Garage door","parent":"garage",
	"nodes":{
		"door":{"name":"Door","properties":{
			"open":{"name":"Open","datatype":"boolean","settable":true},
			"position":{"name":"Position","datatype":"integer","format":"0:100:5","unit":"%","settable":true},
			"action":{"name":"Action","datatype":"enum","format":"open,close,stop","settable":true,"retained":false}}},
		"light":{"name":"Light","properties":{
			"on":{"name":"Open","datatype":"boolean","settable":true}}}}}`

func TestHomie5Description(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("homie/5/door/door/open", "true") // a value before the description
	c.retain("homie/5/door/$state", "ready")
	c.retain("homie/5/door/$description", homie5Door)
	d := c.device("homie:door")
	if d.Name != "Garage door" || d.ViaDevice != "homie:garage" || d.Availability != Online {
		t.Errorf("device %+v", d)
	}
	var ids, names []string
	for _, e := range d.Entities {
		ids, names = append(ids, e.ID), append(names, e.Name)
	}
	if got := strings.Join(ids, " "); got != "door/open door/position door/action light/on" {
		t.Errorf("entities %s, want the description's order", got)
	}
	if got := strings.Join(names, ","); got != "Door Open,Position,Action,Light Open" {
		t.Errorf("names %s, want the node's name where two properties share one", got)
	}
	wantValue(t, c.entity(d.ID, "door/open"), "true")
	pos := c.entity(d.ID, "door/position")
	if pos.Kind != KindNumber || *pos.Control.Min != 0 || *pos.Control.Max != 100 || *pos.Control.Step != 5 {
		t.Errorf("position %+v", pos)
	}
	wantCommand(t, c.command(d.ID, "door/position", "40"), "homie/5/door/door/position/set", "40")
	action := c.command(d.ID, "door/action", `"stop"`)
	wantCommand(t, action, "homie/5/door/door/action/set", "stop")
	if action.Confirm.Topic != "" {
		t.Errorf("a non-retained property's command waits for %s, want nothing", action.Confirm.Topic)
	}
	if c.entity(d.ID, "door/action").Note == "" {
		t.Error("a non-retained property has no note")
	}

	c.retain("homie/5/door/$description", "not json")
	if c.Stats().MalformedDiscoveries != 1 || len(c.device(d.ID).Entities) != 4 {
		t.Errorf("a malformed description: stats %+v; want it counted and the device kept", c.Stats())
	}
	c.retain("homie/5/door/$description", "")
	for _, d := range c.Devices() {
		t.Errorf("device %s (%s) left after the description was cleared", d.ID, d.Convention)
	}
}

func TestHomieTopicsThatAreNoDevices(t *testing.T) {
	c := newConvModel(t, Config{})
	for _, m := range homieThermostat {
		c.retain(m[0], m[1])
	}
	for _, m := range [][2]string{
		{"homie/thermo/$stats/uptime", "120"},
		{"homie/thermo/$fw/name", "thermo-fw"},
		{"homie/$broadcast/alert", "Storm"},
		{"homie/5/$broadcast/alert", "Storm"},
		{"homie/5/door/$log/info", "started"},
		{"homie/thermo/heater/power/set", "true"},
	} {
		c.pub(m[0], m[1])
	}
	if ds := c.Devices(); len(ds) != 1 {
		t.Errorf("%d devices, want the thermostat only: %+v", len(ds), ds)
	}
}

func TestHomieBounds(t *testing.T) {
	c := newConvModel(t, Config{MaxDevices: 2})
	for i := range 3 {
		c.retain(fmt.Sprintf("homie/d%d/$nodes", i), "n")
		c.retain(fmt.Sprintf("homie/d%d/n/$properties", i), "p")
	}
	if h := conventionOf[*homie](t, c.Model); len(h.devices) != 2 {
		t.Errorf("%d devices kept, want MaxDevices 2", len(h.devices))
	}
	if n := len(c.Devices()); n != 2 {
		t.Errorf("%d devices, want 2", n)
	}

	c = newConvModel(t, Config{})
	for i := range maxHomieAttributes + 10 {
		c.retain(fmt.Sprintf("homie/big/n/p%d/$name", i), "x")
	}
	if h := conventionOf[*homie](t, c.Model); len(h.devices["homie/big"].attrs) != maxHomieAttributes {
		t.Errorf("%d attributes kept, want maxHomieAttributes %d", len(h.devices["homie/big"].attrs), maxHomieAttributes)
	}
	c.retain("homie/big/$name", strings.Repeat("x", maxHomieAttributeBytes+1))
	if h := conventionOf[*homie](t, c.Model); h.devices["homie/big"].attrs["$name"] != "" {
		t.Error("an attribute past maxHomieAttributeBytes was kept")
	}

	c = newConvModel(t, Config{MaxKeptBytes: 1000})
	for i := range 100 {
		c.retain(fmt.Sprintf("homie/d%d/$name", i), "a name of some length")
	}
	if h := conventionOf[*homie](t, c.Model); h.bytes > 1000 {
		t.Errorf("%d attribute bytes kept, want at most MaxKeptBytes 1000", h.bytes)
	}

	c = newConvModel(t, Config{MaxEntities: 2})
	c.retain("homie/5/door/$description", homie5Door)
	if n := len(c.device("homie:door").Entities); n != 2 {
		t.Errorf("%d entities, want MaxEntities 2", n)
	}
}

// FuzzHomie: a Homie 5 description, or a Homie 3/4 attribute, then its empty
// retained message, leaves the model as it was, within its bounds all along.
func FuzzHomie(f *testing.F) {
	seedTraces(f, func(msg devicetrace.Message) {
		if rest, ok := strings.CutPrefix(msg.Topic, "homie/kitchen-thermostat/"); ok && strings.Contains(rest, "$") {
			f.Add(rest, msg.Payload)
		}
		if strings.HasSuffix(msg.Topic, "/$description") {
			f.Add("$description", msg.Payload)
		}
	})
	f.Add("$description", []byte(homie5Door))
	f.Add("n/p/$format", []byte("1:0:-1"))
	f.Fuzz(func(t *testing.T, attr string, payload []byte) {
		m := New(fuzzConfig)
		applyAll(m, unrelated...)
		for _, a := range homieThermostat[:8] {
			m.Apply(Message{Topic: a[0], Payload: []byte(a[1]), Retained: true})
		}
		h := conventionOf[*homie](t, m)
		before, bytes := footprint(m), h.bytes
		topic := "homie/fuzz/" + attr
		if attr == "$description" {
			topic = "homie/5/fuzz/$description"
		}
		m.Apply(Message{Topic: topic, Payload: payload, Retained: true})
		checkBounds(t, m)
		for _, d := range m.Devices() {
			for _, e := range d.Entities {
				_, _ = m.Command(d.ID, e.ID, json.RawMessage("1"))
			}
		}
		m.Apply(Message{Topic: topic, Retained: true})
		checkBounds(t, m)
		if after := footprint(m); after != before || h.bytes != bytes {
			t.Fatalf("the model changed (%d attribute bytes, were %d):\nbefore %s\nafter  %s", h.bytes, bytes, before, after)
		}
	})
}
