package devices

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/motehub/motehub/internal/devicetrace"
)

// splitAt cuts msgs into batches at random places of seed (seed 0: one batch).
func splitAt(msgs []Message, seed uint64) [][]Message {
	if seed == 0 {
		return [][]Message{msgs}
	}
	r := rand.New(rand.NewPCG(seed, 7))
	var out [][]Message
	for len(msgs) > 0 {
		n := 1 + r.IntN(min(len(msgs), 1+len(msgs)/3))
		out = append(out, msgs[:n])
		msgs = msgs[n:]
	}
	return out
}

// sameBothWays feeds batches to one model with ApplyAll each, and their
// messages to another with Apply each, and fails unless after every batch
// the two models show the same devices (times included), hold the same,
// and the batch's Changes brought a mirror of the devices up to date.
func sameBothWays(t *testing.T, cfg Config, batches [][]Message) {
	t.Helper()
	one, all := New(cfg), New(cfg)
	mirror := make(map[string]Device)
	for i, batch := range batches {
		for _, x := range batch {
			one.Apply(x)
		}
		ch := all.ApplyAll(batch)
		if all.batch != nil {
			t.Fatal("ApplyAll left a batch behind")
		}
		checkBounds(t, all)
		if diff := firstDifference(t, one.Devices(), all.Devices()); diff != "" {
			t.Fatalf("after batch %d of %d (%d messages): %s", i+1, len(batches), len(batch), diff)
		}
		if a, b := heldBy(one), heldBy(all); a != b {
			t.Fatalf("after batch %d: Apply holds %s, ApplyAll %s", i+1, a, b)
		}
		for _, id := range ch.Removed {
			delete(mirror, id)
		}
		for _, id := range ch.Updated {
			d, ok := all.Device(id)
			if !ok {
				t.Fatalf("after batch %d: %s updated but not there", i+1, id)
			}
			mirror[id] = d
		}
		if len(mirror) != len(all.Devices()) {
			t.Fatalf("after batch %d: the changes leave %d devices, the model has %d", i+1, len(mirror), len(all.Devices()))
		}
		for _, d := range all.Devices() {
			if asJSON(t, mirror[d.ID]) != asJSON(t, d) {
				t.Fatalf("after batch %d: the changes missed %s", i+1, d.ID)
			}
		}
	}
}

// firstDifference describes the first device that differs between what
// Apply built and what ApplyAll built, or is "".
func firstDifference(t *testing.T, one, all []Device) string {
	t.Helper()
	for i := 0; i < max(len(one), len(all)); i++ {
		switch {
		case i >= len(one):
			return "ApplyAll built more: " + asJSON(t, all[i])
		case i >= len(all):
			return "Apply built more: " + asJSON(t, one[i])
		}
		if a, b := asJSON(t, one[i]), asJSON(t, all[i]); a != b {
			return fmt.Sprintf("Apply built\n%s\nApplyAll built\n%s", a, b)
		}
	}
	return ""
}

// heldBy is what a model holds besides its devices: topics, kept bytes,
// sources and command topics.
func heldBy(m *Model) string {
	s := m.Stats()
	return fmt.Sprintf("%d devices, %d entities, %d topics, %d kept bytes, %d sources, %d command topics",
		s.Devices, s.Entities, s.Topics, m.keptBytes, len(m.sources), len(m.commands))
}

// timed gives msgs a second each from traceStart.
func timed(msgs []Message) []Message {
	out := make([]Message, len(msgs))
	for i, x := range msgs {
		x.Time = traceStart.Add(time.Duration(i) * time.Second)
		out[i] = x
	}
	return out
}

// Every trace, in its order and shuffled, in one batch and in random
// batches: ApplyAll builds what Apply builds.
func TestApplyAllReplaysTraces(t *testing.T) {
	t.Parallel()
	traces, err := filepath.Glob("../testdata/devices/*.trace")
	if err != nil || len(traces) == 0 {
		t.Fatalf("no traces: %v", err)
	}
	var everything []Message
	for _, path := range traces {
		recorded, err := devicetrace.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []Message
		for _, x := range recorded {
			msgs = append(msgs, Message{Topic: x.Topic, Payload: x.Payload, Retained: x.Retain})
		}
		everything = append(everything, msgs...)
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(8) {
				sameBothWays(t, Config{}, splitAt(timed(msgs), seed))
				sameBothWays(t, Config{}, splitAt(timed(shuffled(msgs, seed)), seed))
			}
		})
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		for seed := range uint64(8) {
			sameBothWays(t, Config{}, splitAt(timed(everything), seed))
			sameBothWays(t, Config{}, splitAt(timed(shuffled(everything, seed)), seed))
			sameBothWays(t, fuzzConfig, splitAt(timed(shuffled(everything, seed)), seed))
		}
	})
}

