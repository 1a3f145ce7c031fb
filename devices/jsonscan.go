package devices

import (
	"encoding/json"
)

// A small JSON scanner: reading one member of an object without decoding
// the rest. A model built from retained messages at start reads thousands
// of fields of the same payloads; decoding each into a map was most of the
// time (BenchmarkBuild2000).

// objectMember is the member key of the JSON object raw. ok is false when
// raw is no object, has no such member, or is malformed where it was read
// (json.Valid vouches for the rest: callers validate raw first).
func objectMember(raw []byte, key string) (json.RawMessage, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return nil, false // '}' or malformed
		}
		end, plain := stringEnd(raw, i)
		if end < 0 {
			return nil, false
		}
		var match bool
		if plain {
			match = string(raw[i+1:end-1]) == key
		} else {
			var k string
			match = json.Unmarshal(raw[i:end], &k) == nil && k == key
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend < 0 {
			return nil, false
		}
		if match {
			return raw[i:vend], true
		}
		i = skipSpace(raw, vend)
		if i >= len(raw) || raw[i] != ',' {
			return nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the JSON string starting at b[i] (a quote),
// and whether it has no escapes; -1 when it does not end.
func stringEnd(b []byte, i int) (int, bool) {
	plain := true
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			plain = false
			j++
		case '"':
			return j + 1, plain
		}
	}
	return -1, false
}

// valueEnd is the index after the JSON value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && !endsValue(b[j]) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// endsValue reports whether c ends a number, true, false or null.
func endsValue(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// eachMember calls fn with every member of the JSON object raw (valid
// JSON), in order, its key decoded (raw's bytes, or a copy when it has
// escapes); ok is false when raw is no object.
func eachMember(raw []byte, fn func(key []byte, value json.RawMessage)) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return true
	}
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return false
		}
		end, plain := stringEnd(raw, i)
		if end < 0 {
			return false
		}
		key := raw[i+1 : end-1]
		if !plain {
			var k string
			if json.Unmarshal(raw[i:end], &k) != nil {
				return false
			}
			key = []byte(k)
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i = skipSpace(raw, i+1)
		vend := valueEnd(raw, i)
		if vend < 0 {
			return false
		}
		fn(key, raw[i:vend])
		i = skipSpace(raw, vend)
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case '}':
			return true
		case ',':
			i++
		default:
			return false
		}
	}
}
