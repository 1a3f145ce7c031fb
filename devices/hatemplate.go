package devices

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Home Assistant's templates, as far as they can be evaluated without
// guessing: {{ value }}, {{ value_json.x.y }}, {{ value_json['x'] }},
// {{ value_json["x"][0] }}, with an optional | float or | int. Anything
// richer is not evaluated: the entity shows the raw payload and says so.

// noteRawTemplate is the Note of an entity whose template is not evaluated.
const noteRawTemplate = "template not evaluated: shown raw"

// A haTemplate is a value template the model evaluates.
type haTemplate struct {
	json   bool   // value_json..., else value
	path   string // the dotted path under value_json
	filter string // "", "float" or "int"
}

// parseHATemplate reads a value template; ok is false for anything richer
// than the forms above. An empty template is {{ value }}.
func parseHATemplate(s string) (haTemplate, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return haTemplate{}, true
	}
	inner, ok := strings.CutPrefix(s, "{{")
	if !ok {
		return haTemplate{}, false
	}
	if inner, ok = strings.CutSuffix(inner, "}}"); !ok {
		return haTemplate{}, false
	}
	inner = strings.TrimSpace(strings.TrimPrefix(strings.TrimSuffix(inner, "-"), "-"))
	var t haTemplate
	expr, filter, hasFilter := strings.Cut(inner, "|")
	if hasFilter {
		t.filter = strings.TrimSpace(filter)
		if t.filter != "float" && t.filter != "int" {
			return haTemplate{}, false
		}
	}
	expr = strings.TrimSpace(expr)
	if expr == "value" {
		return t, true
	}
	rest, ok := strings.CutPrefix(expr, "value_json")
	if !ok {
		return haTemplate{}, false
	}
	t.json = true
	var path []string
	for rest != "" {
		switch rest[0] {
		case '.':
			end := 1
			for end < len(rest) && isIdentByte(rest[end]) {
				end++
			}
			if end == 1 {
				return haTemplate{}, false
			}
			path = append(path, rest[1:end])
			rest = rest[end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return haTemplate{}, false
			}
			key, ok := subscript(strings.TrimSpace(rest[1:end]))
			if !ok {
				return haTemplate{}, false
			}
			path = append(path, key)
			rest = rest[end+1:]
		default:
			return haTemplate{}, false
		}
	}
	t.path = strings.Join(path, ".")
	return t, true
}

func isIdentByte(b byte) bool {
	return b == '_' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// subscript reads 'x', "x" or 0 inside brackets, as a path level: one
// without dots, which no path could name.
func subscript(s string) (string, bool) {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		key := s[1 : len(s)-1]
		if key == "" || strings.ContainsAny(key, ".'\"\\") {
			return "", false
		}
		return key, true
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return s, true
	}
	return "", false
}

// field is the dotted JSON path the template reads ("" for the whole
// payload), and whether a Confirm can compare it as it is (no filter).
func (t haTemplate) field() (string, bool) {
	return t.path, t.filter == ""
}

// render evaluates the template on a payload as Home Assistant renders it to
// text: a JSON string's content, True/False for JSON booleans, a number's
// digits. ok is false when value_json has nothing at the path or a filter
// cannot apply.
func (t haTemplate) render(payload []byte) (string, bool) {
	var text string
	if !t.json {
		text = string(payload)
	} else {
		raw, ok := jsonField(payload, t.path)
		if !ok {
			return "", false
		}
		text = pythonText(raw)
	}
	switch t.filter {
	case "float":
		f, ok := parseNumber([]byte(text))
		if !ok {
			return "", false
		}
		return string(numberJSON(f)), true
	case "int":
		f, ok := parseNumber([]byte(text))
		if !ok {
			return "", false
		}
		return string(numberJSON(math.Trunc(f))), true
	}
	return text, true
}

// pythonText is a JSON value as Jinja prints it, for the simple values:
// strings without quotes, True, False, None, numbers as written.
func pythonText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch string(raw) {
	case "true":
		return "True"
	case "false":
		return "False"
	case "null":
		return "None"
	}
	return textOf(raw)
}

// haCommandTemplate is a command template the model evaluates: {{ value }}
// alone, or inside simple JSON or text ({"state": {{ value }}}), with
// optional spaces inside the braces.
type haCommandTemplate struct {
	before, after string // around the one {{ value }}
}

// parseHACommandTemplate reads a command template; "" is {{ value }}.
func parseHACommandTemplate(s string) (haCommandTemplate, bool) {
	if s == "" {
		return haCommandTemplate{}, true
	}
	start := strings.Index(s, "{{")
	if start < 0 {
		return haCommandTemplate{}, false
	}
	end := strings.Index(s[start:], "}}")
	if end < 0 || strings.TrimSpace(s[start+2:start+end]) != "value" {
		return haCommandTemplate{}, false
	}
	t := haCommandTemplate{before: s[:start], after: s[start+end+2:]}
	if strings.ContainsAny(t.before+t.after, "{%}") && !isSimpleJSONAround(t) {
		return haCommandTemplate{}, false
	}
	return t, true
}

// isSimpleJSONAround reports whether the text around {{ value }} is JSON
// once a value fills it, and has no other template.
func isSimpleJSONAround(t haCommandTemplate) bool {
	if strings.Contains(t.before+t.after, "{{") || strings.Contains(t.before+t.after, "{%") {
		return false
	}
	return json.Valid([]byte(t.before+"0"+t.after)) || json.Valid([]byte(t.before+`"x"`+t.after)) || json.Valid([]byte(t.before+"x"+t.after))
}

// apply fills the template with a value's text.
func (t haCommandTemplate) apply(value string) []byte {
	return []byte(t.before + value + t.after)
}

// unapply is the text a payload of the template was filled with.
func (t haCommandTemplate) unapply(payload []byte) (string, bool) {
	s, ok := strings.CutPrefix(string(payload), t.before)
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, t.after)
}
