package devices

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Config bounds the model. Zero fields take the documented defaults.
type Config struct {
	// MaxDevices is the most devices the model keeps; a discovery past it is
	// ignored (and counted in Stats). Default 10,000.
	MaxDevices int
	// MaxEntities is the most entities one device keeps, and the most
	// topics a plain JSON or HARDWARIO device is made of (a topic past them
	// is refused until one of them goes: plainjson.go). Default 256.
	MaxEntities int
	// MaxTopics is the most topics the model follows (state, availability,
	// and the last payload of topics no convention claims). Default 100,000.
	// It bounds the sources of declarations (discovery topics) too.
	MaxTopics int
	// MaxDiscoveryBytes is the largest discovery payload parsed (a
	// Zigbee2MQTT bridge/devices list of 2,000 devices is a few MB). Larger
	// ones are ignored and counted. Default 16 MiB.
	MaxDiscoveryBytes int
	// MaxKeptBytes bounds the last payloads the model keeps, all topics
	// together, to feed a declaration that binds their topic later
	// (retained messages arrive in any order). Default 64 MiB.
	MaxKeptBytes int
}

// Defaults of Config.
const (
	DefaultMaxDevices        = 10_000
	DefaultMaxEntities       = 256
	DefaultMaxTopics         = 100_000
	DefaultMaxDiscoveryBytes = 16 << 20
	DefaultMaxKeptBytes      = 64 << 20
)

// maxKeptPayload is the largest payload kept for a later declaration, or
// read by the plain JSON and HARDWARIO heuristics.
const maxKeptPayload = 64 << 10

