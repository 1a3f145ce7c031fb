package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestUpstreamListKeepsPasswords: the commas of a password in an --upstream
// list are the password's, however they fall (two in a row, one before the
// @, one before a space): the password reaches the connection as typed, or
// the URL is refused without repeating it, never silently changed.
func TestUpstreamListKeepsPasswords(t *testing.T) {
	for _, c := range []struct {
		list string
		want []string
	}{
		{"mqtt://hub:a,,b@h1:1883,mqtt://h2:1883", []string{"mqtt://hub:a,,b@h1:1883", "mqtt://h2:1883"}},
		{"mqtt://hub:a,@h1:1883, mqtt://h2:1883", []string{"mqtt://hub:a,@h1:1883", "mqtt://h2:1883"}},
		{"mqtt://hub:,a@h1:1883", []string{"mqtt://hub:,a@h1:1883"}},
		{"mqtt://h1:1883, ,, mqtt://h2:1883,", []string{"mqtt://h1:1883", "mqtt://h2:1883"}},
		{" , mqtt://h1:1883", []string{"mqtt://h1:1883"}},
	} {
		o, err := parseOptions([]string{"--upstream", c.list}, func(string) (string, bool) { return "", false }, io.Discard)
		if err != nil || !slices.Equal(o.Upstream, c.want) {
			t.Errorf("--upstream %q: %q, %v; want %q", c.list, o.Upstream, err, c.want)
		}
	}
	// A space in a password is not a URL's: refused, and not repeated.
	_, err := parseOptions([]string{"--upstream", "mqtt://hub:se, cr3t@h1:1883,mqtt://h2:1883"}, func(string) (string, bool) { return "", false }, io.Discard)
	if err == nil || strings.Contains(err.Error(), "cr3t") || !strings.Contains(err.Error(), "URL 1 of 2") {
		t.Errorf("a password with a comma and a space: %v; want URL 1 refused, without the password", err)
	}
}
