package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

type found struct {
	path string
	num  float64
	text string
	isTx bool
}

func parseAll(payload []byte, text bool) []found {
	var p parser
	var out []found
	for _, l := range p.parse(payload, text) {
		f := found{path: string(p.path(l)), num: l.num, isTx: l.text}
		if l.text {
			f.text = string(p.textOf(l))
		}
		out = append(out, f)
	}
	return out
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		payload string
		text    bool
		want    []found
	}{
		{`21.5`, false, []found{{num: 21.5}}},
		{` -1e3 `, false, []found{{num: -1000}}},
		{`"on"`, true, []found{{text: "on", isTx: true}}},
		{`"on"`, false, []found{{text: "on", isTx: true}}},
		{`true`, false, []found{{text: "true", isTx: true}}},
		{`null`, false, nil},
		{`[1,2]`, false, nil},
		{`[22.8, "°C"]`, false, []found{{num: 22.8}}}, // Clown.Talk's value with its unit
		{` [ -3 , "dBm" ] `, false, []found{{num: -3}}},
		{`{"t":[21,"°C"],"u":["°C",21],"v":[1,"a","b"]}`, false, []found{{path: "t", num: 21}}},
		{`[1,"a"`, false, nil},
		{`"2026-03-01T00:00:00Z"`, false, nil},
		{`"12:30:00"`, false, nil},
		{`"` + string(bytes.Repeat([]byte("x"), maxText+1)) + `"`, true, nil},
		{`{"a":1,"b":{"c":2.5,"d":[1,{"e":3}],"f":null},"g":"hi","h":false,"i\"j":4}`, false, []found{
			{path: "a", num: 1}, {path: "b.c", num: 2.5}, {path: "g", text: "hi", isTx: true},
			{path: "h", text: "false", isTx: true}, {path: `i"j`, num: 4},
		}},
		{`{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}},"z":2}`, false, []found{{path: "z", num: 2}}},
		{`{"a":1,"b":`, false, []found{{path: "a", num: 1}}}, // cut: what came before
		{`{"a":-}`, false, nil},
		{`{"a":1e999}`, false, nil},
	} {
		got := parseAll([]byte(c.payload), c.text)
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.payload, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %+v, want %+v", c.payload, got, c.want)
				break
			}
		}
	}
	many := []byte("{")
	for i := range 2 * maxLeaves {
		if i > 0 {
			many = append(many, ',')
		}
		many = strconv.AppendQuote(many, "k"+strconv.Itoa(i))
		many = append(many, ":1"...)
	}
	many = append(many, '}')
	if n := len(parseAll(many, false)); n != maxLeaves {
		t.Errorf("%d leaves of %d, want at most %d", n, 2*maxLeaves, maxLeaves)
	}
}

// FuzzParse: never a panic, never more than maxLeaves; for valid JSON the
// numeric leaves are those a reading with encoding/json finds, in order.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`1`, `"x"`, `{"a":1,"b":{"c":[1,2]},"d":"e"}`, `{"a":{"b":true}}`, `[{"a":1}]`, `{"a\u00e9":-0.5e-3}`, `{"a":1,"a":2}`} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, payload []byte, text bool) {
		got := parseAll(payload, text)
		if len(got) > maxLeaves {
			t.Fatalf("%d leaves", len(got))
		}
		if !json.Valid(payload) || !utf8.Valid(payload) || text {
			return
		}
		want, total := reference(payload)
		var nums []found
		for _, g := range got {
			if !g.isTx {
				nums = append(nums, g)
			}
		}
		if total < maxLeaves && len(nums) != len(want) {
			t.Fatalf("%s: numbers %+v, want %+v", payload, nums, want)
		}
		for i := range min(len(nums), len(want)) {
			if nums[i].path != want[i].path || nums[i].num != want[i].num {
				t.Fatalf("%s: numbers %+v, want %+v", payload, nums, want)
			}
		}
	})
}

// reference reads payload's numeric leaves with encoding/json's tokens, as
// parse should (objects within maxDepth, arrays skipped, paths within
// maxPath), and counts every
// scalar leaf that parse could record.
func reference(payload []byte) (nums []found, total int) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	type frame struct {
		object bool
		path   string
		key    string
		expect bool // next token is a key
		skip   bool
	}
	var stack []frame
	leafPath := func() (string, bool) {
		if len(stack) == 0 {
			return "", true
		}
		top := stack[len(stack)-1]
		if !top.object || top.skip {
			return "", false
		}
		if top.path == "" {
			return top.key, true
		}
		return top.path + "." + top.key, true
	}
	afterValue := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expect = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nums, total
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expect {
			if k, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].expect = k, false
				continue
			}
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				path, ok := leafPath()
				skip := !ok || v == '[' || len(stack) >= maxDepth
				if len(stack) > 0 && stack[len(stack)-1].skip {
					skip = true
				}
				stack = append(stack, frame{object: v == '{', path: path, expect: true, skip: skip})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case json.Number:
			if path, ok := leafPath(); ok && len(path) <= maxPath {
				if x, err := strconv.ParseFloat(string(v), 64); err == nil && !math.IsInf(x, 0) {
					nums = append(nums, found{path: path, num: x})
					total++
				}
			}
			afterValue()
		default:
			if path, ok := leafPath(); ok && len(path) <= maxPath && v != nil {
				total++
			}
			afterValue()
		}
	}
}

