package devices

import (
	"encoding/json"
	"testing"
)

// TestPlainJSONStringShortcut: textOf and stringJSON, which skip the JSON
// codec for plain strings, give what it gives, for plain strings and for
// every kind that is not.
func TestPlainJSONStringShortcut(t *testing.T) {
	for _, s := range []string{
		"", "on", "xxxxxxxx", "21.5 °C", "a\"b", `a\b`, "<b>&", "tab\there", "\x7f", "ünï", "\u2028", "a/b c",
	} {
		want, _ := json.Marshal(s)
		if got := stringJSON(s); string(got) != string(want) {
			t.Errorf("stringJSON(%q) = %s, want %s", s, got, want)
		}
		var back string
		_ = json.Unmarshal(want, &back)
		if got := textOf(want); got != back {
			t.Errorf("textOf(%s) = %q, want %q", want, got, back)
		}
	}
	for _, raw := range []string{`"unterminated`, `"a"b"`, `"` + "\x01" + `"`, `"\u0041"`, `21.5`, `"`} {
		var s string
		want := raw
		if json.Unmarshal([]byte(raw), &s) == nil {
			want = s
		}
		if got := textOf([]byte(raw)); got != want {
			t.Errorf("textOf(%s) = %q, want %q", raw, got, want)
		}
	}
}
