package devices

import (
	"strings"
	"testing"
)

// TestHeuristicShape: the shape the heuristic checks before it builds a
// declaration is the one the declaration has, for every kind of payload
// (a "state" key spelled with escapes included).
func TestHeuristicShape(t *testing.T) {
	for _, tc := range []struct {
		topic, payload, want string
	}{
		{"lab/relay/state", `{"state": true}`, "switch-object"},
		{"lab/relay/x", ` {"state":false} `, "switch-object"},
		{"lab/relay/x", `{"st\u0061te": true}`, "switch-object"},
		{"lab/relay/x", `{"\u0073tate": false}`, "switch-object"},
		{"lab/relay/x", `{"state": true, "power": 3}`, "leaves"},
		{"lab/relay/x", `{"mystate": true}`, "leaves"},
		{"lab/relay/state", `true`, "switch-bool"},
		{"state", `false`, "switch-bool"},
		{"lab/relay/x", `true`, "leaves"},
		{"lab/dev1/data", `{"s":1,"t":2,"p":"xxxx"}`, "leaves"},
		{"lab/dev1/data", `21.5`, "leaves"},
		{"lab/dev1/data", `{"state": "on"}`, "leaves"},
		{"lab/dev1/data", `{broken`, "leaves"},
	} {
		_, decl := heuristicDeclaration(tc.topic, []byte(tc.payload))
		got := heuristicShape(tc.topic, []byte(tc.payload))
		if got != tc.want || decl != tc.want {
			t.Errorf("%s %s: heuristicShape %q, the declaration's %q, want %q", tc.topic, tc.payload, got, decl, tc.want)
		}
	}
	payload := []byte(`{"s":1,"t":2,"p":"` + strings.Repeat("x", 80) + `"}`)
	if testing.AllocsPerRun(100, func() { _ = heuristicShape("lab/dev1/data", payload) }) != 0 {
		t.Error("the shape of a payload without a state key allocates")
	}
}
