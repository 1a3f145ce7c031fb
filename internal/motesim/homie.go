package motesim

import (
	"fmt"
	"strconv"
	"time"
)

// The Homie device: a thermostat speaking the Homie convention 4.0
// (https://homieiot.github.io/specification/spec-core-v4_0_0/). Every
// attribute and property value is retained, QoS 1, as Homie requires:
//
//	homie/thermostat/$state                       init, then ready once every attribute is out; the Will is lost;
//	                                              disconnected when it stops
//	homie/thermostat/$homie, $name, $implementation, $nodes (heater)
//	homie/thermostat/heater/$name, $type, $properties (power,temperature)
//	homie/thermostat/heater/power/$name, $datatype boolean, $settable true
//	homie/thermostat/heater/temperature/$name, $datatype float, $unit °C
//	homie/thermostat/heater/power                 true / false: at connect and after each command
//	homie/thermostat/heater/temperature           21.5: at connect and every ReportInterval
//	homie/thermostat/heater/power/set             true / false, exactly: the command
//
// $extensions, required by Homie 4 and empty for a device without
// extensions, is not published: an empty retained payload deletes a
// retained message instead of storing one.
const (
	homieRoot        = "homie/thermostat"
	homieState       = homieRoot + "/$state"
	homieNode        = homieRoot + "/heater"
	homiePower       = homieNode + "/power"
	homiePowerSet    = homiePower + "/set"
	homieTemperature = homieNode + "/temperature"
)

type homie struct {
	thermo *thermometer
	power  bool
}

func newHomie(seed uint64, n int) *homie {
	return &homie{thermo: newThermometer(seed, n)}
}

func (*homie) name() string { return DeviceHomie }

func (*homie) filters() []string { return []string{homieRoot + "/#"} }

func (*homie) will() (message, bool) { return homieAttr(homieState, "lost"), true }

func (*homie) subscriptions() []string { return []string{homiePowerSet} }

// homieAttr is a retained QoS 1 message, as Homie publishes everything.
func homieAttr(topic, value string) message {
	return message{topic: topic, qos: 1, retain: true, payload: []byte(value)}
}

func (h *homie) announce(time.Time) []message {
	return []message{
		homieAttr(homieState, "init"),
		homieAttr(homieRoot+"/$homie", "4.0"),
		homieAttr(homieRoot+"/$name", "Hall thermostat"),
		homieAttr(homieRoot+"/$implementation", "motesim"),
		homieAttr(homieRoot+"/$nodes", "heater"),
		homieAttr(homieNode+"/$name", "Heater"),
		homieAttr(homieNode+"/$type", "thermostat"),
		homieAttr(homieNode+"/$properties", "power,temperature"),
		homieAttr(homiePower+"/$name", "Power"),
		homieAttr(homiePower+"/$datatype", "boolean"),
		homieAttr(homiePower+"/$settable", "true"),
		homieAttr(homieTemperature+"/$name", "Temperature"),
		homieAttr(homieTemperature+"/$datatype", "float"),
		homieAttr(homieTemperature+"/$unit", "°C"),
		h.powerValue(),
		h.temperatureValue(),
		homieAttr(homieState, "ready"),
	}
}

func (h *homie) powerValue() message { return homieAttr(homiePower, strconv.FormatBool(h.power)) }

func (h *homie) temperatureValue() message {
	return homieAttr(homieTemperature, strconv.FormatFloat(float64(h.thermo.now)/10, 'f', 1, 64))
}

// obey sets the power from "true" or "false", exactly as Homie's boolean
// payloads are, and echoes it on the property topic.
func (h *homie) obey(topic string, payload []byte) ([]message, error) {
	if topic != homiePowerSet {
		return nil, fmt.Errorf("no command on %q", topic)
	}
	switch string(payload) {
	case "true":
		h.power = true
	case "false":
		h.power = false
	default:
		return nil, fmt.Errorf("payload %q is not a Homie boolean (true or false)", payload)
	}
	return []message{h.powerValue()}, nil
}

func (h *homie) report(time.Time) []message {
	h.thermo.next()
	return []message{h.temperatureValue()}
}

func (*homie) goodbye() []message { return []message{homieAttr(homieState, "disconnected")} }
