package devices

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/motehub/motehub/topics"
)

// Homie (https://homieiot.github.io/specification/): Homie 3 and 4 announce
// a device one retained attribute at a time, in any order
// (homie/<device>/$name, $nodes, <node>/$properties,
// <node>/<property>/$datatype, ...); Homie 5 in one retained JSON,
// homie/5/<device>/$description. Both give the device's state on $state and
// each property's value as text on homie/[5/]<device>/<node>/<property>;
// a settable property takes text on .../<property>/set and answers on its
// own topic.
//
// $state is availability: ready is online, and so is alert (Homie 3/4:
// connected, but something is wrong); disconnected and lost are offline,
// and so is sleeping (a sleeping device does not hear a command: Homie's
// /set messages are not retained); init (starting up) says nothing: the
// availability stays as it was, unknown at first.

const (
	homieRoot           = "homie/"
	homie5Root          = "homie/5/" // so a Homie 3/4 device may not be called 5
	homieStateAttribute = "$state"
)

// Bounds of what the convention keeps for Homie 3/4 devices, whose
// attributes it gathers until they describe the device (besides
// Config.MaxDevices devices, with Config.MaxKeptBytes of attributes all
// devices together).
const (
	maxHomieAttributes     = 2048     // attributes kept per device
	maxHomieAttributeBytes = 16 << 10 // the longest attribute kept ($properties of many properties)
)

// homie is the Homie convention: what it knows of each device, by topic
// base (homie/<id> or homie/5/<id>); at most Config.MaxDevices of them.
type homie struct {
	devices map[string]*homieDevice
	bytes   int // the attributes' bytes, all devices together; at most Config.MaxKeptBytes
}

func newHomie() *homie { return &homie{devices: make(map[string]*homieDevice)} }

// homieDevice is what the convention knows of one device.
type homieDevice struct {
	id    string            // the device's id in its topics
	base  string            // homie/<id> or homie/5/<id>
	attrs map[string]string // Homie 3/4: by topic below base ("$name", "sensor/$properties", ...)
	desc  *homieDescription // Homie 5: its $description, read
}

// A homieDescription is a device as Homie 5's $description says it, or as
// the attributes of Homie 3/4 do.
type homieDescription struct {
	Name   string
	Parent string // Homie 5: the id of the device it is a child of
	Nodes  []homieNode
}

type homieNode struct {
	ID, Name   string
	Properties []homieProperty
}

type homieProperty struct {
	ID       string `json:"-"`
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Format   string `json:"format"`
	Unit     string `json:"unit"`
	Settable bool   `json:"settable"`
	Retained *bool  `json:"retained"` // nil: true
}

// handle takes the attribute topics of Homie devices (a level starting with
// $), except $state, which the declaration binds as availability.
func (h *homie) handle(m *Model, msg Message) (Changes, bool) {
	rest, ok := strings.CutPrefix(msg.Topic, homieRoot)
	if !ok {
		return Changes{}, false
	}
	v5 := false
	if r, ok := strings.CutPrefix(rest, "5/"); ok {
		v5, rest = true, r
	}
	id, attr, _ := strings.Cut(rest, "/")
	if strings.HasPrefix(id, "$") {
		return Changes{}, true // homie/$broadcast/...: to devices, not from them
	}
	if !isHomieAttribute(attr) || attr == homieStateAttribute || !validHomieID(id) {
		return Changes{}, false
	}
	base := homieRoot + id
	if v5 {
		base = homie5Root + id
		if attr != "$description" {
			return Changes{}, true // $log, $alert/..., <node>/<property>/$target
		}
		return h.description(m, id, base, msg), true
	}
	if !homieKeeps(attr) {
		return Changes{}, true // $homie, $stats/..., $fw/..., $implementation, $type, ...
	}
	return h.attribute(m, id, base, attr, msg.Payload), true
}

// isHomieAttribute reports whether a topic below a device is an attribute:
// one of its levels starts with $.
func isHomieAttribute(rest string) bool {
	return strings.HasPrefix(rest, "$") || strings.Contains(rest, "/$")
}

// validHomieID reports whether id can name a device, node or property in
// a topic: Homie asks for [a-z0-9-], the model takes any single level
// that is no wildcard and not an attribute.
func validHomieID(id string) bool {
	return id != "" && !strings.HasPrefix(id, "$") && !strings.ContainsAny(id, "/+#") && topics.ValidateTopic(id) == nil
}

