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
	// announced is the last message it announces after connecting (any
	// payload when "").
	announced sent
	// will is its Will, goodbye what it says when it stops on purpose; both
	// retained, on the topic of its online message in retained.
	will, goodbye sent
}

type sent struct{ topic, payload string }

type commandCase struct {
	sent
	answers []answer
}

// answer is a message that answers a command: its topic, and its payload as
// a string (exact) or a jsonHas.
type answer struct {
	topic string
	want  any
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
		{sent{"motesim_climate/heater/set", "ON"}, []answer{{"motesim_climate/heater/state", "ON"}}},
		{sent{"motesim_climate/heater/set", "on"}, nil}, // not payload_on: ignored
		{sent{"motesim_climate/heater/set", "OFF"}, []answer{{"motesim_climate/heater/state", "OFF"}}},
		{sent{"homeassistant/status", "offline"}, nil},
		// Home Assistant's birth message: the device announces itself again.
		{sent{"homeassistant/status", "online"}, []answer{
			{"motesim_climate/status", "online"},
			{"homeassistant/sensor/motesim_climate/temperature/config", jsonHas{"unique_id": "motesim_climate_temperature"}},
			{"homeassistant/switch/motesim_climate/heater/config", jsonHas{"uniq_id": "motesim_climate_heater"}},
			{"motesim_climate/heater/state", "OFF"},
			{"motesim_climate/sensor", jsonHas{"temperature": nil}},
		}},
	},
	announced: sent{"motesim_climate/sensor", ""},
	will:      sent{"motesim_climate/status", "offline"},
	goodbye:   sent{"motesim_climate/status", "offline"},
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
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"ON"}`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "ON", "brightness": 120.0, "linkquality": nil}}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"brightness": 200}`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "ON", "brightness": 200.0, "linkquality": nil}}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"TOGGLE"}`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "OFF", "brightness": 200.0, "linkquality": nil}}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"state":"DIM"}`}, nil},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `{"brightness": 300}`}, nil},
		{sent{"zigbee2mqtt/kitchen_lamp/set/brightness", `80`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "ON", "brightness": 80.0, "linkquality": nil}}}},
		{sent{"zigbee2mqtt/kitchen_lamp/set", `OFF`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "OFF", "brightness": 80.0, "linkquality": nil}}}},
		{sent{"zigbee2mqtt/kitchen_lamp/get", `{"state":""}`}, []answer{{"zigbee2mqtt/kitchen_lamp", jsonHas{"state": "OFF", "brightness": 80.0, "linkquality": nil}}}},
	},
	announced: sent{"zigbee2mqtt/kitchen_lamp", ""},
	will:      sent{"zigbee2mqtt/bridge/state", `{"state":"offline"}`},
	goodbye:   sent{"zigbee2mqtt/bridge/state", `{"state":"offline"}`},
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
		{sent{"cmnd/tasmota_A1B2C3/POWER", "ON"}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", "TOGGLE"}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"OFF"}`}, {"stat/tasmota_A1B2C3/POWER", "OFF"}}},
		{sent{"cmnd/tasmota_A1B2C3/Power", "on"}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", ""}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"ON"}`}, {"stat/tasmota_A1B2C3/POWER", "ON"}}},
		{sent{"cmnd/tasmota_A1B2C3/POWER", "0"}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"POWER":"OFF"}`}, {"stat/tasmota_A1B2C3/POWER", "OFF"}}},
		{sent{"cmnd/tasmota_A1B2C3/Dimmer", "50"}, []answer{{"stat/tasmota_A1B2C3/RESULT", `{"Command":"Unknown"}`}}},
	},
	announced: sent{"tele/tasmota_A1B2C3/SENSOR", ""},
	will:      sent{"tele/tasmota_A1B2C3/LWT", "Offline"},
	goodbye:   sent{"tele/tasmota_A1B2C3/LWT", "Offline"},
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
		{sent{"homie/thermostat/heater/power/set", "true"}, []answer{{"homie/thermostat/heater/power", "true"}}},
		{sent{"homie/thermostat/heater/power/set", "TRUE"}, nil}, // not a Homie boolean
		{sent{"homie/thermostat/heater/power/set", "false"}, []answer{{"homie/thermostat/heater/power", "false"}}},
	},
	announced: sent{"homie/thermostat/$state", "ready"},
	will:      sent{"homie/thermostat/$state", "lost"},
	goodbye:   sent{"homie/thermostat/$state", "disconnected"},
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
// on the broker at addr, and returns what is retained, as a subscriber that
// comes later gets it.
func waitRetained(t *testing.T, addr string, specs ...deviceSpec) map[string]hubtest.Message {
	t.Helper()
	var want []string
	for _, s := range specs {
		want = append(want, s.present()...)
	}
	var got map[string]hubtest.Message
	attempt := 0
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		attempt++
		got = retainedNow(t, addr, fmt.Sprintf("late-%d", attempt))
		missing := slices.DeleteFunc(slices.Clone(want), func(topic string) bool { _, ok := got[topic]; return ok })
		if len(missing) > 0 {
			return fmt.Errorf("still not retained: %v\nretained: %v", missing, slices.Sorted(maps.Keys(got)))
		}
		return nil
	})
	return got
}

// retainedNow is every message retained on the broker at addr, by topic,
// as a new subscriber to # gets them.
func retainedNow(t *testing.T, addr, clientID string) map[string]hubtest.Message {
	t.Helper()
	c := connectOrdered(t, addr, clientID)
	defer c.Disconnect(0)
	ch := hubtest.SubscribeMQTT(t, c, "#", 1)
	// The broker sent the retained messages on SUBSCRIBE, before it
	// handles this client's next publish: that one marks their end.
	end := "motesim-test/" + clientID
	hubtest.PublishMQTT(t, c, end, 1, false, []byte("end"))
	got := map[string]hubtest.Message{}
	receiveUntil(t, ch, hubtest.Timeout, "the end of the retained messages", func(m hubtest.Message) bool {
		if m.Retain {
			got[m.Topic] = m
		}
		return m.Topic == end
	})
	return got
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

// waitAnnounced reads ch until spec's device has announced itself.
func waitAnnounced(t *testing.T, ch <-chan hubtest.Message, spec deviceSpec) {
	t.Helper()
	receiveUntil(t, ch, hubtest.Timeout, spec.name+" to announce itself", func(m hubtest.Message) bool {
		return m.Topic == spec.announced.topic && (spec.announced.payload == "" || m.Payload == spec.announced.payload)
	})
}

// TestDevicesObeyCommands: each device obeys commands on its command topic
// in its convention's exact encoding, answers each with the confirming
// message, and ignores a command its convention does not accept.
func TestDevicesObeyCommands(t *testing.T) {
	t.Parallel()
	for _, spec := range deviceSpecs {
		t.Run(spec.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, "127.0.0.1:0")
			addr := b.Addr().String()
			c := connectOrdered(t, addr, "commander")
			ch := hubtest.SubscribeMQTT(t, c, "#", 1)
			log, _ := newLogs(t)
			startMotes(t, devicesConfig(addr, time.Hour, log, spec.name))
			waitAnnounced(t, ch, spec)

			answerTopics := map[string]bool{}
			for _, cmd := range spec.commands {
				for _, a := range cmd.answers {
					answerTopics[a.topic] = true
				}
			}
			for _, cmd := range spec.commands {
				hubtest.PublishMQTT(t, c, cmd.topic, 1, false, []byte(cmd.payload))
				for _, a := range cmd.answers {
					var got hubtest.Message
					receiveUntil(t, ch, hubtest.Timeout, fmt.Sprintf("the answer to %q on %s", cmd.payload, cmd.topic), func(m hubtest.Message) bool {
						got = m
						return answerTopics[m.Topic]
					})
					if got.Topic != a.topic {
						t.Fatalf("%q on %s: answered on %s (%q), want %s", cmd.payload, cmd.topic, got.Topic, got.Payload, a.topic)
					}
					checkPayload(t, fmt.Sprintf("%s, answering %q on %s", got.Topic, cmd.payload, cmd.topic), got.Payload, a.want)
				}
			}
		})
	}
}

// TestDevicesWillAndReannounce: when a device vanishes without DISCONNECT,
// the broker publishes its Will, retained; after the broker restarts empty,
// the device reconnects and announces itself again, so its discovery is
// retained on the new broker.
func TestDevicesWillAndReannounce(t *testing.T) {
	first := startBroker(t, "127.0.0.1:0")
	addr := first.Addr().String()
	px := startProxy(t, addr)
	watcher := connectOrdered(t, addr, "watcher")
	ch := hubtest.SubscribeMQTT(t, watcher, "#", 1)
	log, logs := newLogs(t)
	startMotes(t, devicesConfig(px.addr(), time.Hour, log))
	waitRetained(t, addr, deviceSpecs...)

	// The network fails: every device vanishes and its Will goes out.
	px.shut.Store(true)
	px.cut()
	wills := map[string]string{}
	for _, s := range deviceSpecs {
		wills[s.will.topic] = s.will.payload
	}
	receiveUntil(t, ch, hubtest.Timeout, "every device's Will", func(m hubtest.Message) bool {
		if want, ok := wills[m.Topic]; ok && m.Payload == want {
			delete(wills, m.Topic)
		}
		return len(wills) == 0
	})
	retained := map[string]any{}
	for _, s := range deviceSpecs {
		retained[s.will.topic] = s.will.payload
	}
	got := waitRetained(t, addr, deviceSpec{name: "wills", retained: retained})
	for topic, want := range retained {
		checkPayload(t, topic, got[topic].Payload, want)
	}

	// The broker restarts with nothing retained: the devices announce
	// themselves again.
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		for _, s := range deviceSpecs {
			if logs.count(slog.LevelInfo, "disconnected", "device", s.name) != 1 {
				return false
			}
		}
		return true
	}, "the devices did not log the lost connection")
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := startBroker(t, addr)
	px.shut.Store(false)
	got = waitRetained(t, second.Addr().String(), deviceSpecs...)
	for _, s := range deviceSpecs {
		for topic, want := range s.retained {
			if want != nil {
				checkPayload(t, topic, got[topic].Payload, want)
			}
		}
		if n := logs.count(slog.LevelInfo, "connected", "device", s.name, "reconnect", "true"); n != 1 {
			t.Errorf("%s logged %d reconnects, want 1", s.name, n)
		}
	}
}

// TestDevicesSayGoodbye: a device that stops on purpose disconnects cleanly
// (no Will) after saying so as its convention does, retained.
func TestDevicesSayGoodbye(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	log, logs := newLogs(t)
	r := startMotes(t, devicesConfig(addr, time.Hour, log))
	waitRetained(t, addr, deviceSpecs...)
	r.stop(t)

	retained := map[string]string{}
	for _, s := range deviceSpecs {
		retained[s.goodbye.topic] = s.goodbye.payload
		if n := logs.count(slog.LevelInfo, "disconnected", "device", s.name, "reason", "stopping"); n != 1 {
			t.Errorf("%s logged %d clean disconnects, want 1", s.name, n)
		}
	}
	// A goodbye at QoS 0 is written before the device disconnects, but the
	// broker may still be reading it: the old retained value can come first.
	attempt := 0
	hubtest.EventuallyNil(t, hubtest.Timeout, func() error {
		attempt++
		got := retainedNow(t, addr, fmt.Sprintf("goodbyes-%d", attempt))
		for topic, want := range retained {
			if got[topic].Payload != want {
				return fmt.Errorf("%s: %q, want %q", topic, got[topic].Payload, want)
			}
		}
		return nil
	})
}

// TestDevicesReport: the devices report their readings every
// ReportInterval, each as its convention does.
func TestDevicesReport(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	c := connectOrdered(t, addr, "watcher")
	ch := hubtest.SubscribeMQTT(t, c, "#", 1)
	log, _ := newLogs(t)
	startMotes(t, devicesConfig(addr, fast, log))

	reports := map[string]jsonHas{
		"motesim_climate/sensor":              {"temperature": nil},
		"zigbee2mqtt/kitchen_lamp":            {"state": "OFF", "brightness": 120.0, "linkquality": nil},
		"tele/tasmota_A1B2C3/STATE":           {"POWER": "OFF", "UptimeSec": nil, "Time": nil, "Wifi.RSSI": nil},
		"tele/tasmota_A1B2C3/SENSOR":          {"ENERGY.Voltage": nil, "ENERGY.Power": 0.0, "ENERGY.Current": 0.0, "ENERGY.Total": nil},
		"homie/thermostat/heater/temperature": nil, // a float as text
	}
	counts := map[string]int{}
	receiveUntil(t, ch, hubtest.Timeout, "five reports of every device", func(m hubtest.Message) bool {
		want, ok := reports[m.Topic]
		if !ok {
			return false
		}
		if want != nil {
			checkPayload(t, m.Topic, m.Payload, want)
		} else if v, err := strconv.ParseFloat(m.Payload, 64); err != nil || v < 18 || v > 26 {
			t.Errorf("%s: %q is not an indoor temperature", m.Topic, m.Payload)
		}
		counts[m.Topic]++
		for topic := range reports {
			if counts[topic] < 5 {
				return false
			}
		}
		return true
	})
}
