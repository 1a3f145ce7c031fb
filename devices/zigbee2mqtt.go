package devices

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/motehub/motehub/topics"
)

// Zigbee2MQTT (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html):
// the bridge's retained device list <base>/bridge/devices declares every
// device with its exposes; a device's state arrives as one JSON object on
// <base>/<friendly_name> (fields named by each expose's property), commands
// go as JSON to <base>/<friendly_name>/set, and
// <base>/<friendly_name>/availability says online or offline. The base is
// zigbee2mqtt, or any other whose bridge/devices payload is a Zigbee2MQTT
// device list.

// zigbeeDefaultBase is Zigbee2MQTT's default base topic.
const zigbeeDefaultBase = "zigbee2mqtt"

// maxZigbeeBases bounds the base topics followed besides the default (one
// per Zigbee2MQTT instance on the broker).
const maxZigbeeBases = 16

// maxExposeDepth bounds the nesting of exposes followed (a light's
// features, a composite's features within them).
const maxExposeDepth = 4

// Access bits of an expose.
const (
	zigbeePublished = 1 // the property is in the device's state JSON
	zigbeeSettable  = 2 // it can be set through <name>/set
)

// zigbee2mqtt is the Zigbee2MQTT convention. It keeps the base topics whose
// device list it has seen (at most maxZigbeeBases besides the default), to
// claim their bridge topics.
type zigbee2mqtt struct {
	bases map[string]bool
}

func newZigbee2MQTT() *zigbee2mqtt {
	return &zigbee2mqtt{bases: map[string]bool{zigbeeDefaultBase: true}}
}

// handle takes <base>/bridge/devices (declaring the list), the other
// <base>/bridge/... topics of a known base except bridge/state (the
// coordinator's availability, bound by the declaration), and the /get and
// /set/<property> commands of a known base, which are not states.
func (z *zigbee2mqtt) handle(m *Model, msg Message) (Changes, bool) {
	base, ok := strings.CutSuffix(msg.Topic, "/bridge/devices")
	if ok {
		return z.deviceList(m, base, msg)
	}
	for b := range z.bases {
		rest, ok := strings.CutPrefix(msg.Topic, b+"/")
		if !ok {
			continue
		}
		if bridge, ok := strings.CutPrefix(rest, "bridge/"); ok {
			return Changes{}, bridge != "state"
		}
		if isZigbeeRequest(rest) {
			return Changes{}, true
		}
	}
	return Changes{}, false
}

// isZigbeeRequest reports whether rest (a topic below a base) is a request
// to a device rather than its state: <name>/get, <name>/get/<property>,
// <name>/set/<property> (<name>/set itself the core already leaves alone).
func isZigbeeRequest(rest string) bool {
	levels := strings.Split(rest, "/")
	for i, level := range levels {
		if i > 0 && (level == "get" || level == "set" && i < len(levels)-1) {
			return true
		}
	}
	return false
}

// deviceList reads a bridge/devices payload on base and declares its
// devices, replacing the previous list of that base.
func (z *zigbee2mqtt) deviceList(m *Model, base string, msg Message) (Changes, bool) {
	known := z.bases[base]
	if len(msg.Payload) == 0 {
		if !known {
			return Changes{}, false
		}
		if base != zigbeeDefaultBase {
			delete(z.bases, base)
		}
		return m.declare(Zigbee2MQTT+":"+msg.Topic, nil), true
	}
	if m.oversized(msg) {
		return Changes{}, known
	}
	list, ok := parseZigbeeDevices(msg.Payload)
	if !ok {
		if known {
			m.malformed()
		}
		return Changes{}, known
	}
	if !known {
		if len(list) == 0 || len(z.bases) > maxZigbeeBases || topics.ValidateTopic(base) != nil {
			return Changes{}, false
		}
		z.bases[base] = true
	}
	return m.declare(Zigbee2MQTT+":"+msg.Topic, zigbeeDeclarations(base, list, m.cfg.MaxEntities)), true
}

// zigbeeDevice is one device of a bridge/devices list.
type zigbeeDevice struct {
	IEEEAddress  string            `json:"ieee_address"`
	FriendlyName string            `json:"friendly_name"`
	Type         string            `json:"type"` // Coordinator, Router, EndDevice
	Disabled     bool              `json:"disabled"`
	Definition   *zigbeeDefinition `json:"definition"` // null for the coordinator and unsupported devices
}

