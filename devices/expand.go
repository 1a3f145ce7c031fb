package devices

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// Expansion: a JSON object on a topic becomes one entity per leaf.

// maxLeafDepth bounds how deep expansion looks into nested objects.
const maxLeafDepth = 8

// leafKey names a leaf: its topic and its path.
func leafKey(topic, field string) string { return topic + "\x00" + field }

// appendLeafKey appends leafKey(topic, path) to dst: looked up as
// m[string(key)], a key costs no allocation.
func appendLeafKey(dst []byte, topic string, path []byte) []byte {
	dst = append(dst, topic...)
	dst = append(dst, 0)
	return append(dst, path...)
}

// expand feeds a payload to an expansion: leaves seen before get their
// value, new ones become entities (within MaxEntities). valid says that
// payload is valid JSON (Message.JSON).
func (m *Model) expand(x *expandBinding, payload []byte, valid bool, at time.Time) {
	raw, ok := jsonFieldOf(payload, x.spec.Field, valid)
	if !ok {
		if x.spec.Field != "" {
			return
		}
		raw = stringJSON(string(bytes.TrimSpace(payload)))
	}
	p := x.part
	d := p.dev
	added := false
	// Every message of a topic feeds the leaves it fed before, usually: they
	// are found with the model's scratch buffers, without allocating.
	m.scratch = append(m.scratch[:0], x.spec.Field...)
	eachLeafPath(raw, m.scratch, maxLeafDepth, func(leaf []byte, v json.RawMessage) {
		m.leafKey = appendLeafKey(m.leafKey[:0], x.spec.Topic, leaf)
		e := p.byLeaf[string(m.leafKey)]
		if e == nil {
			path := string(leaf)
			if d.declares(x.spec.Topic, path) {
				return
			}
			if e = m.newLeaf(x, path, v); e == nil {
				return
			}
			added = true
		}
		var value json.RawMessage
		var ok bool
		if e.spec.read != nil {
			value, ok = e.spec.read(v)
		} else {
			value, ok = normalise(e.spec.Type, v)
		}
		if ok && len(value) <= maxValueBytes {
			e.spec.Value, e.spec.Updated = value, at
		}
	})
	if added {
		d.relist()
	}
}

// newLeaf makes the entity of a leaf seen for the first time, or nil when
// the hook skips it or its device is full.
func (m *Model) newLeaf(x *expandBinding, path string, v json.RawMessage) *entity {
	p, d := x.part, x.part.dev
	leaf := x.spec.leaf
	if leaf == nil {
		leaf = leafEntity
	}
	spec, ok := leaf(path, v)
	if !ok {
		return nil
	}
	if spec.Topic == "" {
		spec.Topic = x.spec.Topic
	}
	if spec.Topic != x.spec.Topic {
		return nil // a leaf reads its expansion's topic
	}
	if spec.Field == "" {
		spec.Field = path
	}
	if spec.ID == "" {
		spec.ID = path
		if path == "" {
			spec.ID = "value"
		}
	}
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	if d.byID[spec.ID] != nil {
		return nil
	}
	if len(d.entities) >= m.cfg.MaxEntities {
		m.stats.RefusedEntities++
		return nil
	}
	e := &entity{spec: spec, part: p}
	i := sort.Search(len(p.expanded), func(i int) bool { return p.expanded[i].spec.ID >= spec.ID })
	p.expanded = slices.Insert(p.expanded, i, e)
	if p.byLeaf == nil {
		p.byLeaf = make(map[string]*entity)
	}
	p.byLeaf[leafKey(spec.Topic, path)] = e
	d.byID[spec.ID] = e
	d.entities = append(d.entities, e) // relist orders them
	if c := spec.Control; c != nil && spec.encode != nil {
		m.commands[c.Topic] = append(m.commands[c.Topic], e)
	}
	return e
}

