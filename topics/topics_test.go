package topics

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidateTopic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"plain", "relay/i2c0-3b", nil},
		{"single level", "a", nil},
		{"leading slash", "/a", nil},
		{"trailing slash", "a/", nil},
		{"empty levels", "a//b", nil},
		{"only a slash", "/", nil},
		{"dollar", "$SYS/broker/uptime", nil},
		{"unicode", "teplota/°C/čidlo", nil},
		{"space", "a b/c", nil},
		{"empty", "", ErrEmpty},
		{"plus", "a/+/b", ErrWildcard},
		{"hash", "a/#", ErrWildcard},
		{"plus inside a level", "a+b", ErrWildcard},
		{"nul", "a\x00b", ErrNUL},
		{"invalid utf-8", "a/\xff", ErrInvalidUTF8},
		{"max length", strings.Repeat("a", MaxLength), nil},
		{"too long", strings.Repeat("a", MaxLength+1), ErrTooLong},
	}
	for _, tt := range tests {
		if got := ValidateTopic(tt.in); !errors.Is(got, tt.want) {
			t.Errorf("%s: ValidateTopic(%.20q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestValidateFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want error
	}{
		{"#", nil},
		{"+", nil},
		{"a/#", nil},
		{"a/+/b", nil},
		{"+/+", nil},
		{"/+", nil},
		{"+/#", nil},
		{"a//#", nil},
		{"$SYS/#", nil},
		{"a/b", nil},
		{"", ErrEmpty},
		{"#/a", ErrBadWildcard},
		{"a/#/b", ErrBadWildcard},
		{"a#", ErrBadWildcard},
		{"a/b#", ErrBadWildcard},
		{"a+/b", ErrBadWildcard},
		{"a/+b", ErrBadWildcard},
		{"++", ErrBadWildcard},
		{"##", ErrBadWildcard},
		{"a\x00", ErrNUL},
		{"\xc3\x28", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		if got := ValidateFilter(tt.in); !errors.Is(got, tt.want) {
			t.Errorf("ValidateFilter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// matchCases are the edge cases of MQTT §4.7; the index is held to them too.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"#", "$SYS/broker/uptime", false},
	{"+/broker/uptime", "$SYS/broker/uptime", false},
	{"+", "$SYS", false},
	{"$SYS/#", "$SYS/broker/uptime", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+/uptime", "$SYS/broker/uptime", true},
	{"a/#", "a", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b", "a/b", true},
	{"a/b", "a/b/c", false},
	{"a/b", "a", false},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+", "a/b/c", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a//c", true},
	{"a/+/c", "a/b/d", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+", "a", true},
	{"+/#", "a", true},
	{"+/#", "a/b/c", true},
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a", false},
	{"sport/tennis/#", "sport/tennis/player1/ranking", true},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tt := range matchCases {
		if got := Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("nodes/+/relay/#", "nodes/bridge/relay/i2c0-3b/set")
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times per call", allocs)
	}
}

func TestMount(t *testing.T) {
	t.Parallel()
	if got := Mount("nodes/bridge/0", "relay/i2c0-3b/set"); got != "nodes/bridge/0/relay/i2c0-3b/set" {
		t.Errorf("Mount = %q", got)
	}
	if got := Mount("", "relay/x"); got != "relay/x" {
		t.Errorf("Mount at the root = %q", got)
	}
	if got := Mount("nodes", "#"); got != "nodes/#" {
		t.Errorf("Mount of a filter = %q", got)
	}

	unmounts := []struct {
		base, topic, rel string
		ok               bool
	}{
		{"", "a/b", "a/b", true},
		{"nodes/bridge/0", "nodes/bridge/0/relay/x", "relay/x", true},
		{"nodes/bridge/0", "nodes/bridge/0", "", false},
		{"nodes/bridge/0", "nodes/bridge/0/", "", false},
		{"nodes/bridge/0", "nodes/bridge/01/relay", "", false},
		{"nodes/bridge/0", "nodes/bridge", "", false},
		{"nodes/bridge/0", "other/bridge/0/x", "", false},
	}
	for _, tt := range unmounts {
		rel, ok := Unmount(tt.base, tt.topic)
		if rel != tt.rel || ok != tt.ok {
			t.Errorf("Unmount(%q, %q) = %q, %v; want %q, %v", tt.base, tt.topic, rel, ok, tt.rel, tt.ok)
		}
	}
}

func TestValidateBase(t *testing.T) {
	t.Parallel()
	good := []string{"", "nodes", "nodes/bridge/0", "$SYS", "a b"}
	for _, b := range good {
		if err := ValidateBase(b); err != nil {
			t.Errorf("ValidateBase(%q) = %v, want nil", b, err)
		}
	}
	bad := map[string]error{
		"nodes/":      ErrBadBase,
		"/nodes":      ErrBadBase,
		"a//b":        ErrBadBase,
		"..":          ErrBadBase,
		"a/../b":      ErrBadBase,
		"./a":         ErrBadBase,
		"a/+":         ErrWildcard,
		"#":           ErrWildcard,
		"a\x00":       ErrNUL,
		"\xff":        ErrInvalidUTF8,
		"nodes/%2F/x": nil, // percent signs are ordinary characters in MQTT
	}
	for b, want := range bad {
		if err := ValidateBase(b); !errors.Is(err, want) {
			t.Errorf("ValidateBase(%q) = %v, want %v", b, err, want)
		}
	}
}

// FuzzValidate checks that the validators never panic and agree with Match.
func FuzzValidate(f *testing.F) {
	for _, tt := range matchCases {
		f.Add(tt.filter, tt.topic)
	}
	f.Add("a/\xff", "\x00")
	f.Fuzz(func(t *testing.T, filter, topic string) {
		topicErr := ValidateTopic(topic)
		filterErr := ValidateFilter(filter)
		_ = ValidateBase(topic)
		if topicErr == nil {
			if err := ValidateFilter(topic); err != nil {
				t.Fatalf("valid topic %q is not a valid filter: %v", topic, err)
			}
			if !Match(topic, topic) {
				t.Fatalf("topic %q does not match itself", topic)
			}
			if got := Match("#", topic); got == (topic[0] == '$') {
				t.Fatalf("Match(#, %q) = %v", topic, got)
			}
			if ValidateBase(topic) == nil {
				rel, ok := Unmount(topic, Mount(topic, "x/y"))
				if !ok || rel != "x/y" {
					t.Fatalf("Unmount(Mount(%q, x/y)) = %q, %v", topic, rel, ok)
				}
			}
		}
		if filterErr == nil && topicErr == nil {
			var got bool
			var x Index[int]
			x.Add(filter, 1)
			x.Match(topic, func(int) { got = true })
			if want := Match(filter, topic); got != want {
				t.Fatalf("filter %q topic %q: index says %v, Match says %v", filter, topic, got, want)
			}
		}
	})
}
