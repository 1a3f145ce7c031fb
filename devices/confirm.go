package devices

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Confirmations: which message shows that a device did what a command asked.

// confirmText is confirmed by the text want (a Home Assistant state_on, a
// Tasmota ON) on topic, at field of a JSON payload ("" for the whole
// payload). Numbers compare by value: "21" confirms "21.0".
func confirmText(topic, field, want string) Confirm {
	return Confirm{Topic: topic, Field: field, want: canonicalText(want), text: true}
}

// confirmJSON is confirmed by the JSON value want at field of a JSON payload
// on topic ("" for the whole payload): {"state":"ON"} for Zigbee2MQTT's
// state field "ON", true for HARDWARIO's echoed state.
func confirmJSON(topic, field string, want json.RawMessage) Confirm {
	return Confirm{Topic: topic, Field: field, want: canonicalJSON(want)}
}

// Check reports whether payload, arriving on c.Topic, shows the state the
// command asked for.
func (c Confirm) Check(payload []byte) bool {
	if c.Topic == "" {
		return false
	}
	raw := json.RawMessage(payload)
	if c.Field != "" {
		var ok bool
		if raw, ok = jsonField(payload, c.Field); !ok {
			return false
		}
	}
	if c.text {
		return canonicalText(textOf(raw)) == c.want
	}
	return canonicalJSON(raw) == c.want
}

// canonicalText is a state as text, with numbers in one form.
func canonicalText(s string) string {
	if f, ok := parseNumber([]byte(s)); ok {
		return string(numberJSON(f))
	}
	return s
}

// canonicalJSON is a JSON value compacted, with numbers in one form; text
// that is no JSON stands for itself as a JSON string.
func canonicalJSON(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&v) != nil || d.More() {
		return string(stringJSON(string(raw)))
	}
	b, err := json.Marshal(canonicalNumbers(v))
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// canonicalNumbers rewrites every json.Number of v in its shortest form.
// Maps marshal with sorted keys, so member order does not matter either.
func canonicalNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return json.RawMessage(numberJSON(f))
		}
		return v
	case map[string]any:
		for k, x := range v {
			v[k] = canonicalNumbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = canonicalNumbers(x)
		}
	}
	return v
}
