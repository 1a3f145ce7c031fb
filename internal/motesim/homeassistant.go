package motesim

import (
	"encoding/json"
	"fmt"
	"time"
)

// The Home Assistant device: a climate sensor with a heater switch, as an
// ESPHome or Tasmota device announces them through Home Assistant's MQTT
// discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery).
// Two retained config messages, grouped as one device by device.identifiers:
//
//	homeassistant/sensor/motesim_climate/temperature/config  full keys, value_template {{ value_json.temperature }}
//	homeassistant/switch/motesim_climate/heater/config       abbreviated keys and the ~ base topic, as Tasmota writes them
//	motesim_climate/status        online / offline   retained; the Will is offline
//	motesim_climate/sensor        {"temperature":21.5} retained, every ReportInterval
//	motesim_climate/heater/state  ON / OFF           retained, at connect and after each command
//	motesim_climate/heater/set    ON / OFF           the command (payload_on / payload_off, exactly)
//
// Like real devices it announces itself again when Home Assistant's birth
// message (online on homeassistant/status) arrives.
const (
	haNode         = "motesim_climate"
	haDiscovery    = "homeassistant"
	haBirthTopic   = haDiscovery + "/status"
	haStatusTopic  = haNode + "/status"
	haSensorTopic  = haNode + "/sensor"
	haHeaterBase   = haNode + "/heater"
	haHeaterState  = haHeaterBase + "/state"
	haHeaterSet    = haHeaterBase + "/set"
	haSensorConfig = haDiscovery + "/sensor/" + haNode + "/temperature/config"
	haSwitchConfig = haDiscovery + "/switch/" + haNode + "/heater/config"
	haOnline       = "online"
	haOffline      = "offline"
	haOn           = "ON"
	haOff          = "OFF"
)

type homeAssistant struct {
	thermo *thermometer
	heater bool
}

func newHomeAssistant(seed uint64, n int) *homeAssistant {
	return &homeAssistant{thermo: newThermometer(seed, n)}
}

func (*homeAssistant) name() string { return DeviceHomeAssistant }

func (*homeAssistant) filters() []string {
	return []string{haNode + "/#", haDiscovery + "/+/" + haNode + "/#", haBirthTopic}
}

func (*homeAssistant) will() (message, bool) {
	return message{topic: haStatusTopic, qos: 1, retain: true, payload: []byte(haOffline)}, true
}

func (*homeAssistant) subscriptions() []string { return []string{haHeaterSet, haBirthTopic} }

// haDevice is the device block both configs share; the switch's uses the
// abbreviated keys.
func haDevice(abbreviated bool) map[string]any {
	if abbreviated {
		return map[string]any{"ids": []string{haNode}, "name": "Living room climate",
			"mdl": "Climate sensor", "mf": "motesim", "sw": firmware, "sa": "Living room"}
	}
	return map[string]any{"identifiers": []string{haNode}, "name": "Living room climate",
		"model": "Climate sensor", "manufacturer": "motesim", "sw_version": firmware, "suggested_area": "Living room"}
}

func haSensorConfigPayload() []byte {
	return mustJSON(map[string]any{
		"name":                "Temperature",
		"unique_id":           haNode + "_temperature",
		"state_topic":         haSensorTopic,
		"value_template":      "{{ value_json.temperature }}",
		"unit_of_measurement": "°C",
		"device_class":        "temperature",
		"state_class":         "measurement",
		"availability_topic":  haStatusTopic,
		"device":              haDevice(false),
	})
}

func haSwitchConfigPayload() []byte {
	return mustJSON(map[string]any{
		"~":       haHeaterBase,
		"name":    "Heater",
		"uniq_id": haNode + "_heater",
		"cmd_t":   "~/set",
		"stat_t":  "~/state",
		"pl_on":   haOn,
		"pl_off":  haOff,
		"avty": []map[string]string{
			{"t": haStatusTopic, "pl_avail": haOnline, "pl_not_avail": haOffline},
		},
		"dev": haDevice(true),
	})
}

func (h *homeAssistant) announce(time.Time) []message {
	return []message{
		{topic: haStatusTopic, qos: 1, retain: true, payload: []byte(haOnline)},
		{topic: haSensorConfig, qos: 1, retain: true, payload: haSensorConfigPayload()},
		{topic: haSwitchConfig, qos: 1, retain: true, payload: haSwitchConfigPayload()},
		h.heaterState(),
		h.sensorState(),
	}
}

func (h *homeAssistant) heaterState() message {
	state := haOff
	if h.heater {
		state = haOn
	}
	return message{topic: haHeaterState, qos: 1, retain: true, payload: []byte(state)}
}

func (h *homeAssistant) sensorState() message {
	return message{topic: haSensorTopic, qos: 0, retain: true,
		payload: fmt.Appendf(nil, `{"temperature":%.1f}`, float64(h.thermo.now)/10)}
}

func (h *homeAssistant) obey(topic string, payload []byte) ([]message, error) {
	switch topic {
	case haBirthTopic:
		if string(payload) != haOnline {
			return nil, fmt.Errorf("status %q of Home Assistant is not online: nothing to announce", payload)
		}
		return h.announce(time.Now()), nil
	case haHeaterSet:
		switch string(payload) {
		case haOn:
			h.heater = true
		case haOff:
			h.heater = false
		default:
			return nil, fmt.Errorf("payload %q is neither %s nor %s", payload, haOn, haOff)
		}
		return []message{h.heaterState()}, nil
	}
	return nil, fmt.Errorf("no command on %q", topic)
}

func (h *homeAssistant) report(time.Time) []message {
	h.thermo.next()
	return []message{h.sensorState()}
}

func (*homeAssistant) goodbye() []message {
	return []message{{topic: haStatusTopic, qos: 1, retain: true, payload: []byte(haOffline)}}
}

// mustJSON marshals values that cannot fail to marshal (maps, slices and
// structs of strings, numbers and booleans).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("motesim: marshal %T: %v", v, err))
	}
	return b
}
