package main

import (
	"strings"
	"testing"
)

func TestScanClownLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line, topic, rest string
		ok                bool
	}{
		{`["bench/t",{"s":1,"t":2}]`, "bench/t", `{"s":1,"t":2}]`, true},
		{`["clown.talk/-/config/ok",{"ack":false}]`, "clown.talk/-/config/ok", `{"ack":false}]`, true},
		{`["a\"b",1]`, `a\"b`, `1]`, true},
		{`["a\\",1]`, `a\\`, `1]`, true},
		{`["bench/t",{"s":1},{"id":"e-1"}]`, "bench/t", `{"s":1},{"id":"e-1"}]`, true},
		{`{"s":1}`, "", "", false},
		{`["unterminated`, "", "", false},
		{`["t"]`, "", "", false},
		{``, "", "", false},
	}
	for _, c := range cases {
		topic, rest, ok := scanClownLine([]byte(c.line))
		if ok != c.ok || string(topic) != c.topic || string(rest) != c.rest {
			t.Errorf("scanClownLine(%s) = %q, %q, %v; want %q, %q, %v", c.line, topic, rest, ok, c.topic, c.rest, c.ok)
		}
	}
}

func TestForEachLine(t *testing.T) {
	t.Parallel()
	cases := []struct {
		frame string
		want  []string
	}{
		{"[\"a\",1]\n", []string{`["a",1]`}},
		{"[\"a\",1]\n[\"b\",2]\n[\"c\",3]\n", []string{`["a",1]`, `["b",2]`, `["c",3]`}},
		{"[\"a\",1]\r\n\n[\"b\",2]", []string{`["a",1]`, `["b",2]`}},
		{"", nil},
		{"\n\n", nil},
	}
	for _, c := range cases {
		var got []string
		forEachLine([]byte(c.frame), func(line []byte) { got = append(got, string(line)) })
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("forEachLine(%q) = %q, want %q", c.frame, got, c.want)
		}
	}
}
