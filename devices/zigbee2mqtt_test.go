package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/devicetrace"
)

// convModel is a Model under test with the helpers the convention tests
// (Zigbee2MQTT, Homie, Tasmota) share.
type convModel struct {
	*Model
	t *testing.T
}

func newConvModel(t *testing.T, cfg Config) convModel {
	t.Helper()
	return convModel{Model: New(cfg), t: t}
}

// pub applies a message that is not retained.
func (c convModel) pub(topic, payload string) Changes {
	return c.Apply(Message{Topic: topic, Payload: []byte(payload)})
}

// retain applies a retained message.
func (c convModel) retain(topic, payload string) Changes {
	return c.Apply(Message{Topic: topic, Payload: []byte(payload), Retained: true})
}

// device is the device id, which must exist.
func (c convModel) device(id string) Device {
	c.t.Helper()
	d, ok := c.Device(id)
	if !ok {
		var ids []string
		for _, d := range c.Devices() {
			ids = append(ids, d.ID)
		}
		c.t.Fatalf("no device %s; devices: %v", id, ids)
	}
	return d
}

// entity is the entity id of device dev, which must exist.
func (c convModel) entity(dev, id string) Entity {
	c.t.Helper()
	d := c.device(dev)
	for _, e := range d.Entities {
		if e.ID == id {
			return e
		}
	}
	var ids []string
	for _, e := range d.Entities {
		ids = append(ids, e.ID)
	}
	c.t.Fatalf("device %s has no entity %s; entities: %v", dev, id, ids)
	return Entity{}
}

// command encodes value for an entity, which must succeed.
func (c convModel) command(dev, ent, value string) Command {
	c.t.Helper()
	cmd, err := c.Command(dev, ent, json.RawMessage(value))
	if err != nil {
		c.t.Fatalf("Command(%s, %s, %s): %v", dev, ent, value, err)
	}
	return cmd
}

// conventionOf is the model's convention of type T.
func conventionOf[T convention](t *testing.T, m *Model) T {
	t.Helper()
	for _, c := range m.conventions {
		if x, ok := c.(T); ok {
			return x
		}
	}
	var zero T
	t.Fatalf("the model has no convention %T", zero)
	return zero
}

// wantValue checks an entity's value (its JSON).
func wantValue(t *testing.T, e Entity, want string) {
	t.Helper()
	if string(e.Value) != want {
		t.Errorf("%s = %s, want %s", e.ID, e.Value, want)
	}
}

// wantCommand checks a command's topic and payload.
func wantCommand(t *testing.T, cmd Command, topic, payload string) {
	t.Helper()
	if cmd.Topic != topic || string(cmd.Payload) != payload {
		t.Errorf("command %s %s, want %s %s", cmd.Topic, cmd.Payload, topic, payload)
	}
}

// zigbeeList is a bridge/devices payload of the given devices.
func zigbeeList(devices ...string) string { return "[" + strings.Join(devices, ",") + "]" }

const (
	zigbeeCoordinator = `{"ieee_address":"0x00124b0018e2a3f4","type":"Coordinator","network_address":0,"supported":true,"friendly_name":"Coordinator","definition":null,"interview_completed":true}`
	zigbeeLamp        = `{"ieee_address":"0x000b57fffec6a5b2","type":"Router","friendly_name":"kitchen_lamp","definition":{"model":"LED1545G12","vendor":"IKEA","description":"TRADFRI bulb","exposes":[
		{"type":"light","features":[
			{"type":"binary","name":"state","label":"State","property":"state","access":7,"value_on":"ON","value_off":"OFF","value_toggle":"TOGGLE"},
			{"type":"numeric","name":"brightness","label":"Brightness","property":"brightness","access":7,"value_min":0,"value_max":254}]},
		{"type":"enum","name":"effect","label":"Effect","property":"effect","access":2,"values":["blink","breathe","okay"]},
		{"type":"composite","name":"color_xy","label":"Color (X/Y)","property":"color","access":7,"features":[
			{"type":"numeric","name":"x","label":"X","property":"x","access":7},
			{"type":"numeric","name":"y","label":"Y","property":"y","access":7}]},
		{"type":"numeric","name":"linkquality","label":"Linkquality","property":"linkquality","access":1,"unit":"lqi","value_min":0,"value_max":255}]}}`
	zigbeeClimate = `{"ieee_address":"0x00158d0004a1b2c3","type":"EndDevice","friendly_name":"living_room/climate","definition":{"model":"WSDCGQ11LM","vendor":"Aqara","exposes":[
		{"type":"numeric","name":"battery","label":"Battery","property":"battery","access":1,"unit":"%","value_min":0,"value_max":100},
		{"type":"numeric","name":"temperature","label":"Temperature","property":"temperature","access":1,"unit":"°C"},
		{"type":"binary","name":"tamper","label":"Tamper","property":"tamper","access":1,"value_on":true,"value_off":false},
		{"type":"enum","name":"action","label":"Action","property":"action","access":1,"values":["single","double"]}]}}`
	zigbeeUnsupported = `{"ieee_address":"0xa4c1380000000001","type":"EndDevice","friendly_name":"mystery","definition":null,"supported":false}`
)

