package devices

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Plain JSON: a topic no convention claims makes a device by the dashboard's
// prefix/device/rest heuristic (web/dashboard/js/topics.js deviceOf), with
// one entity per leaf of its JSON payload; Clown.Talk's {"state": bool} and
// a boolean on a topic named state are switches commanded on <topic>/set in
// the same shape. A device is made of MaxEntities topics at most
// (heuristicFull).

// heuristic makes a device of a topic no convention binds: HARDWARIO's
// layout, else plain JSON. An empty payload (a retained message cleared)
// removes what the topic made; a topic past the bound on a device's topics
// makes nothing (heuristicFull). declared says whether it declared the
// topic's device anew (else the topic's bindings are as they were).
func (m *Model) heuristic(msg Message) (ch Changes, declared bool) {
	// source, looked up without allocating it for every message
	m.scratch = append(append(m.scratch[:0], heuristicSource...), msg.Topic...)
	_, known := m.sources[string(m.scratch)]
	if len(bytes.TrimSpace(msg.Payload)) == 0 || len(msg.Payload) > maxKeptPayload {
		if known {
			return m.declare(heuristicSource+msg.Topic, nil), false
		}
		return Changes{}, false
	}
	// The shape alone decides whether the declaration changed: the
	// declaration is built only when it did (once per topic, usually).
	shape := heuristicShape(msg.Topic, msg.Payload)
	t := m.topics[msg.Topic]
	if known && t != nil && t.shape == shape {
		return Changes{}, false
	}
	source := heuristicSource + msg.Topic
	if !known && m.heuristicFull(msg.Topic) {
		m.stats.RefusedEntities++
		return Changes{}, false
	}
	decl, shape := heuristicDeclaration(msg.Topic, msg.Payload)
	ch = m.declare(source, []declaration{decl})
	if t := m.topics[msg.Topic]; t != nil {
		t.shape = shape
	}
	return ch, true
}

// heuristicFull reports whether the heuristic device a new topic would
// join is made of MaxEntities topics already. The topic is then refused: it
// is no part of the device, its messages change nothing (its payload is
// kept, as every topic's, within MaxTopics and MaxKeptBytes), and it is
// tried again at its next message, when a topic of the device may have
// been cleared.
//
// The bound keeps the work per message bounded: a device is rebuilt, each
// of its topics visited, when a topic joins it, so 10,000 sibling topics
// (many/0 … many/9999) would otherwise cost 10,000²/2 visits, for a device
// that shows MaxEntities entities at most. A topic with a value shows an
// entity unless the device is full (or another topic's entity has its id),
// so a device that refuses topics is full, or holds topics that have no
// value yet ({} or null).
// Which topics join depends on the order they come in, as which leaves a
// full device keeps does; ApplyAll refuses the same ones as Apply, since a
// batch replaces a device's parts at once (batch.go).
func (m *Model) heuristicFull(topic string) bool {
	key, _, _, conv := groupOf(topic)
	d := m.devices[conv+":"+key]
	return d != nil && len(d.parts) >= m.cfg.MaxEntities
}

// heuristicDeclaration is the device a topic no convention binds makes, and
// the shape of its payload: the declaration changes when the shape does.
func heuristicDeclaration(topic string, payload []byte) (declaration, string) {
	key, name, rest, conv := groupOf(topic)
	d := declaration{device: Device{ID: conv + ":" + key, Name: name, Convention: conv}}
	label := labelOf(rest)
	switch shape := switchShape(topic, payload); shape {
	case "object", "bool":
		e := entitySpec{Entity: Entity{ID: rest, Name: label, Kind: KindSwitch, Type: TypeBoolean, Topic: topic,
			Control: &Control{Topic: topic + "/set"}}}
		field := ""
		if shape == "object" {
			field = "state"
		}
		e.Field = field
		e.encode = func(v json.RawMessage) ([]byte, Confirm, error) {
			payload := []byte(v)
			if field != "" {
				payload = []byte(`{"state":` + string(v) + `}`)
			}
			return payload, confirmJSON(topic, field, v), nil
		}
		d.entities = append(d.entities, e)
		return d, "switch-" + shape
	}
	leaf := func(path string, v json.RawMessage) (entitySpec, bool) {
		e, _ := leafEntity(path, v)
		e.ID, e.Name = rest, label
		if path != "" {
			e.ID, e.Name = rest+"."+path, label+" "+path
		}
		if conv == HARDWARIO {
			hardwarioAnnotate(&e, rest, path)
		}
		return e, true
	}
	d.expand = append(d.expand, expandSpec{Topic: topic, leaf: leaf})
	return d, "leaves"
}

// heuristicShape is the shape heuristicDeclaration returns for payload on
// topic, without building the declaration.
func heuristicShape(topic string, payload []byte) string {
	if shape := switchShape(topic, payload); shape != "" {
		return "switch-" + shape
	}
	return "leaves"
}

// switchShape says whether a payload is a state a command can change, as
// the dashboard's values.js: "object" for {"state": bool}, "bool" for a
// boolean on a topic named state, else "".
func switchShape(topic string, payload []byte) string {
	payload = bytes.TrimSpace(payload)
	switch {
	case len(payload) > 0 && payload[0] == '{':
		// Not decoded when it cannot be {"state": ...}: no "state" key, even
		// one spelled with escapes.
		if !bytes.Contains(payload, []byte(`state"`)) && !bytes.Contains(payload, []byte(`\u`)) {
			return ""
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(payload, &obj) == nil && len(obj) == 1 {
			if s := string(bytes.TrimSpace(obj["state"])); s == "true" || s == "false" {
				return "object"
			}
		}
	case string(payload) == "true" || string(payload) == "false":
		if topic == "state" || strings.HasSuffix(topic, "/state") {
			return "bool"
		}
	}
	return ""
}

// groupOf is the device of a topic, as the dashboard groups them
// (topics.js deviceOf): "<prefix>/<device>/<rest...>" is the device
// prefix/device; "a/b" is the device a; "a" is a device of its own. The
// HARDWARIO layout (node/<id>/..., nodes/<id>/...) is HARDWARIO's.
func groupOf(topic string) (key, name, rest, convention string) {
	levels := strings.Split(topic, "/")
	switch {
	case len(levels) >= 3:
		key, name, rest = levels[0]+"/"+levels[1], levels[1], strings.Join(levels[2:], "/")
		if levels[0] == "node" || levels[0] == "nodes" {
			return key, name, rest, HARDWARIO
		}
	case len(levels) == 2:
		key, name, rest = levels[0], levels[0], levels[1]
	default:
		key, name, rest = topic, topic, topic
	}
	return key, name, rest, PlainJSON
}

// labelOf names an entity from the rest of its topic as the dashboard
// names a tile (topics.js labelOf): the first and the last level
// ("thermometer/0:1/temperature" is "thermometer temperature"), where "-"
// (HARDWARIO's "any channel") and a final "state" say nothing.
func labelOf(rest string) string {
	var levels []string
	for _, l := range strings.Split(rest, "/") {
		if l != "-" && l != "" {
			levels = append(levels, l)
		}
	}
	if len(levels) > 1 && levels[len(levels)-1] == "state" {
		levels = levels[:len(levels)-1]
	}
	switch len(levels) {
	case 0:
		return rest
	case 1:
		return levels[0]
	}
	return levels[0] + " " + levels[len(levels)-1]
}