func (c Config) withDefaults() Config {
	if c.MaxDevices <= 0 {
		c.MaxDevices = DefaultMaxDevices
	}
	if c.MaxEntities <= 0 {
		c.MaxEntities = DefaultMaxEntities
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	if c.MaxDiscoveryBytes <= 0 {
		c.MaxDiscoveryBytes = DefaultMaxDiscoveryBytes
	}
	if c.MaxKeptBytes <= 0 {
		c.MaxKeptBytes = DefaultMaxKeptBytes
	}
	return c
}

// Stats counts what the model holds and what its bounds refused.
type Stats struct {
	Devices  int // devices now
	Entities int // entities now, all devices together
	Topics   int // topics followed now (bound, or with a kept payload)

	// Refusals are counted each time a device is built: ApplyAll, which
	// builds a device once per batch, may count fewer than Apply.
	RefusedDevices       uint64 // declarations of a new device past MaxDevices
	RefusedEntities      uint64 // entities past MaxEntities of their device, messages of topics past MaxEntities of a plain JSON device
	RefusedTopics        uint64 // topics (and sources) past MaxTopics, payloads past MaxKeptBytes
	OversizedDiscoveries uint64 // discovery payloads past MaxDiscoveryBytes
	MalformedDiscoveries uint64 // discovery payloads that could not be read
}

// Model is the device model: fed every message in order by Apply, it
// answers which devices there are and how to command them. It is not safe
// for concurrent use: its owner serialises calls.
type Model struct {
	cfg         Config
	conventions []convention

	devices   map[string]*device   // by id; at most cfg.MaxDevices
	sources   map[string][]*part   // by source: what it declared; at most cfg.MaxTopics
	topics    map[string]*topic    // by topic: bindings and the kept payload; at most cfg.MaxTopics
	commands  map[string][]*entity // by command topic; at most one per entity, so bounded by the devices' entities
	keptBytes int                  // the kept payloads' bytes together; at most cfg.MaxKeptBytes
	seq       uint64               // orders availability reports, for availability_mode latest
	now       time.Time            // the time of the message being applied
	stats     Stats
	batch     *batch // what ApplyAll defers; nil outside ApplyAll

	// Scratch buffers, reused to look up map keys without allocating:
	// scratch by one function at a time, leafKey by expand's leaves.
	scratch []byte
	leafKey []byte
	// changes is the empty set of changes ApplyAll fills, kept with the room
	// the largest batch made (at most a key per device: MaxDevices, and
	// those a batch removed).
	changes changeSet
}

// New returns an empty model.
func New(cfg Config) *Model {
	m := &Model{
		cfg:      cfg.withDefaults(),
		devices:  make(map[string]*device),
		sources:  make(map[string][]*part),
		topics:   make(map[string]*topic),
		commands: make(map[string][]*entity),
	}
	m.conventions = []convention{
		homeAssistant{},
		// Conventions of other files: one line each below.
		newZigbee2MQTT(),
		newHomie(),
		newTasmota(),
	}
	return m
}

// Apply feeds one message to the model and says which devices it changed.
// An empty retained payload on a discovery topic removes what that topic
// declared. ApplyAll feeds many at once, quicker.
func (m *Model) Apply(msg Message) Changes { return m.apply(msg) }

// apply is Apply, within a batch or not.
func (m *Model) apply(msg Message) Changes {
	if msg.Topic == "" || strings.HasPrefix(msg.Topic, "$") || strings.HasPrefix(msg.Topic, controlPrefix) {
		return Changes{}
	}
	m.now = msg.Time
	m.seq++
	for _, c := range m.conventions {
		if ch, ok := c.handle(m, msg); ok {
			return ch
		}
	}
	var ch Changes
	m.settleTopic(msg.Topic)
	t := m.topics[msg.Topic]
	if !t.boundByConvention() {
		if _, isCommand := m.commands[msg.Topic]; isCommand || strings.HasSuffix(msg.Topic, "/set") {
			return ch // a command, not a state: the device's echo will say
		}
	}
	m.roomToKeep(msg)
	t = m.keep(msg)
	if !t.boundByConvention() {
		hc, declared := m.heuristic(msg)
		ch.add(hc)
		t = m.topics[msg.Topic]
		if declared && t != nil && t.kept != nil && t.keptSeq == m.seq {
			return ch // declaring fed it what was just kept: this message
		}
		if declared && m.batch != nil {
			m.settleTopic(msg.Topic) // not kept (too large): built now, to be fed it
			t = m.topics[msg.Topic]
		}
	}
	ch.add(m.feed(t, msg.Payload, msg.JSON, msg.Time, m.seq))
	return ch
}

// controlPrefix is the prefix of the hub's own Clown.Talk topics.
const controlPrefix = "clown.talk/-/"

// Devices returns copies of every device, sorted by id.
func (m *Model) Devices() []Device {
	out := make([]Device, 0, len(m.devices))
	for _, d := range m.devices {
		if d.visible() {
			out = append(out, d.snapshot())
		}
	}
	slices.SortFunc(out, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Device returns a copy of one device.
func (m *Model) Device(id string) (Device, bool) {
	d, ok := m.devices[id]
	if !ok || !d.visible() {
		return Device{}, false
	}
	return d.snapshot(), true
}

// DeviceInto is Device into *dst, which it overwrites, reusing the array of
// dst.Entities when it is large enough: that array must be the caller's
// alone. It leaves *dst as it was when there is no such device.
func (m *Model) DeviceInto(id string, dst *Device) bool {
	d, ok := m.devices[id]
	if !ok || !d.visible() {
		return false
	}
	d.snapshotInto(dst)
	return true
}

// Stats returns what the model holds and what its bounds refused.
func (m *Model) Stats() Stats {
	s := m.stats
	s.Devices = len(m.devices) // those waiting for their first entity too
	s.Topics = len(m.topics)
	for _, d := range m.devices {
		s.Entities += len(d.entities)
	}
	return s
}

// Refusals returns the refusal counters of Stats alone (Devices, Entities
// and Topics zero): O(1), where Stats walks every device to count entities.
func (m *Model) Refusals() Stats {
	s := m.stats
	s.Devices, s.Entities, s.Topics = 0, 0, 0
	return s
}

// Command encodes value (JSON: true/false for switches and lights, a number,
// an option's string, null for a button) for an entity, with the message
// that will confirm it. It fails with ErrOffline when the device is known to
// be offline, and with the other Err... values when the command makes no
// sense.
func (m *Model) Command(deviceID, entityID string, value json.RawMessage) (Command, error) {
	d, ok := m.devices[deviceID]
	if !ok || !d.visible() {
		return Command{}, ErrUnknownDevice
	}
	e := d.entity(entityID)
	if e == nil {
		return Command{}, ErrUnknownEntity
	}
	if e.spec.Control == nil || e.spec.encode == nil {
		return Command{}, ErrNotControl
	}
	if d.availability() == Offline {
		return Command{}, ErrOffline
	}
	value, err := checkCommand(&e.spec.Entity, value)
	if err != nil {
		return Command{}, err
	}
	payload, confirm, err := e.spec.encode(value)
	if err != nil {
		return Command{}, err
	}
	return Command{Topic: e.spec.Control.Topic, Payload: payload, Confirm: confirm}, nil
}

// ConfirmFor is the confirmation of a message published directly (not
// through Command) on a command topic the model knows, such as a Clown.Talk
// client's raw ["cmnd/plug/POWER", "ON"]: false when topic is no known
// command topic.
func (m *Model) ConfirmFor(topic string, payload []byte) (Confirm, bool) {
	for _, e := range m.commands[topic] {
		parse := e.spec.parseCommand
		if parse == nil {
			parse = e.spec.read
		}
		var value json.RawMessage
		var ok bool
		if parse != nil {
			value, ok = parse(payload)
		} else {
			value, ok = readValue(&e.spec.Entity, payload, false)
		}
		if !ok {
			continue
		}
		value, err := checkCommand(&e.spec.Entity, value)
		if err != nil {
			continue
		}
		if _, confirm, err := e.spec.encode(value); err == nil && confirm.Topic != "" {
			return confirm, true
		}
	}
	return Confirm{}, false
}