func TestZigbee2MQTTDevicesFromTheBridgeList(t *testing.T) {
	c := newConvModel(t, Config{})
	ch := c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp, zigbeeClimate, zigbeeUnsupported))
	if len(ch.Updated) != 3 {
		t.Errorf("changes %v, want the coordinator, the lamp and the sensor (the unsupported device shows with its first state)", ch)
	}
	lamp := c.device("zigbee2mqtt:0x000b57fffec6a5b2")
	if lamp.Name != "kitchen_lamp" || lamp.Convention != Zigbee2MQTT || lamp.Model != "LED1545G12" || lamp.Manufacturer != "IKEA" ||
		lamp.ViaDevice != "zigbee2mqtt:0x00124b0018e2a3f4" || lamp.Availability != Unknown {
		t.Errorf("lamp %+v", lamp)
	}
	var ids []string
	for _, e := range lamp.Entities {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, " "); got != "state brightness effect color.x color.y" {
		t.Errorf("lamp entities %s, want state brightness effect color.x color.y (link quality is the device's)", got)
	}
	state := c.entity(lamp.ID, "state")
	if state.Kind != KindLight || state.Type != TypeBoolean || state.Topic != "zigbee2mqtt/kitchen_lamp" || state.Field != "state" ||
		state.Control == nil || state.Control.Topic != "zigbee2mqtt/kitchen_lamp/set" {
		t.Errorf("state %+v", state)
	}
	bri := c.entity(lamp.ID, "brightness")
	if bri.Kind != KindNumber || bri.Control == nil || *bri.Control.Min != 0 || *bri.Control.Max != 254 {
		t.Errorf("brightness %+v", bri)
	}
	effect := c.entity(lamp.ID, "effect")
	if effect.Kind != KindSelect || effect.Topic != "" || fmt.Sprint(effect.Control.Options) != "[blink breathe okay]" {
		t.Errorf("effect (settable, not published) %+v", effect)
	}
	if x := c.entity(lamp.ID, "color.x"); x.Name != "Color (X/Y) x" || x.Field != "color.x" {
		t.Errorf("color.x %+v", x)
	}
	climate := c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "temperature")
	if climate.Kind != KindSensor || climate.Unit != "°C" || climate.DeviceClass != "temperature" || climate.Control != nil ||
		climate.Topic != "zigbee2mqtt/living_room/climate" {
		t.Errorf("temperature %+v", climate)
	}
	if tamper := c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "tamper"); tamper.Kind != KindBinarySensor {
		t.Errorf("tamper %+v", tamper)
	}
	if coord := c.device("zigbee2mqtt:0x00124b0018e2a3f4"); coord.Name != "Coordinator" || len(coord.Entities) != 1 {
		t.Errorf("coordinator %+v", coord)
	}

	c.pub("zigbee2mqtt/kitchen_lamp", `{"state":"ON","brightness":120,"color":{"x":0.46,"y":0.41},"linkquality":96}`)
	c.pub("zigbee2mqtt/living_room/climate", `{"battery":87,"temperature":21.54,"tamper":false,"action":"double"}`)
	wantValue(t, c.entity(lamp.ID, "state"), "true")
	wantValue(t, c.entity(lamp.ID, "brightness"), "120")
	wantValue(t, c.entity(lamp.ID, "color.y"), "0.41")
	wantValue(t, c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "temperature"), "21.54")
	wantValue(t, c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "tamper"), "false")
	wantValue(t, c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "action"), `"double"`)
	if d := c.device(lamp.ID); d.LinkQuality == nil || *d.LinkQuality != 96 {
		t.Errorf("lamp link quality %v, want 96", d.LinkQuality)
	}
	if d := c.device("zigbee2mqtt:0x00158d0004a1b2c3"); d.Battery == nil || *d.Battery != 87 {
		t.Errorf("sensor battery %v, want 87", d.Battery)
	}

	// An unsupported device shows its state JSON field by field.
	c.pub("zigbee2mqtt/mystery", `{"temperature":4.5,"contact":true}`)
	wantValue(t, c.entity("zigbee2mqtt:0xa4c1380000000001", "temperature"), "4.5")

	// Availability: the JSON of Zigbee2MQTT 1.x and later, the bare text of older ones.
	c.retain("zigbee2mqtt/kitchen_lamp/availability", `{"state":"online"}`)
	c.retain("zigbee2mqtt/living_room/climate/availability", `offline`)
	if a := c.device(lamp.ID).Availability; a != Online {
		t.Errorf("lamp %s, want online", a)
	}
	if a := c.device("zigbee2mqtt:0x00158d0004a1b2c3").Availability; a != Offline {
		t.Errorf("sensor %s, want offline", a)
	}
	c.retain("zigbee2mqtt/kitchen_lamp/availability", `{"state":"offline"}`)
	if a := c.device(lamp.ID).Availability; a != Offline {
		t.Errorf("lamp %s after offline, want offline", a)
	}
	c.retain("zigbee2mqtt/bridge/state", `{"state":"online"}`)
	if a := c.device("zigbee2mqtt:0x00124b0018e2a3f4").Availability; a != Online {
		t.Errorf("coordinator %s, want online (the bridge's state)", a)
	}
}

