package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// The Clown.Talk wire format: one message per line, each line a JSON array
// [topic, payload] (plus {"id": ...} when the client asked for ids) ending in
// '\n'. These functions are the only place that knows it.

// PayloadToJSON converts an MQTT payload to the JSON value a frame carries:
// valid JSON as is, compacted to one line; other valid UTF-8 as a JSON string;
// anything else as {"$base64": "..."}. The result may share p's memory.
func PayloadToJSON(p []byte) []byte {
	out, _ := payloadToJSON(p)
	return out
}

// payloadToJSON is PayloadToJSON, and whether p was plain text (valid UTF-8
// that is not JSON, carried as a JSON string): the frames of a session that
// asked for "text" show it as {"$text": "..."} (see textPayload).
func payloadToJSON(p []byte) (out []byte, text bool) {
	// One pass for what every device message is: valid JSON, often compact.
	if valid, compact := scanJSON(p); compact {
		return p, false
	} else if valid {
		var b bytes.Buffer
		b.Grow(len(p))
		_ = json.Compact(&b, p) // cannot fail: p is valid JSON
		return b.Bytes(), false
	}
	if !utf8.Valid(p) {
		out := make([]byte, 0, len(`{"$base64":""}`)+base64.StdEncoding.EncodedLen(len(p)))
		out = append(out, `{"$base64":"`...)
		out = base64.StdEncoding.AppendEncode(out, p)
		return append(out, `"}`...), false
	}
	return appendString(make([]byte, 0, len(p)+2), p), true
}

// appendTextPayload appends {"$text": s} for s, the JSON string
// payloadToJSON made of a plain-text payload.
func appendTextPayload(dst, s []byte) []byte {
	dst = append(dst, `{"$text":`...)
	dst = append(dst, s...)
	return append(dst, '}')
}

// mqttPayload is the MQTT payload a frame's JSON value p came from (the
// inverse of payloadToJSON, text telling a plain-text payload from a JSON
// string): what the device model reads.
func mqttPayload(p []byte, text bool) []byte {
	if text {
		var s string
		if json.Unmarshal(p, &s) == nil {
			return []byte(s)
		}
		return p
	}
	if b, ok, err := wrappedBytes(p, "$base64"); ok && err == nil {
		return b
	}
	return p
}

// PayloadFromJSON converts a frame's JSON value to the MQTT payload: the
// compact JSON text, except that {"$base64": "..."} becomes the decoded bytes,
// so that binary payloads survive a round trip through a browser, and
// {"$text": "..."} the bytes of the text (a bare ON, not "ON" with its quotes).
func PayloadFromJSON(v json.RawMessage) ([]byte, error) {
	for _, key := range []string{"$base64", "$text"} {
		if b, ok, err := wrappedBytes(v, key); ok || err != nil {
			return b, err
		}
	}
	var b bytes.Buffer
	b.Grow(len(v))
	if err := json.Compact(&b, v); err != nil {
		return nil, errorf(CodeBadJSON, "payload is not valid JSON: %v", err)
	}
	return b.Bytes(), nil
}

// wrappedBytes decodes v when it is the object {key: "..."} (key "$base64"
// or "$text"): ok is false when it is not one, err set when it is one with a
// bad value.
func wrappedBytes(v []byte, key string) (b []byte, ok bool, err error) {
	if len(v) == 0 || v[0] != '{' || !bytes.Contains(v, []byte(`"`+key+`"`)) {
		return nil, false, nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(v, &obj) != nil || len(obj) != 1 || obj[key] == nil {
		return nil, false, nil
	}
	var s string
	if raw := bytes.TrimSpace(obj[key]); len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return nil, true, errorf(CodeBadJSON, "%q must be a string", key) // null too: not an empty payload
	}
	if key == "$text" {
		return []byte(s), true, nil
	}
	if b, err = base64.StdEncoding.DecodeString(s); err != nil {
		return nil, true, errorf(CodeBadJSON, `"$base64" is not valid base64: %v`, err)
	}
	return b, true, nil
}

// appendFrame appends the line for one message: ["topic",payload] or, with
// an id, ["topic",payload,{"id":"..."}], and a newline. payload must be a JSON
// value (see PayloadToJSON).
func appendFrame(dst []byte, topic string, payload []byte, id string) []byte {
	dst = appendFrameStart(dst, topic, payload)
	if id != "" {
		dst = append(dst, `,{"id":`...)
		dst = appendString(dst, id)
		dst = append(dst, '}')
	}
	return append(dst, ']', '\n')
}

// appendFrameStart appends a frame up to its payload: ["topic",payload
func appendFrameStart(dst []byte, topic string, payload []byte) []byte {
	dst = append(dst, '[')
	dst = appendString(dst, topic)
	dst = append(dst, ',')
	return append(dst, payload...)
}

// controlFrame encodes a frame whose payload is v marshalled as JSON.
func controlFrame(topic string, v any) []byte {
	payload, err := json.Marshal(v)
	if err != nil {
		// Only the hub's own types are marshalled here; this is a programming error.
		panic("bridge: cannot encode control payload: " + err.Error())
	}
	return appendFrame(nil, topic, payload, "")
}

// appendString appends s as a JSON string. s must be valid UTF-8.
func appendString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Incoming is a message a client sent.
type Incoming struct {
	Topic   string
	Payload json.RawMessage
	ID      string // the client's name for a command, echoed in its ack
}

