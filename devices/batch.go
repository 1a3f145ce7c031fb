package devices

import (
	"bytes"
	"slices"
	"time"
)

// Batches: ApplyAll feeds many messages (the retained messages at start, or
// what the bridge's worker took at once) and builds each device they change
// once, not once per message. Home Assistant sends one config per entity,
// so a device of 10 entities would be rebuilt 10 times; Homie 3/4 sends one
// retained message per attribute, and would declare its device anew after
// each.
//
// Within a batch, declare replaces the parts of a source at once (so the
// bounds on devices and sources are met in message order, as by Apply) and
// marks the devices it changed dirty; a convention whose declarations grow
// one attribute at a time asks for its source to be declared later
// (declareLater). A dirty device is built (rebuild) when the batch ends, or
// earlier, as soon as the order of messages could show: before the core
// reads a message on a topic the device binds, will bind or commands;
// before its source is declared again; before a declaration binds a topic
// the device may release; when it may reach MaxEntities (which entities it
// keeps then depends on their order), unless it is full already and only
// takes leaves it refuses in any order; and whenever the model gets near a
// bound on devices, topics or kept bytes (then everything waiting is built,
// and the batch goes on as Apply would). So ApplyAll ends with the model
// Apply would have built message by message (batch_test.go replays traces
// and shuffled sets both ways, and FuzzApply random splits), Stats'
// refusal counts aside. Messages come in the order they were received: with
// times out of order, a Homie device's Updated may differ.

// A batch is what ApplyAll defers. Everything in it is cleared when
// ApplyAll returns; until then it holds at most what the batch's
// declarations named: their devices and topics, and one entry per source.
type batch struct {
	dirty      []*device            // devices marked dirty, in that order (some built since: see device.dirty)
	waiting    int                  // devices dirty now
	footprint  map[string][]*device // by topic: the dirty devices whose new parts bind or command it
	lazy       map[string]*lazyDeclaration
	lazyOrder  []string            // the sources of lazy in the order they were asked for (some settled since)
	watched    map[string][]string // by topic, or prefix ending with /: the sources of lazy that watch it
	lazyTopics int                 // at most how many topics lazy binds and commands
	changes    changeSet           // what the batch changed so far
}

// A changeSet merges Changes as Changes.add does, for any number of them:
// the last word on a device wins. It holds each device once.
type changeSet struct {
	updated map[string]bool // by id: updated (true) or removed (false)
	order   []string        // ids in the order they first changed
}

func (s *changeSet) add(ch Changes) {
	for _, id := range ch.Removed {
		s.set(id, false)
	}
	for _, id := range ch.Updated {
		s.set(id, true)
	}
}

func (s *changeSet) set(id string, updated bool) {
	if s.updated == nil {
		s.updated = make(map[string]bool)
	}
	if _, seen := s.updated[id]; !seen {
		s.order = append(s.order, id)
	}
	s.updated[id] = updated
}

// changes is the set as Changes, each list in the order devices first changed.
func (s *changeSet) changes() Changes {
	var ch Changes
	for _, id := range s.order {
		if s.updated[id] {
			ch.Updated = append(ch.Updated, id)
		} else {
			ch.Removed = append(ch.Removed, id)
		}
	}
	return ch
}

// A lazyDeclaration is a source to declare later (declareLater).
type lazyDeclaration struct {
	watches []string // topics, and prefixes ending with /, whose messages it must be declared before
	topics  int      // at most how many topics it binds and commands
	decls   func() []declaration
	at      time.Time // the latest message that asked, for device.updated
}

// ApplyAll feeds msgs to the model in order, as Apply each would, and says
// which devices they changed, merged: the model afterwards is the one Apply
// of each message in order gives, but each device is built once rather than
// once per message that declares part of it. Updated lists every device
// added or changed and still there; Removed every device that was there
// before or appeared meanwhile, and is gone. The bridge calls it with each
// batch of messages it takes, the retained messages at start first.
func (m *Model) ApplyAll(msgs []Message) Changes {
	m.batch = &batch{
		footprint: make(map[string][]*device),
		lazy:      make(map[string]*lazyDeclaration),
		watched:   make(map[string][]string),
		changes:   m.changes, // emptied by the last ApplyAll, its room kept
	}
	defer func() { m.batch = nil }()
	b := m.batch
	for _, msg := range msgs {
		ch := m.apply(msg)
		b.changes.add(ch)
	}
	m.flush()
	ch := b.changes.changes()
	clear(b.changes.updated)
	clear(b.changes.order)
	b.changes.order = b.changes.order[:0]
	m.changes = b.changes
	return ch
}