func TestZigbee2MQTTCommands(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp, zigbeeClimate))
	c.pub("zigbee2mqtt/kitchen_lamp", `{"state":"OFF","brightness":120}`)
	const lamp = "zigbee2mqtt:0x000b57fffec6a5b2"

	on := c.command(lamp, "state", "true")
	wantCommand(t, on, "zigbee2mqtt/kitchen_lamp/set", `{"state":"ON"}`)
	if on.Confirm.Topic != "zigbee2mqtt/kitchen_lamp" {
		t.Errorf("confirmed on %s, want the state topic", on.Confirm.Topic)
	}
	for payload, want := range map[string]bool{
		`{"state":"ON","brightness":120}`:  true,
		`{"brightness":120,"state":"ON"}`:  true,
		`{"state":"OFF","brightness":120}`: false,
		`{"brightness":120}`:               false,
		`ON`:                               false,
	} {
		if got := on.Confirm.Check([]byte(payload)); got != want {
			t.Errorf("ON confirmed by %s: %v, want %v", payload, got, want)
		}
	}
	wantCommand(t, c.command(lamp, "state", "false"), "zigbee2mqtt/kitchen_lamp/set", `{"state":"OFF"}`)

	bri := c.command(lamp, "brightness", "200")
	wantCommand(t, bri, "zigbee2mqtt/kitchen_lamp/set", `{"brightness":200}`)
	if !bri.Confirm.Check([]byte(`{"state":"ON","brightness":200}`)) || bri.Confirm.Check([]byte(`{"state":"ON","brightness":199}`)) {
		t.Error("brightness 200 is confirmed by brightness 200 only")
	}
	x := c.command(lamp, "color.x", "0.3")
	wantCommand(t, x, "zigbee2mqtt/kitchen_lamp/set", `{"color":{"x":0.3}}`)
	if !x.Confirm.Check([]byte(`{"color":{"x":0.3,"y":0.3}}`)) {
		t.Error("color.x 0.3 is confirmed by color.x 0.3")
	}
	effect := c.command(lamp, "effect", `"blink"`)
	wantCommand(t, effect, "zigbee2mqtt/kitchen_lamp/set", `{"effect":"blink"}`)
	if effect.Confirm.Topic != "" {
		t.Errorf("effect (not published) confirmed on %q, want nothing to wait for", effect.Confirm.Topic)
	}

	for _, bad := range []struct{ entity, value string }{
		{"brightness", "300"}, {"brightness", `"high"`}, {"state", `"ON"`}, {"effect", `"sparkle"`},
	} {
		if _, err := c.Command(lamp, bad.entity, json.RawMessage(bad.value)); !errors.Is(err, ErrBadValue) {
			t.Errorf("%s %s: %v, want ErrBadValue", bad.entity, bad.value, err)
		}
	}
	if _, err := c.Command("zigbee2mqtt:0x00158d0004a1b2c3", "temperature", json.RawMessage("20")); !errors.Is(err, ErrNotControl) {
		t.Errorf("a reading commanded: %v, want ErrNotControl", err)
	}

	// A raw publish on the set topic is confirmed the same way; TOGGLE asks for nothing known.
	if cf, ok := c.ConfirmFor("zigbee2mqtt/kitchen_lamp/set", []byte(`{"state":"OFF"}`)); !ok || !cf.Check([]byte(`{"state":"OFF"}`)) || cf.Check([]byte(`{"state":"ON"}`)) {
		t.Errorf("raw OFF: %+v %v", cf, ok)
	}
	if _, ok := c.ConfirmFor("zigbee2mqtt/kitchen_lamp/set", []byte(`{"state":"TOGGLE"}`)); ok {
		t.Error("raw TOGGLE has a confirmation")
	}

	c.retain("zigbee2mqtt/kitchen_lamp/availability", `{"state":"offline"}`)
	if _, err := c.Command(lamp, "state", json.RawMessage("true")); !errors.Is(err, ErrOffline) {
		t.Errorf("offline lamp: %v, want ErrOffline", err)
	}
}

