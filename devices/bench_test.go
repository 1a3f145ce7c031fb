package devices

import (
	"fmt"
	"testing"
)

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
	out := append([]Message{}, states[:len(states)/2]...)
	out = append(out, configs...)
	return append(out, states[len(states)/2:]...)
}

// BenchmarkBuild2000 builds the model of 2,000 devices × 10 entities from
// retained discovery and state messages (issue 15 asks for under a second).
func BenchmarkBuild2000(b *testing.B) {
	const devices = 2000
	msgs := retainedHA(devices, 10)
	b.ReportAllocs()
	for b.Loop() {
		m := New(Config{})
		for _, x := range msgs {
			m.Apply(x)
		}
		if n := len(m.Devices()); n != devices {
			b.Fatalf("%d devices, want %d", n, devices)
		}
	}
	b.ReportMetric(float64(devices)*float64(b.N)/b.Elapsed().Seconds(), "devices/s")
}

// The benchmark's model is right: every device has its 10 values and is online.
func TestBuildModel(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	applyAll(m, retainedHA(20, 10)...)
	ds := m.Devices()
	if len(ds) != 20 {
		t.Fatalf("%d devices, want 20", len(ds))
	}
	for _, d := range ds {
		if len(d.Entities) != 10 || d.Availability != Online || d.Name == "" {
			t.Fatalf("device %s", asJSON(t, d))
		}
		for _, e := range d.Entities {
			if e.Value == nil {
				t.Fatalf("device %s: %s has no value", d.ID, e.ID)
			}
		}
	}
}
