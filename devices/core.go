package devices

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"
)

// The core: devices assembled from the parts sources declared, the topics
// bound to their entities and availability, and the values fed to them.

// A device is a Device being assembled from the parts sources declared.
type device struct {
	id       string
	meta     Device    // identity and metadata, merged from the parts
	parts    []*part   // sorted by source
	entities []*entity // in order: parts in order, each part's declared entities then its expanded ones
	byID     map[string]*entity
	avail    []*availBinding
	mode     string   // availability_mode: latest, any or all
	bound    []string // the topics the device has bindings on
	updated  time.Time
	dirty    bool // in a batch: its parts changed since it was built (batch.go)
	estimate int  // while dirty: at most how many entities it will have (batch.go)
	// saturated: while dirty, it had MaxEntities entities and has taken
	// only leaves since, which it refuses (batch.go).
	saturated bool
}

// A part is what one source declared about one device.
type part struct {
	source   string
	dev      *device
	decl     declaration
	declared []*entity          // the entities of decl.entities the device shows
	all      map[string]*entity // every entity of decl.entities by id, shown or not (another part's of that id, MaxEntities): they outlive a rebuild
	prev     map[string]*entity // the entities the source declared before, whose values carry over
	expanded []*entity          // leaves of decl.expand, sorted by id; they outlive a rebuild
	byLeaf   map[string]*entity // expanded, by topic and path (leafKey)
	expands  []*expandBinding
	built    bool // its device was built since it was declared (batch.go)
}

// An entity is an Entity with what reads and commands it.
type entity struct {
	spec entitySpec
	part *part
}

// An availBinding is one availability topic's latest report.
type availBinding struct {
	spec  availabilitySpec
	state string // Online, Offline or Unknown
	seq   uint64 // when state was reported
}

// An expandBinding is one expandSpec of a part.
type expandBinding struct {
	spec expandSpec
	part *part
}

// A topic is what the model follows on one topic: the bindings that read
// it, and its last payload, kept for a declaration that binds it later.
type topic struct {
	bindings []binding
	kept     []byte // nil: none
	keptTime time.Time
	keptSeq  uint64 // the kept message's place in the order of messages (Model.seq)
	keptJSON bool   // the kept payload is valid JSON (Message.JSON)
	shape    string // the payload shape the heuristic declared for (plainjson.go)
}

// A binding is one reader of a topic: an entity, an availability or an
// expansion of one device.
type binding struct {
	dev *device
	ent *entity
	av  *availBinding
	exp *expandBinding
	alt *stateSource // for ent: one of its also sources, else its Topic
}

// boundByConvention reports whether a declaration of a convention (not a
// heuristic) reads t.
func (t *topic) boundByConvention() bool {
	if t == nil {
		return false
	}
	for _, b := range t.bindings {
		if !b.dev.heuristic() {
			return true
		}
	}
	return false
}

// heuristic reports whether the device was made by the plain JSON or
// HARDWARIO heuristics.
func (d *device) heuristic() bool {
	return len(d.parts) > 0 && isHeuristicSource(d.parts[0].source)
}

// declare replaces what source declared before with decls (none: remove).
// See declare.go. In a batch (ApplyAll) the devices it changes are rebuilt
// later, once (batch.go).
func (m *Model) declare(source string, decls []declaration) Changes {
	if m.batch != nil {
		m.declareInBatch(source, decls)
		return Changes{}
	}
	affected, ok := m.replaceParts(source, decls)
	if !ok {
		return Changes{}
	}
	return m.build(affected)
}

