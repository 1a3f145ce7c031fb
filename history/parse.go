package history

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Bounds of what one message records.
const (
	maxDepth  = 6   // levels of nested objects walked
	maxLeaves = 64  // values recorded per message
	maxText   = 64  // longer strings are not recorded
	maxPath   = 256 // longer dotted paths (field names) are not recorded
	maxSkip   = 64  // nesting of arrays and deeper objects skipped over

	// maxEscape is the most bytes one decoded byte takes escaped in JSON
	// (\u0041 is "A"): an escaped string longer than maxEscape times a
	// bound decodes past it, and is not decoded.
	maxEscape = 6
)

// leaf is one value found in a payload: a number, or a text (string or
// boolean). Its path and text are offsets into the parser's buffers.
type leaf struct {
	pathStart, pathEnd int
	textStart, textEnd int
	num                float64
	text               bool
}

// parser finds the values of a payload, reusing its buffers: the leaves
// and paths it returns are valid until the next parse.
type parser struct {
	leaves []leaf
	paths  []byte
	texts  []byte
	key    []byte // the current dotted path
}

func (p *parser) path(l leaf) []byte   { return p.paths[l.pathStart:l.pathEnd] }
func (p *parser) textOf(l leaf) []byte { return p.texts[l.textStart:l.textEnd] }

// parse returns the values of a message's JSON payload: a bare number or
// string (or boolean) is the value of field ""; an object's numeric,
// string and boolean leaves are values of their dotted paths, at most
// maxDepth deep and maxLeaves in all; a [number, "unit"] pair is its
// number; other arrays and nulls are skipped. A string is recorded when
// it is at most maxText bytes, valid UTF-8, not a time stamp and not a
// number's "nan" or "inf" (notANumber); a path must be valid UTF-8 and at
// most maxPath bytes. text says the MQTT payload was plain text, carried
// as a JSON string. A payload that is not valid JSON gives what was found
// before the fault; reading stops once maxLeaves are found. Each byte is
// read at most once, and nothing longer than a bound is decoded or copied
// out of the payload but a path (at most the payload's length).
func (p *parser) parse(payload []byte, text bool) []leaf {
	p.leaves, p.paths, p.texts, p.key = p.leaves[:0], p.paths[:0], p.texts[:0], p.key[:0]
	i := skipSpace(payload, 0)
	if i >= len(payload) {
		return nil
	}
	if text && payload[i] != '"' {
		return nil
	}
	if payload[i] == '{' {
		p.object(payload, i, 1)
		return p.leaves
	}
	p.value(payload, i)
	return p.leaves
}

// object walks the object at b[i] and returns the index after it, or -1
// for a fault.
func (p *parser) object(b []byte, i, depth int) int {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	base := len(p.key)
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		end, esc := scanString(b, i)
		if end < 0 {
			return -1
		}
		p.key = p.key[:base]
		if base > 0 {
			p.key = append(p.key, '.')
		}
		if esc && end-i-2 <= maxEscape*maxPath {
			var k string
			if json.Unmarshal(b[i:end], &k) != nil {
				return -1
			}
			p.key = append(p.key, k...)
		} else { // a long escaped key is kept escaped: longer than maxPath, nothing under it is recorded
			p.key = append(p.key, b[i+1:end-1]...)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return -1
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return -1
		}
		if b[i] == '{' && depth < maxDepth {
			i = p.object(b, i, depth+1)
		} else {
			i = p.value(b, i)
		}
		if i < 0 || len(p.leaves) >= maxLeaves {
			return -1 // a fault, or all that is recorded found: the rest is not read
		}
		i = skipSpace(b, i)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		p.key = p.key[:base]
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		return -1
	}
}

// value records the scalar at b[i] under the current path (skipping
// arrays, nulls and objects past maxDepth), and returns the index after
// it, or -1 for a fault.
func (p *parser) value(b []byte, i int) int {
	switch c := b[i]; {
	case c == '"':
		end, esc := scanString(b, i)
		if end < 0 {
			return -1
		}
		// Long strings are not recorded: checked before decoding, so that
		// a long escaped one costs no copy.
		if n := end - i - 2; n <= maxText || (esc && n <= maxEscape*maxText) {
			p.addString(b[i:end], esc)
		}
		return end
	case c == '-' || (c >= '0' && c <= '9'):
		end := scanNumber(b, i)
		if end < 0 {
			return -1
		}
		// The bytes are a valid JSON number, read at once: no copy.
		v, err := strconv.ParseFloat(unsafe.String(&b[i], end-i), 64)
		if err == nil && !math.IsInf(v, 0) {
			p.addLeaf(leaf{num: v})
		}
		return end
	case c == 't' || c == 'f':
		word := "true"
		if c == 'f' {
			word = "false"
		}
		if !hasWord(b, i, word) {
			return -1
		}
		start := len(p.texts)
		p.texts = append(p.texts, word...)
		p.addLeaf(leaf{text: true, textStart: start, textEnd: len(p.texts)})
		return i + len(word)
	case c == 'n':
		if !hasWord(b, i, "null") {
			return -1
		}
		return i + 4
	case c == '[':
		if end, ok := p.numberWithUnit(b, i); ok {
			return end
		}
		return skipValue(b, i, 0)
	default: // an object too deep
		return skipValue(b, i, 0)
	}
}

