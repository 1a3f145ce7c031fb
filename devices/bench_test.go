package devices

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The retained messages a broker holds for n devices of about k entities
// each, per convention, as the hub receives them at start: BenchmarkBuild2000
// builds the model of 2,000 devices × 10 entities from them (issue 15 asks
// for under a second), and batch_test.go checks that ApplyAll builds from
// them (shuffled too) the model Apply builds.

// retainedHA is what a broker holding n Home Assistant devices of k sensors
// each sends at start: every config, and one JSON state per device (half
// of them before their configs: retained messages come in any order).
func retainedHA(n, k int) []Message {
	var states, configs []Message
	for i := range n {
		state := "{"
		for j := range k {
			configs = append(configs, msg(fmt.Sprintf("homeassistant/sensor/dev%d/v%d/config", i, j),
				fmt.Sprintf(`{"name":"Value %d","uniq_id":"dev%d_v%d","stat_t":"site/dev%d/state","val_tpl":"{{ value_json.v%d }}","unit_of_meas":"°C","dev_cla":"temperature","stat_cla":"measurement","avty_t":"site/dev%d/lwt","dev":{"ids":["dev%d"],"name":"Device %d","mf":"Acme","mdl":"S10"}}`,
					j, i, j, i, j, i, i, i)))
			if j > 0 {
				state += ","
			}
			state += fmt.Sprintf(`"v%d":%d.5`, j, j)
		}
		states = append(states, msg(fmt.Sprintf("site/dev%d/state", i), state+"}"), msg(fmt.Sprintf("site/dev%d/lwt", i), "online"))
	}
	return halfBefore(states, configs)
}

// halfBefore is half of states, then discovery, then the other half.
func halfBefore(states, discovery []Message) []Message {
	out := append([]Message{}, states[:len(states)/2]...)
	out = append(out, discovery...)
	return append(out, states[len(states)/2:]...)
}

// retainedHomie is n Homie 4 devices of one node with k properties (the
// first settable), each attribute its own retained message in the order a
// device publishes them, then the values and $state ready.
func retainedHomie(n, k int) []Message {
	var out []Message
	for i := range n {
		base := fmt.Sprintf("homie/dev%d/", i)
		props := make([]string, k)
		for j := range k {
			props[j] = fmt.Sprintf("p%d", j)
		}
		out = append(out,
			msg(base+"$homie", "4.0.0"),
			msg(base+"$name", fmt.Sprintf("Device %d", i)),
			msg(base+"$state", "init"),
			msg(base+"$nodes", "sensor"),
			msg(base+"sensor/$name", "Sensor"),
			msg(base+"sensor/$properties", strings.Join(props, ",")))
		for j, p := range props {
			at := base + "sensor/" + p + "/"
			out = append(out, msg(at+"$name", fmt.Sprintf("Value %d", j)), msg(at+"$datatype", "float"), msg(at+"$unit", "°C"))
			if j == 0 {
				out = append(out, msg(at+"$settable", "true"))
			}
		}
		for _, p := range props {
			out = append(out, msg(base+"sensor/"+p, "21.5"))
		}
		out = append(out, msg(base+"$state", "ready"))
	}
	return out
}

// retainedZigbee is a Zigbee2MQTT bridge's device list of n devices of k
// exposes each (a switch, then readings), the devices' state JSON and
// availability, half of them before the list.
func retainedZigbee(n, k int) []Message {
	type expose struct {
		Type     string `json:"type"`
		Name     string `json:"name"`
		Property string `json:"property"`
		Access   int    `json:"access"`
		Unit     string `json:"unit,omitempty"`
		ValueOn  string `json:"value_on,omitempty"`
		ValueOff string `json:"value_off,omitempty"`
	}
	type definition struct {
		Model   string   `json:"model"`
		Vendor  string   `json:"vendor"`
		Exposes []expose `json:"exposes"`
	}
	type dev struct {
		IEEE       string      `json:"ieee_address"`
		Name       string      `json:"friendly_name"`
		Type       string      `json:"type"`
		Definition *definition `json:"definition"`
	}
	list := []dev{{IEEE: "0x0000000000000000", Name: "Coordinator", Type: "Coordinator"}}
	var states []Message
	for i := range n {
		def := &definition{Model: "S10", Vendor: "Acme", Exposes: []expose{{Type: "binary", Name: "state", Property: "state", Access: 7, ValueOn: "ON", ValueOff: "OFF"}}}
		state := map[string]any{"state": "ON"}
		for j := 1; j < k; j++ {
			p := fmt.Sprintf("v%d", j)
			def.Exposes = append(def.Exposes, expose{Type: "numeric", Name: p, Property: p, Access: 1, Unit: "°C"})
			state[p] = float64(j) + 0.5
		}
		name := fmt.Sprintf("dev%d", i)
		list = append(list, dev{IEEE: fmt.Sprintf("0x%016x", i+1), Name: name, Type: "EndDevice", Definition: def})
		payload, _ := json.Marshal(state)
		states = append(states, msg("zigbee2mqtt/"+name, string(payload)), msg("zigbee2mqtt/"+name+"/availability", `{"state":"online"}`))
	}
	payload, _ := json.Marshal(list)
	return halfBefore(states, []Message{msg("zigbee2mqtt/bridge/devices", string(payload))})
}

