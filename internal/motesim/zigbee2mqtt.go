package motesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// The Zigbee2MQTT device: a Zigbee2MQTT bridge with its coordinator and one
// IKEA bulb, speaking as Zigbee2MQTT does (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html),
// every message at QoS 0 as Zigbee2MQTT's default:
//
//	zigbee2mqtt/bridge/state              {"state":"online"}  retained; the Will is {"state":"offline"}
//	zigbee2mqtt/bridge/devices            [coordinator, bulb with its exposes]  retained
//	zigbee2mqtt/kitchen_lamp/availability {"state":"online"}  retained
//	zigbee2mqtt/kitchen_lamp              {"state":"ON","brightness":120,"linkquality":96}
//	                                      at connect, after each command, and every ReportInterval (an attribute report)
//	zigbee2mqtt/kitchen_lamp/set          {"state":"ON"|"OFF"|"TOGGLE"}, {"brightness":0-254}, both, or a bare ON
//	zigbee2mqtt/kitchen_lamp/set/state    ON, and set/brightness 120: one attribute
//	zigbee2mqtt/kitchen_lamp/get          {"state":""}: answered with the state
const (
	z2mBase        = "zigbee2mqtt"
	z2mBridgeState = z2mBase + "/bridge/state"
	z2mDevices     = z2mBase + "/bridge/devices"
	z2mLamp        = "kitchen_lamp"
	z2mLampTopic   = z2mBase + "/" + z2mLamp
	z2mLampSet     = z2mLampTopic + "/set"
	z2mLampGet     = z2mLampTopic + "/get"
	z2mLampAvail   = z2mLampTopic + "/availability"
	z2mMaxBright   = 254
)

type zigbee2MQTT struct {
	rng         *rand.Rand
	on          bool
	brightness  int
	linkquality int
}

func newZigbee2MQTT(seed uint64, n int) *zigbee2MQTT {
	rng := newRand(seed, n, streamSetup)
	return &zigbee2MQTT{rng: rng, brightness: 120, linkquality: 80 + rng.IntN(40)}
}

func (*zigbee2MQTT) name() string { return DeviceZigbee2MQTT }

func (*zigbee2MQTT) filters() []string {
	return []string{z2mBase + "/bridge/#", z2mLampTopic, z2mLampTopic + "/#"}
}

func (*zigbee2MQTT) will() (message, bool) {
	return message{topic: z2mBridgeState, retain: true, payload: []byte(`{"state":"offline"}`)}, true
}

func (*zigbee2MQTT) subscriptions() []string { return []string{z2mLampSet + "/#", z2mLampGet} }

// z2mDevicesPayload is the bridge's device list, as Zigbee2MQTT 1.x/2.x
// publishes it: the coordinator, then the bulb with its definition.
func z2mDevicesPayload() []byte {
	coordinator := map[string]any{
		"ieee_address": "0x00124b0022e2a3f1", "type": "Coordinator", "network_address": 0,
		"supported": true, "disabled": false, "friendly_name": "Coordinator", "definition": nil,
		"power_source": nil, "interviewing": false, "interview_completed": true,
	}
	bulb := map[string]any{
		"ieee_address": "0x000b57fffec6a5b2", "type": "Router", "network_address": 40369,
		"supported": true, "disabled": false, "friendly_name": z2mLamp, "description": "",
		"power_source": "Mains (single phase)", "model_id": "TRADFRI bulb E27 WS opal 980lm",
		"manufacturer": "IKEA of Sweden", "software_build_id": "2.3.087", "date_code": "20190308",
		"interviewing": false, "interview_completed": true,
		"definition": map[string]any{
			"model": "LED1545G12", "vendor": "IKEA", "supports_ota": true,
			"description": "TRADFRI LED bulb E26/E27 980 lumen, dimmable, white spectrum, opal white",
			"exposes": []any{
				map[string]any{"type": "light", "features": []any{
					map[string]any{"type": "binary", "name": "state", "property": "state", "label": "State",
						"access": 7, "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE",
						"description": "On/off state of this light"},
					map[string]any{"type": "numeric", "name": "brightness", "property": "brightness", "label": "Brightness",
						"access": 7, "value_min": 0, "value_max": z2mMaxBright,
						"description": "Brightness of this light"},
				}},
				map[string]any{"type": "numeric", "name": "linkquality", "property": "linkquality", "label": "Linkquality",
					"access": 1, "unit": "lqi", "value_min": 0, "value_max": 255, "category": "diagnostic",
					"description": "Link quality (signal strength)"},
			},
			"options": []any{},
		},
	}
	return mustJSON([]any{coordinator, bulb})
}

