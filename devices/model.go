package devices

import "encoding/json"

// Config bounds the model. Zero fields take the documented defaults.
type Config struct {
	// MaxDevices is the most devices the model keeps; a discovery past it is
	// ignored (and counted in Stats). Default 10,000.
	MaxDevices int
	// MaxEntities is the most entities one device keeps. Default 256.
	MaxEntities int
	// MaxTopics is the most topics the model follows (state, availability,
	// and the last payload of topics no convention claims). Default 100,000.
	MaxTopics int
	// MaxDiscoveryBytes is the largest discovery payload parsed (a
	// Zigbee2MQTT bridge/devices list of 2,000 devices is a few MB). Larger
	// ones are ignored and counted. Default 16 MiB.
	MaxDiscoveryBytes int
}

// Defaults of Config.
const (
	DefaultMaxDevices        = 10_000
	DefaultMaxEntities       = 256
	DefaultMaxTopics         = 100_000
	DefaultMaxDiscoveryBytes = 16 << 20
)

// Model is the device model: fed every message in order by Apply, it
// answers which devices there are and how to command them. It is not safe
// for concurrent use: its owner serialises calls.
type Model struct {
	cfg Config
}

// New returns an empty model.
func New(cfg Config) *Model {
	return &Model{cfg: cfg}
}

// Apply feeds one message to the model and says which devices it changed.
// An empty retained payload on a discovery topic removes what that topic
// declared.
func (m *Model) Apply(msg Message) Changes {
	return Changes{}
}

// Devices returns copies of every device, sorted by id.
func (m *Model) Devices() []Device { return nil }

// Device returns a copy of one device.
func (m *Model) Device(id string) (Device, bool) { return Device{}, false }

// Command encodes value (JSON: true/false for switches and lights, a number,
// an option's string, null for a button) for an entity, with the message
// that will confirm it. It fails with ErrOffline when the device is known to
// be offline, and with the other Err... values when the command makes no
// sense.
func (m *Model) Command(deviceID, entityID string, value json.RawMessage) (Command, error) {
	return Command{}, ErrUnknownDevice
}

// ConfirmFor is the confirmation of a message published directly (not
// through Command) on a command topic the model knows, such as a Clown.Talk
// client's raw ["cmnd/plug/POWER", "ON"]: false when topic is no known
// command topic.
func (m *Model) ConfirmFor(topic string, payload []byte) (Confirm, bool) {
	return Confirm{}, false
}

// Check reports whether payload, arriving on c.Topic, shows the state the
// command asked for.
func (c Confirm) Check(payload []byte) bool { return false }