type zigbeeDefinition struct {
	Model   string         `json:"model"`
	Vendor  string         `json:"vendor"`
	Exposes []zigbeeExpose `json:"exposes"`
}

// zigbeeExpose is one expose (https://www.zigbee2mqtt.io/guide/usage/exposes.html):
// generic (binary, numeric, enum, text, list, composite) or specific
// (light, switch, lock, cover, climate, fan) with features.
type zigbeeExpose struct {
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Label     string            `json:"label"`
	Property  string            `json:"property"`
	Endpoint  string            `json:"endpoint"`
	Access    int               `json:"access"`
	Unit      string            `json:"unit"`
	ValueMin  *float64          `json:"value_min"`
	ValueMax  *float64          `json:"value_max"`
	ValueStep *float64          `json:"value_step"`
	ValueOn   json.RawMessage   `json:"value_on"`
	ValueOff  json.RawMessage   `json:"value_off"`
	Values    []json.RawMessage `json:"values"`
	Features  []zigbeeExpose    `json:"features"`
}

// parseZigbeeDevices reads a bridge/devices payload: ok is false unless it
// is a JSON array. Elements that are no Zigbee2MQTT device (no IEEE
// address, no friendly name, no type) are skipped, so that one odd device
// does not hide the others.
func parseZigbeeDevices(payload []byte) ([]zigbeeDevice, bool) {
	var raw []json.RawMessage
	if json.Unmarshal(payload, &raw) != nil {
		return nil, false
	}
	list := make([]zigbeeDevice, 0, len(raw))
	for _, r := range raw {
		var d zigbeeDevice
		if json.Unmarshal(r, &d) != nil || d.IEEEAddress == "" || d.FriendlyName == "" || d.Type == "" {
			continue
		}
		list = append(list, d)
	}
	return list, true
}

// zigbeeDeclarations are the declarations of a device list on base: one per
// enabled device, the coordinator (whose availability is the bridge's)
// being every other device's via_device. maxEntities bounds the entities
// built per device.
func zigbeeDeclarations(base string, list []zigbeeDevice, maxEntities int) []declaration {
	via := ""
	for _, d := range list {
		if d.Type == "Coordinator" {
			via = zigbeeID(d)
			break
		}
	}
	decls := make([]declaration, 0, len(list))
	for _, d := range list {
		stateTopic := base + "/" + d.FriendlyName
		if d.Disabled || topics.ValidateTopic(stateTopic) != nil {
			continue
		}
		decl := declaration{device: Device{ID: zigbeeID(d), Name: d.FriendlyName, Convention: Zigbee2MQTT}}
		switch {
		case d.Type == "Coordinator":
			decl.entities = []entitySpec{zigbeeBridgeEntity(base + "/bridge/state")}
			decl.availability = []availabilitySpec{{Topic: base + "/bridge/state", read: zigbeeAvailability}}
		case d.Definition == nil:
			// Unsupported, or not interviewed yet: its state JSON, field by field.
			decl.device.ViaDevice = via
			decl.expand = []expandSpec{{Topic: stateTopic}}
			decl.availability = []availabilitySpec{{Topic: stateTopic + "/availability", read: zigbeeAvailability}}
		default:
			decl.device.ViaDevice = via
			decl.device.Model = d.Definition.Model
			decl.device.Manufacturer = d.Definition.Vendor
			var features []zigbeeFeature
			flattenExposes(d.Definition.Exposes, "", "", "", 0, maxEntities, &features)
			seen := make(map[string]bool, len(features))
			for _, f := range features {
				if seen[f.path] {
					continue // one property exposed twice (a light's state and a switch's): the first says it
				}
				seen[f.path] = true
				decl.entities = append(decl.entities, f.entity(stateTopic))
			}
			decl.availability = []availabilitySpec{{Topic: stateTopic + "/availability", read: zigbeeAvailability}}
			if len(decl.entities) == 0 {
				continue // a definition that exposes nothing
			}
		}
		decls = append(decls, decl)
	}
	return decls
}

func zigbeeID(d zigbeeDevice) string { return Zigbee2MQTT + ":" + d.IEEEAddress }

