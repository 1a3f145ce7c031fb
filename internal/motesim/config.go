package motesim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/motehub/motehub/topics"
)

// The defaults of [Config].
const (
	DefaultBroker               = "tcp://127.0.0.1:1883"
	DefaultMotes                = 3
	DefaultPrefix               = "nodes"
	DefaultASNInterval          = time.Second
	DefaultTemperatureInterval  = 2 * time.Second
	DefaultPIRInterval          = 5 * time.Second
	DefaultMaxReconnectInterval = 2 * time.Second
	DefaultReportInterval       = 5 * time.Second
)

// minInterval is the shortest interval a Config accepts: shorter would only
// burn CPU.
const minInterval = time.Millisecond

// ErrBadConfig is returned by [Run], wrapped, for a Config it cannot run.
var ErrBadConfig = errors.New("motesim: bad config")

// Config describes the simulated motes. The zero value of each field means its
// documented default.
type Config struct {
	// Broker is the URL of the MQTT broker: tcp://host:port, or any scheme
	// paho dials (mqtt, ssl, tls, mqtts, ws, wss). A bare host:port means
	// tcp://host:port. Default "tcp://127.0.0.1:1883".
	Broker string
	// Username and Password are the credentials every mote connects with
	// (never logged). Default "": none, the motes connect anonymously.
	Username string
	Password string
	// Motes is how many motes to simulate, named mote-1 to mote-<Motes>.
	// Default 3.
	Motes int
	// Prefix is the topic under which every mote has its subtree: mote-1
	// publishes on Prefix/mote-1/…. Levels may not be empty. Default "nodes".
	Prefix string
	// ASNInterval is how often each mote publishes its ASN. Default 1 s.
	ASNInterval time.Duration
	// TemperatureInterval is how often each mote takes and publishes a
	// temperature reading. Default 2 s.
	TemperatureInterval time.Duration
	// PIRInterval is the mean time between two PIR events of a mote; they
	// come at random (a Poisson process). Default 5 s.
	PIRInterval time.Duration
	// Devices picks the devices of other conventions that run next to the
	// motes, one of each named: "homeassistant" (a Home Assistant
	// MQTT-discovery sensor and switch), "zigbee2mqtt" (a Zigbee2MQTT bridge
	// with a dimmable bulb), "tasmota" (a Tasmota plug with energy
	// metering), "homie" (a Homie 4 thermostat); see [DeviceNames]. Each is
	// an MQTT client of its own, "motesim-<name>". Default (empty): all of
	// them.
	Devices []string
	// NoDevices turns the devices of other conventions off: only the motes
	// run. Default false.
	NoDevices bool
	// ReportInterval is how often those devices report their readings
	// (temperatures, the bulb's link quality, the plug's STATE and SENSOR).
	// Default 5 s.
	ReportInterval time.Duration
	// MaxReconnectInterval bounds the wait between two attempts to reach the
	// broker, at start and after the connection is lost. Default 2 s.
	MaxReconnectInterval time.Duration
	// Seed makes a run repeatable: the same seed gives every mote the same
	// ASN offset, temperature base and walk, and PIR timing. Default 0: a
	// random seed, which Run logs.
	Seed uint64
	// Logger receives the logs: connects and disconnects at info, each
	// command at debug. Default slog.Default().
	Logger *slog.Logger
}

// normalize applies the defaults and checks c; errors wrap ErrBadConfig.
func (c *Config) normalize() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}

	if c.Broker == "" {
		c.Broker = DefaultBroker
	} else if !strings.Contains(c.Broker, "://") {
		c.Broker = "tcp://" + c.Broker
	}
	if err := checkBroker(c.Broker); err != nil {
		bad("broker %q: %w", c.Broker, err)
	}

	switch {
	case c.Motes < 0:
		bad("motes %d is negative", c.Motes)
	case c.Motes == 0:
		c.Motes = DefaultMotes
	}

	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if err := topics.ValidateBase(c.Prefix); err != nil {
		bad("prefix %q: %w", c.Prefix, err)
	}

	for _, d := range []struct {
		name  string
		value *time.Duration
		def   time.Duration
	}{
		{"ASN interval", &c.ASNInterval, DefaultASNInterval},
		{"temperature interval", &c.TemperatureInterval, DefaultTemperatureInterval},
		{"PIR interval", &c.PIRInterval, DefaultPIRInterval},
		{"max reconnect interval", &c.MaxReconnectInterval, DefaultMaxReconnectInterval},
		{"report interval", &c.ReportInterval, DefaultReportInterval},
	} {
		switch {
		case *d.value == 0:
			*d.value = d.def
		case *d.value < minInterval:
			bad("%s %v is shorter than %v", d.name, *d.value, minInterval)
		}
	}

	if err := c.normalizeDevices(); err != nil {
		errs = append(errs, err)
	}

	for c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return errors.Join(errs...)
}

// checkBroker accepts the URLs paho can dial without more configuration.
func checkBroker(broker string) error {
	u, err := url.Parse(broker)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return fmt.Errorf("want %s://host:port: %w", u.Scheme, err)
		}
	case "ws", "wss":
		if u.Host == "" {
			return fmt.Errorf("want %s://host[:port]/path", u.Scheme)
		}
	default:
		return fmt.Errorf("scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, ws, wss", u.Scheme)
	}
	return nil
}

// normalizeDevices applies the default of Devices and NoDevices (after it,
// Devices lists exactly the devices to run) and checks the names.
func (c *Config) normalizeDevices() error {
	if c.NoDevices {
		if len(c.Devices) > 0 {
			return fmt.Errorf("%w: devices %v and no devices at once", ErrBadConfig, c.Devices)
		}
		c.Devices = nil
		return nil
	}
	if len(c.Devices) == 0 {
		c.Devices = DeviceNames()
		return nil
	}
	for i, name := range c.Devices {
		if !slices.Contains(DeviceNames(), name) {
			return fmt.Errorf("%w: no device %q (want one of %s)", ErrBadConfig, name, strings.Join(DeviceNames(), ", "))
		}
		if slices.Contains(c.Devices[:i], name) {
			return fmt.Errorf("%w: device %q twice", ErrBadConfig, name)
		}
	}
	c.Devices = slices.Clone(c.Devices) // Run's copy, whatever the caller does with theirs
	return nil
}