func TestZigbee2MQTTStateBeforeTheList(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("zigbee2mqtt/kitchen_lamp", `{"state":"ON","brightness":80,"linkquality":40}`)
	c.retain("zigbee2mqtt/kitchen_lamp/availability", `{"state":"online"}`)
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp))
	const lamp = "zigbee2mqtt:0x000b57fffec6a5b2"
	wantValue(t, c.entity(lamp, "state"), "true")
	wantValue(t, c.entity(lamp, "brightness"), "80")
	if d := c.device(lamp); d.Availability != Online {
		t.Errorf("availability %s, want online", d.Availability)
	}
	for _, d := range c.Devices() {
		if d.Convention != Zigbee2MQTT {
			t.Errorf("device %s (%s) left from the state seen before the list", d.ID, d.Convention)
		}
	}
}

func TestZigbee2MQTTListReplacedAndRemoved(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp, zigbeeClimate))
	c.pub("zigbee2mqtt/kitchen_lamp", `{"state":"ON"}`)
	ch := c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeClimate))
	if fmt.Sprint(ch.Removed) != "[zigbee2mqtt:0x000b57fffec6a5b2]" {
		t.Errorf("changes %+v, want the lamp removed", ch)
	}
	if _, ok := c.Device("zigbee2mqtt:0x000b57fffec6a5b2"); ok {
		t.Error("the lamp outlived the list that no longer has it")
	}
	// A friendly name renamed: the same device (IEEE address), its new topics.
	renamed := strings.Replace(zigbeeClimate, `"living_room/climate"`, `"lounge/climate"`, 1)
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, renamed))
	if e := c.entity("zigbee2mqtt:0x00158d0004a1b2c3", "temperature"); e.Topic != "zigbee2mqtt/lounge/climate" {
		t.Errorf("renamed device reads %s", e.Topic)
	}
	c.retain("zigbee2mqtt/bridge/devices", "")
	if ds := c.Devices(); len(ds) != 0 {
		t.Errorf("an empty retained list left %d devices: %+v", len(ds), ds)
	}
	// Disabled devices are not shown.
	disabled := strings.Replace(zigbeeLamp, `"type":"Router"`, `"type":"Router","disabled":true`, 1)
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(disabled))
	if ds := c.Devices(); len(ds) != 0 {
		t.Errorf("a disabled device is shown: %+v", ds)
	}
}