// zigbeeAvailability reads an availability payload: {"state":"online"}
// (Zigbee2MQTT 1.x and later) or a bare online / offline (older).
func zigbeeAvailability(payload []byte) string {
	state := textOf(payload)
	if raw, ok := jsonField(payload, "state"); ok {
		state = textOf(raw)
	}
	switch state {
	case "online":
		return Online
	case "offline":
		return Offline
	}
	return Unknown
}

// zigbeeBridgeEntity is the coordinator's one entity: the bridge's state
// (online, offline), so that the device every other one goes through is
// shown.
func zigbeeBridgeEntity(topic string) entitySpec {
	return entitySpec{
		Entity: Entity{ID: "bridge", Name: "Bridge", Kind: KindSensor, Type: TypeEnum, Topic: topic},
		read: func(payload []byte) (json.RawMessage, bool) {
			switch zigbeeAvailability(payload) {
			case Online:
				return stringJSON(Online), true
			case Offline:
				return stringJSON(Offline), true
			}
			return nil, false
		},
	}
}

// zigbeeFeature is one leaf of a device's exposes: one value of its state
// JSON.
type zigbeeFeature struct {
	zigbeeExpose
	path   string // the dotted path of the value in the state JSON: property, or composite.property
	parent string // the specific expose it is a feature of (light, switch, climate, ...), "" for none
	group  string // the label of the composite it is a feature of, "" for none
}

// flattenExposes appends the leaves of exposes to out, at most max of them:
// specific exposes and composites are followed into their features (a
// composite's property prefixes its features' paths, its label their
// names), up to maxExposeDepth.
func flattenExposes(exposes []zigbeeExpose, parent, group, prefix string, depth, max int, out *[]zigbeeFeature) {
	if depth >= maxExposeDepth {
		return
	}
	for _, e := range exposes {
		if len(*out) >= max {
			return
		}
		switch e.Type {
		case "binary", "numeric", "enum", "text", "list":
			if e.Property == "" || strings.Contains(e.Property, ".") {
				continue
			}
			*out = append(*out, zigbeeFeature{zigbeeExpose: e, path: prefix + e.Property, parent: parent, group: group})
		case "composite":
			p := prefix
			if e.Property != "" {
				p = prefix + e.Property + "."
			}
			flattenExposes(e.Features, parent, zigbeeLabel(e), p, depth+1, max, out)
		default: // light, switch, lock, cover, climate, fan, and specific types to come
			flattenExposes(e.Features, e.Type, group, prefix, depth+1, max, out)
		}
	}
}

// entity is the entity of a feature, its state on stateTopic.
func (f zigbeeFeature) entity(stateTopic string) entitySpec {
	published := f.Access&zigbeePublished != 0
	settable := f.Access&zigbeeSettable != 0
	e := Entity{ID: f.path, Name: zigbeeLabel(f.zigbeeExpose), Unit: f.Unit, Field: f.path}
	if f.group != "" {
		e.Name = f.group + " " + strings.ToLower(e.Name[:1]) + e.Name[1:]
	}
	if published {
		e.Topic = stateTopic
	}
	if settable {
		e.Control = &Control{Topic: stateTopic + "/set"}
	}
	// Link quality is shown as the device's (Device.LinkQuality), not as an entity.
	spec := entitySpec{hidden: f.path == "linkquality"}
	switch f.Type {
	case "binary":
		e.Type = TypeBoolean
		switch {
		case settable && f.parent == "light":
			e.Kind = KindLight
		case settable:
			e.Kind = KindSwitch
		default:
			e.Kind = KindBinarySensor
		}
		on, off := f.ValueOn, f.ValueOff
		if len(on) == 0 || len(off) == 0 {
			on, off = json.RawMessage("true"), json.RawMessage("false")
		}
		spec.read = func(payload []byte) (json.RawMessage, bool) {
			raw, ok := jsonField(payload, f.path)
			if !ok {
				return nil, false
			}
			switch canonicalJSON(raw) {
			case canonicalJSON(on):
				return boolJSON(true), true
			case canonicalJSON(off):
				return boolJSON(false), true
			}
			return nil, false
		}
		spec.encode = func(value json.RawMessage) ([]byte, Confirm, error) {
			want := off
			if isOn, _ := onOff(value, "", ""); isOn {
				want = on
			}
			return f.command(stateTopic, want, published)
		}
	case "numeric":
		e.Type = TypeNumber
		e.Kind = KindSensor
		if settable {
			e.Kind = KindNumber
			e.Control.Min, e.Control.Max, e.Control.Step = f.ValueMin, f.ValueMax, f.ValueStep
		}
		e.DeviceClass, e.StateClass = zigbeeDeviceClass(f.Name, published && !settable)
		spec.encode = func(value json.RawMessage) ([]byte, Confirm, error) {
			return f.command(stateTopic, value, published)
		}
	case "enum":
		e.Type = TypeEnum
		e.Kind = KindSensor
		options := make([]string, 0, len(f.Values))
		byOption := make(map[string]json.RawMessage, len(f.Values))
		for _, v := range f.Values {
			o := textOf(v)
			if _, dup := byOption[o]; !dup {
				options = append(options, o)
				byOption[o] = v
			}
		}
		if settable {
			e.Kind = KindSelect
			e.Control.Options = options
		}
		spec.encode = func(value json.RawMessage) ([]byte, Confirm, error) {
			raw, ok := byOption[textOf(value)]
			if !ok {
				return nil, Confirm{}, ErrBadValue
			}
			return f.command(stateTopic, raw, published)
		}
	case "text":
		e.Type = TypeText
		e.Kind = KindText
		spec.encode = func(value json.RawMessage) ([]byte, Confirm, error) {
			return f.command(stateTopic, stringJSON(textOf(value)), published)
		}
	default: // list
		e.Type = TypeJSON
		e.Kind = KindText
		e.Note = "a list, shown as the device sends it"
		e.Control = nil
	}
	if e.Control == nil {
		spec.encode = nil
	}
	spec.Entity = e
	return spec
}