// TestParseAbuse: payloads built to cost: each is read within its bounds,
// and what is too long is neither decoded nor copied (no allocation once
// the parser's buffers have grown).
func TestParseAbuse(t *testing.T) {
	escaped := func(n int) string { // n bytes of \u0041: "A" n/6 times
		return `"` + strings.Repeat(`\u0041`, n/6) + `"`
	}
	fields := func(n int) []byte {
		b := []byte("{")
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, "f"+strconv.Itoa(i))
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(i), 10)
		}
		return append(b, '}')
	}
	nested := func(open, close string, bytes int) []byte {
		n := bytes / len(open)
		return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
	}
	// Allowed to allocate: a short escaped string is decoded, a number
	// past float64 makes strconv's error.
	decodes := map[string]bool{"an escaped string of 64 bytes decoded": true, "1e309 is past float64": true}
	longKey := `{"` + strings.Repeat(`\u0041`, 64<<10/6) + `":1,"b":2}`
	for _, c := range []struct {
		name    string
		payload []byte
		want    []found
	}{
		{"a 64 KB escaped string", []byte(escaped(64 << 10)), nil},
		{"an escaped string of 65 bytes decoded", []byte(escaped(6 * (maxText + 1))), nil},
		{"an escaped string of 64 bytes decoded", []byte(escaped(6 * maxText)), []found{{text: strings.Repeat("A", maxText), isTx: true}}},
		{"a 64 KB escaped string in an object", []byte(`{"a":` + escaped(64<<10) + `,"b":1}`), []found{{path: "b", num: 1}}},
		{"a 64 KB escaped key", []byte(longKey), []found{{path: "b", num: 2}}},
		{"a 1 KB key", []byte(`{"` + strings.Repeat("k", 1024) + `":{"x":1},"b":2}`), []found{{path: "b", num: 2}}},
		{"10,000 fields", fields(10000), nil}, // checked below: the first maxLeaves
		{"1 MB of nested objects", nested(`{"a":`, "}", 1<<20), nil},
		{"1 MB of nested arrays", nested("[", "]", 1<<20), nil},
		{"1 MB of arrays in an object", []byte(`{"x":3,"a":` + string(nested("[", "]", 1<<20)) + `}`), []found{{path: "x", num: 3}}},
		{"1e308", []byte(`1e308`), []found{{num: 1e308}}},
		{"-1e308", []byte(`{"v":-1e308}`), []found{{path: "v", num: -1e308}}},
		{"1e309 is past float64", []byte(`1e309`), nil},
		{"-0", []byte(`-0`), []found{{num: 0}}},
		{"nan as text", []byte(`"nan"`), nil},
		{"NaN as a field's text", []byte(`{"t":"NaN","u":"-Infinity","v":"+inf","w":"nano"}`), []found{{path: "w", text: "nano", isTx: true}}},
		{"NaN bare is no JSON", []byte(`NaN`), nil},
	} {
		var p parser
		got := func() []found {
			var out []found
			for _, l := range p.parse(c.payload, false) {
				f := found{path: string(p.path(l)), num: l.num, isTx: l.text}
				if l.text {
					f.text = string(p.textOf(l))
				}
				out = append(out, f)
			}
			return out
		}()
		if c.name == "10,000 fields" {
			if len(got) != maxLeaves || got[maxLeaves-1].path != "f63" || got[maxLeaves-1].num != 63 {
				t.Errorf("%s: %d leaves, the last %+v; want the first %d", c.name, len(got), got[len(got)-1], maxLeaves)
			}
		} else if !slices.Equal(got, c.want) {
			t.Errorf("%s: %s, want %s", c.name, brief(got), brief(c.want))
		}
		if c.name == "-0" && (len(got) != 1 || !math.Signbit(got[0].num)) {
			t.Errorf("-0: %+v, want the negative zero", got)
		}
		if allocs := testing.AllocsPerRun(10, func() { p.parse(c.payload, false) }); allocs > 0 && !decodes[c.name] {
			t.Errorf("%s: %.0f allocations a parse once the buffers grew, want none", c.name, allocs)
		}
		if len(p.key) > len(c.payload) || cap(p.texts) > 4*maxLeaves*maxText || cap(p.paths) > maxLeaves*maxPath {
			t.Errorf("%s: buffers grew to key %d, texts %d, paths %d", c.name, len(p.key), cap(p.texts), cap(p.paths))
		}
	}
}

// brief shows found values with their paths cut to 40 bytes.
func brief(fs []found) string {
	var b strings.Builder
	for _, f := range fs {
		path := f.path
		if len(path) > 40 {
			path = path[:40] + "…"
		}
		fmt.Fprintf(&b, "{%s %g %q} ", path, f.num, f.text)
	}
	return "[" + strings.TrimSpace(b.String()) + "]"
}