func TestZigbee2MQTTOtherBaseTopics(t *testing.T) {
	c := newConvModel(t, Config{})
	lamp := strings.Replace(zigbeeLamp, `"kitchen_lamp"`, `"hall/lamp"`, 1)
	c.retain("home/zigbee/bridge/devices", zigbeeList(zigbeeCoordinator, lamp))
	if e := c.entity("zigbee2mqtt:0x000b57fffec6a5b2", "state"); e.Topic != "home/zigbee/hall/lamp" || e.Control.Topic != "home/zigbee/hall/lamp/set" {
		t.Errorf("another base: %+v", e)
	}
	// Lists that are no Zigbee2MQTT device list are left to the other conventions.
	for _, payload := range []string{`[]`, `[1,2]`, `[{"name":"a"}]`, `{"devices":[]}`, `not json`} {
		c.retain("shop/bridge/devices", payload)
		for _, d := range c.Devices() {
			if d.Convention == Zigbee2MQTT && strings.Contains(d.Name, "shop") {
				t.Errorf("%s made a Zigbee2MQTT device %+v", payload, d)
			}
		}
	}
	if z := conventionOf[*zigbee2mqtt](t, c.Model); z.bases["shop"] {
		t.Error("shop was taken for a Zigbee2MQTT base")
	}
	// At most maxZigbeeBases bases besides the default.
	for i := range maxZigbeeBases + 3 {
		dev := strings.NewReplacer("0x000b57fffec6a5b2", fmt.Sprintf("0x%016x", i+1), `"kitchen_lamp"`, fmt.Sprintf(`"lamp%d"`, i)).Replace(zigbeeLamp)
		c.retain(fmt.Sprintf("base%d/bridge/devices", i), zigbeeList(dev))
	}
	if z := conventionOf[*zigbee2mqtt](t, c.Model); len(z.bases) > maxZigbeeBases+1 {
		t.Errorf("%d bases followed, want at most %d", len(z.bases), maxZigbeeBases+1)
	}
}

func TestZigbee2MQTTRequestsAndBridgeTopicsMakeNoDevices(t *testing.T) {
	c := newConvModel(t, Config{})
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp))
	before := len(c.Devices())
	for _, m := range [][2]string{
		{"zigbee2mqtt/bridge/info", `{"version":"2.0.0","config":{"permit_join":false}}`},
		{"zigbee2mqtt/bridge/logging", `{"level":"info","message":"hello"}`},
		{"zigbee2mqtt/bridge/groups", `[]`},
		{"zigbee2mqtt/kitchen_lamp/get", `{"state":""}`},
		{"zigbee2mqtt/kitchen_lamp/set/state", `ON`},
		{"zigbee2mqtt/kitchen_lamp/set", `{"state":"ON"}`},
	} {
		c.pub(m[0], m[1])
	}
	if n := len(c.Devices()); n != before {
		t.Errorf("%d devices after bridge topics and requests, want %d: %+v", n, before, c.Devices())
	}
}

