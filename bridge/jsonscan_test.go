package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkScanJSON fails t unless scanJSON(p) says what the standard library
// does: valid as utf8.Valid && json.Valid, compact as json.Compact leaving
// it unchanged.
func checkScanJSON(t *testing.T, p []byte) {
	t.Helper()
	valid, compact := scanJSON(p)
	if want := utf8.Valid(p) && json.Valid(p); valid != want {
		t.Fatalf("scanJSON(%q) valid = %v, want %v", p, valid, want)
	}
	if !valid {
		if compact {
			t.Fatalf("scanJSON(%q): compact but not valid", p)
		}
		return
	}
	var b bytes.Buffer
	_ = json.Compact(&b, p)
	if want := bytes.Equal(b.Bytes(), p); compact != want {
		t.Fatalf("scanJSON(%q) compact = %v, want %v", p, compact, want)
	}
}

var scanJSONSeeds = []string{
	`{"a": 1}`, `{"s":1,"t":1764000000000000000,"p":"xxxx"}`, `[21.5, "°C"]`, `[]`, `{}`, `[ ]`, `{ }`, `[[],{}]`,
	`{"a":[1,{"b":null}],"c":"d e"}`, ` 1 `, `-0`, `-0.5e+3`, `1E5`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `1.5e-`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `nulll`, `"s"`, `"a\"b"`, `"\u00e9\/\b\f\n\r\t"`, `"\u12"`, `"\x"`,
	"\"\x1f\"", "\"caf\xc3\"", "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"", `"unterminated`, `"\`, `{"a"}`, `{"a":}`,
	`{"a":1,}`, `[1,]`, `[1 2]`, `{1:2}`, `{"a":1"b":2}`, `]`, `}`, `[}`, `{]`, `1 2`, "", " ", "\t\r\n", "text",
	"\xff\x00", `{"$base64":"AA=="}`, "[\n1\n]", `{"a" : 1}`, `[1,[2,[3]]]`, `"\uD800"`, `1.0e10`, `-01`, `0e0`, `0.0`,
}

func TestScanJSON(t *testing.T) {
	t.Parallel()
	for _, s := range scanJSONSeeds {
		checkScanJSON(t, []byte(s))
	}
}

// TestScanJSONDepth: as deep as encoding/json accepts, and no deeper.
func TestScanJSONDepth(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{63, 64, 65, maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		arrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		objects := strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
		mixed := strings.Repeat(`[{"a":`, depth/2) + "1" + strings.Repeat("}]", depth/2)
		for _, s := range []string{arrays, objects, mixed} {
			checkScanJSON(t, []byte(s))
		}
		if valid, _ := scanJSON([]byte(arrays)); valid != (depth <= maxJSONDepth) {
			t.Fatalf("%d nested arrays: valid %v", depth, valid)
		}
	}
}

// FuzzScanJSON holds scanJSON to the standard library's functions it
// stands for.
func FuzzScanJSON(f *testing.F) {
	for _, s := range scanJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScanJSON)
}

func BenchmarkScanJSON(b *testing.B) {
	p := []byte(`{"s":123456,"t":1764000000000000000,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.Run("scanJSON", func(b *testing.B) {
		for b.Loop() {
			scanJSON(p)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			_ = utf8.Valid(p) && json.Valid(p) && !bytes.ContainsAny(p, " \t\r\n")
		}
	})
}