// replaceParts replaces the parts source declared before with those of
// decls, and returns the devices that changed, to be built again. ok is
// false when the source was refused (MaxTopics).
func (m *Model) replaceParts(source string, decls []declaration) (affected []*device, ok bool) {
	if _, known := m.sources[source]; !known && len(decls) > 0 && len(m.sources) >= m.cfg.MaxTopics {
		m.stats.RefusedTopics++
		return nil, false
	}
	old := m.sources[source]
	for _, p := range old {
		p.dev.parts = slices.DeleteFunc(p.dev.parts, func(q *part) bool { return q == p })
		affected = appendUnique(affected, p.dev)
	}
	delete(m.sources, source)
	var parts []*part
	for _, d := range decls {
		id := d.device.ID
		if id == "" {
			continue
		}
		dev := m.devices[id]
		if dev == nil {
			if len(m.devices) >= m.cfg.MaxDevices {
				m.stats.RefusedDevices++
				continue
			}
			dev = &device{id: id}
			m.devices[id] = dev
		}
		p := &part{source: source, dev: dev, decl: d} // maps made when first written
		for _, q := range old {                       // values and leaves seen before outlive the declaration
			if q.dev == dev {
				if p.prev == nil {
					p.prev = q.all
				}
				for _, e := range q.expanded {
					if q.expandsLeaf(e, d.expand) {
						e.part = p
						p.expanded = append(p.expanded, e)
						p.addLeaf(e)
					}
				}
			}
		}
		i, _ := slices.BinarySearchFunc(dev.parts, source, func(q *part, s string) int { return strings.Compare(q.source, s) })
		dev.parts = slices.Insert(dev.parts, i, p)
		parts = append(parts, p)
		affected = appendUnique(affected, dev)
	}
	if len(parts) > 0 {
		m.sources[source] = parts
	}
	if !m.now.IsZero() {
		for _, d := range affected {
			d.touch(m.now)
		}
	}
	return affected, true
}

// build builds devices again from their parts (rebuild), then forgets the
// payloads kept on the topics they bound before and nothing binds now.
func (m *Model) build(devices []*device) Changes {
	var ch Changes
	var touched []string // topics bound before: those left unbound forget their kept payload
	for _, d := range devices {
		touched = append(touched, d.bound...)
	}
	for _, d := range devices {
		ch.add(m.rebuild(d))
	}
	for _, name := range touched {
		if t := m.topics[name]; t != nil && len(t.bindings) == 0 {
			m.release(name, t)
		}
	}
	return ch
}

// release forgets a topic's kept payload, and the topic when nothing binds it.
func (m *Model) release(name string, t *topic) {
	m.keptBytes -= len(t.kept)
	t.kept = nil
	m.dropIfEmpty(name, t)
}

// addLeaf indexes an expanded leaf of p.
func (p *part) addLeaf(e *entity) {
	if p.byLeaf == nil {
		p.byLeaf = make(map[string]*entity)
	}
	p.byLeaf[leafKey(e.spec.Topic, e.spec.Field)] = e
}

// expandsLeaf reports whether e, a leaf of p, is still a leaf of one of specs.
func (p *part) expandsLeaf(e *entity, specs []expandSpec) bool {
	for _, s := range specs {
		if s.Topic == e.spec.Topic && (s.Field == "" || e.spec.Field == s.Field || strings.HasPrefix(e.spec.Field, s.Field+".")) {
			return true
		}
	}
	return false
}

// isHeuristicSource reports whether source is one of the heuristics'.
func isHeuristicSource(source string) bool {
	return strings.HasPrefix(source, heuristicSource)
}

// heuristicSource prefixes the sources of the heuristics: one per topic.
const heuristicSource = "heuristic:"

