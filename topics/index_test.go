package topics

import (
	"slices"
	"strings"
	"testing"
)

// matches returns the subscribers the index reports for topic, once each and sorted.
func matches(x *Index[int], topic string) []int {
	var got []int
	x.Match(topic, func(s int) {
		if !slices.Contains(got, s) {
			got = append(got, s)
		}
	})
	slices.Sort(got)
	return got
}

// scan is the reference the index must agree with: every subscription checked with Match.
func scan(subs map[int][]string, topic string) []int {
	var want []int
	for s, filters := range subs {
		for _, f := range filters {
			if Match(f, topic) {
				want = append(want, s)
				break
			}
		}
	}
	slices.Sort(want)
	return want
}

func TestIndexEdgeCases(t *testing.T) {
	t.Parallel()
	for i, tt := range matchCases {
		var x Index[int]
		x.Add(tt.filter, i)
		got := len(matches(&x, tt.topic)) == 1
		if got != tt.want {
			t.Errorf("index with %q, topic %q: matched %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestIndexAddRemove(t *testing.T) {
	t.Parallel()
	var x Index[string]
	if !x.Add("a/#", "alice") || x.Add("a/#", "alice") {
		t.Fatal("Add must report true for a new pair and false for a repeat")
	}
	x.Add("a/+", "alice")
	x.Add("a/b", "bob")
	x.Add("+/b", "carol")
	if x.Len() != 4 {
		t.Fatalf("Len = %d, want 4", x.Len())
	}

	var calls []string
	x.Match("a/b", func(s string) { calls = append(calls, s) })
	slices.Sort(calls)
	if want := []string{"alice", "alice", "bob", "carol"}; !slices.Equal(calls, want) {
		t.Fatalf("Match(a/b) visited %v, want %v (one visit per matching filter)", calls, want)
	}

	if x.Remove("a/b", "alice") {
		t.Fatal("Remove of a filter alice never held reported true")
	}
	for _, p := range [][2]string{{"a/#", "alice"}, {"a/+", "alice"}, {"a/b", "bob"}, {"+/b", "carol"}} {
		if !x.Remove(p[0], p[1]) {
			t.Fatalf("Remove(%q, %q) = false", p[0], p[1])
		}
	}
	if x.Len() != 0 || !x.root.empty() {
		t.Fatalf("after removing everything: Len %d, root empty %v", x.Len(), x.root.empty())
	}
}

func TestIndexMatchDoesNotAllocate(t *testing.T) {
	var x Index[int]
	for i := range 1000 {
		x.Add("nodes/+/relay/#", i)
	}
	n := 0
	count := func(int) { n++ }
	allocs := testing.AllocsPerRun(100, func() { x.Match("nodes/bridge/relay/i2c0-3b", count) })
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per call", allocs)
	}
	if n == 0 {
		t.Fatal("no subscriber matched")
	}
}

// FuzzIndex holds the index to the plain Match function: for any set of valid
// filters and any valid topic, it finds exactly the subscribers a full scan
// finds, before and after removing some of them, and frees every level at the end.
func FuzzIndex(f *testing.F) {
	f.Add("a/#\n+/b\na/b\n#\n$SYS/#\n+/+", "a/b")
	f.Add("#\n+", "$SYS/x")
	f.Add("a//b\n/+\n+/#", "a//b")
	f.Add("sport/tennis/#\nsport/+\nsport/#", "sport")
	f.Fuzz(func(t *testing.T, filterList, topic string) {
		if ValidateTopic(topic) != nil {
			return
		}
		var x Index[int]
		subs := map[int][]string{}
		var added [][2]any
		for i, filter := range strings.Split(filterList, "\n") {
			if ValidateFilter(filter) != nil {
				continue
			}
			s := i % 3 // several filters per subscriber
			if x.Add(filter, s) {
				subs[s] = append(subs[s], filter)
				added = append(added, [2]any{filter, s})
			}
		}
		if x.Len() != len(added) {
			t.Fatalf("Len = %d after %d distinct adds", x.Len(), len(added))
		}
		if got, want := matches(&x, topic), scan(subs, topic); !slices.Equal(got, want) {
			t.Fatalf("topic %q: index %v, scan %v (subs %v)", topic, got, want, subs)
		}

		for i, p := range added {
			if i%2 == 0 {
				filter, s := p[0].(string), p[1].(int)
				if !x.Remove(filter, s) {
					t.Fatalf("Remove(%q, %d) = false", filter, s)
				}
				subs[s] = slices.DeleteFunc(subs[s], func(f string) bool { return f == filter })
			}
		}
		if got, want := matches(&x, topic), scan(subs, topic); !slices.Equal(got, want) {
			t.Fatalf("after removals, topic %q: index %v, scan %v", topic, got, want)
		}

		for i, p := range added {
			if i%2 == 1 {
				x.Remove(p[0].(string), p[1].(int))
			}
		}
		if x.Len() != 0 || !x.root.empty() {
			t.Fatalf("not empty after removing everything: Len %d", x.Len())
		}
	})
}

func BenchmarkIndexMatch(b *testing.B) {
	var x Index[int]
	for i := range 1000 {
		x.Add("nodes/"+strings.Repeat("x", i%10)+"/#", i)
	}
	x.Add("#", -1)
	n := 0
	fn := func(int) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		x.Match("nodes/xxx/relay/i2c0-3b", fn)
	}
}
