package devices

import (
	"fmt"
	"strings"
	"testing"
)

// checkBounds fails when m holds more than its Config allows.
func checkBounds(t testing.TB, m *Model) {
	t.Helper()
	c := m.cfg
	if len(m.devices) > c.MaxDevices || len(m.topics) > c.MaxTopics || len(m.sources) > c.MaxTopics || m.keptBytes > c.MaxKeptBytes || m.keptBytes < 0 {
		t.Fatalf("bounds broken: %d devices (max %d), %d topics and %d sources (max %d), %d kept bytes (max %d)",
			len(m.devices), c.MaxDevices, len(m.topics), len(m.sources), c.MaxTopics, m.keptBytes, c.MaxKeptBytes)
	}
	kept := 0
	for _, tp := range m.topics {
		kept += len(tp.kept)
	}
	if kept != m.keptBytes {
		t.Fatalf("kept bytes %d, counted %d", kept, m.keptBytes)
	}
	for id, d := range m.devices {
		if len(d.entities) > c.MaxEntities {
			t.Fatalf("device %s: %d entities (max %d)", id, len(d.entities), c.MaxEntities)
		}
		if d.heuristic() && len(d.parts) > c.MaxEntities {
			t.Fatalf("heuristic device %s: %d topics (max %d)", id, len(d.parts), c.MaxEntities)
		}
	}
	for name, es := range m.commands {
		for _, e := range es {
			if m.devices[e.part.dev.id] != e.part.dev {
				t.Fatalf("command topic %s of a device that is gone", name)
			}
		}
	}
}

// The 10,001st device is refused and counted.
func TestMaxDevices(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	for i := range DefaultMaxDevices + 1 {
		m.Apply(msg(fmt.Sprintf("homeassistant/sensor/s%d/config", i), fmt.Sprintf(`{"stat_t":"s/%d","uniq_id":"u%d","unit_of_meas":"W"}`, i, i)))
	}
	if n, s := len(m.Devices()), m.Stats(); n != DefaultMaxDevices || s.RefusedDevices != 1 {
		t.Fatalf("%d devices, %d refused; want %d and 1", n, s.RefusedDevices, DefaultMaxDevices)
	}
	// One gone makes room again.
	m.Apply(msg("homeassistant/sensor/s0/config", ""))
	m.Apply(msg("homeassistant/sensor/more/config", `{"stat_t":"s/more","uniq_id":"more"}`))
	if _, ok := m.Device("homeassistant:more"); !ok {
		t.Error("no room after a removal")
	}
	checkBounds(t, m)
}

func TestMaxEntities(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	var b strings.Builder
	b.WriteString("{")
	for i := range DefaultMaxEntities + 10 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%03d":%d`, i, i)
	}
	b.WriteString("}")
	m.Apply(msg("sites/big/env", b.String()))
	d := mustDevice(t, m, "json:sites/big")
	if len(d.Entities) != DefaultMaxEntities || m.Stats().RefusedEntities != 10 {
		t.Fatalf("%d entities, %d refused; want %d and 10", len(d.Entities), m.Stats().RefusedEntities, DefaultMaxEntities)
	}
	// Declared entities are held too.
	for i := range DefaultMaxEntities + 1 {
		m.Apply(msg(fmt.Sprintf("homeassistant/sensor/e%d/config", i), fmt.Sprintf(`{"stat_t":"e/%d","uniq_id":"e%d","dev":{"ids":"one"}}`, i, i)))
	}
	if n := len(mustDevice(t, m, "homeassistant:one").Entities); n != DefaultMaxEntities {
		t.Errorf("%d declared entities, want %d", n, DefaultMaxEntities)
	}
	checkBounds(t, m)
}

func TestMaxTopics(t *testing.T) {
	t.Parallel()
	m := New(Config{MaxTopics: 10})
	for i := range 20 {
		m.Apply(msg(fmt.Sprintf("a/b/c%d", i), "1"))
		m.Apply(msg(fmt.Sprintf("homeassistant/sensor/x%d/config", i), fmt.Sprintf(`{"stat_t":"x/%d","uniq_id":"x%d"}`, i, i)))
		checkBounds(t, m)
	}
	if s := m.Stats(); s.Topics != 10 || s.RefusedTopics == 0 {
		t.Errorf("stats %+v: want 10 topics and some refused", s)
	}
}

func TestMaxKeptBytes(t *testing.T) {
	t.Parallel()
	m := New(Config{MaxKeptBytes: 100})
	payload := strings.Repeat("7", 40)
	for i := range 5 {
		m.Apply(msg(fmt.Sprintf("a/b/c%d", i), payload))
		checkBounds(t, m)
	}
	if m.keptBytes != 80 || m.Stats().RefusedTopics != 3 {
		t.Errorf("%d bytes kept, %d refused; want 80 and 3", m.keptBytes, m.Stats().RefusedTopics)
	}
	// A payload past maxKeptPayload is neither kept nor read by the heuristics.
	m = New(Config{})
	m.Apply(msg("a/b/huge", `"`+strings.Repeat("x", maxKeptPayload)+`"`))
	if len(m.Devices()) != 0 || m.keptBytes != 0 {
		t.Errorf("a huge payload made %v and kept %d bytes", ids(m.Devices()), m.keptBytes)
	}
}
