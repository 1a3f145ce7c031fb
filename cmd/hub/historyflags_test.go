package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/history"
)

// TestHistoryFlags: the history's flags, their defaults, their environment
// twins, and the values refused; --history-length still sets the recent
// messages, with a warning at start.
func TestHistoryFlags(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	o, err := parseOptions(nil, none, io.Discard)
	if err != nil || o.HistoryRaw != history.DefaultRaw || o.HistoryFiveMinute != history.DefaultFiveMinute || o.HistoryHourly != history.DefaultHourly ||
		o.HistoryBytes != history.DefaultMaxBytes || o.HistorySeries != history.DefaultMaxSeries || !slices.Equal(o.HistoryTopics, []string{"#"}) {
		t.Fatalf("defaults: %+v %v", o, err)
	}
	o, err = parseOptions([]string{"--history-raw", "24h", "--history-5m", "240h", "--history-1h", "8760h", "--history-bytes", "0",
		"--history-series", "5", "--history-topics", "a/#", "--history-topics", "b/+/c", "--recent-messages", "7", "--recent-bytes", "2048"}, none, io.Discard)
	if err != nil || o.HistoryRaw != 24*time.Hour || o.HistoryFiveMinute != 240*time.Hour || o.HistoryHourly != 8760*time.Hour || o.HistoryBytes != 0 ||
		o.HistorySeries != 5 || !slices.Equal(o.HistoryTopics, []string{"a/#", "b/+/c"}) || o.RecentMessages != 7 || o.RecentBytes != 2048 || o.historyOn() {
		t.Fatalf("given: %+v %v", o, err)
	}
	env := map[string]string{"HUB_HISTORY_TOPICS": "x/#,y", "HUB_HISTORY_LENGTH": "9"}
	o, err = parseOptions(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, io.Discard)
	if err != nil || !slices.Equal(o.HistoryTopics, []string{"x/#", "y"}) || o.RecentMessages != 9 || !o.explicit["history-length"] {
		t.Fatalf("from the environment: %+v %v", o, err)
	}
	var warned []string
	warnDeprecated(o, func(msg string, _ ...any) { warned = append(warned, msg) })
	if len(warned) != 1 || !strings.Contains(warned[0], "--recent-messages") {
		t.Errorf("--history-length warns %q, want once, naming --recent-messages", warned)
	}
	for _, args := range [][]string{
		{"--history-bytes", "-1"}, {"--history-bytes", "1000"}, {"--history-series", "0"}, {"--history-raw", "0s"},
		{"--history-raw", "1000h"}, {"--history-topics", "a/#/b"}, {"--history-topics", "$share/g/a"}, {"--recent-messages", "0"},
	} {
		if _, err := parseOptions(args, none, io.Discard); err == nil || !strings.Contains(err.Error(), args[0]) || exitStatus(err) != 2 {
			t.Errorf("%v: %v, want a usage error naming %s", args, err, args[0])
		}
	}
}

// TestHistoryLengthWarnsAtStart: the hub started with --history-length
// logs one WARN naming the new flag.
func TestHistoryLengthWarnsAtStart(t *testing.T) {
	h := startHub(t, "--history-length", "5")
	if n := strings.Count(h.Log.String(), "--history-length is deprecated: use --recent-messages"); n != 1 {
		t.Fatalf("%d deprecation warnings, want 1:\n%s", n, h.Log.String())
	}
}
