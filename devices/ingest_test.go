package devices

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// A plain JSON topic whose payloads change shape, as the hub gives them
// (valid JSON marked Message.JSON): keys appearing and disappearing, a
// value changing type, a null, nested objects, a key given twice, escaped
// and unnamable keys, then invalid JSON and bare text. Leaves the model
// found without allocating (expand.go) are fed as new ones are, whether the
// messages come one by one or in one batch, and whether they are marked or
// not. The values are those the model had before the fast paths.
func TestPlainJSONShapes(t *testing.T) {
	payloads := []string{
		`{"a":1,"b":"x"}`,
		`{"a":2}`,
		`{"a":"3","b":"y","c":true}`,
		`{"a":"n/a","b":4}`,
		`{"d":{"e":1,"f":[2,"V"]},"b":null}`,
		`{"a":5,"a":"z"}`,
		`{"\u0061":6,"g.h":7,"":8}`,
		`{"d":{"e":"ON"}}`,
		`{"a":7`,
		`21.5`,
		`ON`,
	}
	after := []string{
		`data.a=1 data.b="x"`,
		`data.a=2 data.b="x"`,
		`data.a=3 data.b="y" data.c=true`,
		`data.a=3 data.b="4" data.c=true`, // "n/a" is no number: a keeps 3
		`data.a=3 data.b="4" data.c=true data.d.e=1 data.d.f=2`,
		`data.a=3 data.b="4" data.c=true data.d.e=1 data.d.f=2`, // the last a counts: "z"
		`data.a=6 data.b="4" data.c=true data.d.e=1 data.d.f=2`,
		`data.a=6 data.b="4" data.c=true data.d.e=1 data.d.f=2`,
		`data.a=6 data.b="4" data.c=true data.d.e=1 data.d.f=2 data="{\"a\":7"`,
		`data.a=6 data.b="4" data.c=true data.d.e=1 data.d.f=2 data="21.5"`,
		`data.a=6 data.b="4" data.c=true data.d.e=1 data.d.f=2 data="ON"`,
	}
	msgs := make([]Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = Message{Topic: "site/dev/data", Payload: []byte(p), Time: traceStart, JSON: json.Valid([]byte(p))}
	}
	values := func(m *Model) string {
		d, _ := m.Device("json:site/dev")
		var out []string
		for _, e := range d.Entities {
			out = append(out, fmt.Sprintf("%s=%s", e.ID, e.Value))
		}
		return fmt.Sprint(slices.Sorted(slices.Values(out))) // data.… before data=
	}
	for _, marked := range []bool{true, false} {
		one, all := New(Config{}), New(Config{})
		for i, x := range msgs {
			x.JSON = x.JSON && marked
			one.Apply(x)
			if got, want := values(one), "["+after[i]+"]"; got != want {
				t.Errorf("marked %v, after %s: %s, want %s", marked, payloads[i], got, want)
			}
			all.ApplyAll([]Message{x})
		}
		batch := New(Config{})
		batch.ApplyAll(msgs)
		for name, m := range map[string]*Model{"ApplyAll of each": all, "ApplyAll of all": batch} {
			if diff := firstDifference(t, one.Devices(), m.Devices()); diff != "" {
				t.Errorf("marked %v, %s: %s", marked, name, diff)
			}
		}
		if d, _ := one.Device("json:site/dev"); d.Entities[slices.IndexFunc(d.Entities, func(e Entity) bool { return e.ID == "data.d.f" })].Unit != "V" {
			t.Errorf("data.d.f has no unit V: %+v", d.Entities)
		}
	}
}
