package devices

import (
	"cmp"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"

	"github.com/motehub/motehub/topics"
)

// Tasmota (https://tasmota.github.io/docs/MQTT/): a device announces itself
// on the retained tasmota/discovery/<MAC>/config (abbreviated keys: dn
// device name, fn relay names, t topic, ft full topic, tp prefixes, rl
// relay types, state ON/OFF texts, onln/ofln LWT payloads) and
// tasmota/discovery/<MAC>/sensors (a sample of its SENSOR payload). The
// topics it uses are built from ft: <prefix>/<topic>/ then a command, so
// with the defaults a relay is commanded with bare ON on cmnd/<t>/POWER and
// answers on stat/<t>/POWER (also {"POWER":"ON"} on stat/<t>/RESULT, and
// periodically in tele/<t>/STATE), readings arrive as JSON on
// tele/<t>/SENSOR, and tele/<t>/LWT says Online or Offline.

const tasmotaDiscovery = "tasmota/discovery/"

// maxTasmotaRelays bounds the relays read from a config (Tasmota has at most
// 32 power outputs).
const maxTasmotaRelays = 32

// Relay types of a config's rl.
const (
	tasmotaRelay = 1
	tasmotaLight = 2
)

// tasmota is the Tasmota convention: what each device's discovery said, by
// MAC (at most Config.MaxDevices), and the topic prefixes of configured
// devices, to claim their command and other topics.
type tasmota struct {
	devices  map[string]*tasmotaDevice
	prefixes map[string]tasmotaPrefix // by <prefix>/<topic>/ of each configured device
}

func newTasmota() *tasmota {
	return &tasmota{devices: make(map[string]*tasmotaDevice), prefixes: make(map[string]tasmotaPrefix)}
}

// tasmotaPrefix is what a topic prefix of a device is: cmnd, stat or tele.
type tasmotaPrefix struct {
	role string // "cmnd", "stat" or "tele"
	mac  string
}

// tasmotaDevice is what the discovery of one device said.
type tasmotaDevice struct {
	mac     string
	config  *tasmotaConfig // nil until its config arrives
	sensors *tasmotaSensors
}

// tasmotaConfig is a discovery config, the fields the model uses.
type tasmotaConfig struct {
	DeviceName    string         `json:"dn"`
	FriendlyNames []*string      `json:"fn"`
	Hostname      string         `json:"hn"`
	Module        string         `json:"md"`
	Online        string         `json:"onln"`
	Offline       string         `json:"ofln"`
	State         []string       `json:"state"` // OFF, ON, TOGGLE, HOLD
	Topic         string         `json:"t"`
	FullTopic     string         `json:"ft"`
	Prefixes      []string       `json:"tp"` // cmnd, stat, tele
	Relays        []int          `json:"rl"`
	Options       map[string]int `json:"so"`
	LightSubtype  int            `json:"lt_st"` // 0 none, 1 dimmer, 2 cold/warm, 3 RGB, ...
}

// tasmotaSensors is what a sensors discovery says: the leaves of the SENSOR
// payload sample (at most Config.MaxEntities) and its units.
type tasmotaSensors struct {
	leaves []entitySpec // Field set, Topic not (it depends on the config)
	units  tasmotaUnits
}

// tasmotaUnits are the units a device reports in (TempUnit, PressureUnit).
type tasmotaUnits struct {
	temperature string // °C or °F
	pressure    string // hPa or mmHg
}

// handle takes the discovery topics, and the topics of configured devices
// that carry neither state nor availability (commands on cmnd/, and
// stat/<t>/STATUS..., tele/<t>/INFO1, ...), which would otherwise make
// devices of their own.
func (t *tasmota) handle(m *Model, msg Message) (Changes, bool) {
	if rest, ok := strings.CutPrefix(msg.Topic, tasmotaDiscovery); ok {
		mac, kind, _ := strings.Cut(rest, "/")
		if mac == "" || strings.ContainsAny(mac, "+#") {
			return Changes{}, true
		}
		switch kind {
		case "config":
			return t.config(m, mac, msg), true
		case "sensors":
			return t.sensorsMessage(m, mac, msg), true
		}
		return Changes{}, true
	}
	i := strings.LastIndexByte(msg.Topic, '/')
	if i < 0 {
		return Changes{}, false
	}
	p, ok := t.prefixes[msg.Topic[:i+1]]
	if !ok {
		return Changes{}, false
	}
	return Changes{}, p.role == "cmnd" || !tasmotaReads(msg.Topic[i+1:])
}