// declareLater declares what decls returns for source, now outside a batch;
// in a batch once, when its declarations could first show: before the core
// reads a message on a topic watch names (a topic, or every topic below a
// prefix ending with /; "": none) or one an earlier call watched, before a
// declare of the same source, at the end of the batch. decls is called
// then, and must describe everything the convention knows by then: one
// device, binding and commanding at most topics topics. watch names every
// topic whose message the declaration reads otherwise than the source's
// declaration in place does (all of them while it has none). A convention
// uses it only when what it learnt since the last call adds to the
// declaration (Homie's attributes arriving one by one) and calls
// settle(source) before it changes or removes what it knew: a step skipped
// must lie between the ones declared.
func (m *Model) declareLater(source, watch string, topics int, decls func() []declaration) Changes {
	b := m.batch
	if b == nil {
		return m.declare(source, decls())
	}
	l := b.lazy[source]
	if l == nil {
		if len(m.devices)+len(b.lazy)+1 > m.cfg.MaxDevices || m.nearMaxTopics(topics) {
			m.flush() // near a bound: as Apply would
			m.declareInBatch(source, decls())
			return Changes{}
		}
		l = &lazyDeclaration{}
		b.lazy[source] = l
		b.lazyOrder = append(b.lazyOrder, source)
	} else if m.nearMaxTopics(topics - l.topics) {
		m.settle(source)
		m.flush()
		m.declareInBatch(source, decls())
		return Changes{}
	}
	if watch != "" && !slices.Contains(l.watches, watch) {
		l.watches = append(l.watches, watch)
		b.watched[watch] = append(b.watched[watch], source)
	}
	b.lazyTopics += topics - l.topics
	l.decls, l.topics = decls, topics
	if m.now.After(l.at) {
		l.at = m.now
	}
	return Changes{}
}

// declared reports whether source has declared a device (in a batch, not
// counting what declareLater defers).
func (m *Model) declared(source string) bool {
	_, ok := m.sources[source]
	return ok
}

// nearMaxTopics reports whether more topics, and everything the batch
// defers, could take the model to MaxTopics.
func (m *Model) nearMaxTopics(more int) bool {
	b := m.batch
	return len(m.topics)+len(b.footprint)+b.lazyTopics+more >= m.cfg.MaxTopics
}

// settle declares what declareLater deferred for source, if anything.
func (m *Model) settle(source string) {
	b := m.batch
	if b == nil {
		return
	}
	l, ok := b.lazy[source]
	if !ok {
		return
	}
	delete(b.lazy, source)
	b.lazyTopics -= l.topics
	for _, w := range l.watches {
		b.watched[w] = slices.DeleteFunc(b.watched[w], func(s string) bool { return s == source })
		if len(b.watched[w]) == 0 {
			delete(b.watched, w)
		}
	}
	now := m.now
	m.now = l.at
	m.declareInBatch(source, l.decls())
	m.now = now
}

// declareInBatch is declare within a batch: the parts are replaced now, the
// devices built later, unless building them now keeps the order of
// messages (see the top of this file).
func (m *Model) declareInBatch(source string, decls []declaration) {
	b := m.batch
	m.settle(source)
	var first []*device // to build before this declaration
	for _, p := range m.sources[source] {
		if !p.built { // declared again: build the last declaration first, so that no step is skipped
			first = appendUnique(first, p.dev)
		}
	}
	var topics []string
	for i := range decls {
		declTopics(&decls[i], func(name string) { topics = append(topics, name) })
	}
	for _, name := range topics {
		if t := m.topics[name]; t != nil {
			for _, bd := range t.bindings {
				if bd.dev.dirty { // its rebuild may release the topic's payload: before this binds it
					first = appendUnique(first, bd.dev)
				}
			}
		}
	}
	// Which entities a device keeps at MaxEntities depends on the order they
	// came in: a device that may reach it is built as Apply would build it.
	now := false       // build the devices of this declaration now
	var full []*device // devices at MaxEntities that this only gives leaves
	for _, p := range m.sources[source] {
		if p.dev.dirty && p.dev.saturated { // it loses entities: what waits could take their place
			first = appendUnique(first, p.dev)
		}
	}
	for i := range decls {
		d := m.devices[decls[i].device.ID]
		if d == nil {
			continue
		}
		onlyLeaves := len(decls[i].entities) == 0 && !slices.ContainsFunc(m.sources[source], func(p *part) bool { return p.dev == d })
		switch {
		case onlyLeaves && (d.saturated || !d.dirty && len(d.entities) >= m.cfg.MaxEntities):
			// Full, and only leaves to come: it refuses them in any order.
			full = append(full, d)
		case d.dirty && d.estimate+m.entityBound(&decls[i]) >= m.cfg.MaxEntities:
			first = appendUnique(first, d)
			now = true
		case !d.dirty && d.entityBound()+m.entityBound(&decls[i]) >= m.cfg.MaxEntities:
			now = true
		}
	}
	if len(first) > 0 {
		b.changes.add(m.build(first))
	}
	if len(decls) > 0 && (len(m.devices)+len(b.lazy)+len(decls) > m.cfg.MaxDevices || m.nearMaxTopics(len(topics))) {
		m.flush() // near a bound: what was deferred, then this, in message order
		now = true
	}
	affected, ok := m.replaceParts(source, decls)
	if !ok {
		return
	}
	if now {
		b.changes.add(m.build(affected))
		return
	}
	for _, d := range affected {
		if !d.dirty {
			d.dirty = true
			d.saturated = slices.Contains(full, d)
			d.estimate = d.entityBound()
			b.dirty = append(b.dirty, d)
			b.waiting++
		}
		if len(d.parts) == 0 && m.devices[d.id] == d {
			delete(m.devices, d.id) // gone now, as Apply would: its bindings go when it is built
		}
	}
	for _, p := range m.sources[source] {
		p.dev.estimate += m.entityBound(&p.decl)
		declTopics(&p.decl, func(name string) { b.footprint[name] = appendUnique(b.footprint[name], p.dev) })
	}
}