// A generated set of every convention, shuffled, then changed (discovery
// removed and sent again, states and availability anew), in one batch and
// in random batches, within the default bounds and near small ones.
func TestApplyAllGeneratedSet(t *testing.T) {
	t.Parallel()
	set := retainedMixed(60, 6, 1)
	var again []Message
	for i, x := range set {
		switch {
		case i%7 == 0:
			again = append(again, Message{Topic: x.Topic, Retained: true}) // cleared
		case i%5 == 0:
			again = append(again, x) // the same again
		}
	}
	again = append(again, retainedMixed(40, 7, 2)...)
	msgs := append(append([]Message{}, set...), shuffled(again, 3)...)
	small := Config{MaxDevices: 35, MaxEntities: 5, MaxTopics: 160, MaxKeptBytes: 8 << 10}
	for seed := range uint64(6) {
		for _, cfg := range []Config{{}, small} {
			t.Run(fmt.Sprintf("seed %d, %+v", seed, cfg), func(t *testing.T) {
				t.Parallel()
				sameBothWays(t, cfg, splitAt(timed(shuffled(msgs, seed+10)), seed))
			})
		}
	}
}

// Homie attributes arriving in a batch declare the device once; changing
// or removing one in the same batch declares what came before first.
func TestApplyAllHomieAttributes(t *testing.T) {
	t.Parallel()
	msgs := timed([]Message{
		msg("homie/d/sensor/t", "21.5"), // a value first: a heuristic device until the attributes say
		msg("homie/d/$name", "D"),
		msg("homie/d/$nodes", "sensor"),
		msg("homie/d/sensor/$properties", "t,h"),
		msg("homie/d/sensor/t/$datatype", "float"),
		msg("homie/d/sensor/h/$datatype", "integer"),
		msg("homie/d/sensor/h", "40"),
		msg("homie/d/sensor/$properties", "t"), // changed: h goes
		msg("homie/d/sensor/t/$unit", "°C"),
		msg("homie/d/sensor/t/$datatype", ""), // removed: t is text again
		msg("homie/d/sensor/t", "22"),
	})
	for i := range msgs {
		sameBothWays(t, Config{}, [][]Message{msgs[:i], msgs[i:]})
	}
	// A datatype coming for a property already shown: its value is read
	// anew, and a value it cannot read leaves the one before.
	typed := timed([]Message{
		msg("homie/e/$nodes", "n"),
		msg("homie/e/n/$properties", "p"),
		msg("homie/e/n/p", "21.5"),
		msg("homie/e/n/p/$unit", "°C"),
		msg("homie/e/n/p/$datatype", "float"),
		msg("homie/e/n/p", "warm"),
		msg("homie/e/n/p/$name", "P"),
		msg("homie/e/$name", "E"),
	})
	for i := range typed {
		for j := i; j <= len(typed); j++ {
			sameBothWays(t, Config{}, [][]Message{typed[:i], typed[i:j], typed[j:]})
		}
	}
	m := New(Config{})
	m.ApplyAll(msgs)
	d := mustDevice(t, m, "homie:d")
	if len(d.Entities) != 1 || d.Name != "D" || string(d.Entities[0].Value) != `"22"` {
		t.Fatalf("device %s", asJSON(t, d))
	}
	if len(m.Devices()) != 1 {
		t.Fatalf("devices %v", ids(m.Devices()))
	}
}

// What a batch defers is gone when ApplyAll returns, and ApplyAll of
// nothing changes nothing.
func TestApplyAllLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	if ch := m.ApplyAll(nil); !ch.Empty() || m.batch != nil {
		t.Fatalf("ApplyAll(nil): %+v", ch)
	}
	ch := m.ApplyAll(retainedMixed(8, 4, 1))
	if m.batch != nil {
		t.Fatal("a batch left behind")
	}
	got := slices.Clone(ch.Updated)
	slices.Sort(got)
	want := ids(m.Devices())
	if !slices.Equal(got, want) || slices.ContainsFunc(ch.Removed, func(id string) bool { return slices.Contains(want, id) }) {
		t.Fatalf("changes %+v, devices %v", ch, want)
	}
	checkBounds(t, m)
}
