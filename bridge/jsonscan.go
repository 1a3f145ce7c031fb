package bridge

import "unicode/utf8"

// maxJSONDepth is the deepest nesting of arrays and objects encoding/json
// accepts (its scanner's maxNestingDepth): scanJSON refuses deeper too.
const maxJSONDepth = 10000

// scanJSON reports, in one pass over p, whether p is exactly what
// utf8.Valid(p) && json.Valid(p) accept (one JSON value, optionally
// surrounded by whitespace, valid UTF-8 in its strings, at most
// maxJSONDepth levels deep), and whether it is valid and compact: no
// whitespace outside its strings, so that json.Compact would return it
// unchanged. It is the delivery's check of every payload (payloadToJSON),
// which took three passes with the standard library's functions; it
// allocates only for a payload nested deeper than 64 levels.
// FuzzScanJSON holds it to those functions.
func scanJSON(p []byte) (valid, compact bool) {
	// containers has bit d set when the container at depth d+1 is an
	// object, clear for an array: on the stack for the first 64 levels.
	var shallow [1]uint64
	containers := shallow[:]
	depth, i, space := 0, 0, false
	skipSpace := func() {
		for i < len(p) && p[i] <= ' ' && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
			i++
			space = true
		}
	}
	// Where the scan is: before a value (after '[', ',' in an array, ':'
	// or the start), before an object's key (after '{' or ',' in an
	// object), or after a value.
	const (
		beforeValue = iota
		beforeKey
		afterValue
	)
	state := beforeValue
	for {
		skipSpace()
		if i == len(p) {
			valid := state == afterValue && depth == 0
			return valid, valid && !space
		}
		c := p[i]
		switch state {
		case beforeValue:
			switch {
			case c == '{' || c == '[':
				if depth == maxJSONDepth {
					return false, false
				}
				if depth/64 == len(containers) {
					containers = append(containers, 0)
				}
				if c == '{' {
					containers[depth/64] |= 1 << (depth % 64)
				} else {
					containers[depth/64] &^= 1 << (depth % 64)
				}
				depth++
				i++
				skipSpace()
				if i < len(p) && p[i] == c+2 { // '}' is '{'+2, ']' is '['+2: empty
					depth--
					i++
					state = afterValue
				} else if c == '{' {
					state = beforeKey
				}
				continue
			case c == '"':
				i = scanJSONString(p, i)
			case c == '-' || '0' <= c && c <= '9':
				i = scanJSONNumber(p, i)
			case c == 't':
				i = scanJSONLiteral(p, i, "true")
			case c == 'f':
				i = scanJSONLiteral(p, i, "false")
			case c == 'n':
				i = scanJSONLiteral(p, i, "null")
			default:
				return false, false
			}
			if i < 0 {
				return false, false
			}
			state = afterValue
		case beforeKey:
			if c != '"' {
				return false, false
			}
			if i = scanJSONString(p, i); i < 0 {
				return false, false
			}
			skipSpace()
			if i == len(p) || p[i] != ':' {
				return false, false
			}
			i++
			state = beforeValue
		case afterValue:
			if depth == 0 {
				return false, false // something after the value
			}
			inObject := containers[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			switch {
			case c == ',' && inObject:
				state = beforeKey
			case c == ',':
				state = beforeValue
			case c == '}' && inObject, c == ']' && !inObject:
				depth--
			default:
				return false, false
			}
			i++
		}
	}
}

// scanJSONString returns the index after the string that begins at p[i]
// (a '"'), or -1 when it is not a valid JSON string of valid UTF-8.
func scanJSONString(p []byte, i int) int {
	for i++; i < len(p); {
		for i < len(p) && jsonPlain[p[i]] {
			i++
		}
		if i == len(p) {
			break
		}
		c := p[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 == len(p) {
				return -1
			}
			switch p[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(p) || !isHex(p[i+2]) || !isHex(p[i+3]) || !isHex(p[i+4]) || !isHex(p[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < utf8.RuneSelf: // a control character
			return -1
		default:
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 {
				return -1
			}
			i += size
		}
	}
	return -1
}

// jsonPlain holds true for the bytes a JSON string holds as they are:
// ASCII from ' ' on, but '"' and '\\'.
var jsonPlain = func() (plain [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		plain[c] = c != '"' && c != '\\'
	}
	return plain
}()

// scanJSONNumber returns the index after the number that begins at p[i],
// or -1 when it is not a valid JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanJSONNumber(p []byte, i int) int {
	if p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && '1' <= p[i] && p[i] <= '9':
		i = skipDigits(p, i)
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if i++; i == len(p) || !isDigit(p[i]) {
			return -1
		}
		i = skipDigits(p, i)
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		if i++; i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if i == len(p) || !isDigit(p[i]) {
			return -1
		}
		i = skipDigits(p, i)
	}
	return i
}

// scanJSONLiteral returns the index after lit at p[i], or -1 when it is not there.
func scanJSONLiteral(p []byte, i int, lit string) int {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func skipDigits(p []byte, i int) int {
	for i < len(p) && isDigit(p[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