// retainedTasmota is n Tasmota plugs (one relay) with k-2 sensor readings
// (besides the relay and the Wi-Fi signal): their discovery config and
// sensors, LWT, POWER, STATE and SENSOR, half of them before the discovery.
func retainedTasmota(n, k int) []Message {
	var states, discovery []Message
	for i := range n {
		mac := fmt.Sprintf("A4CF12%06X", i)
		t := fmt.Sprintf("plug%d", i)
		var readings []string
		for j := range k - 2 {
			readings = append(readings, fmt.Sprintf(`"V%d":%d.5`, j, j))
		}
		sensor := `{"Time":"2026-12-02T21:00:00","ENERGY":{` + strings.Join(readings, ",") + `}}`
		discovery = append(discovery,
			msg("tasmota/discovery/"+mac+"/config", fmt.Sprintf(`{"dn":"Plug %d","fn":["Plug %d",null],"hn":"%s","mac":"%s","md":"Sonoff Pow R2","ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"t":"%s","ft":"%%prefix%%/%%topic%%/","tp":["cmnd","stat","tele"],"rl":[1,0],"so":{"30":0},"lt_st":0,"ver":1}`, i, i, t, mac, t)),
			msg("tasmota/discovery/"+mac+"/sensors", `{"sn":`+sensor+`,"ver":1}`))
		states = append(states,
			msg("tele/"+t+"/LWT", "Online"),
			msg("stat/"+t+"/POWER", "ON"),
			msg("tele/"+t+"/STATE", `{"POWER":"ON","Wifi":{"RSSI":76}}`),
			msg("tele/"+t+"/SENSOR", sensor))
	}
	return halfBefore(states, discovery)
}

// retainedMixed is n devices of k entities, a quarter of each convention,
// in a shuffled order (a broker's retained store has no order).
func retainedMixed(n, k int, seed uint64) []Message {
	q := n / 4
	var out []Message
	out = append(out, retainedHA(q, k)...)
	out = append(out, retainedHomie(q, k)...)
	out = append(out, retainedZigbee(q, k)...)
	out = append(out, retainedTasmota(n-3*q, k)...)
	return shuffled(out, seed)
}

// shuffled is msgs in a random order of seed.
func shuffled(msgs []Message, seed uint64) []Message {
	out := append([]Message{}, msgs...)
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// BenchmarkBuild2000 builds the model of 2,000 devices × 10 entities from
// retained discovery and state messages (issue 15 asks for under a second),
// per convention and mixed, with ApplyAll as the hub does at start and, for
// comparison, with Apply one message at a time:
//
//	go test ./devices -run '^$' -bench BenchmarkBuild2000 -benchtime 3x
func BenchmarkBuild2000(b *testing.B) {
	const devices, entities = 2000, 10
	sets := []struct {
		name string
		msgs []Message
		want int // devices shown: the Zigbee coordinator too
	}{
		{"HomeAssistant", retainedHA(devices, entities), devices},
		{"Homie4", retainedHomie(devices, entities), devices},
		{"Zigbee2MQTT", retainedZigbee(devices, entities), devices + 1},
		{"Tasmota", retainedTasmota(devices, entities), devices},
		{"Mixed", retainedMixed(devices, entities, 1), devices + 1},
	}
	for _, set := range sets {
		for _, batched := range []bool{true, false} {
			name := set.name + "/ApplyAll"
			if !batched {
				name = set.name + "/Apply"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					m := New(Config{})
					if batched {
						m.ApplyAll(set.msgs)
					} else {
						for _, x := range set.msgs {
							m.Apply(x)
						}
					}
					if n := len(m.Devices()); n != set.want {
						b.Fatalf("%d devices, want %d", n, set.want)
					}
				}
				perBuild := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(devices/perBuild, "devices/s")
				b.ReportMetric(perBuild*1000, "ms/build")
				b.ReportMetric(float64(len(set.msgs)), "msgs/build")
			})
		}
	}
}

// The benchmark's models are right: every device has its entities, each
// with a value, and is online.
func TestBuildModel(t *testing.T) {
	t.Parallel()
	const devices, entities = 20, 10
	sets := map[string]struct {
		msgs []Message
		want int // entities shown per device
	}{
		"HomeAssistant": {retainedHA(devices, entities), entities},
		"Homie4":        {retainedHomie(devices, entities), entities},
		"Zigbee2MQTT":   {retainedZigbee(devices, entities), entities},
		"Tasmota":       {retainedTasmota(devices, entities), entities - 1}, // and the hidden Wi-Fi signal
	}
	for name, set := range sets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := New(Config{})
			m.ApplyAll(set.msgs)
			ds := m.Devices()
			var own []Device
			for _, d := range ds {
				if d.ID != "zigbee2mqtt:0x0000000000000000" { // the coordinator
					own = append(own, d)
				}
			}
			if len(own) != devices {
				t.Fatalf("%d devices, want %d: %v", len(own), devices, ids(ds))
			}
			for _, d := range own {
				if len(d.Entities) != set.want || d.Availability != Online || d.Name == "" {
					t.Fatalf("device %s", asJSON(t, d))
				}
				for _, e := range d.Entities {
					if e.Value == nil {
						t.Fatalf("device %s: %s has no value", d.ID, e.ID)
					}
				}
			}
		})
	}
}
