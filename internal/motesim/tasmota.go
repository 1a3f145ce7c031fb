package motesim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// The Tasmota device: a Sonoff POW R2 plug (one relay, energy metering) on
// Tasmota's default topics (https://tasmota.github.io/docs/MQTT/), with
// Tasmota's native discovery for Home Assistant's Tasmota integration; every
// message at QoS 0, as Tasmota publishes:
//
//	tasmota/discovery/DC4F22A1B2C3/config   device name, topic, full topic, relays   retained
//	tasmota/discovery/DC4F22A1B2C3/sensors  {"sn":{"ENERGY":{...}},"ver":1}         retained
//	tele/tasmota_A1B2C3/LWT                 Online  retained; the Will is Offline
//	tele/tasmota_A1B2C3/STATE               {"Time":...,"UptimeSec":...,"POWER":"ON","Wifi":{...}}  at connect and every ReportInterval
//	tele/tasmota_A1B2C3/SENSOR              {"Time":...,"ENERGY":{"Total":...,"Power":...,"Voltage":...,"Current":...}}  likewise
//	cmnd/tasmota_A1B2C3/POWER               ON, OFF, TOGGLE (1, 0, 2; any case); empty or anything else asks for the state
//	stat/tasmota_A1B2C3/RESULT              {"POWER":"ON"}   the answer, then
//	stat/tasmota_A1B2C3/POWER               ON
//
// Tasmota subscribes to cmnd/<topic>/#; a command it does not simulate is
// answered {"Command":"Unknown"} on RESULT, as Tasmota answers an unknown one.
const (
	tasmotaTopic  = "tasmota_A1B2C3"
	tasmotaMAC    = "DC4F22A1B2C3"
	tasmotaConfig = "tasmota/discovery/" + tasmotaMAC + "/config"
	tasmotaSensor = "tasmota/discovery/" + tasmotaMAC + "/sensors"
	tasmotaLWT    = "tele/" + tasmotaTopic + "/LWT"
	tasmotaState  = "tele/" + tasmotaTopic + "/STATE"
	tasmotaTele   = "tele/" + tasmotaTopic + "/SENSOR"
	tasmotaCmnd   = "cmnd/" + tasmotaTopic + "/"
	tasmotaResult = "stat/" + tasmotaTopic + "/RESULT"
	tasmotaPower  = "stat/" + tasmotaTopic + "/POWER"
	tasmotaName   = "Desk plug"
	// tasmotaLoad is what the plugged-in lamp draws, in watts.
	tasmotaLoad = 42.0
	// tasmotaTime is Tasmota's local time format, without a zone.
	tasmotaTime = "2006-01-02T15:04:05"
)

type tasmota struct {
	rng   *rand.Rand
	start time.Time // when the device was created: its boot
	on    bool
	total float64   // kWh since start
	last  time.Time // when total was last brought up to date
}

func newTasmota(seed uint64, n int) *tasmota {
	return &tasmota{rng: newRand(seed, n, streamSetup), start: time.Now()}
}

func (*tasmota) name() string { return DeviceTasmota }

func (*tasmota) filters() []string {
	return []string{"tasmota/discovery/" + tasmotaMAC + "/#",
		"tele/" + tasmotaTopic + "/#", "stat/" + tasmotaTopic + "/#", tasmotaCmnd + "#"}
}

func (*tasmota) will() (message, bool) {
	return message{topic: tasmotaLWT, retain: true, payload: []byte("Offline")}, true
}

func (*tasmota) subscriptions() []string { return []string{tasmotaCmnd + "#"} }