func TestZigbee2MQTTBounds(t *testing.T) {
	c := newConvModel(t, Config{MaxEntities: 3, MaxDevices: 2})
	c.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp, zigbeeClimate))
	if n := len(c.Devices()); n != 2 {
		t.Errorf("%d devices, want MaxDevices 2", n)
	}
	for _, d := range c.Devices() {
		if len(d.Entities) > 3 {
			t.Errorf("%s has %d entities, want at most MaxEntities 3", d.ID, len(d.Entities))
		}
	}
	// A list past MaxDiscoveryBytes is not read.
	small := newConvModel(t, Config{MaxDiscoveryBytes: 100})
	small.retain("zigbee2mqtt/bridge/devices", zigbeeList(zigbeeCoordinator, zigbeeLamp))
	if n := len(small.Devices()); n != 0 || small.Stats().OversizedDiscoveries != 1 {
		t.Errorf("%d devices, stats %+v, want the oversized list ignored and counted", n, small.Stats())
	}
	// Exposes nested deeper than maxExposeDepth are not followed.
	deep := `{"type":"numeric","name":"v","property":"v","access":1}`
	for i := range maxExposeDepth + 2 {
		deep = fmt.Sprintf(`{"type":"composite","name":"c%d","property":"c%d","access":1,"features":[%s]}`, i, i, deep)
	}
	var features []zigbeeFeature
	var exposes []zigbeeExpose
	if err := json.Unmarshal([]byte("["+deep+"]"), &exposes); err != nil {
		t.Fatal(err)
	}
	flattenExposes(exposes, "", "", "", 0, 100, &features)
	if len(features) != 0 {
		t.Errorf("features %+v below maxExposeDepth", features)
	}
}

// footprint is what a model holds, to compare before and after a discovery
// came and went: its devices and the sizes of its maps.
func footprint(m *Model) string {
	ds, _ := json.Marshal(m.Devices())
	return fmt.Sprintf("%s\ntopics %d, sources %d, command topics %d", ds, len(m.topics), len(m.sources), len(m.commands))
}

// unrelated are messages of devices no fuzzed discovery here touches.
var unrelated = []Message{
	{Topic: "garden/weather", Payload: []byte(`{"temperature":12.5,"wind":{"speed":3}}`), Retained: true},
	{Topic: "homeassistant/switch/plug/config", Payload: []byte(`{"name":"Plug","uniq_id":"p1","cmd_t":"home/plug/set","stat_t":"home/plug/state","dev":{"ids":"p1"}}`), Retained: true},
	{Topic: "home/plug/state", Payload: []byte("ON"), Retained: true},
}

// FuzzZigbee2MQTTList: a device list, then its empty retained message,
// leaves the model as it was, within its bounds all along.
func FuzzZigbee2MQTTList(f *testing.F) {
	seedTraces(f, func(msg devicetrace.Message) {
		if strings.HasSuffix(msg.Topic, "/bridge/devices") {
			f.Add(msg.Payload, []byte(`{"state":"ON","brightness":3}`))
		}
	})
	f.Add([]byte(zigbeeList(zigbeeCoordinator, zigbeeLamp, zigbeeClimate, zigbeeUnsupported)), []byte(`{"state":"ON","color":{"x":1}}`))
	f.Fuzz(func(t *testing.T, list, state []byte) {
		m := New(fuzzConfig)
		applyAll(m, unrelated...)
		before := footprint(m)
		m.Apply(Message{Topic: "zigbee2mqtt/bridge/devices", Payload: list, Retained: true})
		checkBounds(t, m)
		for _, d := range m.Devices() {
			m.Apply(Message{Topic: "zigbee2mqtt/" + d.Name, Payload: state})
			for _, e := range d.Entities {
				_, _ = m.Command(d.ID, e.ID, json.RawMessage("true"))
			}
		}
		m.Apply(Message{Topic: "zigbee2mqtt/bridge/devices", Retained: true})
		checkBounds(t, m)
		for _, d := range m.Devices() {
			if d.Convention == Zigbee2MQTT {
				t.Fatalf("device %s outlived its list", d.ID)
			}
		}
		// The states the fuzzer sent may stay as plain JSON devices; without them, nothing is left.
		m2 := New(fuzzConfig)
		applyAll(m2, unrelated...)
		m2.Apply(Message{Topic: "zigbee2mqtt/bridge/devices", Payload: list, Retained: true})
		m2.Apply(Message{Topic: "zigbee2mqtt/bridge/devices", Retained: true})
		if after := footprint(m2); after != before {
			t.Fatalf("the model changed:\nbefore %s\nafter  %s", before, after)
		}
	})
}