// entityBound is at most how many entities d would have after a build,
// feeding nothing more than what is kept.
func (d *device) entityBound() int {
	n := 0
	for _, p := range d.parts {
		n += len(p.decl.entities) + len(p.expanded)
	}
	return n
}

// entityBound is at most how many entities a declaration adds to its
// device: its entities, and the leaves of the payloads kept on the topics
// it expands.
func (m *Model) entityBound(d *declaration) int {
	n := len(d.entities)
	for _, x := range d.expand {
		if t := m.topics[x.Topic]; t != nil && t.kept != nil {
			n += 1 + bytes.Count(t.kept, []byte{':'}) // a leaf of an object follows a colon; text is one leaf
		}
	}
	return n
}

// declTopics calls fn with every topic a declaration binds or commands.
func declTopics(d *declaration, fn func(string)) {
	for i := range d.entities {
		e := &d.entities[i]
		if e.Topic != "" {
			fn(e.Topic)
		}
		for _, a := range e.also {
			fn(a.Topic)
		}
		if e.Control != nil && e.Control.Topic != "" {
			fn(e.Control.Topic)
		}
	}
	for _, a := range d.availability {
		fn(a.Topic)
	}
	for _, x := range d.expand {
		fn(x.Topic)
	}
}

// settleTopic builds, before the core reads a message on topic name, every
// device the batch deferred that binds, will bind or commands it.
func (m *Model) settleTopic(name string) {
	b := m.batch
	if b == nil || b.waiting == 0 && len(b.lazy) == 0 {
		return
	}
	if len(b.watched) > 0 {
		for _, source := range slices.Clone(b.watched[name]) {
			m.settle(source)
		}
		for i := 0; i < len(name); i++ {
			if name[i] == '/' {
				for _, source := range slices.Clone(b.watched[name[:i+1]]) {
					m.settle(source)
				}
			}
		}
	}
	for b.waiting > 0 { // building one may make another dirty (a heuristic device it takes over)
		var devs []*device
		for _, d := range b.footprint[name] {
			if d.dirty {
				devs = appendUnique(devs, d)
			}
		}
		if t := m.topics[name]; t != nil {
			for _, bd := range t.bindings {
				if bd.dev.dirty {
					devs = appendUnique(devs, bd.dev)
				}
			}
		}
		for _, e := range m.commands[name] {
			if e.part.dev.dirty {
				devs = appendUnique(devs, e.part.dev)
			}
		}
		if len(devs) == 0 {
			break
		}
		b.changes.add(m.build(devs))
	}
	b.tidy()
}

// roomToKeep builds everything deferred before a message is kept near the
// bounds on topics and kept bytes, so that what they refuse is what Apply
// would refuse.
func (m *Model) roomToKeep(msg Message) {
	b := m.batch
	if b == nil || b.waiting == 0 && len(b.lazy) == 0 {
		return
	}
	t := m.topics[msg.Topic]
	if t == nil && m.nearMaxTopics(1) ||
		m.keptBytes-len(t.keptOrNil())+len(msg.Payload) > m.cfg.MaxKeptBytes {
		m.flush()
	}
}

// flush declares every deferred source and builds every dirty device.
func (m *Model) flush() {
	b := m.batch
	for _, source := range b.lazyOrder {
		m.settle(source)
	}
	b.lazyOrder = b.lazyOrder[:0]
	for b.waiting > 0 {
		var devs []*device
		for _, d := range b.dirty {
			if d.dirty {
				devs = append(devs, d)
			}
		}
		b.dirty = b.dirty[:0]
		b.changes.add(m.build(devs))
	}
	b.tidy()
}

// tidy forgets what no dirty device needs any more.
func (b *batch) tidy() {
	if b.waiting == 0 {
		clear(b.footprint)
		b.dirty = b.dirty[:0]
	}
}
