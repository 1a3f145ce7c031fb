package bridge

import (
	"fmt"
	"strings"
	"testing"
)

// TestDeviceModelKnownIsTheModel: the worker makes each device's copy in
// the storage of the copy it replaced (publish): after batches of devices of
// different sizes (1 to 5 entities, more devices than a chunk), plain text
// and JSON, what it keeps as sent is what the model says, device by device.
func TestDeviceModelKnownIsTheModel(t *testing.T) {
	h := newTestHub(t, Config{})
	const n = 300
	for round := range 4 {
		for i := range n {
			topic := fmt.Sprintf("site/dev%d/data", i)
			switch {
			case i%7 == 0 && round%2 == 1: // plain text now and then: a Text record
				h.deliver(Message{Topic: topic, Payload: []byte("ON")})
			default:
				var kv []string
				for k := range (i+round)%5 + 1 { // keys appear and disappear
					kv = append(kv, fmt.Sprintf(`"k%d":%d`, k, round*1000+i))
				}
				h.deliver(Message{Topic: topic, Payload: []byte("{" + strings.Join(kv, ",") + "}")})
			}
		}
		waitModel(t, h)
		all := h.devices.devices()
		if len(all) != n || len(h.devices.known) != n {
			t.Fatalf("round %d: %d devices, %d known; want %d", round, len(all), len(h.devices.known), n)
		}
		for _, d := range all {
			if k := h.devices.known[d.ID]; !sameDevice(&k, &d) {
				t.Fatalf("round %d: %s known as\n%+v\nthe model has\n%+v", round, d.ID, k, d)
			}
		}
	}
}

// TestModelPayload: the model is told that a payload is valid JSON only
// when it is the record's JSON value itself.
func TestModelPayload(t *testing.T) {
	for _, c := range []struct {
		mqtt    string
		payload string
		json    bool
	}{
		{`{"a":1}`, `{"a":1}`, true},
		{`{ "a": 1 }`, `{"a":1}`, true}, // compacted by the hub
		{`21.5`, `21.5`, true},
		{`ON`, `ON`, false},             // a Text record
		{``, ``, false},                 // a retained message cleared
		{"\xff\x00", "\xff\x00", false}, // bytes: {"$base64": ...}
		{`{"$base64":"T04="}`, `ON`, false},
	} {
		p, text := payloadToJSON([]byte(c.mqtt))
		got, isJSON := modelPayload(p, text)
		if string(got) != c.payload || isJSON != c.json {
			t.Errorf("%q: the model reads %q, JSON %v; want %q, %v", c.mqtt, got, isJSON, c.payload, c.json)
		}
	}
}