// ParseMessage decodes one message a client sent: a JSON array
// [topic, payload], or [topic, payload, {"id": "..."}] for a command whose
// ack should name it. Errors are *Error with code bad-json.
func ParseMessage(line []byte) (Incoming, error) {
	var in Incoming
	if !utf8.Valid(line) {
		return in, errorf(CodeBadJSON, "message is not valid UTF-8")
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return in, errorf(CodeBadJSON, "message is not a JSON array [topic, payload]: %v", err)
	}
	if len(parts) != 2 && len(parts) != 3 {
		return in, errorf(CodeBadJSON, "message has %d elements, want [topic, payload] or [topic, payload, {\"id\": ...}]", len(parts))
	}
	if err := json.Unmarshal(parts[0], &in.Topic); err != nil {
		return in, errorf(CodeBadJSON, "topic is not a JSON string")
	}
	in.Payload = parts[1]
	if len(parts) == 3 {
		var meta struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(parts[2], &meta); err != nil || len(parts[2]) == 0 || parts[2][0] != '{' {
			return in, errorf(CodeBadJSON, `the third element is an object {"id": "..."}`)
		}
		in.ID = meta.ID
	}
	return in, nil
}

// splitLines calls fn for each non-blank line of a frame.
func splitLines(frame []byte, fn func(line []byte)) {
	for len(frame) > 0 {
		line, rest, _ := bytes.Cut(frame, []byte{'\n'})
		frame = rest
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fn(line)
		}
	}
}

// encodeEvent appends one message as format f encodes it: a Clown.Talk line
// (with its id for formatLinesIDs), or an SSE event with its id; text says
// that payload is a plain-text payload's JSON string, which formatText
// shows as {"$text": ...}.
func encodeEvent(dst []byte, f format, topic string, payload []byte, text bool, epoch string, seq uint64) []byte {
	if text && f&formatText != 0 {
		payload = appendTextPayload(make([]byte, 0, len(payload)+10), payload)
	}
	switch f &^ formatText {
	case formatLinesIDs: // appendFrame's, without making the id a string first
		dst = append(appendFrameStart(dst, topic, payload), `,{"id":`...)
		dst = appendString(dst, epoch)                 // escaped, as a restored epoch is not checked
		dst = appendEventID(dst[:len(dst)-1], "", seq) // its closing quote replaced by "-seq"
		return append(dst, "\"}]\n"...)
	case formatSSE:
		dst = appendEventID(append(dst, "id: "...), epoch, seq)
		dst = append(dst, "\ndata: "...)
		return append(appendFrame(dst, topic, payload, ""), '\n')
	}
	return appendFrame(dst, topic, payload, "")
}

// eventSize is the size of what encodeEvent appends, or a little more (an
// id's sequence number counts as 20 digits), unless topic needs escapes:
// the line of a message is one allocation of the size class it needs.
func eventSize(f format, topic string, payload []byte, text bool, epoch string) int {
	n := len(`["",]`+"\n") + len(topic) + len(payload)
	if text && f&formatText != 0 {
		n += len(`{"$text":}`)
	}
	switch f &^ formatText {
	case formatLinesIDs:
		n += len(`,{"id":"-"}`) + len(epoch) + 20
	case formatSSE:
		n += len("id: -\ndata: \n") + len(epoch) + 20
	}
	return n
}

// resyncFrames tell a client that it could not resume, and give it the last
// values and the id they bring it to.
//
// WebSocket: ["clown.talk/-/resync", {"code": ..., "reason": ...}] then a
// state/ok frame. SSE: "event: resync" with the same object, each value as a plain message, and
// last an event with only an id: EventSource takes the id without
// dispatching anything, so a client that drops during the values resumes
// from its old id and gets them all again.
func resyncFrames(f format, reason ResyncNotice, values []Value, id string) [][]byte {
	notice, _ := json.Marshal(reason)
	if f != formatSSE {
		return [][]byte{appendFrame(nil, topicResync, notice, ""), stateFrame(StateResult{ID: id, Values: values}, f&formatText != 0)}
	}
	frames := make([][]byte, 0, len(values)+2)
	frames = append(frames, fmt.Appendf(nil, "event: resync\ndata: %s\n\n", notice))
	for _, v := range values {
		frames = append(frames, append(appendFrame([]byte("data: "), v.Topic, v.Payload, ""), '\n'))
	}
	return append(frames, []byte("id: "+id+"\n\n"))
}

// stateFrame is ["clown.talk/-/state/ok", {"id": ..., "values": [[topic, payload, {"time": ...}], ...]}]:
// the last values, and the id of the event they are current at; with
// "truncated": true after the values when more matched. With text,
// plain-text payloads are {"$text": ...}.
func stateFrame(res StateResult, text bool) []byte {
	values := res.Values
	b := make([]byte, 0, 64+len(values)*64)
	b = append(b, `["`+topicStateOK+`",{"id":`...)
	b = appendString(b, res.ID)
	b = append(b, `,"values":[`...)
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendString(b, v.Topic)
		b = append(b, ',')
		if text && v.text {
			b = appendTextPayload(b, v.Payload)
		} else {
			b = append(b, v.Payload...)
		}
		b = append(b, `,{"time":"`...)
		b = v.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
		if v.Retained {
			b = append(b, `,"retained":true`...)
		}
		b = append(b, "}]"...)
	}
	b = append(b, ']')
	if res.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, "}]\n"...)
}
