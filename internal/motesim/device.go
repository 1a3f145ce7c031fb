package motesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// What a mote is, independent of MQTT: its topics, its sensors as pure,
// seeded functions, its payloads, and the commands it understands.

// Topics relative to a mote's root (Prefix/M).
const (
	topicBoot        = "boot"
	topicASN         = "asn"
	topicTemperature = "thermometer/0:1/temperature"
	topicPIR         = "pir/-/event-count"
	topicRelay       = "relay/" // + relay id
	topicLED         = "led/-/state"
	filterRelaySet   = "relay/+/set"
	topicLEDSet      = "led/-/state/set"
	setSuffix        = "/set"
)

// firmware is what a mote's boot message reports.
const firmware = "1.0.0"

// relayIDs are every mote's relays, in the order their states are published.
var relayIDs = []string{"i2c0-3b", "i2c0-3c"}

// Independent random streams of a mote, so that one sensor's timing never
// changes another's values.
const (
	streamSetup uint64 = iota
	streamTemperature
	streamPIR
)

// newRand is the random stream of one mote (numbered from 1) for one purpose.
func newRand(seed uint64, mote int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(mote)<<8|stream))
}

// slot is the length of a 6TiSCH timeslot: the ASN grows by 100 per second.
const slot = 10 * time.Millisecond

// maxASNOffset bounds the random ASN a mote starts at: about 30 days of slots.
const maxASNOffset = 30 * 24 * int64(time.Hour/slot)

// asnOffset is the ASN mote starts at.
func asnOffset(seed uint64, mote int) int64 {
	return newRand(seed, mote, streamSetup).Int64N(maxASNOffset)
}

// asnAt is the absolute slot number elapsed after a start at offset.
func asnAt(offset int64, elapsed time.Duration) int64 {
	return offset + int64(elapsed/slot)
}

// The thermometer works in tenths of a degree Celsius, so every reading has
// exactly one decimal and two readings in a row differ by at most 0.1 °C.
const (
	tempMin = 180 // plausible indoor range
	tempMax = 260
	baseMin = 190 // range of a mote's base temperature
	baseMax = 240
	// pull is how much each tenth away from the base tilts the next step
	// back towards it: the readings spread about ±0.6 °C around the base.
	pull = 0.004
)

// thermometer is a slow random walk around a base temperature: each reading
// goes up 0.1 °C, down 0.1 °C, or stays, leaning back towards the base, and
// never leaves [tempMin, tempMax].
type thermometer struct {
	rng  *rand.Rand
	base int // tenths of °C
	now  int // tenths of °C
}

// newThermometer is mote's thermometer for seed: the same arguments give the
// same base and the same readings.
func newThermometer(seed uint64, mote int) *thermometer {
	rng := newRand(seed, mote, streamTemperature)
	base := baseMin + rng.IntN(baseMax-baseMin+1)
	return &thermometer{rng: rng, base: base, now: base}
}

// next takes a reading and returns it, in tenths of °C.
func (th *thermometer) next() int {
	off := float64(th.now - th.base)
	up := min(max(0.25-pull*off, 0), 0.5)
	down := min(max(0.25+pull*off, 0), 0.5)
	switch u := th.rng.Float64(); {
	case u < up:
		th.now++
	case u >= 1-down:
		th.now--
	}
	th.now = min(max(th.now, tempMin), tempMax)
	return th.now
}

// pirDelay is the time to the next PIR event: exponential with the given
// mean, so events come at random at that average rate.
func pirDelay(rng *rand.Rand, mean time.Duration) time.Duration {
	return max(time.Duration(rng.ExpFloat64()*float64(mean)), time.Millisecond)
}

// Payloads.

func bootPayload(reconnect bool) []byte {
	reason := "power-on"
	if reconnect {
		reason = "reconnect"
	}
	b, _ := json.Marshal(struct {
		FW     string `json:"fw"`
		Reason string `json:"reason"`
	}{firmware, reason})
	return b
}

func intPayload(n int64) []byte { return strconv.AppendInt(nil, n, 10) }

// temperaturePayload is [21.5,"°C"] for 215 tenths.
func temperaturePayload(tenths int) []byte {
	b := []byte{'['}
	b = strconv.AppendFloat(b, float64(tenths)/10, 'f', 1, 64)
	return append(b, `,"°C"]`...)
}

func relayPayload(on bool) []byte {
	if on {
		return []byte(`{"state":true}`)
	}
	return []byte(`{"state":false}`)
}

func ledPayload(on bool) []byte { return strconv.AppendBool(nil, on) }

// command is what a valid message on a .../set topic asks for.
type command struct {
	relay string // a relay id, or "" for the LED
	state bool
}

// errBadCommand is wrapped by parseCommand's errors.
var errBadCommand = errors.New("motesim: bad command")

// parseCommand reads a message on one of root's command topics:
// root/relay/<id>/set with {"state": bool}, or root/led/-/state/set with
// true or false.
func parseCommand(root, topic string, payload []byte) (command, error) {
	rel, ok := strings.CutPrefix(topic, root+"/")
	if !ok {
		return command{}, fmt.Errorf("%w: topic %q is not below %q", errBadCommand, topic, root)
	}
	if rel == topicLEDSet {
		on, ok := jsonBool(payload)
		if !ok {
			return command{}, fmt.Errorf("%w: LED payload %q is not true or false", errBadCommand, payload)
		}
		return command{state: on}, nil
	}
	id, isRelay := strings.CutPrefix(rel, topicRelay)
	id, isSet := strings.CutSuffix(id, setSuffix)
	if !isRelay || !isSet || !slices.Contains(relayIDs, id) {
		return command{}, fmt.Errorf("%w: no relay or LED at %q", errBadCommand, topic)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err == nil {
		if on, ok := jsonBool(fields["state"]); ok {
			return command{relay: id, state: on}, nil
		}
	}
	return command{}, fmt.Errorf(`%w: relay payload %q is not {"state": true|false}`, errBadCommand, payload)
}

// jsonBool reads a JSON true or false (null is neither).
func jsonBool(raw []byte) (value, ok bool) {
	var b *bool
	if json.Unmarshal(raw, &b) != nil || b == nil {
		return false, false
	}
	return *b, true
}