// rebuild assembles d again from its parts: metadata, entities, availability
// and bindings; feeds new bindings the payloads kept on their topics; and
// removes d when no entity is left.
func (m *Model) rebuild(d *device) Changes {
	var ch Changes
	if d.dirty {
		d.dirty, d.saturated = false, false
		m.batch.waiting--
	}
	for _, p := range d.parts {
		p.built = true
	}
	m.unbind(d)
	if len(d.parts) == 0 {
		if m.devices[d.id] == d {
			delete(m.devices, d.id)
		}
		if d.visible() {
			ch.Removed = append(ch.Removed, d.id)
		}
		return ch
	}
	wasBound := make(map[*entity]bool, len(d.entities))
	for _, e := range d.entities {
		wasBound[e] = true
	}
	oldAvail := d.avail
	d.mergeMeta()
	d.entities, d.byID = nil, make(map[string]*entity)
	d.avail, d.mode = nil, ""
	for _, p := range d.parts {
		p.declared = p.declared[:0]
		for _, spec := range p.decl.entities {
			if spec.ID == "" {
				continue
			}
			e := p.all[spec.ID]
			if e == nil {
				e = &entity{spec: spec, part: p}
				e.spec.Value, e.spec.Updated = nil, time.Time{}
				if old := p.prev[spec.ID]; old != nil && old.spec.Topic == spec.Topic && old.spec.Field == spec.Field && old.spec.Type == spec.Type {
					e.spec.Value, e.spec.Updated = old.spec.Value, old.spec.Updated
				}
				if p.all == nil {
					p.all = make(map[string]*entity, len(p.decl.entities))
				}
				p.all[spec.ID] = e
			}
			if d.byID[spec.ID] != nil {
				continue // another part's, or twice in one declaration
			}
			if len(d.entities) >= m.cfg.MaxEntities {
				m.stats.RefusedEntities++
				continue
			}
			p.declared = append(p.declared, e)
			d.add(e)
		}
		p.prev = nil
		for _, e := range p.expanded {
			if d.byID[e.spec.ID] == nil && len(d.entities) < m.cfg.MaxEntities {
				d.add(e)
			}
		}
		if d.mode == "" {
			d.mode = p.decl.availabilityMode
		}
		for _, spec := range p.decl.availability {
			if slices.ContainsFunc(d.avail, func(a *availBinding) bool { return sameAvailability(a.spec, spec) }) {
				continue
			}
			a := &availBinding{spec: spec, state: Unknown}
			for _, old := range oldAvail {
				if sameAvailability(old.spec, spec) {
					a.state, a.seq = old.state, old.seq
				}
			}
			d.avail = append(d.avail, a)
		}
	}
	wasVisible := len(wasBound) > 0
	ch.add(m.bind(d, wasBound, oldAvail))
	switch {
	case d.visible():
		ch.Updated = append(ch.Updated, d.id)
	case wasVisible:
		ch.Removed = append(ch.Removed, d.id)
	}
	return ch
}

// visible reports whether d is shown: a device with no entity (yet: Homie's
// $name before its properties, an expansion before its first payload) is
// not, but its declarations are kept.
func (d *device) visible() bool { return len(d.entities) > 0 }

// add appends e to d's entities.
func (d *device) add(e *entity) {
	d.entities = append(d.entities, e)
	d.byID[e.spec.ID] = e
}

// entity is d's entity with id, or nil.
func (d *device) entity(id string) *entity { return d.byID[id] }

// mergeMeta takes each field of d's identity from the first part, in the
// order of their sources, that has it.
func (d *device) mergeMeta() {
	meta := Device{ID: d.id}
	for _, p := range d.parts {
		dm := p.decl.device
		first(&meta.Name, dm.Name)
		first(&meta.Convention, dm.Convention)
		first(&meta.Model, dm.Model)
		first(&meta.Manufacturer, dm.Manufacturer)
		first(&meta.ViaDevice, dm.ViaDevice)
		first(&meta.Area, dm.Area)
	}
	if meta.Name == "" {
		meta.Name = d.id[strings.IndexByte(d.id, ':')+1:]
	}
	d.meta = meta
}