// tasmotaConfigPayload is Tasmota's discovery config (version 1): one relay,
// named; the other seven slots empty.
func tasmotaConfigPayload() []byte {
	none := []any{nil, nil, nil, nil, nil, nil, nil}
	return mustJSON(map[string]any{
		"ip": "127.0.0.1", "dn": tasmotaName, "fn": append([]any{tasmotaName}, none...),
		"hn": "tasmota-A1B2C3-0707", "mac": tasmotaMAC, "md": "Sonoff Pow R2", "ty": 0, "if": 0,
		"ofln": "Offline", "onln": "Online", "state": []string{"OFF", "ON", "TOGGLE", "HOLD"},
		"sw": "14.4.1", "t": tasmotaTopic, "ft": "%prefix%/%topic%/", "tp": []string{"cmnd", "stat", "tele"},
		"rl":  []int{1, 0, 0, 0, 0, 0, 0, 0},
		"swc": []int{-1, -1, -1, -1, -1, -1, -1, -1}, "swn": append([]any{nil}, none...),
		"btn": []int{0, 0, 0, 0, 0, 0, 0, 0},
		"so":  map[string]int{"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0, "73": 0, "82": 0, "114": 0, "117": 0},
		"lk":  0, "lt_st": 0, "bat": 0, "dslp": 0, "sho": []int{}, "sht": []any{}, "ver": 1,
	})
}

// energy is the ENERGY object of SENSOR (and of the discovery's sensors):
// voltage and a little noise; power and current when the relay is on.
func (t *tasmota) energy(now time.Time) map[string]any {
	t.accumulate(now)
	voltage := 229 + t.rng.IntN(4)
	power := 0.0
	if t.on {
		power = tasmotaLoad + float64(t.rng.IntN(5)-2)
	}
	current := power / float64(voltage)
	return map[string]any{
		"TotalStartTime": t.start.Format(tasmotaTime), "Total": round(t.total, 3),
		"Yesterday": 0.0, "Today": round(t.total, 3), "Power": power, "ApparentPower": power,
		"ReactivePower": 0, "Factor": boolFloat(t.on), "Voltage": voltage, "Current": round(current, 3),
	}
}

// accumulate brings the energy total up to now.
func (t *tasmota) accumulate(now time.Time) {
	if !t.last.IsZero() && t.on {
		t.total += tasmotaLoad * now.Sub(t.last).Hours() / 1000
	}
	t.last = now
}

func (t *tasmota) announce(now time.Time) []message {
	return []message{
		{topic: tasmotaLWT, retain: true, payload: []byte("Online")},
		{topic: tasmotaConfig, retain: true, payload: tasmotaConfigPayload()},
		{topic: tasmotaSensor, retain: true, payload: mustJSON(map[string]any{
			"sn": map[string]any{"Time": now.Format(tasmotaTime), "ENERGY": t.energy(now)}, "ver": 1})},
		t.state(now),
		t.sensor(now),
	}
}

func (t *tasmota) state(now time.Time) message {
	up := now.Sub(t.start)
	return message{topic: tasmotaState, payload: mustJSON(map[string]any{
		"Time": now.Format(tasmotaTime), "Uptime": tasmotaUptime(up), "UptimeSec": int(up.Seconds()),
		"Heap": 25, "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": 1,
		"POWER": t.power(),
		"Wifi":  map[string]any{"AP": 1, "SSId": "motesim", "Channel": 6, "Mode": "11n", "RSSI": 76, "Signal": -62, "LinkCount": 1},
	})}
}

func (t *tasmota) sensor(now time.Time) message {
	return message{topic: tasmotaTele, payload: mustJSON(map[string]any{
		"Time": now.Format(tasmotaTime), "ENERGY": t.energy(now)})}
}

func (t *tasmota) power() string {
	if t.on {
		return "ON"
	}
	return "OFF"
}

// tasmotaUptime is Tasmota's uptime: days, T, then hh:mm:ss.
func tasmotaUptime(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%dT%02d:%02d:%02d", s/86400, s/3600%24, s/60%60, s%60)
}

func (t *tasmota) obey(topic string, payload []byte) ([]message, error) {
	command, ok := strings.CutPrefix(topic, tasmotaCmnd)
	if !ok || command == "" || strings.Contains(command, "/") {
		return nil, fmt.Errorf("no command on %q", topic)
	}
	if c := strings.ToUpper(command); c != "POWER" && c != "POWER1" {
		return []message{{topic: tasmotaResult, payload: []byte(`{"Command":"Unknown"}`)}}, nil
	}
	t.accumulate(time.Now()) // the energy used so far, at the old state
	switch strings.ToUpper(strings.TrimSpace(string(payload))) {
	case "ON", "1", "TRUE":
		t.on = true
	case "OFF", "0", "FALSE":
		t.on = false
	case "TOGGLE", "2":
		t.on = !t.on
	default: // empty or unknown: Tasmota shows the state
	}
	return []message{
		{topic: tasmotaResult, payload: []byte(`{"POWER":"` + t.power() + `"}`)},
		{topic: tasmotaPower, payload: []byte(t.power())},
	}, nil
}

func (t *tasmota) report(now time.Time) []message {
	return []message{t.state(now), t.sensor(now)}
}

func (*tasmota) goodbye() []message {
	return []message{{topic: tasmotaLWT, retain: true, payload: []byte("Offline")}}
}

// round rounds x to the given number of decimals.
func round(x float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(x*p) / p
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