// declares reports whether one of d's declared entities reads path on topic.
func (d *device) declares(topic, path string) bool {
	for _, p := range d.parts {
		for _, e := range p.declared {
			if e.spec.Topic == topic && e.spec.Field == path {
				return true
			}
		}
	}
	return false
}

// relist orders d's entities again: parts in order, each part's declared
// entities, then its expanded ones.
func (d *device) relist() {
	d.entities = d.entities[:0]
	clear(d.byID)
	for _, p := range d.parts {
		for _, e := range p.declared {
			d.add(e)
		}
		for _, e := range p.expanded {
			if d.byID[e.spec.ID] == nil {
				d.add(e)
			}
		}
	}
}

// eachLeaf calls fn for every leaf of a JSON value, in the order of sorted
// keys, with its dotted path below prefix: numbers, booleans, strings,
// Clown.Talk's [number, "unit"], and other arrays as a whole. Nulls, keys
// with dots (no path could name them) and levels below depth are skipped.
func eachLeaf(raw json.RawMessage, prefix string, depth int, fn func(path string, v json.RawMessage)) {
	eachLeafPath(raw, []byte(prefix), depth, func(path []byte, v json.RawMessage) { fn(string(path), v) })
}

// eachLeafPath is eachLeaf with the path as bytes: prefix, then appended to
// it in place (its spare capacity is overwritten), valid only during the
// call of fn.
func eachLeafPath(raw json.RawMessage, prefix []byte, depth int, fn func(path []byte, v json.RawMessage)) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	if raw[0] != '{' {
		fn(prefix, raw)
		return
	}
	if depth == 0 {
		return
	}
	type member struct {
		key   []byte // in raw, unless it has escapes
		value json.RawMessage
	}
	var small [8]member // most objects: no allocation
	members := small[:0]
	if !eachMember(raw, func(k []byte, v json.RawMessage) {
		if len(k) > 0 && bytes.IndexByte(k, '.') < 0 {
			members = append(members, member{k, v})
		}
	}) {
		return
	}
	// Sorted by key, stably; a small object by insertion, in place: a sort
	// calling a comparison function cost as much again as the rest of this.
	if len(members) <= len(small) {
		for i := 1; i < len(members); i++ {
			for j := i; j > 0 && bytes.Compare(members[j].key, members[j-1].key) < 0; j-- {
				members[j], members[j-1] = members[j-1], members[j]
			}
		}
	} else {
		slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	}
	for i, mb := range members {
		if i+1 < len(members) && bytes.Equal(members[i+1].key, mb.key) {
			continue // given again: the last counts
		}
		path := prefix
		if len(prefix) > 0 {
			path = append(path, '.')
		}
		path = append(path, mb.key...)
		eachLeafPath(mb.value, path, depth-1, fn)
	}
}

// leafEntity is the default entity of a leaf: a number (with the unit of
// [21.5, "°C"]), an on/off state, a text, or other JSON shown raw.
func leafEntity(path string, v json.RawMessage) (entitySpec, bool) {
	var e entitySpec
	e.Kind, e.Type = kindOf(v)
	if e.Type == TypeNumber {
		e.Unit = unitOf(v)
	}
	return e, true
}

// kindOf is what a value looks like: a number, an on/off state, a text, or
// other JSON.
func kindOf(v json.RawMessage) (kind, typ string) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return KindText, TypeText
	}
	switch v[0] {
	case '"':
		if _, ok := onOff(v, "", ""); ok {
			return KindBinarySensor, TypeBoolean
		}
		return KindText, TypeText
	case 't', 'f':
		return KindBinarySensor, TypeBoolean
	case '[':
		if _, ok := parseNumber(v); ok {
			return KindSensor, TypeNumber
		}
		return KindText, TypeJSON
	case '{', 'n':
		return KindText, TypeJSON
	}
	if _, ok := parseNumber(v); ok {
		return KindSensor, TypeNumber
	}
	return KindText, TypeJSON
}