// homieKeeps reports whether a Homie 3/4 attribute says something the
// model shows: the names, nodes, properties and each property's datatype,
// unit, format, settable and retained.
func homieKeeps(attr string) bool {
	levels := strings.Split(attr, "/")
	switch len(levels) {
	case 1:
		return attr == "$name" || attr == "$nodes"
	case 2:
		return levels[1] == "$name" || levels[1] == "$properties"
	case 3:
		switch levels[2] {
		case "$name", "$datatype", "$unit", "$format", "$settable", "$retained":
			return true
		}
	}
	return false
}

// attribute records one Homie 3/4 attribute (an empty payload removes it)
// and declares the device anew when that changed it.
func (h *homie) attribute(m *Model, id, base, attr string, payload []byte) Changes {
	d := h.devices[base]
	value := string(payload)
	source := homieSource(base)
	if len(payload) == 0 {
		if d == nil {
			return Changes{}
		}
		if old, ok := d.attrs[attr]; ok {
			m.settle(source) // what it said before is declared before it goes
			delete(d.attrs, attr)
			h.bytes -= len(attr) + len(old)
		}
		if len(d.attrs) == 0 {
			delete(h.devices, base)
			return m.declare(source, nil)
		}
		return m.declare(source, d.declarations())
	}
	if len(payload) > maxHomieAttributeBytes {
		return Changes{}
	}
	if d == nil {
		if len(h.devices) >= m.cfg.MaxDevices {
			m.stats.RefusedDevices++
			return Changes{}
		}
		d = &homieDevice{id: id, base: base, attrs: make(map[string]string)}
		h.devices[base] = d
	}
	old, had := d.attrs[attr]
	if had && old == value {
		return Changes{} // a retained attribute again
	}
	if had {
		m.settle(source) // what it said before is declared before it changes
	}
	grow := len(value) - len(old)
	if !had {
		grow += len(attr)
	}
	if !had && len(d.attrs) >= maxHomieAttributes || h.bytes+grow > m.cfg.MaxKeptBytes {
		if len(d.attrs) == 0 {
			delete(h.devices, base)
		}
		m.stats.RefusedTopics++
		return Changes{}
	}
	d.attrs[attr] = value
	h.bytes += grow
	if had {
		return m.declare(source, d.declarations())
	}
	// A new attribute only adds to the device: in a batch (ApplyAll), the
	// device is declared once its attributes are all in, not after each.
	return m.declareLater(source, homieWatch(m.declared(source), base, attr), d.topicBound(), d.declarations)
}

// homieWatch is the topics whose messages a device's declaration reads
// otherwise once a new attribute is in: all of them while it is not
// declared, or when the attribute may add properties ($nodes, $properties);
// a property's own topic when its datatype comes (its value is read anew);
// none for the other attributes, names and units.
func homieWatch(declared bool, base, attr string) string {
	levels := strings.Split(attr, "/")
	switch {
	case !declared || attr == "$nodes" || len(levels) == 2 && levels[1] == "$properties":
		return base + "/"
	case len(levels) == 3 && levels[2] == "$datatype":
		return base + "/" + levels[0] + "/" + levels[1]
	}
	return ""
}

// topicBound is at most how many topics the device's declaration binds and
// commands: $state, and each property's topic and its /set.
func (d *homieDevice) topicBound() int {
	n := 1
	for node := range strings.SplitSeq(d.attrs["$nodes"], ",") {
		node = strings.TrimSuffix(strings.TrimSpace(node), "[]")
		if props := d.attrs[node+"/$properties"]; props != "" {
			n += 2 * (strings.Count(props, ",") + 1)
		}
	}
	return n
}

// description reads a Homie 5 $description (an empty payload removes the
// device) and declares the device.
func (h *homie) description(m *Model, id, base string, msg Message) Changes {
	if len(msg.Payload) == 0 {
		if _, ok := h.devices[base]; !ok {
			return Changes{}
		}
		delete(h.devices, base)
		return m.declare(homieSource(base), nil)
	}
	if m.oversized(msg) {
		return Changes{}
	}
	desc, ok := parseHomieDescription(msg.Payload, m.cfg.MaxEntities)
	if !ok {
		m.malformed()
		return Changes{}
	}
	d := h.devices[base]
	if d == nil {
		if len(h.devices) >= m.cfg.MaxDevices {
			m.stats.RefusedDevices++
			return Changes{}
		}
		d = &homieDevice{id: id, base: base}
		h.devices[base] = d
	}
	d.desc = desc
	return m.declare(homieSource(base), d.declarations())
}