func (z *zigbee2MQTT) announce(time.Time) []message {
	return []message{
		{topic: z2mBridgeState, retain: true, payload: []byte(`{"state":"online"}`)},
		{topic: z2mDevices, retain: true, payload: z2mDevicesPayload()},
		{topic: z2mLampAvail, retain: true, payload: []byte(`{"state":"online"}`)},
		z.state(),
	}
}

// state is the bulb's whole state, as Zigbee2MQTT publishes it.
func (z *zigbee2MQTT) state() message {
	state := "OFF"
	if z.on {
		state = "ON"
	}
	return message{topic: z2mLampTopic,
		payload: fmt.Appendf(nil, `{"state":"%s","brightness":%d,"linkquality":%d}`, state, z.brightness, z.linkquality)}
}

func (z *zigbee2MQTT) obey(topic string, payload []byte) ([]message, error) {
	if topic == z2mLampGet {
		return []message{z.state()}, nil
	}
	attribute, ok := strings.CutPrefix(topic, z2mLampSet)
	if !ok || attribute != "" && !strings.HasPrefix(attribute, "/") {
		return nil, fmt.Errorf("no command on %q", topic)
	}
	attribute = strings.TrimPrefix(attribute, "/")
	fields, err := z2mFields(attribute, payload)
	if err != nil {
		return nil, err
	}
	on, brightness := z.on, z.brightness
	if raw, ok := fields["state"]; ok {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, fmt.Errorf("state %s is not a string", raw)
		}
		switch strings.ToUpper(s) {
		case "ON":
			on = true
		case "OFF":
			on = false
		case "TOGGLE":
			on = !on
		default:
			return nil, fmt.Errorf("state %q is not ON, OFF or TOGGLE", s)
		}
	}
	if raw, ok := fields["brightness"]; ok {
		var b float64
		if json.Unmarshal(raw, &b) != nil || b < 0 || b > z2mMaxBright {
			return nil, fmt.Errorf("brightness %s is not a number from 0 to %d", raw, z2mMaxBright)
		}
		// Zigbee2MQTT: brightness 0 turns the light off, any other turns it on.
		if b == 0 {
			on = false
		} else {
			on, brightness = true, int(b+0.5)
		}
	}
	if _, ok := fields["state"]; !ok {
		if _, ok := fields["brightness"]; !ok {
			return nil, fmt.Errorf("payload %q sets neither state nor brightness", payload)
		}
	}
	z.on, z.brightness = on, brightness
	return []message{z.state()}, nil
}

// z2mFields reads a command as Zigbee2MQTT does: a JSON object; on
// .../set/<attribute>, the payload is that attribute's value; a payload that
// is not JSON on .../set is the state.
func z2mFields(attribute string, payload []byte) (map[string]json.RawMessage, error) {
	if attribute != "" {
		value := payload
		if !json.Valid(value) {
			value = mustJSON(string(payload))
		}
		return map[string]json.RawMessage{attribute: value}, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err == nil && fields != nil {
		return fields, nil
	}
	if p := bytes.TrimSpace(payload); len(p) > 0 && !json.Valid(p) {
		return map[string]json.RawMessage{"state": mustJSON(string(p))}, nil
	}
	return nil, fmt.Errorf("payload %q is not a JSON object", payload)
}

// report is an attribute report: the link quality drifts a little.
func (z *zigbee2MQTT) report(time.Time) []message {
	z.linkquality = min(max(z.linkquality+z.rng.IntN(7)-3, 30), 255)
	return []message{z.state()}
}

func (*zigbee2MQTT) goodbye() []message {
	return []message{{topic: z2mBridgeState, retain: true, payload: []byte(`{"state":"offline"}`)}}
}