func first(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func sameAvailability(a, b availabilitySpec) bool {
	return a.Topic == b.Topic && a.Field == b.Field && a.Online == b.Online && a.Offline == b.Offline && (a.read == nil) == (b.read == nil)
}

// unbind removes every binding of d, and the topics left with nothing.
func (m *Model) unbind(d *device) {
	for _, name := range d.bound {
		t := m.topics[name]
		if t == nil {
			continue
		}
		t.bindings = slices.DeleteFunc(t.bindings, func(b binding) bool { return b.dev == d })
		m.dropIfEmpty(name, t)
	}
	d.bound = d.bound[:0]
	for _, e := range d.entities {
		if c := e.spec.Control; c != nil {
			m.commands[c.Topic] = slices.DeleteFunc(m.commands[c.Topic], func(x *entity) bool { return x == e })
			if len(m.commands[c.Topic]) == 0 {
				delete(m.commands, c.Topic)
			}
		}
	}
}

// dropIfEmpty forgets a topic with no binding and no kept payload.
func (m *Model) dropIfEmpty(name string, t *topic) {
	if len(t.bindings) == 0 && t.kept == nil {
		delete(m.topics, name)
	}
}

// bind binds d's entities, availability and expansions to their topics,
// drops the heuristic devices of topics a convention now binds, and feeds
// the new bindings what was kept on their topics. It returns the changes of
// the heuristic devices it dropped.
func (m *Model) bind(d *device, wasBound map[*entity]bool, oldAvail []*availBinding) Changes {
	var ch Changes
	type pending struct {
		topic string
		b     binding
	}
	var fresh []pending
	for _, e := range d.entities {
		if c := e.spec.Control; c != nil && e.spec.encode != nil {
			m.commands[c.Topic] = append(m.commands[c.Topic], e)
			if !d.heuristic() {
				ch.add(m.dropHeuristic(c.Topic))
			}
		}
		if e.spec.Topic == "" || e.part.byLeaf[leafKey(e.spec.Topic, e.spec.Field)] == e {
			continue // expanded leaves are fed by their expansion
		}
		b := binding{dev: d, ent: e}
		if m.bindTopic(d, e.spec.Topic, b) && !wasBound[e] {
			fresh = append(fresh, pending{e.spec.Topic, b})
		}
		for i := range e.spec.also {
			alt := &e.spec.also[i]
			b := binding{dev: d, ent: e, alt: alt}
			if m.bindTopic(d, alt.Topic, b) && !wasBound[e] {
				fresh = append(fresh, pending{alt.Topic, b})
			}
		}
	}
	for _, a := range d.avail {
		b := binding{dev: d, av: a}
		if m.bindTopic(d, a.spec.Topic, b) && !slices.ContainsFunc(oldAvail, func(o *availBinding) bool { return sameAvailability(o.spec, a.spec) }) {
			fresh = append(fresh, pending{a.spec.Topic, b})
		}
	}
	for _, p := range d.parts {
		old := p.expands
		p.expands = p.expands[:0:0]
		for _, spec := range p.decl.expand {
			x := &expandBinding{spec: spec, part: p}
			p.expands = append(p.expands, x)
			b := binding{dev: d, exp: x}
			if m.bindTopic(d, spec.Topic, b) && !slices.ContainsFunc(old, func(o *expandBinding) bool { return o.spec.Topic == spec.Topic && o.spec.Field == spec.Field }) {
				fresh = append(fresh, pending{spec.Topic, b})
			}
		}
	}
	if !d.heuristic() {
		for _, name := range d.bound {
			ch.add(m.dropHeuristic(name))
		}
	}
	for _, f := range fresh {
		if t := m.topics[f.topic]; t != nil && t.kept != nil {
			m.feedOne(f.b, t.kept, t.keptJSON, t.keptTime, t.keptSeq)
		}
	}
	return ch
}

// bindTopic adds b to a topic's bindings, within MaxTopics.
func (m *Model) bindTopic(d *device, name string, b binding) bool {
	t := m.topics[name]
	if t == nil {
		if len(m.topics) >= m.cfg.MaxTopics {
			m.stats.RefusedTopics++
			return false
		}
		t = &topic{}
		m.topics[name] = t
	}
	if !slices.ContainsFunc(t.bindings, func(x binding) bool { return x.dev == d }) {
		d.bound = append(d.bound, name) // the device's first binding on the topic
	}
	t.bindings = append(t.bindings, b)
	return true
}

// dropHeuristic removes what the heuristics made of a topic that a
// convention now binds. That is no message about the heuristic device: its
// Updated stays.
func (m *Model) dropHeuristic(name string) Changes {
	if _, ok := m.sources[heuristicSource+name]; !ok {
		return Changes{}
	}
	now := m.now
	m.now = time.Time{}
	defer func() { m.now = now }()
	return m.declare(heuristicSource+name, nil)
}

// keep records msg's payload on its topic for declarations to come, within
// MaxTopics and MaxKeptBytes, and returns the topic (nil when it is not
// followed).
func (m *Model) keep(msg Message) *topic {
	t := m.topics[msg.Topic]
	empty := len(msg.Payload) == 0 // a retained message cleared
	if empty || len(msg.Payload) > maxKeptPayload || m.keptBytes-len(t.keptOrNil())+len(msg.Payload) > m.cfg.MaxKeptBytes {
		if t != nil {
			m.release(msg.Topic, t)
		}
		if !empty {
			m.stats.RefusedTopics++
		}
		return m.topics[msg.Topic]
	}
	if t == nil {
		if len(m.topics) >= m.cfg.MaxTopics {
			m.stats.RefusedTopics++
			return nil
		}
		t = &topic{}
		m.topics[msg.Topic] = t
	}
	m.keptBytes += len(msg.Payload) - len(t.kept)
	t.kept = append(make([]byte, 0, len(msg.Payload)), msg.Payload...)
	t.keptTime, t.keptSeq, t.keptJSON = msg.Time, m.seq, msg.JSON
	return t
}

func (t *topic) keptOrNil() []byte {
	if t == nil {
		return nil
	}
	return t.kept
}

// feed gives a payload, the seq-th message, to every binding of t and says
// which devices changed (in a batch, it adds them to the batch's changes
// instead, sparing a Changes per message). valid says that payload is valid
// JSON (Message.JSON).
func (m *Model) feed(t *topic, payload []byte, valid bool, at time.Time, seq uint64) Changes {
	var ch Changes
	if t == nil {
		return ch
	}
	bindings := t.bindings
	if len(bindings) > 1 {
		bindings = slices.Clone(bindings) // an expansion may rebuild its device; one binding is read before that
	}
	for _, b := range bindings {
		if m.devices[b.dev.id] != b.dev {
			continue // removed meanwhile
		}
		m.feedOne(b, payload, valid, at, seq)
		switch {
		case !b.dev.visible():
		case m.batch != nil:
			m.batch.changes.set(b.dev.id, true)
		default:
			ch.Updated = appendUnique(ch.Updated, b.dev.id)
		}
	}
	return ch
}

// feedOne gives a payload, the seq-th message, to one binding; valid says
// that it is valid JSON (Message.JSON).
func (m *Model) feedOne(b binding, payload []byte, valid bool, at time.Time, seq uint64) {
	b.dev.touch(at)
	switch {
	case b.ent != nil:
		e := b.ent
		var v json.RawMessage
		var ok bool
		switch {
		case b.alt != nil:
			v, ok = readAlso(e, *b.alt, payload, valid)
		case e.spec.read != nil:
			v, ok = e.spec.read(payload)
		default:
			v, ok = readValue(&e.spec.Entity, payload, valid)
		}
		if ok && len(v) <= maxValueBytes {
			e.spec.Value, e.spec.Updated = v, at
		}
	case b.av != nil:
		// A payload that is neither online nor offline changes nothing.
		if s := readAvailability(b.av.spec, payload); s != Unknown && seq >= b.av.seq {
			b.av.state, b.av.seq = s, seq
		}
	case b.exp != nil:
		m.expand(b.exp, payload, valid, at)
	}
}

// readAlso reads an entity's state from one of its also sources.
func readAlso(e *entity, s stateSource, payload []byte, valid bool) (json.RawMessage, bool) {
	raw, ok := jsonFieldOf(payload, s.Field, valid)
	if !ok {
		if s.Field != "" {
			return nil, false
		}
		raw = stringJSON(string(bytes.TrimSpace(payload)))
	}
	if e.spec.read != nil {
		return e.spec.read(raw)
	}
	return normalise(e.spec.Type, raw)
}

// touch records a message about d.
func (d *device) touch(at time.Time) {
	if at.After(d.updated) {
		d.updated = at
	}
}

// readAvailability reads an availability payload: Online, Offline or Unknown.
func readAvailability(s availabilitySpec, payload []byte) string {
	if s.read != nil {
		return s.read(payload)
	}
	raw := json.RawMessage(payload)
	if s.Field != "" {
		var ok bool
		if raw, ok = jsonField(payload, s.Field); !ok {
			return Unknown
		}
	}
	on, off := s.Online, s.Offline
	if on == "" {
		on = "online"
	}
	if off == "" {
		off = "offline"
	}
	switch textOf(raw) {
	case on:
		return Online
	case off:
		return Offline
	}
	return Unknown
}

// availability combines d's availability bindings by its mode.
func (d *device) availability() string {
	if len(d.avail) == 0 {
		return Unknown
	}
	var online, offline int
	var latest *availBinding
	for _, a := range d.avail {
		switch a.state {
		case Online:
			online++
		case Offline:
			offline++
		}
		if a.state != Unknown && (latest == nil || a.seq > latest.seq) {
			latest = a
		}
	}
	switch d.mode {
	case "all":
		switch {
		case offline > 0:
			return Offline
		case online == len(d.avail):
			return Online
		}
		return Unknown
	case "any":
		switch {
		case online > 0:
			return Online
		case offline > 0:
			return Offline
		}
		return Unknown
	}
	if latest == nil {
		return Unknown
	}
	return latest.state
}

// snapshot is a copy of d as a Device.
func (d *device) snapshot() Device {
	var out Device
	d.snapshotInto(&out)
	return out
}

// snapshotInto makes *out a copy of d as a Device, in the array of
// out.Entities when it is large enough.
func (d *device) snapshotInto(out *Device) {
	entities := out.Entities[:0]
	if entities == nil || cap(entities) < len(d.entities) {
		entities = make([]Entity, 0, len(d.entities))
	} else {
		clear(entities[:cap(entities)]) // nothing of the old copy kept alive
	}
	*out = d.meta
	out.Availability = d.availability()
	out.Updated = d.updated
	out.Entities = entities
	size := 0
	for _, e := range d.entities {
		size += len(e.spec.Value)
	}
	values := make([]byte, 0, size) // every value's copy, in one allocation
	for _, e := range d.entities {
		x := e.spec.Entity
		if x.Value != nil {
			values = append(values, x.Value...)
			x.Value = values[len(values)-len(x.Value) : len(values) : len(values)]
		}
		if x.Control != nil {
			c := *x.Control
			c.Options = slices.Clone(c.Options)
			x.Control = &c
		}
		if !e.spec.hidden {
			out.Entities = append(out.Entities, x)
		}
		if x.Value == nil {
			continue
		}
		switch {
		case out.Battery == nil && x.DeviceClass == "battery":
			if f, ok := parseNumber(x.Value); ok {
				out.Battery = &f
			}
		case out.LinkQuality == nil && (x.DeviceClass == "signal_strength" || lastLevel(x.Field, ".") == "linkquality" || x.ID == "linkquality"):
			if f, ok := parseNumber(x.Value); ok {
				out.LinkQuality = &f
			}
		}
	}
}

// lastLevel is what follows the last sep in s.
func lastLevel(s, sep string) string {
	return s[strings.LastIndex(s, sep)+1:]
}

// checkCommand checks a command's value against its entity: a boolean for
// a switch or light, a number within Min..Max for a number, one of Options
// for a select, null or nothing for a button. It returns the value as
// encode gets it.
func checkCommand(e *Entity, value json.RawMessage) (json.RawMessage, error) {
	v := strings.TrimSpace(string(value))
	switch e.Kind {
	case KindSwitch, KindLight:
		if v != "true" && v != "false" {
			return nil, ErrBadValue
		}
		return json.RawMessage(v), nil
	case KindNumber:
		var f float64
		if json.Unmarshal(value, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, ErrBadValue
		}
		if c := e.Control; c != nil && (c.Min != nil && f < *c.Min || c.Max != nil && f > *c.Max) {
			return nil, ErrBadValue
		}
		return numberJSON(f), nil
	case KindSelect:
		var s string
		if json.Unmarshal(value, &s) != nil || (e.Control != nil && len(e.Control.Options) > 0 && !slices.Contains(e.Control.Options, s)) {
			return nil, ErrBadValue
		}
		return stringJSON(s), nil
	case KindButton:
		if v != "" && v != "null" {
			return nil, ErrBadValue
		}
		return json.RawMessage("null"), nil
	}
	if !json.Valid(value) {
		return nil, ErrBadValue
	}
	return value, nil
}

// add merges o into c, each id once.
func (c *Changes) add(o Changes) {
	for _, id := range o.Removed {
		c.Updated = slices.DeleteFunc(c.Updated, func(x string) bool { return x == id })
		c.Removed = appendUnique(c.Removed, id)
	}
	for _, id := range o.Updated {
		c.Removed = slices.DeleteFunc(c.Removed, func(x string) bool { return x == id })
		c.Updated = appendUnique(c.Updated, id)
	}
}

func appendUnique[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
