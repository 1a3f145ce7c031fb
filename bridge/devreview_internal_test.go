package bridge

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestMQTTPayloadOfWrappedLookalikes: what the device model reads of a
// frame's JSON value is the device's payload; a JSON object that only
// looks like {"$base64": ...} (its value no string) is the JSON itself,
// not an empty payload.
func TestMQTTPayloadOfWrappedLookalikes(t *testing.T) {
	for in, want := range map[string]string{
		`{"$base64":"T04="}`: "ON",
		`{"$base64":5}`:      `{"$base64":5}`,
		`{"$base64":null}`:   `{"$base64":null}`,
		`{"$text":"ON"}`:     `{"$text":"ON"}`, // a device's own JSON: only sessions wrap text
		`"hello"`:            `"hello"`,
	} {
		if got := string(mqttPayload([]byte(in), false)); got != want {
			t.Errorf("mqttPayload(%s) = %q, want %q", in, got, want)
		}
	}
	if got := string(mqttPayload([]byte(`"hello"`), true)); got != "hello" {
		t.Errorf("mqttPayload of a text payload = %q, want hello", got)
	}
}

// TestRebuildSendsOnlyWhatChanged: after the model's queue overflows and
// the worker rebuilds it, a follower gets frames of the one device that
// changed, not of every device the model holds.
func TestRebuildSendsOnlyWhatChanged(t *testing.T) {
	h := newTestHub(t, Config{DeviceQueue: 4})
	const quiet = 40
	for i := range quiet {
		h.deliver(Message{Topic: fmt.Sprintf("lab/dev%02d/state", i), Payload: []byte(`{"v":1}`)})
	}
	waitModel(t, h)
	c := attachTest(t, h, "")
	h.views.follow(c, true)

	h.devices.mu.Lock() // the worker stops at its next batch
	for i := range 20 {
		h.deliver(Message{Topic: "lab/busy/state", Payload: fmt.Appendf(nil, `{"v":%d}`, i)})
	}
	h.devices.mu.Unlock()
	waitModel(t, h)
	if h.Stats().ModelRebuilt == 0 {
		t.Fatal("20 messages through a queue of 4 with the worker held: no rebuild")
	}
	_, items := c.out.take(nil)
	frames := map[string]int{}
	for _, it := range items {
		var f struct{ ID string }
		if err := json.Unmarshal(devicePayload(t, it.line), &f); err != nil {
			t.Fatal(err)
		}
		frames[f.ID]++
	}
	if len(frames) != 1 || frames["json:lab/busy"] == 0 {
		t.Fatalf("after a rebuild the follower got frames of %d devices (%v), want only json:lab/busy", len(frames), frames)
	}
}

// devicePayload returns the payload of a device frame line.
func devicePayload(t *testing.T, line []byte) json.RawMessage {
	t.Helper()
	var frame []json.RawMessage
	if err := json.Unmarshal(line, &frame); err != nil || len(frame) != 2 || string(frame[0]) != `"`+topicDevice+`"` {
		t.Fatalf("not a device frame: %s", line)
	}
	return frame[1]
}
