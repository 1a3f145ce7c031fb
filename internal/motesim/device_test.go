package motesim

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"
)

func readings(th *thermometer, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = th.next()
	}
	return out
}

// TestTemperatureWalkIsSeeded: the same seed and mote give the same readings;
// another seed or another mote gives others.
func TestTemperatureWalkIsSeeded(t *testing.T) {
	t.Parallel()
	const n = 500
	a := readings(newThermometer(42, 1), n)
	if b := readings(newThermometer(42, 1), n); !slices.Equal(a, b) {
		t.Fatalf("seed 42, mote 1 walked differently twice:\n%v\n%v", a[:20], b[:20])
	}
	if b := readings(newThermometer(43, 1), n); slices.Equal(a, b) {
		t.Errorf("seeds 42 and 43 gave the same %d readings", n)
	}
	if b := readings(newThermometer(42, 2), n); slices.Equal(a, b) {
		t.Errorf("motes 1 and 2 gave the same %d readings", n)
	}
	// Each offset is computed anew: a draw from a shared or time-seeded
	// source would give two different ones for seed 42 and mote 1.
	first, again := asnOffset(42, 1), asnOffset(42, 1)
	otherSeed, otherMote := asnOffset(43, 1), asnOffset(42, 2)
	if first != again || first == otherSeed || first == otherMote {
		t.Errorf("ASN offsets: seed 42 gives %d, then %d; seed 43 gives %d; mote 2 gets %d", first, again, otherSeed, otherMote)
	}
}

// TestTemperatureWalkIsPlausible: over a long run, every step is at most
// 0.1 °C, readings stay in the indoor range, bases lie between 19 and 24 °C,
// and the walk stays near its base and keeps moving.
func TestTemperatureWalkIsPlausible(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 20; seed++ {
		th := newThermometer(seed, 1)
		if th.base < 190 || th.base > 240 {
			t.Fatalf("seed %d: base %d tenths of °C, want 19 to 24 °C", seed, th.base)
		}
		prev, sum, moves := th.now, 0.0, 0
		const n = 20000 // 11 hours at one reading every 2 s
		for range n {
			v := th.next()
			if d := v - prev; d < -1 || d > 1 {
				t.Fatalf("seed %d: step from %d to %d tenths", seed, prev, v)
			}
			if v < 180 || v > 260 {
				t.Fatalf("seed %d: %d tenths of °C is not indoors", seed, v)
			}
			if v != prev {
				moves++
			}
			sum += float64(v)
			prev = v
		}
		if mean := sum / n; math.Abs(mean-float64(th.base)) > 5 {
			t.Errorf("seed %d: mean %.1f tenths, base %d: the walk wanders off", seed, mean, th.base)
		}
		if moves < n/4 || moves > 3*n/4 {
			t.Errorf("seed %d: %d moves in %d readings", seed, moves, n)
		}
	}
}

func TestASN(t *testing.T) {
	t.Parallel()
	if got := asnAt(1000, 2500*time.Millisecond); got != 1250 {
		t.Errorf("asnAt(1000, 2.5 s) = %d, want 1250 (100 slots per second)", got)
	}
	if got := asnAt(7, 9*time.Millisecond); got != 7 {
		t.Errorf("asnAt(7, 9 ms) = %d, want 7 (a slot is 10 ms)", got)
	}
	for n := 1; n <= 100; n++ {
		if off := asnOffset(7, n); off < 0 || off >= maxASNOffset {
			t.Fatalf("asnOffset(7, %d) = %d", n, off)
		}
	}
}

func TestPIRDelaysAverageTheInterval(t *testing.T) {
	t.Parallel()
	rng := newRand(42, 1, streamPIR)
	const mean, n = 5 * time.Second, 10000
	var sum time.Duration
	for range n {
		d := pirDelay(rng, mean)
		if d < time.Millisecond {
			t.Fatalf("delay %v", d)
		}
		sum += d
	}
	if avg := sum / n; avg < mean*95/100 || avg > mean*105/100 {
		t.Errorf("mean delay %v, want about %v", avg, mean)
	}
}

