package devices

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/devicetrace"
)

// fuzzConfig is small, so that the fuzzer reaches the bounds.
var fuzzConfig = Config{MaxDevices: 4, MaxEntities: 6, MaxTopics: 12, MaxDiscoveryBytes: 2048, MaxKeptBytes: 512}

// seedTraces adds the messages of every trace as seeds of f.
func seedTraces(f *testing.F, add func(msg devicetrace.Message)) {
	f.Helper()
	traces, err := filepath.Glob("../testdata/devices/*.trace")
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range traces {
		msgs, err := devicetrace.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, msg := range msgs {
			add(msg)
		}
	}
}

// FuzzApply: random topics and payloads never panic, the bounds hold, what
// the model hands out is valid JSON, and ApplyAll of the messages cut into
// batches where split says, those that are valid JSON marked so as the hub
// marks them (Message.JSON), builds what Apply of each, unmarked, builds.
func FuzzApply(f *testing.F) {
	seedTraces(f, func(msg devicetrace.Message) {
		f.Add(msg.Topic, msg.Payload, msg.Retain, "homeassistant/sensor/s/state", []byte(`{"temperature":1}`), byte(0))
	})
	f.Add("a/b/c", []byte(`{"state":true}`), true, "a/b/c", []byte(``), byte(0b0101))
	f.Add("homeassistant/switch/x/config", []byte(`{"~":"x","cmd_t":"~/set","stat_t":"~/state","avty":[{"t":"~/a"}],"avty_mode":"all"}`), true, "x/state", []byte("ON"), byte(0b0010))
	f.Add("a/b/d", []byte(`{"a":1,"b":2,"c":3,"d":4}`), true, "a/b/c", []byte(`{"e":1,"f":2,"g":3}`), byte(0b1000))
	f.Add("homie/d/$nodes", []byte(`n`), true, "homie/d/n/$properties", []byte(`p,q`), byte(0b0001))
	f.Fuzz(func(t *testing.T, topic1 string, payload1 []byte, retained bool, topic2 string, payload2 []byte, split byte) {
		msgs := []Message{
			{Topic: topic1, Payload: payload1, Retained: retained},
			{Topic: topic2, Payload: payload2, Retained: retained},
			{Topic: topic1, Payload: payload2, Retained: retained},
			{Topic: topic2, Payload: nil, Retained: true},
			{Topic: topic1, Payload: nil, Retained: true},
		}
		for i := range msgs {
			msgs[i].Time = traceStart.Add(time.Duration(i) * time.Second)
		}
		m, batched := New(fuzzConfig), New(fuzzConfig)
		var batch []Message
		for i, msg := range msgs {
			m.Apply(msg)
			checkBounds(t, m)
			for _, d := range m.Devices() {
				if _, err := json.Marshal(d); err != nil {
					t.Fatalf("device %s: %v", d.ID, err)
				}
				for _, e := range d.Entities {
					if e.Control != nil {
						_, _ = m.Command(d.ID, e.ID, json.RawMessage("true"))
						_, _ = m.ConfirmFor(e.Control.Topic, payload2)
					}
				}
			}
			marked := msg
			marked.JSON = json.Valid(msg.Payload)
			batch = append(batch, marked)
			if split&(1<<i) == 0 && i < len(msgs)-1 {
				continue
			}
			batched.ApplyAll(batch)
			batch = nil
			checkBounds(t, batched)
			if diff := firstDifference(t, m.Devices(), batched.Devices()); diff != "" {
				t.Fatalf("after message %d: %s", i+1, diff)
			}
			if a, b := heldBy(m), heldBy(batched); a != b {
				t.Fatalf("after message %d: Apply holds %s, ApplyAll %s", i+1, a, b)
			}
		}
	})
}

// haState are messages a Home Assistant installation had before a config
// came and went.
var haState = []Message{
	msg("homeassistant/sensor/bedroomT/config", haTempConfig),
	msg("homeassistant/sensor/bedroomH/config", haHumConfig),
	msg("bedroom/state", bedroomState),
	msg("homeassistant/switch/plug/config", haPlugConfig),
	msg("home/plug/state", "ON"),
	msg("home/plug/lwt", "Online"),
}

// FuzzDiscovery: a config, then its empty retained message, leaves the
// model as it was.
func FuzzDiscovery(f *testing.F) {
	seedTraces(f, func(msg devicetrace.Message) {
		if component, _, _, ok := haDiscoveryTopic(msg.Topic); ok && len(msg.Payload) > 0 {
			f.Add(component, msg.Payload)
		}
	})
	f.Add("switch", []byte(haPlugConfig))
	f.Add("sensor", []byte(`{"stat_t":"bedroom/state","uniq_id":"z","dev":{"ids":"bedroom"},"val_tpl":"{{ value_json.temperature | int }}"}`))
	f.Fuzz(func(t *testing.T, component string, config []byte) {
		m := New(Config{})
		applyAll(m, haState...)
		before, _ := json.Marshal(m.Devices())
		topics, sources, commands := len(m.topics), len(m.sources), len(m.commands)
		topic := "homeassistant/" + component + "/fuzz/config"
		m.Apply(Message{Topic: topic, Payload: config, Retained: true, Time: traceStart})
		m.Apply(Message{Topic: topic, Retained: true, Time: traceStart})
		after, _ := json.Marshal(m.Devices())
		if string(before) != string(after) {
			t.Fatalf("the model changed:\nbefore %s\nafter  %s", before, after)
		}
		if len(m.topics) != topics || len(m.sources) != sources || len(m.commands) != commands {
			t.Fatalf("left behind: topics %d → %d, sources %d → %d, command topics %d → %d", topics, len(m.topics), sources, len(m.sources), commands, len(m.commands))
		}
	})
}
