package topics

import (
	"strings"
	"testing"
)

func TestOverlap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"$SYS/#", "#", false},
		{"$SYS/#", "$SYS/+", true},
		{"+", "$SYS", false},
		{"+/b", "a/+", true},
		{"a/b", "a/c", false},
		{"a/#", "a", true},
		{"a", "a/#", true},
		{"a/+", "a", false},
		{"+/+", "a", false},
		{"+/+", "a/b/c", false},
		{"+/+/#", "a/b/c", true},
		{"a/+/c", "a/b/+", true},
		{"a/+/c", "a/b/d", false},
		{"nodes/+/relay/#", "nodes/mote-1/#", true},
		{"nodes/+/relay/#", "nodes/mote-1/led/#", false},
		{"a//b", "a/+/b", true},
	}
	for _, tt := range tests {
		if got := Overlap(tt.a, tt.b); got != tt.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := Overlap(tt.b, tt.a); got != tt.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v (it is symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		general, specific string
		want              bool
	}{
		{"#", "a/b", true},
		{"#", "#", true},
		{"#", "+/x", true},
		{"#", "$SYS/#", false},
		{"+/#", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/+", true},
		{"a/#", "a", true},
		{"a/#", "a/+/c", true},
		{"a/#", "b/#", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a", false},
		{"a/b", "a/+", false},
		{"a", "a/#", false},
		{"a/b", "a/b", true},
		{"nodes/+/relay/#", "nodes/mote-1/relay/i2c0-3b", true},
		{"nodes/+/relay/#", "nodes/+/#", false},
		{"+/+", "a/b", true},
		{"+/+", "a/b/c", false},
	}
	for _, tt := range tests {
		if got := Covers(tt.general, tt.specific); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.general, tt.specific, got, tt.want)
		}
	}
}

// FuzzRelations holds Overlap and Covers to Match: a topic that two filters
// both match means they overlap; a topic the specific filter matches must be
// matched by a filter that covers it. Covers implies Overlap, and every
// filter covers itself.
func FuzzRelations(f *testing.F) {
	f.Add("a/+/c", "a/b/#", "a/b/c")
	f.Add("#", "$SYS/#", "$SYS/x")
	f.Add("+/#", "a", "a")
	f.Add("a/#", "a", "a/b")
	f.Fuzz(func(t *testing.T, a, b, topic string) {
		if ValidateFilter(a) != nil || ValidateFilter(b) != nil {
			return
		}
		if !Covers(a, a) || !Overlap(a, a) {
			t.Fatalf("filter %q does not cover or overlap itself", a)
		}
		if Covers(a, b) && !Overlap(a, b) {
			t.Fatalf("%q covers %q but they do not overlap", a, b)
		}
		if Overlap(a, b) != Overlap(b, a) {
			t.Fatalf("Overlap(%q, %q) is not symmetric", a, b)
		}
		// Topics to try: the given one, and each filter with its wildcards filled in.
		candidates := []string{topic, fill(a, "x"), fill(b, "x"), fill(a, "$x"), fill(b, "")}
		for _, tp := range candidates {
			if ValidateTopic(tp) != nil {
				continue
			}
			if Match(a, tp) && Match(b, tp) && !Overlap(a, b) {
				t.Fatalf("%q matches both %q and %q, but Overlap says no", tp, a, b)
			}
			if Covers(a, b) && Match(b, tp) && !Match(a, tp) {
				t.Fatalf("Covers(%q, %q), yet %q matches only the second", a, b, tp)
			}
		}
	})
}

// fill makes a topic from a filter: each '+' becomes lit, '#' becomes lit.
func fill(filter, lit string) string {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if l == "+" || l == "#" {
			levels[i] = lit
		}
	}
	return strings.Join(levels, "/")
}