// command is the payload setting the feature to want (JSON) on
// <stateTopic>/set, {"brightness":120}, nested for a composite's feature
// ({"color":{"x":0.3}}); published features are confirmed by the same value
// at the same path of the next state.
func (f zigbeeFeature) command(stateTopic string, want json.RawMessage, published bool) ([]byte, Confirm, error) {
	payload := nestJSON(f.path, want)
	if !published {
		return payload, Confirm{}, nil
	}
	return payload, confirmJSON(stateTopic, f.path, want), nil
}

// nestJSON is the JSON object holding value at a dotted path: "a.b", 1 is
// {"a":{"b":1}}.
func nestJSON(path string, value json.RawMessage) []byte {
	var b bytes.Buffer
	levels := strings.Split(path, ".")
	for _, level := range levels {
		b.WriteByte('{')
		b.Write(stringJSON(level))
		b.WriteByte(':')
	}
	b.Write(value)
	for range levels {
		b.WriteByte('}')
	}
	return b.Bytes()
}

// zigbeeLabel is an expose's label, else its name made readable
// (color_temp: Color temp), with its endpoint when it has one.
func zigbeeLabel(e zigbeeExpose) string {
	label := e.Label
	if label == "" {
		label = e.Name
		if label == "" {
			label = e.Property
		}
		label = strings.ReplaceAll(label, "_", " ")
		if label != "" {
			label = strings.ToUpper(label[:1]) + label[1:]
		}
	}
	if e.Endpoint != "" {
		label += " (" + e.Endpoint + ")"
	}
	return label
}

// zigbeeDeviceClass is the Home Assistant device class and state class of a
// numeric expose, by its name; measured says whether it is a reading (not a
// setting).
func zigbeeDeviceClass(name string, measured bool) (deviceClass, stateClass string) {
	switch name {
	case "temperature", "local_temperature", "device_temperature":
		deviceClass = "temperature"
	case "humidity":
		deviceClass = "humidity"
	case "pressure":
		deviceClass = "pressure"
	case "illuminance", "illuminance_lux":
		deviceClass = "illuminance"
	case "battery":
		deviceClass = "battery"
	case "voltage":
		deviceClass = "voltage"
	case "current":
		deviceClass = "current"
	case "power":
		deviceClass = "power"
	case "co2":
		deviceClass = "carbon_dioxide"
	case "linkquality":
		deviceClass = "signal_strength"
	case "energy":
		if measured {
			return "energy", "total_increasing"
		}
		return "energy", ""
	}
	if deviceClass != "" && measured {
		stateClass = "measurement"
	}
	return deviceClass, stateClass
}