// tasmotaReads reports whether the model reads a stat/ or tele/ topic of
// that command name: POWER[n], RESULT, STATE, SENSOR, LWT.
func tasmotaReads(name string) bool {
	switch name {
	case "POWER", "RESULT", "STATE", "SENSOR", "LWT":
		return true
	}
	n, ok := strings.CutPrefix(name, "POWER")
	i, err := strconv.Atoi(n)
	return ok && err == nil && i >= 1 && i <= maxTasmotaRelays
}

// config reads a discovery config (an empty payload removes the device) and
// declares the device.
func (t *tasmota) config(m *Model, mac string, msg Message) Changes {
	d := t.devices[mac]
	if len(msg.Payload) == 0 {
		if d == nil || d.config == nil {
			return Changes{}
		}
		t.forgetPrefixes(d)
		d.config = nil
		if d.sensors == nil {
			delete(t.devices, mac)
		}
		return m.declare(tasmotaSource(mac), nil)
	}
	if m.oversized(msg) {
		return Changes{}
	}
	var c tasmotaConfig
	if json.Unmarshal(msg.Payload, &c) != nil || c.Topic == "" || c.FullTopic == "" {
		m.malformed()
		return Changes{}
	}
	if len(c.Relays) > maxTasmotaRelays {
		c.Relays = c.Relays[:maxTasmotaRelays]
	}
	if d = t.device(m, mac); d == nil {
		return Changes{}
	}
	t.forgetPrefixes(d)
	d.config = &c
	for _, role := range []string{"cmnd", "stat", "tele"} {
		t.prefixes[c.topic(mac, role)] = tasmotaPrefix{role: role, mac: mac}
	}
	return m.declare(tasmotaSource(mac), d.declarations())
}

// sensorsMessage reads a sensors discovery (an empty payload removes its
// entities) and declares the device again when its config is known.
func (t *tasmota) sensorsMessage(m *Model, mac string, msg Message) Changes {
	d := t.devices[mac]
	if len(msg.Payload) == 0 {
		if d == nil || d.sensors == nil {
			return Changes{}
		}
		d.sensors = nil
		if d.config == nil {
			delete(t.devices, mac)
			return Changes{}
		}
		return m.declare(tasmotaSource(mac), d.declarations())
	}
	if m.oversized(msg) {
		return Changes{}
	}
	s, ok := parseTasmotaSensors(msg.Payload, m.cfg.MaxEntities)
	if !ok {
		m.malformed()
		return Changes{}
	}
	if d = t.device(m, mac); d == nil {
		return Changes{}
	}
	d.sensors = s
	if d.config == nil {
		return Changes{} // declared with its config
	}
	return m.declare(tasmotaSource(mac), d.declarations())
}

// device is the device of mac, made when new and within MaxDevices.
func (t *tasmota) device(m *Model, mac string) *tasmotaDevice {
	d := t.devices[mac]
	if d == nil {
		if len(t.devices) >= m.cfg.MaxDevices {
			m.stats.RefusedDevices++
			return nil
		}
		d = &tasmotaDevice{mac: mac}
		t.devices[mac] = d
	}
	return d
}

// forgetPrefixes forgets the topic prefixes of d's config, unless another
// device has claimed them since.
func (t *tasmota) forgetPrefixes(d *tasmotaDevice) {
	if d.config == nil {
		return
	}
	for _, role := range []string{"cmnd", "stat", "tele"} {
		p := d.config.topic(d.mac, role)
		if t.prefixes[p].mac == d.mac {
			delete(t.prefixes, p)
		}
	}
}

func tasmotaSource(mac string) string { return Tasmota + ":" + tasmotaDiscovery + mac }