func homieSource(base string) string { return Homie + ":" + base }

// parseHomieDescription reads a Homie 5 $description, keeping the order of
// its nodes and properties and at most maxProperties properties.
func parseHomieDescription(payload []byte, maxProperties int) (*homieDescription, bool) {
	var top struct {
		Name   string          `json:"name"`
		Parent string          `json:"parent"`
		Nodes  json.RawMessage `json:"nodes"`
	}
	if json.Unmarshal(payload, &top) != nil {
		return nil, false
	}
	desc := &homieDescription{Name: top.Name, Parent: top.Parent}
	if len(top.Nodes) == 0 {
		return desc, true
	}
	nodeIDs, nodes, ok := orderedObject(top.Nodes)
	if !ok {
		return nil, false
	}
	count := 0
	for _, nodeID := range nodeIDs {
		var n struct {
			Name       string          `json:"name"`
			Properties json.RawMessage `json:"properties"`
		}
		if json.Unmarshal(nodes[nodeID], &n) != nil {
			return nil, false
		}
		node := homieNode{ID: nodeID, Name: n.Name}
		if len(n.Properties) > 0 {
			propIDs, props, ok := orderedObject(n.Properties)
			if !ok {
				return nil, false
			}
			for _, propID := range propIDs {
				if count >= maxProperties {
					break
				}
				p := homieProperty{ID: propID}
				if json.Unmarshal(props[propID], &p) != nil {
					return nil, false
				}
				node.Properties = append(node.Properties, p)
				count++
			}
		}
		desc.Nodes = append(desc.Nodes, node)
	}
	return desc, true
}

// orderedObject reads a JSON object as its keys in order and its members.
func orderedObject(raw json.RawMessage) ([]string, map[string]json.RawMessage, bool) {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil || members == nil {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, false
	}
	keys := make([]string, 0, len(members))
	seen := make(map[string]bool, len(members))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		key, _ := t.(string)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil, nil, false
		}
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys, members, true
}

// describe is what a Homie 3/4 device's attributes say so far: the nodes
// of $nodes, each with the properties of its $properties.
func (d *homieDevice) describe() *homieDescription {
	desc := &homieDescription{Name: d.attrs["$name"]}
	for _, nodeID := range homieList(d.attrs["$nodes"]) {
		nodeID = strings.TrimSuffix(nodeID, "[]") // Homie 3's array nodes
		node := homieNode{ID: nodeID, Name: d.attrs[nodeID+"/$name"]}
		for _, propID := range homieList(d.attrs[nodeID+"/$properties"]) {
			at := nodeID + "/" + propID + "/"
			p := homieProperty{
				ID:       propID,
				Name:     d.attrs[at+"$name"],
				Datatype: d.attrs[at+"$datatype"],
				Format:   d.attrs[at+"$format"],
				Unit:     d.attrs[at+"$unit"],
				Settable: d.attrs[at+"$settable"] == "true",
			}
			if r, ok := d.attrs[at+"$retained"]; ok {
				retained := r != "false"
				p.Retained = &retained
			}
			node.Properties = append(node.Properties, p)
		}
		desc.Nodes = append(desc.Nodes, node)
	}
	return desc
}

// homieList splits a comma list, without empty items.
func homieList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// declarations is the device as the model shows it: one entity per
// property, availability from $state; none while it has no property.
func (d *homieDevice) declarations() []declaration {
	desc := d.desc
	if desc == nil {
		desc = d.describe()
	}
	decl := declaration{
		device:       Device{ID: Homie + ":" + d.id, Name: desc.Name, Convention: Homie},
		availability: []availabilitySpec{{Topic: d.base + "/" + homieStateAttribute, read: homieAvailability}},
	}
	if decl.device.Name == "" {
		decl.device.Name = d.id
	}
	if validHomieID(desc.Parent) {
		decl.device.ViaDevice = Homie + ":" + desc.Parent
	}
	// A property's name alone, unless two nodes have properties of that name.
	names := make(map[string]int)
	for _, n := range desc.Nodes {
		for _, p := range n.Properties {
			names[propertyName(p)]++
		}
	}
	for _, n := range desc.Nodes {
		if !validHomieID(n.ID) {
			continue
		}
		for _, p := range n.Properties {
			if !validHomieID(p.ID) {
				continue
			}
			name := propertyName(p)
			if names[name] > 1 {
				name = cmp.Or(n.Name, n.ID) + " " + name
			}
			decl.entities = append(decl.entities, p.entity(d.base+"/"+n.ID+"/"+p.ID, n.ID+"/"+p.ID, name))
		}
	}
	if len(decl.entities) == 0 {
		return nil // nothing to show yet
	}
	return []declaration{decl}
}

