package devices

import (
	"fmt"
	"slices"
	"testing"
)

// A plain JSON device is made of MaxEntities topics at most: a topic past
// them is refused (counted), changes nothing, and joins at its next message
// once one of them has gone.
func TestHeuristicDeviceTopicBound(t *testing.T) {
	t.Parallel()
	const most = 4
	m := New(Config{MaxEntities: most})
	for i := range 10 {
		ch := m.Apply(msg(fmt.Sprintf("a/b/%d", i), fmt.Sprint(i)))
		if joined := i < most; joined == ch.Empty() {
			t.Fatalf("topic %d of %d: changes %+v", i+1, most, ch)
		}
		checkBounds(t, m)
	}
	d := mustDevice(t, m, "json:a/b")
	if got, want := entityIDs(d), []string{"0", "1", "2", "3"}; !slices.Equal(got, want) {
		t.Fatalf("entities %v, want %v", got, want)
	}
	if s := m.Stats(); s.RefusedEntities != 10-most || s.Topics != 10 {
		t.Fatalf("%d refused, %d topics followed; want %d refused and every payload kept", s.RefusedEntities, s.Topics, 10-most)
	}
	m.Apply(msg("a/b/1", "")) // cleared: room for one more
	if ch := m.Apply(msg("a/b/7", "77")); !slices.Equal(ch.Updated, []string{"json:a/b"}) {
		t.Fatalf("a topic with room: changes %+v", ch)
	}
	if got, want := entityIDs(mustDevice(t, m, "json:a/b")), []string{"0", "2", "3", "7"}; !slices.Equal(got, want) {
		t.Fatalf("entities %v, want %v", got, want)
	}
	if ch := m.Apply(msg("a/b/8", "8")); !ch.Empty() {
		t.Fatalf("full again: changes %+v", ch)
	}
	// Another prefix is another device, with room of its own.
	m.Apply(msg("a/c/0", "0"))
	mustDevice(t, m, "json:a/c")
	checkBounds(t, m)
}

func entityIDs(d Device) []string {
	var out []string
	for _, e := range d.Entities {
		out = append(out, e.ID)
	}
	return out
}

// Sibling topics past the bound, shuffled, cleared and sent again, in one
// batch and in random batches: ApplyAll builds what Apply builds.
func TestApplyAllSiblingTopics(t *testing.T) {
	t.Parallel()
	var msgs []Message
	for i := range 40 {
		payload := fmt.Sprint(i)
		switch i % 5 {
		case 1:
			payload = fmt.Sprintf(`{"x":%d,"y":true}`, i) // two leaves
		case 2:
			payload = "null" // no leaf yet
		case 3:
			payload = `{"state":true}` // a switch
		}
		msgs = append(msgs, msg(fmt.Sprintf("s/p/%02d", i), payload))
	}
	var again []Message
	for i, x := range msgs {
		if i%3 == 0 {
			again = append(again, Message{Topic: x.Topic, Retained: true}) // cleared
		}
		again = append(again, msg(x.Topic, fmt.Sprint(100+i)))
	}
	all := append(append([]Message{}, msgs...), again...)
	for seed := range uint64(8) {
		for _, cfg := range []Config{{MaxEntities: 6}, {MaxEntities: 6, MaxTopics: 30}, fuzzConfig} {
			sameBothWays(t, cfg, splitAt(timed(shuffled(all, seed+1)), seed))
		}
	}
}

// feedWays are the two ways the model takes messages: Apply one by one,
// and ApplyAll in small chunks, as the bridge's worker takes them when
// messages come one at a time.
var feedWays = []struct {
	name string
	feed func(m *Model, msgs []Message)
}{
	{"Apply", func(m *Model, msgs []Message) {
		for _, x := range msgs {
			m.Apply(x)
		}
	}},
	{"ApplyAll", func(m *Model, msgs []Message) {
		for start := 0; start < len(msgs); start += 16 {
			m.ApplyAll(msgs[start:min(len(msgs), start+16)])
		}
	}},
}

// Ten times the sibling topics take at most twice ten times the work
// (allocations, which a rebuild makes for each topic of the device it
// builds): the model stays linear when one prefix has 10,000 topics, where
// each topic used to rebuild every topic before it. Not parallel:
// AllocsPerRun counts the whole process's allocations.
func TestSiblingTopicsGrowLinearly(t *testing.T) {
	for _, way := range feedWays {
		allocs := func(n int) float64 {
			msgs := siblingTopics(n)
			var m *Model
			a := testing.AllocsPerRun(1, func() {
				m = New(Config{})
				way.feed(m, msgs)
			})
			if d, ok := m.Device("json:many"); !ok || len(d.Entities) != min(n, DefaultMaxEntities) {
				t.Fatalf("%s of %d siblings: json:many has %d entities, want %d", way.name, n, len(d.Entities), min(n, DefaultMaxEntities))
			}
			return a
		}
		small, large := allocs(1_000), allocs(10_000)
		t.Logf("%s: %.0f allocations for 1,000 siblings, %.0f for 10,000", way.name, small, large)
		if large > 20*small {
			t.Errorf("%s: %.0f allocations for 1,000 siblings, %.0f for 10,000: more than twice linear", way.name, small, large)
		}
	}
}