// topic is the prefix of the device's topics of a role (cmnd, stat, tele):
// its full topic with %prefix%, %topic%, %hostname% and %id% (the MAC's last
// six digits) replaced, ending with a slash.
func (c *tasmotaConfig) topic(mac, role string) string {
	prefix := role
	i := map[string]int{"cmnd": 0, "stat": 1, "tele": 2}[role]
	if i < len(c.Prefixes) && c.Prefixes[i] != "" {
		prefix = c.Prefixes[i]
	}
	id := mac
	if len(id) > 6 {
		id = id[len(id)-6:]
	}
	s := replaceTokens(c.FullTopic, "%prefix%", prefix, "%topic%", c.Topic, "%hostname%", c.Hostname, "%id%", id)
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

// replaceTokens is strings.NewReplacer(pairs...).Replace(s) for a few
// tokens starting with %, without making a Replacer each time (the model
// reads a full topic three times per declaration).
func replaceTokens(s string, pairs ...string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		if s[i] == '%' {
			for j := 0; j < len(pairs); j += 2 {
				if strings.HasPrefix(s[i:], pairs[j]) {
					b.WriteString(pairs[j+1])
					i += len(pairs[j])
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// stateTexts are the device's texts for on and off (StateText1 and 2).
func (c *tasmotaConfig) stateTexts() (on, off string) {
	on, off = "ON", "OFF"
	if len(c.State) >= 2 && c.State[0] != "" && c.State[1] != "" {
		off, on = c.State[0], c.State[1]
	}
	return on, off
}

// declarations is the device as the model shows it: a switch or light per
// relay, a dimmer for a dimmable light, its Wi-Fi signal, and its sensors.
func (d *tasmotaDevice) declarations() []declaration {
	c := d.config
	cmnd, stat, tele := c.topic(d.mac, "cmnd"), c.topic(d.mac, "stat"), c.topic(d.mac, "tele")
	if topics.ValidateTopic(cmnd+"x") != nil || topics.ValidateTopic(stat+"x") != nil || topics.ValidateTopic(tele+"x") != nil {
		return nil
	}
	name := c.DeviceName
	if name == "" {
		name = c.Topic
	}
	decl := declaration{
		device: Device{ID: Tasmota + ":" + d.mac, Name: name, Convention: Tasmota, Model: c.Module},
		availability: []availabilitySpec{{
			Topic:   tele + "LWT",
			Online:  cmp.Or(c.Online, "Online"),
			Offline: cmp.Or(c.Offline, "Offline"),
		}},
	}
	decl.entities = append(decl.entities, d.relays(cmnd, stat, tele)...)
	decl.entities = append(decl.entities, entitySpec{
		Entity: Entity{ID: "wifi_rssi", Name: "Wi-Fi signal", Kind: KindSensor, Type: TypeNumber, Unit: "%",
			DeviceClass: "signal_strength", Topic: tele + "STATE", Field: "Wifi.RSSI"},
		hidden: true, // the device's link quality
	})
	units := tasmotaUnits{temperature: "°C", pressure: "hPa"}
	if d.sensors != nil {
		units = d.sensors.units
		for _, leaf := range d.sensors.leaves {
			leaf.Topic = tele + "SENSOR"
			decl.entities = append(decl.entities, leaf)
		}
	}
	decl.expand = []expandSpec{{Topic: tele + "SENSOR", leaf: units.leaf}}
	return []declaration{decl}
}

// relays are the device's relays: switches, or lights (rl 2, or
// SetOption30 for all), named by fn, with a dimmer for a dimmable light.
func (d *tasmotaDevice) relays(cmnd, stat, tele string) []entitySpec {
	c := d.config
	count := 0
	for _, rl := range c.Relays {
		if rl == tasmotaRelay || rl == tasmotaLight {
			count++
		}
	}
	// One relay is POWER, several POWER1, POWER2, ... (SetOption26 numbers one too).
	numbered := count > 1 || c.Options["26"] == 1
	on, off := c.stateTexts()
	var out []entitySpec
	dimmable := false
	for i, rl := range c.Relays {
		if rl != tasmotaRelay && rl != tasmotaLight {
			continue
		}
		power := "POWER"
		if numbered {
			power += strconv.Itoa(i + 1)
		}
		name := c.DeviceName
		if i < len(c.FriendlyNames) && c.FriendlyNames[i] != nil && *c.FriendlyNames[i] != "" {
			name = *c.FriendlyNames[i]
		} else if numbered || name == "" {
			name = strings.TrimSpace(c.DeviceName + " " + strconv.Itoa(i+1))
		}
		kind := KindSwitch
		if rl == tasmotaLight || c.Options["30"] == 1 {
			kind = KindLight
			dimmable = dimmable || rl == tasmotaLight && c.LightSubtype > 0
		}
		state := stat + power
		out = append(out, entitySpec{
			Entity: Entity{ID: strings.ToLower(power), Name: name, Kind: kind, Type: TypeBoolean,
				Topic: state, Control: &Control{Topic: cmnd + power}},
			also: []stateSource{{Topic: stat + "RESULT", Field: power}, {Topic: tele + "STATE", Field: power}},
			read: func(payload []byte) (json.RawMessage, bool) {
				v, ok := onOff(payload, on, off)
				return boolJSON(v), ok
			},
			parseCommand: func(payload []byte) (json.RawMessage, bool) {
				switch s := textOf(payload); {
				case s == "1" || s == on || strings.EqualFold(s, "on"):
					return boolJSON(true), true
				case s == "0" || s == off || strings.EqualFold(s, "off"):
					return boolJSON(false), true
				}
				return nil, false // TOGGLE, BLINK, ...: no state to wait for
			},
			encode: func(value json.RawMessage) ([]byte, Confirm, error) {
				want := off
				if string(value) == "true" {
					want = on
				}
				return []byte(want), confirmText(state, "", want), nil
			},
		})
	}
	if dimmable {
		lo, hi, step := 0.0, 100.0, 1.0
		out = append(out, entitySpec{
			Entity: Entity{ID: "dimmer", Name: "Brightness", Kind: KindNumber, Type: TypeNumber, Unit: "%",
				Topic: stat + "RESULT", Field: "Dimmer",
				Control: &Control{Topic: cmnd + "Dimmer", Min: &lo, Max: &hi, Step: &step}},
			also: []stateSource{{Topic: tele + "STATE", Field: "Dimmer"}},
			encode: func(value json.RawMessage) ([]byte, Confirm, error) {
				f, ok := parseNumber(value)
				if !ok {
					return nil, Confirm{}, ErrBadValue
				}
				text := strconv.Itoa(int(f + 0.5))
				return []byte(text), confirmText(stat+"RESULT", "Dimmer", text), nil
			},
		})
	}
	return out
}

// parseTasmotaSensors reads a sensors discovery: {"sn": {sample}, "ver": 1}.
func parseTasmotaSensors(payload []byte, maxLeaves int) (*tasmotaSensors, bool) {
	var s struct {
		Sample json.RawMessage `json:"sn"`
	}
	if json.Unmarshal(payload, &s) != nil {
		return nil, false
	}
	out := &tasmotaSensors{units: tasmotaUnits{temperature: "°C", pressure: "hPa"}}
	if len(s.Sample) == 0 || s.Sample[0] != '{' {
		return out, true
	}
	if raw, ok := jsonField(s.Sample, "TempUnit"); ok && textOf(raw) == "F" {
		out.units.temperature = "°F"
	}
	if raw, ok := jsonField(s.Sample, "PressureUnit"); ok && textOf(raw) != "" {
		out.units.pressure = textOf(raw)
	}
	eachLeaf(s.Sample, "", maxLeafDepth, func(path string, v json.RawMessage) {
		if len(out.leaves) >= maxLeaves {
			return
		}
		if spec, ok := out.units.leaf(path, v); ok {
			spec.ID, spec.Field = path, path
			out.leaves = append(out.leaves, spec)
		}
	})
	return out, true
}

// leaf is the entity of a SENSOR leaf: named and given a unit and device
// class by Tasmota's names (ENERGY.Power W, BME280.Temperature °C, ...).
// Time, the unit keys and sensor ids are no readings.
func (u tasmotaUnits) leaf(path string, v json.RawMessage) (entitySpec, bool) {
	key := lastLevel(path, ".")
	switch key {
	case "Time", "TempUnit", "PressureUnit", "SpeedUnit", "Id", "TotalStartTime":
		return entitySpec{}, false
	}
	spec, ok := leafEntity(path, v)
	if !ok {
		return spec, false
	}
	spec.Name = tasmotaLeafName(path)
	if spec.Type != TypeNumber {
		return spec, true
	}
	energy := strings.HasPrefix(path, "ENERGY.")
	spec.StateClass = "measurement"
	switch {
	case key == "Temperature" || key == "DewPoint":
		spec.Unit, spec.DeviceClass = u.temperature, "temperature"
	case key == "Humidity":
		spec.Unit, spec.DeviceClass = "%", "humidity"
	case key == "Pressure" || key == "SeaPressure":
		spec.Unit, spec.DeviceClass = u.pressure, "pressure"
	case key == "Illuminance":
		spec.Unit, spec.DeviceClass = "lx", "illuminance"
	case key == "CarbonDioxide" || key == "eCO2":
		spec.Unit, spec.DeviceClass = "ppm", "carbon_dioxide"
	case key == "TVOC":
		spec.Unit = "ppb"
	case key == "Distance":
		spec.Unit, spec.DeviceClass = "cm", "distance"
	case energy && key == "Power":
		spec.Unit, spec.DeviceClass = "W", "power"
	case energy && key == "ApparentPower":
		spec.Unit, spec.DeviceClass = "VA", "apparent_power"
	case energy && key == "ReactivePower":
		spec.Unit, spec.DeviceClass = "var", "reactive_power"
	case energy && key == "Factor":
		spec.DeviceClass = "power_factor"
	case key == "Voltage":
		spec.Unit, spec.DeviceClass = "V", "voltage"
	case key == "Current":
		spec.Unit, spec.DeviceClass = "A", "current"
	case energy && key == "Frequency":
		spec.Unit, spec.DeviceClass = "Hz", "frequency"
	case energy && (key == "Total" || key == "Today"):
		spec.Unit, spec.DeviceClass, spec.StateClass = "kWh", "energy", "total_increasing"
	case energy && key == "Yesterday":
		spec.Unit, spec.DeviceClass, spec.StateClass = "kWh", "energy", ""
	case energy && key == "Period":
		spec.Unit, spec.DeviceClass, spec.StateClass = "Wh", "energy", ""
	default:
		spec.StateClass = ""
	}
	return spec, true
}

// tasmotaLeafName names a SENSOR leaf for people: ENERGY.ApparentPower is
// "Apparent power", ENERGY.Total "Energy total", ENERGY.Factor "Power
// factor", BME280.DewPoint "BME280 dew point".
func tasmotaLeafName(path string) string {
	levels := strings.Split(path, ".")
	if levels[0] == "ENERGY" && len(levels) == 2 {
		switch levels[1] {
		case "Total", "Today", "Yesterday":
			return "Energy " + strings.ToLower(levels[1])
		case "Factor":
			return "Power factor"
		}
		levels = levels[1:]
	}
	last := len(levels) - 1
	words := splitCamel(levels[last])
	if last == 0 {
		return words
	}
	return strings.Join(levels[:last], " ") + " " + lowerWord(words)
}

// lowerWord is s with its first letter in lower case when it starts a
// capitalised word (Temperature), not an acronym (TVOC, A0).
func lowerWord(s string) string {
	runes := []rune(s)
	if len(runes) > 1 && unicode.IsUpper(runes[0]) && unicode.IsLower(runes[1]) {
		runes[0] = unicode.ToLower(runes[0])
	}
	return string(runes)
}

// splitCamel is ApparentPower as "Apparent power"; runs of capitals
// (TVOC) and names starting in lower case (eCO2) stay as they are.
func splitCamel(s string) string {
	runes := []rune(s)
	if len(runes) == 0 || !unicode.IsUpper(runes[0]) {
		return s
	}
	var b strings.Builder
	for i, r := range runes {
		if i > 0 && unicode.IsUpper(r) && unicode.IsLower(runes[i-1]) {
			b.WriteByte(' ')
			if i+1 >= len(runes) || !unicode.IsUpper(runes[i+1]) {
				r = unicode.ToLower(r)
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}
