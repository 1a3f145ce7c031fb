package devices

import "encoding/json"

// The internal plug-in API: how a convention (Home Assistant, Homie,
// Zigbee2MQTT, Tasmota) plugs into the core.
//
//  1. It claims its discovery and meta topics. Apply offers every message
//     first to each convention listed in New; handle answers ok=false for a
//     message that is not one of its own, which the core then treats as
//     state (routes) or, failing that, as HARDWARIO or plain JSON.
//  2. It turns what it read into declarations and hands them to
//     m.declare(source, decls). The core does the rest: it binds state and
//     availability topics to entities (several entities of several devices
//     may share a topic), feeds them the last payload already seen on those
//     topics (retained messages arrive in any order) and drops the
//     heuristic entities those topics made, reads and normalises values,
//     computes availability, battery and link quality, holds the bounds of
//     Config, encodes commands and confirms them.
//
// A source names what declared, usually one discovery topic
// ("homeassistant/switch/plug/config", "zigbee2mqtt/bridge/devices").
// declare replaces everything the source declared before; declare(source,
// nil) removes it. Several sources may add entities to one device (Home
// Assistant sends one config per entity, grouped by device identifiers);
// a device with no entities from any source is not shown (Devices,
// Device, Changes), and goes when no source declares it.
//
// Helpers every convention needs: jsonField (dotted JSON paths), onOff
// (ON/OFF/true/false and custom payloads to a boolean), parseNumber ("21.5"
// as text or JSON), textOf, confirmText and confirmJSON (what confirms a
// command), boolJSON and numberJSON (normalised values).
//
// In a batch (Model.ApplyAll) declare replaces the parts at once and builds
// the devices later, once (batch.go); a convention notices nothing. A
// convention that would declare a source anew after each of many messages,
// each only adding to what it knew (Homie 3/4's attributes), calls
// m.declareLater(source, scope, topics, decls) instead: decls is called
// once, when the declaration could first show; before it changes or
// removes what it knew, it calls m.settle(source).
//
// A convention keeps whatever state it needs between messages (Homie's
// attributes arrive one topic at a time); it bounds it with m.cfg
// (MaxDevices, MaxTopics) and skips discovery payloads longer than
// m.cfg.MaxDiscoveryBytes through m.oversized(msg), which counts them; it
// counts a discovery payload it cannot read with m.malformed(). By custom a
// source is "<convention>:<discovery topic>"; sources starting with
// "heuristic:" are the core's.

// A convention understands a family of devices from its discovery or meta
// topics.
type convention interface {
	// handle takes msg if its topic is one of the convention's discovery or
	// meta topics: it declares what it learnt through m.declare and returns
	// what changed, with ok true. ok false leaves msg to the core.
	handle(m *Model, msg Message) (changes Changes, ok bool)
}

// A declaration is what one source says exists: one device with its
// entities.
type declaration struct {
	// device is the identity and metadata of the device: ID (required:
	// "<convention>:<native id>"), Name, Convention, Model, Manufacturer,
	// ViaDevice, Area. Entities, Availability, Battery, LinkQuality and Updated
	// are ignored: the core computes them. When several sources declare
	// one device, the first non-empty value of each field, in the order of
	// the sources' names, wins.
	device   Device
	entities []entitySpec
	// availability binds topics to the device's availability; with none
	// from any source the device's availability is unknown.
	availability []availabilitySpec
	// availabilityMode combines several bindings as Home Assistant's
	// availability_mode: "latest" (the default: the last one received
	// decides), "any" (online when one is online) or "all" (online when
	// all are online, offline as soon as one is offline).
	availabilityMode string
	// expand binds topics whose JSON payloads become one entity per leaf
	// (Tasmota's SENSOR, plain JSON).
	expand []expandSpec
}

// An entitySpec is one declared entity and how to read and command it.
type entitySpec struct {
	// Entity: ID (unique within the device), Name, Kind, Type, Unit,
	// DeviceClass, StateClass, Topic (where its state arrives; "" for none),
	// Field (its dotted JSON path in that payload), Note, Control (nil:
	// read-only). Value and Updated are the core's.
	Entity
	// read turns a payload on Entity.Topic into the normalised value
	// (JSON of Entity.Type); ok false leaves the value as it was. nil: the
	// core's reading (readValue): Field, then normalised to Type.
	read func(payload []byte) (value json.RawMessage, ok bool)
	// encode turns a command's value, already checked against Kind and
	// Control (a boolean for a switch or light, a number within Min..Max,
	// one of Options, null for a button), into the payload for
	// Control.Topic and the Confirm that will confirm it (zero: nothing
	// does). nil: not commandable, even with a Control.
	encode func(value json.RawMessage) (payload []byte, confirm Confirm, err error)
	// parseCommand reads a payload published directly on Control.Topic
	// (not through Model.Command) as the value it asks for, so that
	// ConfirmFor can confirm it: ok false when it asks for nothing the
	// model can confirm (TOGGLE). nil: read, else readValue.
	parseCommand func(payload []byte) (value json.RawMessage, ok bool)
	// also are more topics the same state arrives on (Tasmota's relay: text
	// on stat/<t>/POWER, {"POWER":"ON"} on stat/<t>/RESULT and
	// tele/<t>/STATE). Their value is the JSON at Field (the whole payload,
	// text read as a JSON string, when ""), read by read when set, else
	// normalised to Type. Commands are confirmed on Entity.Topic only.
	also []stateSource
	// hidden entities feed their device (Battery, LinkQuality) without being
	// listed in Device.Entities.
	hidden bool
}

// A stateSource is one more topic, and field within it, an entity's state
// arrives on.
type stateSource struct {
	Topic string
	Field string
}

// An availabilitySpec binds one topic to a device's availability.
type availabilitySpec struct {
	Topic string
	// Field is the dotted JSON path of the state within the payload ("":
	// the whole payload).
	Field string
	// Online and Offline are the payloads (text, or the JSON string's
	// content) meaning online and offline; default "online" and "offline".
	// Anything else leaves the binding unknown.
	Online, Offline string
	// read overrides Field, Online and Offline: it returns Online, Offline
	// or Unknown for a payload (Homie's $state: ready, lost, ...). A
	// payload that is neither online nor offline leaves the binding as it was.
	read func(payload []byte) string
}

// An expandSpec binds a topic whose JSON object payloads become one entity
// per leaf (number, boolean or string; dotted path), created as leaves first
// appear and kept afterwards. A payload that is no object is one leaf with
// the path "". Leaves that are already the Field of a declared entity on the
// same topic are left to it.
type expandSpec struct {
	Topic string
	// Field is the dotted path of the object to expand within the payload;
	// "" for the whole payload. Leaf paths include it.
	Field string
	// leaf makes the entity of a leaf the first time it appears: path is its
	// dotted path within the payload, value its JSON. The core fills Topic
	// and Field (path) when the hook leaves them empty, and ID (path, or
	// "value" for "") and Name when empty. ok false skips the leaf (Tasmota's
	// Time). nil: leafEntity.
	leaf func(path string, value json.RawMessage) (spec entitySpec, ok bool)
}

// oversized reports whether a discovery message is past MaxDiscoveryBytes,
// counting it: the convention then ignores it.
func (m *Model) oversized(msg Message) bool {
	if len(msg.Payload) <= m.cfg.MaxDiscoveryBytes {
		return false
	}
	m.stats.OversizedDiscoveries++
	return true
}

// malformed counts a discovery payload a convention could not read.
func (m *Model) malformed() { m.stats.MalformedDiscoveries++ }