func propertyName(p homieProperty) string { return cmp.Or(p.Name, p.ID) }

// homieAvailability reads $state.
func homieAvailability(payload []byte) string {
	switch strings.TrimSpace(string(payload)) {
	case "ready", "alert":
		return Online
	case "disconnected", "lost", "sleeping":
		return Offline
	}
	return Unknown // init, or nothing the spec names
}

// entity is the entity of a property whose value arrives on topic.
func (p homieProperty) entity(topic, id, name string) entitySpec {
	e := Entity{ID: id, Name: name, Unit: p.Unit, Topic: topic}
	retained := p.Retained == nil || *p.Retained
	if !retained {
		e.Note = "an event: the device does not keep its value"
	}
	spec := entitySpec{}
	var encode func(value json.RawMessage) (string, bool)
	switch p.Datatype {
	case "boolean":
		e.Type, e.Kind = TypeBoolean, KindBinarySensor
		if p.Settable {
			e.Kind = KindSwitch
		}
		encode = func(value json.RawMessage) (string, bool) {
			on, ok := onOff(value, "", "")
			return strconv.FormatBool(on), ok
		}
	case "integer", "float":
		e.Type, e.Kind = TypeNumber, KindSensor
		e.DeviceClass = homieDeviceClass(p)
		if e.DeviceClass != "" && !p.Settable {
			e.StateClass = "measurement"
		}
		if p.Settable {
			e.Kind = KindNumber
			e.Control = &Control{}
			e.Control.Min, e.Control.Max, e.Control.Step = homieRange(p.Format)
		}
		integer := p.Datatype == "integer"
		encode = func(value json.RawMessage) (string, bool) {
			f, ok := parseNumber(value)
			if !ok || integer && f != math.Trunc(f) {
				return "", false
			}
			return strconv.FormatFloat(f, 'f', -1, 64), true
		}
	case "enum":
		e.Type, e.Kind = TypeEnum, KindSensor
		if p.Settable {
			e.Kind = KindSelect
			e.Control = &Control{Options: homieList(p.Format)}
		}
		encode = func(value json.RawMessage) (string, bool) { return textOf(value), true }
	default: // string, color, datetime, duration, json, and datatypes to come
		e.Type, e.Kind = TypeText, KindText
		spec.read = func(payload []byte) (json.RawMessage, bool) {
			return stringJSON(string(payload)), true
		}
		encode = func(value json.RawMessage) (string, bool) { return textOf(value), true }
	}
	if p.Settable {
		if e.Control == nil {
			e.Control = &Control{}
		}
		e.Control.Topic = topic + "/set"
		spec.encode = func(value json.RawMessage) ([]byte, Confirm, error) {
			text, ok := encode(value)
			if !ok {
				return nil, Confirm{}, ErrBadValue
			}
			if !retained {
				return []byte(text), Confirm{}, nil // nothing echoes an event
			}
			return []byte(text), confirmText(topic, "", text), nil
		}
	}
	spec.Entity = e
	return spec
}

// homieRange reads a number's $format, min:max, or Homie 5's
// min:max[:step] where each part may be left out.
func homieRange(format string) (lo, hi, step *float64) {
	parts := strings.Split(format, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, nil, nil
	}
	num := func(s string) *float64 {
		if f, ok := parseNumber([]byte(s)); ok {
			return &f
		}
		return nil
	}
	lo, hi = num(parts[0]), num(parts[1])
	if len(parts) == 3 {
		step = num(parts[2])
	}
	if lo != nil && hi != nil && *lo > *hi {
		return nil, nil, nil
	}
	return lo, hi, step
}

// homieDeviceClass is the device class a number's unit or id tells.
func homieDeviceClass(p homieProperty) string {
	switch {
	case p.Unit == "°C" || p.Unit == "°F":
		return "temperature"
	case p.ID == "battery" && p.Unit == "%":
		return "battery"
	case p.ID == "humidity" && p.Unit == "%":
		return "humidity"
	}
	return ""
}
