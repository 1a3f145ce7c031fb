package motesim

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/hubtest"
)

// What each simulated device must say and do, written from its convention's
// public documentation (see the comment at the top of each device's file).

// jsonHas checks a JSON payload: each dotted path (array indexes as
// numbers) has the value, as encoding/json decodes it into any.
type jsonHas map[string]any

// deviceSpec is what the tests expect of one device.
type deviceSpec struct {
	name string
	// retained are the messages it announces retained after each connect:
	// its discovery and availability, by topic; a payload is a string
	// (exact) or a jsonHas.
	retained map[string]any
	// commands, in order, each in the convention's exact encoding, with the
	// messages that answer it, in order.
	commands []commandCase
	// will is its Will, goodbye what it says when it stops on purpose; both
	// retained, on the topic of its online message in retained.
	will, goodbye sent
}

type sent struct{ topic, payload string }

type commandCase struct {
	sent
	answers []sent
}

var deviceSpecs = []deviceSpec{{
	name: DeviceHomeAssistant,
	retained: map[string]any{
		"motesim_climate/status": "online",
		"homeassistant/sensor/motesim_climate/temperature/config": jsonHas{
			"name": "Temperature", "unique_id": "motesim_climate_temperature",
			"state_topic": "motesim_climate/sensor", "value_template": "{{ value_json.temperature }}",
			"unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement",
			"availability_topic":   "motesim_climate/status",
			"device.identifiers.0": "motesim_climate", "device.name": "Living room climate",
		},
		"homeassistant/switch/motesim_climate/heater/config": jsonHas{
			"~": "motesim_climate/heater", "name": "Heater", "uniq_id": "motesim_climate_heater",
			"cmd_t": "~/set", "stat_t": "~/state", "pl_on": "ON", "pl_off": "OFF",
			"avty.0.t": "motesim_climate/status", "avty.0.pl_avail": "online", "avty.0.pl_not_avail": "offline",
			"dev.ids.0": "motesim_climate", // the same device as the sensor
		},
		"motesim_climate/heater/state": "OFF",
	},
	commands: []commandCase{
		{sent{"motesim_climate/heater/set", "ON"}, []sent{{"motesim_climate/heater/state", "ON"}}},
		{sent{"motesim_climate/heater/set", "on"}, nil}, // not payload_on: ignored
		{sent{"motesim_climate/heater/set", "OFF"}, []sent{{"motesim_climate/heater/state", "OFF"}}},
	},
	will:    sent{"motesim_climate/status", "offline"},
	goodbye: sent{"motesim_climate/status", "offline"},
}, {
	name: DeviceZigbee2MQTT,
	retained: map[string]any{
		"zigbee2mqtt/bridge/state": `{"state":"online"}`,
		"zigbee2mqtt/bridge/devices": jsonHas{
			"0.type": "Coordinator", "0.friendly_name": "Coordinator",
			"1.type": "Router", "1.friendly_name": "kitchen_lamp", "1.ieee_address": "0x000b57fffec6a5b2",
			"1.definition.model": "LED1545G12", "1.definition.vendor": "IKEA",
			"1.definition.exposes.0.type":                 "light",
			"1.definition.exposes.0.features.0.property":  "state",
			"1.definition.exposes.0.features.0.value_on":  "ON",
			"1.definition.exposes.0.features.0.value_off": "OFF",
			"1.definition.exposes.0.features.0.access":    7.0,
			"1.definition.exposes.0.features.1.property":  "brightness",
			"1.definition.exposes.0.features.1.value_max": 254.0,
			"1.definition.exposes.1.property":             "linkquality",
			"1.definition.exposes.1.unit":                 "lqi",
			"1.definition.exposes.1.access":               1.0,
		},
		"zigbee2mqtt/kitchen_lamp/availability": `{"state":"online"}`,
	},
	commands: []commandCase{
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"ON"}`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"ON","brightness":120,`}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"brightness": 200}`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"ON","brightness":200,`}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"TOGGLE"}`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"OFF","brightness":200,`}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"DIM"}`}, nil},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"brightness": 300}`}, nil},
		{sent{"zigbee2mqtt/kitchen_lamp/set/brightness", `80`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"ON","brightness":80,`}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `OFF`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"OFF","brightness":80,`}}},
		{sent{"zigbee2mqtt/kitchen_lamp/get", `{"state":""}`}, []sent{{"zigbee2mqtt/kitchen_lamp", `"state":"OFF","brightness":80,`}}},
	},
	will:    sent{"zigbee2mqtt/bridge/state", `{"state":"offline"}`},
	goodbye: sent{"zigbee2mqtt/bridge/state", `{"state":"offline"}`},
}, {
	name: DeviceTasmota,
	retained: map[string]any{
		"tele/tasmota_A1B2C3/LWT": "Online",
		"tasmota/discovery/DC4F22A1B2C3/config": jsonHas{
			"t": "tasmota_A1B2C3", "ft": "%prefix%/%topic%/", "mac": "DC4F22A1B2C3", "dn": "Desk plug",
			"fn.0": "Desk plug", "rl.0": 1.0, "rl.1": 0.0, "onln": "Online", "ofln": "Offline",
			"tp.0": "cmnd", "tp.1": "stat", "tp.2": "tele", "state.1": "ON", "ver": 1.0,
		},
		"tasmota/discovery/DC4F22A1B2C3/sensors": jsonHas{"sn.ENERGY.Voltage": nil, "sn.ENERGY.Power": 0.0, "ver": 1.0},
	},
	commands: []commandCase{
		{sent{"cmnd/tasmota_A1B2C3/POWER", "ON"}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", "TOGGLE"}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"OFF"}`}, {"stat/tasmota_A1B2C3/POWER", "OFF"}}},
		{sent{"cmnd/tasmota_A1B2C3/Power", "on"}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", ""}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", "0"}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"OFF"}`}, {"stat/tasmota_A1B2C3/POWER", "OFF"}}},
		{sent{"cmnd/tasmota_A1B2C3/Dimmer", "50"}, []sent{{"stat/tasmota_A1B2C3/RESULT", `{"Command":"Unknown"}`}}},
	},
	will:    sent{"tele/tasmota_A1B2C3/LWT", "Offline"},
	goodbye: sent{"tele/tasmota_A1B2C3/LWT", "Offline"},
}, {
	name: DeviceHomie,
	retained: map[string]any{
		"homie/thermostat/$state":                       "ready",
		"homie/thermostat/$homie":                       "4.0",
		"homie/thermostat/$name":                        "Hall thermostat",
		"homie/thermostat/$nodes":                       "heater",
		"homie/thermostat/heater/$name":                 "Heater",
		"homie/thermostat/heater/$properties":           "power,temperature",
		"homie/thermostat/heater/power/$datatype":       "boolean",
		"homie/thermostat/heater/power/$settable":       "true",
		"homie/thermostat/heater/power":                 "false",
		"homie/thermostat/heater/temperature/$datatype": "float",
		"homie/thermostat/heater/temperature/$unit":     "°C",
		"homie/thermostat/heater/temperature/$name":     "Temperature",
		"homie/thermostat/heater/power/$name":           "Power",
		"homie/thermostat/heater/$type":                 "thermostat",
		"homie/thermostat/$implementation":              "motesim",
		"homie/thermostat/heater/temperature/$settable": nil, // absent: not settable
		"homie/thermostat/heater/power/set":             nil, // commands are not retained
	},
	commands: []commandCase{
		{sent{"homie/thermostat/heater/power/set", "true"}, []sent{{"homie/thermostat/heater/power", "true"}}},
		{sent{"homie/thermostat/heater/power/set", "TRUE"}, nil}, // not a Homie boolean
		{sent{"homie/thermostat/heater/power/set", "false"}, []sent{{"homie/thermostat/heater/power", "false"}}},
	},
	will:    sent{"homie/thermostat/$state", "lost"},
	goodbye: sent{"homie/thermostat/$state", "disconnected"},
}}

// present are the topics of spec.retained the device publishes (a nil
// payload marks a topic it must not publish).
func (s deviceSpec) present() []string {
	var out []string
	for topic, want := range s.retained {
		if want != nil {
			out = append(out, topic)
		}
	}
	slices.Sort(out)
	return out
}

// devicesConfig runs one mote and the named devices (all when none) against
// the broker at addr, reporting every report.
func devicesConfig(addr string, report time.Duration, log *slog.Logger, names ...string) Config {
	cfg := fastConfig(addr, 1, log)
	cfg.NoDevices = false
	cfg.Devices = names
	cfg.ReportInterval = report
	return cfg
}

// checkPayload fails the test when payload is not want: a string to match
// exactly, or a jsonHas.
func checkPayload(t *testing.T, topic, payload string, want any) {
	t.Helper()
	switch want := want.(type) {
	case string:
		if payload != want {
			t.Errorf("%s: %q, want %q", topic, payload, want)
		}
	case jsonHas:
		var v any
		if err := json.Unmarshal([]byte(payload), &v); err != nil {
			t.Errorf("%s: %q is not JSON: %v", topic, payload, err)
			return
		}
		for path, value := range want {
			got, ok := jsonAt(v, path)
			if !ok {
				t.Errorf("%s: no %s in %s", topic, path, payload)
			} else if value != nil && !reflect.DeepEqual(got, value) {
				t.Errorf("%s: %s is %#v, want %#v", topic, path, got, value)
			}
		}
	default:
		t.Fatalf("bad expectation %T for %s", want, topic)
	}
}

// jsonAt is the value at a dotted path in v.
func jsonAt(v any, path string) (any, bool) {
	for key := range strings.SplitSeq(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[key]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// waitRetained waits until every topic of each spec has a retained message
// on the broker at addr, and returns them, as a subscriber that comes later
// gets them: retained messages are sent at once on SUBSCRIBE, so a fresh
// subscriber per attempt sees what is retained now.
func waitRetained(t *testing.T, addr string, specs ...deviceSpec) map[string]hubtest.Message {
	t.Helper()
	var want []string
	for _, s := range specs {
		want = append(want, s.present()...)
	}
	got := map[string]hubtest.Message{}
	for attempt := 0; ; attempt++ {
		id := fmt.Sprintf("late-%d", attempt)
		c := connectOrdered(t, addr, id)
		ch := hubtest.SubscribeMQTT(t, c, "#", 1)
		// The broker sent the retained messages on SUBSCRIBE, before it
		// handles this client's next publish: that one marks their end.
		end := "motesim-test/" + id
		hubtest.PublishMQTT(t, c, end, 1, false, []byte("end"))
		clear(got)
		receiveUntil(t, ch, hubtest.Timeout, "the end of the retained messages", func(m hubtest.Message) bool {
			if m.Retain {
				got[m.Topic] = m
			}
			return m.Topic == end
		})
		c.Disconnect(0)
		missing := slices.DeleteFunc(slices.Clone(want), func(topic string) bool { _, ok := got[topic]; return ok })
		if len(missing) == 0 {
			return got
		}
		if attempt == 50 {
			t.Fatalf("after %d attempts, these are still not retained: %v\nretained: %v", attempt, missing, slices.Sorted(maps.Keys(got)))
		}
	}
}

// TestDevicesAnnounceRetained: each device publishes its discovery and
// availability retained, with the payloads its convention documents, and
// nothing retained where the convention has none.
func TestDevicesAnnounceRetained(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	log, _ := newLogs(t)
	startMotes(t, devicesConfig(addr, time.Hour, log))

	got := waitRetained(t, addr, deviceSpecs...)
	for _, s := range deviceSpecs {
		for topic, want := range s.retained {
			m, ok := got[topic]
			switch {
			case want == nil && ok:
				t.Errorf("%s: %s is retained (%q), want nothing", s.name, topic, m.Payload)
			case want != nil:
				checkPayload(t, topic, m.Payload, want)
			}
		}
	}
}
