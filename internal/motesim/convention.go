package motesim

import (
	"fmt"
	"time"
)

// Next to the motes, Run simulates one device of each convention the hub
// understands (Home Assistant discovery, Zigbee2MQTT, Tasmota, Homie), each
// speaking it as the real thing does. What such a device says and obeys is
// a convention, pure and independent of MQTT; conventionDevice runs it over
// paho.

// Names of the devices of other conventions (Config.Devices).
const (
	DeviceHomeAssistant = "homeassistant" // a Home Assistant MQTT-discovery sensor and switch, one device
	DeviceZigbee2MQTT   = "zigbee2mqtt"   // a Zigbee2MQTT bridge with one dimmable bulb
	DeviceTasmota       = "tasmota"       // a Tasmota plug with energy metering
	DeviceHomie         = "homie"         // a Homie 4 thermostat
)

// DeviceNames are the names of every device of another convention, in the
// order Run starts them.
func DeviceNames() []string {
	return []string{DeviceHomeAssistant, DeviceZigbee2MQTT, DeviceTasmota, DeviceHomie}
}

// message is one MQTT message a device publishes.
type message struct {
	topic   string
	qos     byte
	retain  bool
	payload []byte
}

// A convention is what a simulated device of one convention says and obeys.
// Its methods are called from the device's goroutine only, so it keeps its
// state without locks; they return the messages to publish, in order.
type convention interface {
	// name is the device's name in the logs, and its client id is
	// "motesim-" + name.
	name() string
	// filters are the topic filters of every topic the device publishes or
	// subscribes to: what its MQTT user must be allowed to read and write.
	filters() []string
	// will is the message the broker publishes when the device vanishes;
	// ok is false for a convention without one.
	will() (m message, ok bool)
	// subscriptions are the filters of its commands, subscribed at QoS 1
	// after every connect.
	subscriptions() []string
	// announce is what the device publishes after each connect, once its
	// subscriptions are acknowledged: availability, discovery, states.
	announce(now time.Time) []message
	// obey handles a message on one of the subscriptions, and returns the
	// answer; an error says why it was ignored.
	obey(topic string, payload []byte) ([]message, error)
	// report is the periodic telemetry, every Config.ReportInterval.
	report(now time.Time) []message
	// goodbye is what the device publishes before it disconnects on
	// purpose (its Will is then not sent).
	goodbye() []message
}

// newConvention is the device of the given name (one of DeviceNames), the
// n-th started: n seeds its readings apart from the motes' and the other
// devices'.
func newConvention(name string, cfg *Config, n int) (convention, error) {
	seed := deviceSeedBase + n
	switch name {
	case DeviceHomeAssistant:
		return newHomeAssistant(cfg.Seed, seed), nil
	case DeviceZigbee2MQTT:
		return newZigbee2MQTT(cfg.Seed, seed), nil
	case DeviceTasmota:
		return newTasmota(cfg.Seed, seed), nil
	case DeviceHomie:
		return newHomie(cfg.Seed, seed), nil
	}
	return nil, fmt.Errorf("%w: no device %q (want one of %v)", ErrBadConfig, name, DeviceNames())
}

// deviceSeedBase puts the devices' random streams after any mote's.
const deviceSeedBase = 1 << 20

// Filters are the topic filters of every topic a Run with cfg publishes or
// subscribes to: the motes' subtree and each device's topics. An MQTT user
// with read and write access to them can run the simulator. It fails for
// a Config Run would refuse.
func Filters(cfg Config) ([]string, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	filters := []string{cfg.Prefix + "/#"}
	for i, name := range cfg.Devices {
		conv, err := newConvention(name, &cfg, i)
		if err != nil {
			return nil, err
		}
		filters = append(filters, conv.filters()...)
	}
	return filters, nil
}
