package bridge

import "testing"

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
