package devices

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Reading values: payloads as devices send them (JSON, or bare text such as
// ON or 21.5) to the normalised values of Entity.Value.

// maxValueBytes bounds one entity's value: a larger raw value is not kept.
const maxValueBytes = 16 << 10

// jsonField returns the JSON value at a dotted path in payload ("" is the
// whole payload, which must then be JSON). A level that is a number indexes
// an array. ok is false when payload is not JSON or has nothing at path.
func jsonField(payload []byte, path string) (json.RawMessage, bool) {
	return jsonFieldOf(payload, path, false)
}

// jsonFieldOf is jsonField of a payload that valid says is valid JSON
// already (Message.JSON): not checked again.
func jsonFieldOf(payload []byte, path string, valid bool) (json.RawMessage, bool) {
	payload = bytes.TrimSpace(payload)
	if !valid && !json.Valid(payload) {
		return nil, false
	}
	if path == "" {
		return payload, true
	}
	cur := json.RawMessage(payload)
	for rest := path; ; {
		key, tail, more := strings.Cut(rest, ".")
		next, ok := jsonChild(cur, key)
		if !ok {
			return nil, false
		}
		cur = next
		if !more {
			return cur, true
		}
		rest = tail
	}
}

// jsonChild is the member key of a JSON object, or the element key (a
// decimal index) of a JSON array; v is valid JSON.
func jsonChild(v json.RawMessage, key string) (json.RawMessage, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return nil, false
	}
	switch v[0] {
	case '{':
		return objectMember(v, key)
	case '[':
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 {
			return nil, false
		}
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) != nil || i >= len(arr) {
			return nil, false
		}
		return arr[i], true
	}
	return nil, false
}

// textOf is a payload or JSON value as text: a JSON string's content, else
// the bytes themselves without surrounding space.
func textOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && plainJSONString(raw[1:len(raw)-1]) {
			return string(raw[1 : len(raw)-1]) // what json.Unmarshal gives, without its work
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// onOff reads raw (text, or a JSON string or boolean) as on or off. on and
// off are the device's own payloads ("" for none); ON/OFF, on/off and
// true/false are understood too, unless they are the device's payload for
// the other state. ok is false for anything else.
func onOff(raw []byte, on, off string) (state, ok bool) {
	s := textOf(raw)
	switch {
	case on != "" && s == on:
		return true, true
	case off != "" && s == off:
		return false, true
	}
	switch s {
	case "ON", "on", "On", "true", "TRUE", "True":
		return true, s != off
	case "OFF", "off", "Off", "false", "FALSE", "False":
		return false, s != on
	}
	return false, false
}

// parseNumber reads raw as a finite number: a JSON number, a JSON string or
// bare text holding one ("21.5"), or Clown.Talk's [21.5, "°C"].
func parseNumber(raw []byte) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var pair []json.RawMessage
		if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
			return 0, false
		}
		var unit string
		if json.Unmarshal(pair[1], &unit) != nil {
			return 0, false
		}
		raw = bytes.TrimSpace(pair[0])
		if len(raw) > 0 && raw[0] == '"' {
			return 0, false
		}
	}
	var f float64
	var err error
	if len(raw) > 0 && raw[0] != '"' {
		f, err = strconv.ParseFloat(string(raw), 64) // textOf(raw), without allocating it
	} else {
		f, err = strconv.ParseFloat(strings.TrimSpace(textOf(raw)), 64)
	}
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// unitOf is the unit of Clown.Talk's [21.5, "°C"], else "".
func unitOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return ""
	}
	var pair []json.RawMessage
	if json.Unmarshal(raw, &pair) != nil || len(pair) != 2 {
		return ""
	}
	var unit string
	if json.Unmarshal(pair[1], &unit) != nil {
		return ""
	}
	if _, ok := parseNumber(raw); !ok {
		return ""
	}
	return unit
}

// numberJSON is f as a JSON number, in its shortest form.
// Like JavaScript, it writes digits without an exponent from 1e-6 to 1e21.
func numberJSON(f float64) json.RawMessage {
	if a := math.Abs(f); a == 0 || a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(nil, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64)
}

// boolJSON is b as JSON.
func boolJSON(b bool) json.RawMessage {
	if b {
		return json.RawMessage("true")
	}
	return json.RawMessage("false")
}

// stringJSON is s as a JSON string.
func stringJSON(s string) json.RawMessage {
	if plainJSONString(s) {
		b := make([]byte, 0, len(s)+2) // what json.Marshal writes, without its work
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// plainJSONString reports whether s is the same inside a JSON string as
// outside it: printable ASCII without '"' and '\', nor '<', '>' and '&',
// which json.Marshal escapes. json.Unmarshal of `"s"` is then s, and
// json.Marshal of s is `"s"`.
func plainJSONString[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !plainJSONByte[s[i]] {
			return false
		}
	}
	return true
}

// plainJSONByte says which bytes plainJSONString takes: a table, one load
// per byte of every text value the model reads.
var plainJSONByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// readValue is the core's reading of a payload for an entity without a read
// hook: its Field, normalised to its Type. Text that is not JSON is read as
// a string, so a bare ON is on and a bare 21.5 is a number. valid says that
// payload is valid JSON (Message.JSON).
func readValue(e *Entity, payload []byte, valid bool) (json.RawMessage, bool) {
	raw, ok := jsonFieldOf(payload, e.Field, valid)
	if !ok {
		if e.Field != "" {
			return nil, false
		}
		raw = stringJSON(string(bytes.TrimSpace(payload)))
	}
	return normalise(e.Type, raw)
}

// normalise turns a JSON value into one of type typ.
func normalise(typ string, raw json.RawMessage) (json.RawMessage, bool) {
	switch typ {
	case TypeNumber:
		f, ok := parseNumber(raw)
		if !ok {
			return nil, false
		}
		return numberJSON(f), true
	case TypeBoolean:
		on, ok := onOff(raw, "", "")
		if !ok {
			return nil, false
		}
		return boolJSON(on), true
	case TypeText, TypeEnum:
		if s := bytes.TrimSpace(raw); len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' && plainJSONString(s[1:len(s)-1]) {
			return bytes.Clone(s), true // stringJSON(textOf(raw)), in one allocation instead of two
		}
		return stringJSON(textOf(raw)), true
	default:
		return compactJSON(raw)
	}
}

// compactJSON is raw without insignificant space, or ok false when it is no
// JSON or too long to keep.
func compactJSON(raw []byte) (json.RawMessage, bool) {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil || b.Len() > maxValueBytes {
		return nil, false
	}
	return b.Bytes(), true
}