func TestPayloads(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ got, want string }{
		{string(bootPayload(false)), `{"fw":"1.0.0","reason":"power-on"}`},
		{string(bootPayload(true)), `{"fw":"1.0.0","reason":"reconnect"}`},
		{string(temperaturePayload(215)), `[21.5,"°C"]`},
		{string(temperaturePayload(210)), `[21.0,"°C"]`},
		{string(temperaturePayload(199)), `[19.9,"°C"]`},
		{string(intPayload(123456789)), `123456789`},
		{string(relayPayload(true)), `{"state":true}`},
		{string(relayPayload(false)), `{"state":false}`},
		{string(ledPayload(true)), `true`},
		{string(ledPayload(false)), `false`},
	} {
		if tt.got != tt.want {
			t.Errorf("payload %s, want %s", tt.got, tt.want)
		}
		if !json.Valid([]byte(tt.got)) {
			t.Errorf("payload %s is not JSON", tt.got)
		}
	}
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	const root = "nodes/mote-1"
	for _, tt := range []struct {
		topic, payload string
		want           command
		ok             bool
	}{
		{"nodes/mote-1/relay/i2c0-3b/set", `{"state": true}`, command{relay: "i2c0-3b", state: true}, true},
		{"nodes/mote-1/relay/i2c0-3c/set", `{"state":false}`, command{relay: "i2c0-3c", state: false}, true},
		{"nodes/mote-1/relay/i2c0-3c/set", ` {"state": true, "extra": 1} `, command{relay: "i2c0-3c", state: true}, true},
		{"nodes/mote-1/led/-/state/set", `true`, command{state: true}, true},
		{"nodes/mote-1/led/-/state/set", " false\n", command{state: false}, true},

		{"nodes/mote-1/relay/i2c0-3b/set", `{"state": null}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `{"state": "on"}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `{"State": true}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `{}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `null`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `true`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", `{"state": true`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/set", ``, command{}, false},
		{"nodes/mote-1/led/-/state/set", `null`, command{}, false},
		{"nodes/mote-1/led/-/state/set", `"true"`, command{}, false},
		{"nodes/mote-1/led/-/state/set", `{"state": true}`, command{}, false},
		{"nodes/mote-1/led/-/state/set", `1`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3d/set", `{"state": true}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b", `{"state": true}`, command{}, false},
		{"nodes/mote-1/i2c0-3b/set", `{"state": true}`, command{}, false},
		{"nodes/mote-1/relay/i2c0-3b/x/set", `{"state": true}`, command{}, false},
		{"nodes/mote-2/relay/i2c0-3b/set", `{"state": true}`, command{}, false},
		{"nodes/mote-10/relay/i2c0-3b/set", `{"state": true}`, command{}, false},
	} {
		got, err := parseCommand(root, tt.topic, []byte(tt.payload))
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("parseCommand(%s, %q) = %+v, %v; want %+v", tt.topic, tt.payload, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, errBadCommand) {
			t.Errorf("parseCommand(%s, %q) = %+v, %v; want a bad command", tt.topic, tt.payload, got, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Broker != DefaultBroker || c.Motes != DefaultMotes || c.Prefix != DefaultPrefix ||
		c.ASNInterval != DefaultASNInterval || c.TemperatureInterval != DefaultTemperatureInterval ||
		c.PIRInterval != DefaultPIRInterval || c.MaxReconnectInterval != DefaultMaxReconnectInterval ||
		c.ReportInterval != DefaultReportInterval || !slices.Equal(c.Devices, DeviceNames()) ||
		c.Seed == 0 || c.Logger != slog.Default() {
		t.Errorf("defaults: %+v", c)
	}
	c = Config{Broker: "localhost:1884", Prefix: "lab/floor-2", Seed: 7}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Broker != "tcp://localhost:1884" || c.Prefix != "lab/floor-2" || c.Seed != 7 {
		t.Errorf("normalized to %+v", c)
	}
}

func TestConfigDevices(t *testing.T) {
	t.Parallel()
	c := Config{NoDevices: true}
	if err := c.normalize(); err != nil || c.Devices != nil {
		t.Errorf("NoDevices: %v, %v; want no devices", c.Devices, err)
	}
	picked := []string{DeviceHomie, DeviceTasmota}
	c = Config{Devices: picked}
	if err := c.normalize(); err != nil || !slices.Equal(c.Devices, picked) {
		t.Errorf("Devices %v: %v, %v", picked, c.Devices, err)
	}
	c.Devices[0] = "changed"
	if picked[0] != DeviceHomie {
		t.Error("normalize shares the caller's Devices")
	}
}

// TestFilters: the filters cover the motes' subtree and every topic of the
// devices picked; only those. (TestDemoDevices in cmd/hub runs the devices
// as a user allowed exactly these.)
func TestFilters(t *testing.T) {
	t.Parallel()
	all, err := Filters(Config{Prefix: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"lab/#", "motesim_climate/#", "homeassistant/+/motesim_climate/#", "homeassistant/status",
		"zigbee2mqtt/bridge/#", "zigbee2mqtt/kitchen_lamp", "zigbee2mqtt/kitchen_lamp/#",
		"tasmota/discovery/DC4F22A1B2C3/#", "tele/tasmota_A1B2C3/#", "stat/tasmota_A1B2C3/#", "cmnd/tasmota_A1B2C3/#",
		"homie/thermostat/#"}
	if !slices.Equal(all, want) {
		t.Errorf("Filters = %q\nwant %q", all, want)
	}
	if motes, err := Filters(Config{NoDevices: true}); err != nil || !slices.Equal(motes, []string{"nodes/#"}) {
		t.Errorf("Filters without devices = %q, %v", motes, err)
	}
	if _, err := Filters(Config{Devices: []string{"hue"}}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("Filters of an unknown device: %v", err)
	}
}