// numberWithUnit records the number of a [number, "unit"] pair at b[i]
// (Clown.Talk's value with its unit, as the demo's motes send a
// temperature), and returns the index after the pair; ok is false for any
// other array, which the caller skips.
func (p *parser) numberWithUnit(b []byte, i int) (end int, ok bool) {
	j := skipSpace(b, i+1)
	if j >= len(b) || (b[j] != '-' && (b[j] < '0' || b[j] > '9')) {
		return 0, false
	}
	numEnd := scanNumber(b, j)
	if numEnd < 0 {
		return 0, false
	}
	k := skipSpace(b, numEnd)
	if k >= len(b) || b[k] != ',' {
		return 0, false
	}
	k = skipSpace(b, k+1)
	if k >= len(b) || b[k] != '"' {
		return 0, false
	}
	strEnd, _ := scanString(b, k)
	if strEnd < 0 {
		return 0, false
	}
	k = skipSpace(b, strEnd)
	if k >= len(b) || b[k] != ']' {
		return 0, false
	}
	p.value(b, j)
	return k + 1, true
}

// addString records the JSON string s (quotes included) when it is short
// and not a time stamp.
func (p *parser) addString(s []byte, esc bool) {
	start := len(p.texts)
	if esc {
		var v string
		if json.Unmarshal(s, &v) != nil {
			return
		}
		p.texts = append(p.texts, v...)
	} else {
		p.texts = append(p.texts, s[1:len(s)-1]...)
	}
	if t := p.texts[start:]; len(t) > maxText || looksLikeTime(t) || notANumber(t) {
		p.texts = p.texts[:start]
		return
	}
	p.addLeaf(leaf{text: true, textStart: start, textEnd: len(p.texts)})
}

func (p *parser) addLeaf(l leaf) {
	if len(p.leaves) >= maxLeaves || len(p.key) > maxPath || !utf8.Valid(p.key) || (l.text && !utf8.Valid(p.texts[l.textStart:l.textEnd])) {
		return // names and texts are UTF-8, as topics are
	}
	l.pathStart = len(p.paths)
	p.paths = append(p.paths, p.key...)
	l.pathEnd = len(p.paths)
	p.leaves = append(p.leaves, l)
}

// notANumber says whether s is how a sensor without a reading writes its
// number ("nan", "NaN", "inf", "-Infinity"): no value, rather than a text
// that would make a number's series a text one (ESPHome publishes "nan"
// before its first reading) and drop the numbers after it.
func notANumber(s []byte) bool {
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	for _, w := range []string{"nan", "inf", "infinity"} {
		if strings.EqualFold(string(s), w) {
			return true
		}
	}
	return false
}

// looksLikeTime says whether s starts as an RFC 3339 date (2026-01-31…)
// or a clock time (12:34:56).
func looksLikeTime(s []byte) bool {
	digits := func(i, j int) bool {
		for ; i < j; i++ {
			if i >= len(s) || s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	date := len(s) >= 10 && digits(0, 4) && s[4] == '-' && digits(5, 7) && s[7] == '-' && digits(8, 10)
	clock := len(s) >= 8 && digits(0, 2) && s[2] == ':' && digits(3, 5) && s[5] == ':' && digits(6, 8)
	return date || clock
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasWord(b []byte, i int, w string) bool {
	return len(b)-i >= len(w) && string(b[i:i+len(w)]) == w
}

// scanString returns the index after the string starting at b[i] (a
// quote), and whether it has escapes; -1 when it does not end.
func scanString(b []byte, i int) (end int, esc bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		default:
			if b[j] < 0x20 {
				return -1, false
			}
		}
	}
	return -1, false
}

// scanNumber returns the index after the JSON number at b[i], or -1.
func scanNumber(b []byte, i int) int {
	digits := func(j int) int {
		k := j
		for k < len(b) && b[k] >= '0' && b[k] <= '9' {
			k++
		}
		if k == j {
			return -1
		}
		return k
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if i = digits(i); i < 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}

// skipValue returns the index after the JSON value at b[i], or -1 for a
// fault or nesting past maxSkip.
func skipValue(b []byte, i, depth int) int {
	if depth > maxSkip || i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		end, _ := scanString(b, i)
		return end
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return wordEnd(b, i, "true")
	case c == 'f':
		return wordEnd(b, i, "false")
	case c == 'n':
		return wordEnd(b, i, "null")
	case c == '[' || c == '{':
		closing := byte(']')
		if c == '{' {
			closing = '}'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i, _ = scanString(b, i); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			switch {
			case i < len(b) && b[i] == ',':
				i = skipSpace(b, i+1)
			case i < len(b) && b[i] == closing:
				return i + 1
			default:
				return -1
			}
		}
	}
	return -1
}

func wordEnd(b []byte, i int, w string) int {
	if !hasWord(b, i, w) {
		return -1
	}
	return i + len(w)
}
